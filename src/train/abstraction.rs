//! A cartoon abstraction of a photo, computed on tensors: the target that teaches the
//! generator a flat, outlined look within minutes instead of waiting for the adversarial
//! loss to find it (after White-box Cartoonization's surface and structure
//! representations, Wang & Yu, CVPR 2020, in a simpler, fixed form).
//!
//! Three steps, on RGB in [0, 1]:
//! 1. **Surface**: a self-guided filter (He et al. 2010) applied a few times flattens texture
//!    while keeping strong edges; its chroma may then be raised (`saturation`), as
//!    illustrations are more saturated than photos.
//! 2. **Colour flattening**: luma is pushed onto a soft staircase of `levels` steps (chroma
//!    kept), so gradients become flat bands with short transitions.
//! 3. **Outlines**: where the difference of Gaussians of the flattened luma is dark beyond a
//!    threshold, pixels are darkened, giving thin lines on the dark side of edges.
//!
//! Measured on the 13 shared travel photos at 512 px (`../shared/tools/style_stats.py`, the
//! same operator in OpenCV): flat share 0.54 → 0.77, colours 242 → 139 per 10k, outlines
//! 1.05 % of pixels.

use serde::{Deserialize, Serialize};
use tch::{Kind, TchError, Tensor};

/// Parameters of the abstraction (the defaults are the measured ones).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AbstractionConfig {
    /// Box radius of the guided filter, in pixels.
    pub radius: i64,
    /// Guided filter ε: variances below it (values in [0, 1]) are smoothed away.
    pub eps: f64,
    /// Guided filter passes.
    pub passes: u32,
    /// Luma steps of the colour flattening (0: none).
    pub levels: u32,
    /// Sharpness of each step (the slope of its sigmoid).
    pub step_sharpness: f64,
    /// Gain of the outlines (0: none).
    pub line_gain: f64,
    /// Difference-of-Gaussians threshold below which no line is drawn.
    pub line_threshold: f64,
    /// σ of the narrower Gaussian (the wider is 1.6 σ).
    pub line_sigma: f64,
    /// Chroma gain around each pixel's luma (1: colours as in the photo).
    pub saturation: f64,
}

impl Default for AbstractionConfig {
    fn default() -> Self {
        Self {
            radius: 3,
            eps: 0.006,
            passes: 3,
            levels: 10,
            step_sharpness: 8.0,
            line_gain: 40.0,
            line_threshold: 0.01,
            line_sigma: 1.0,
            saturation: 1.0,
        }
    }
}

/// The abstraction of an NCHW RGB batch in [-1, 1], returned in [-1, 1] as f32. Needs
/// sides of at least 2 r + 1 and 6 σ + 1 pixels (the training crops are far larger).
pub fn abstraction(photo: &Tensor, config: &AbstractionConfig) -> Result<Tensor, TchError> {
    let unit = photo.f_to_kind(Kind::Float)?.f_add_scalar(1.0)?.f_mul_scalar(0.5)?;
    let mut x = crate::model::surface::smooth_unit(&unit, config.radius, config.eps, config.passes)?;
    if config.saturation != 1.0 {
        let luma = x.f_mean_dim(1, true, Kind::Float)?;
        x = x.f_sub(&luma)?.f_mul_scalar(config.saturation)?.f_add(&luma)?.f_clamp(0.0, 1.0)?;
    }
    if config.levels > 0 {
        let luma = x.f_mean_dim(1, true, Kind::Float)?;
        let scaled = luma.f_mul_scalar(f64::from(config.levels))?;
        let step = scaled.f_floor()?;
        let within = scaled.f_sub(&step)?.f_sub_scalar(0.5)?.f_mul_scalar(config.step_sharpness)?.f_sigmoid()?;
        let flattened = step.f_add(&within)?.f_div_scalar(f64::from(config.levels))?;
        x = x.f_add(&flattened.f_sub(&luma)?)?.f_clamp(0.0, 1.0)?;
    }
    if config.line_gain > 0.0 {
        let ink = crate::model::surface::ink(
            &x,
            config.line_sigma,
            config.line_threshold,
            config.line_gain,
            f64::from(crate::model::generator::DEFAULT_OUTLINE_INK) / 100.0,
        )?;
        x = x.f_mul(&ink.f_neg()?.f_add_scalar(1.0)?)?;
    }
    x.f_mul_scalar(2.0)?.f_sub_scalar(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn a_flat_image_stays_flat_and_in_range() {
        let grey = Tensor::full([1, 3, 32, 32], 0.2, (Kind::Float, Device::Cpu));
        let out = abstraction(&grey, &AbstractionConfig::default()).unwrap();
        assert_eq!(out.size(), vec![1, 3, 32, 32]);
        // One colour in, one colour out (the staircase moves it, nothing varies across it).
        let spread = (out.max() - out.min()).double_value(&[]);
        assert!(spread < 1e-5, "spread {spread}");
    }

    #[test]
    fn saturation_scales_chroma_around_luma_and_leaves_grey_alone() {
        let config = AbstractionConfig { levels: 0, line_gain: 0.0, saturation: 2.0, ..Default::default() };
        // RGB (0.5, 0.3, 0.4) in [0, 1]: luma 0.4, chroma (0.1, -0.1, 0) doubles.
        let colour = Tensor::from_slice(&[0.0f32, -0.4, -0.2]).view([1, 3, 1, 1]).expand([1, 3, 16, 16], true);
        let out = abstraction(&colour, &config).unwrap();
        let pixel: Vec<f64> = (0..3).map(|c| (out.double_value(&[0, c, 8, 8]) + 1.0) / 2.0).collect();
        for (got, want) in pixel.iter().zip([0.6, 0.2, 0.4]) {
            assert!((got - want).abs() < 1e-4, "{pixel:?}");
        }
        let grey = Tensor::full([1, 3, 16, 16], 0.3, (Kind::Float, Device::Cpu));
        let out = abstraction(&grey, &config).unwrap();
        assert!((out - 0.3).abs().max().double_value(&[]) < 1e-5);
    }

    #[test]
    fn texture_is_flattened_and_edges_get_lines() {
        // Left half dark, right half light, both with fine noise.
        tch::manual_seed(1);
        let noise = Tensor::randn([1, 3, 48, 48], (Kind::Float, Device::Cpu)) * 0.04;
        let halves = Tensor::cat(
            &[
                Tensor::full([1, 3, 48, 24], -0.4, (Kind::Float, Device::Cpu)),
                Tensor::full([1, 3, 48, 24], 0.6, (Kind::Float, Device::Cpu)),
            ],
            3,
        );
        let photo = halves + noise;
        let out = abstraction(&photo, &AbstractionConfig::default()).unwrap();
        let roughness = |t: &Tensor| {
            let inner = t.narrow(3, 4, 14); // well inside the left half
            (inner.narrow(3, 1, 13) - inner.narrow(3, 0, 13)).abs().mean(Kind::Float).double_value(&[])
        };
        assert!(roughness(&out) < roughness(&photo) / 4.0, "{} vs {}", roughness(&out), roughness(&photo));
        // The dark side of the edge is darker than the dark half's interior: an outline.
        let column = |x: i64| out.narrow(3, x, 1).narrow(2, 8, 32).mean(Kind::Float).double_value(&[]);
        assert!(column(23) < column(10) - 0.05, "edge {} interior {}", column(23), column(10));
    }
}
