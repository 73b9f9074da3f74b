//! Edge-preserving smoothing: the self-guided filter (He et al. 2010) applied a few times.
//! It flattens texture and keeps strong edges, as White-box Cartoonization's "surface
//! representation" does. The generator's input skip carries the photo through it, so the
//! output starts from a flat version of the photo (its colours, none of its fine texture);
//! the training abstraction target starts from the same filter.
//!
//! Outlines come from the same surface: dark lines on the dark side of its edges, where the
//! difference of Gaussians of its luma is negative beyond a threshold ([`ink`]). The
//! generator's `outlines` option and the abstraction target draw them with one function.

use tch::{Kind, TchError, Tensor};

/// Box radius of the filter used by the generator's input skip, in pixels.
pub const RADIUS: i64 = 3;
/// ε of that filter: variances below it (values in [0, 1]) are smoothed away.
pub const EPS: f64 = 0.006;
/// Passes of that filter.
pub const PASSES: u32 = 3;
/// σ of the narrower Gaussian of the generator's outlines (the wider is 1.6 σ), in pixels.
pub const LINE_SIGMA: f64 = 1.2;
/// Difference of Gaussians (luma in [0, 1]) below which the generator draws no outline.
pub const LINE_THRESHOLD: f64 = 0.006;
/// Ink per unit of difference beyond the threshold.
pub const LINE_GAIN: f64 = 80.0;

/// Mean over a (2r+1)² box, over the pixels inside the image near its borders.
pub fn box_mean(x: &Tensor, r: i64) -> Result<Tensor, TchError> {
    let k = 2 * r + 1;
    x.f_avg_pool2d([k, k], [1, 1], [r, r], false, false, None)
}

/// One pass of the self-guided filter on each channel of an NCHW batch in [0, 1].
fn self_guided(x: &Tensor, r: i64, eps: f64) -> Result<Tensor, TchError> {
    let mean = box_mean(x, r)?;
    let var = box_mean(&x.f_mul(x)?, r)?.f_sub(&mean.f_mul(&mean)?)?.f_clamp_min(0.0)?;
    let a = var.f_div(&var.f_add_scalar(eps)?)?;
    let b = mean.f_sub(&a.f_mul(&mean)?)?;
    box_mean(&a, r)?.f_mul(x)?.f_add(&box_mean(&b, r)?)
}

/// `passes` passes of [`self_guided`] over an NCHW batch in [-1, 1], in f32; returns [-1, 1].
/// Each pass reaches 2 r pixels, so the result depends on 2 r × passes pixels around each
/// output pixel: it runs on whole frames.
pub fn smooth(x: &Tensor, r: i64, eps: f64, passes: u32) -> Result<Tensor, TchError> {
    smooth_unit(&x.f_to_kind(Kind::Float)?.f_add_scalar(1.0)?.f_mul_scalar(0.5)?, r, eps, passes)?
        .f_mul_scalar(2.0)?
        .f_sub_scalar(1.0)
}

/// `passes` passes of [`self_guided`] over an NCHW batch in [0, 1].
pub fn smooth_unit(x: &Tensor, r: i64, eps: f64, passes: u32) -> Result<Tensor, TchError> {
    let mut y = x.shallow_clone();
    for _ in 0..passes {
        y = self_guided(&y, r, eps)?;
    }
    Ok(y)
}

/// Separable Gaussian blur of an N×1×H×W tensor, borders reflected (sides must exceed
/// 3 σ).
pub fn gaussian(x: &Tensor, sigma: f64) -> Result<Tensor, TchError> {
    let r = (3.0 * sigma).ceil() as i64;
    let taps: Vec<f32> = (-r..=r).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32).collect();
    let sum: f32 = taps.iter().sum();
    let taps: Vec<f32> = taps.iter().map(|t| t / sum).collect();
    let kernel = Tensor::from_slice(&taps).to_device(x.device());
    let horizontal = kernel.f_view([1, 1, 1, 2 * r + 1])?;
    let vertical = kernel.f_view([1, 1, 2 * r + 1, 1])?;
    let x = x.f_reflection_pad2d([r, r, r, r])?;
    x.f_conv2d(&horizontal, None::<&Tensor>, [1], [0], [1], 1)?.f_conv2d(&vertical, None::<&Tensor>, [1], [0], [1], 1)
}

/// The ink of outlines for an NCHW RGB batch in [0, 1] (f32): N×1×H×W in [0, `max_ink`],
/// `gain` times how far the difference of Gaussians of the luma (σ and 1.6 σ) falls below
/// `-threshold`. That is the dark side of each edge, so lines sit just inside dark shapes.
/// Multiply colours by `1 - ink` to draw them.
pub fn ink(unit: &Tensor, sigma: f64, threshold: f64, gain: f64, max_ink: f64) -> Result<Tensor, TchError> {
    let luma = unit.f_mean_dim(1, true, Kind::Float)?;
    let dog = gaussian(&luma, sigma)?.f_sub(&gaussian(&luma, 1.6 * sigma)?)?;
    dog.f_neg()?.f_sub_scalar(threshold)?.f_mul_scalar(gain)?.f_clamp(0.0, max_ink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn noise_is_smoothed_and_a_step_kept() {
        tch::manual_seed(2);
        let step = Tensor::cat(
            &[
                Tensor::full([1, 3, 32, 48], -0.5, (Kind::Float, Device::Cpu)),
                Tensor::full([1, 3, 32, 48], 0.5, (Kind::Float, Device::Cpu)),
            ],
            3,
        );
        let noisy = &step + Tensor::randn([1, 3, 32, 96], (Kind::Float, Device::Cpu)) * 0.03;
        let out = smooth(&noisy, RADIUS, EPS, PASSES).unwrap();
        // Away from the step (further than the filter reaches), the noise is mostly gone.
        let roughness = |t: &Tensor| {
            let inner = t.narrow(3, 4, 20);
            (inner.narrow(3, 1, 19) - inner.narrow(3, 0, 19)).abs().mean(Kind::Float).double_value(&[])
        };
        assert!(roughness(&out) < roughness(&noisy) / 4.0, "{} vs {}", roughness(&out), roughness(&noisy));
        // The step stays a step: the columns beside it keep most of their difference.
        let column = |x: i64| out.narrow(3, x, 1).mean(Kind::Float).double_value(&[]);
        assert!(column(48) - column(47) > 0.5, "{} → {}", column(47), column(48));
    }
}
