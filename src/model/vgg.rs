//! The frozen perceptual network: a VGG16 or VGG19 convolutional base up to its conv4 block
//! (conv4_3 or conv4_4, after ReLU), with the input convention of its weights applied exactly.
//!
//! Tensor names follow torchvision (`features.N.weight`, `features.N.bias`). Metadata:
//! `japanim.vgg.variant` = `vgg16` | `vgg19`, `japanim.vgg.input` = `caffe` (BGR, 0–255,
//! minus the ImageNet mean [103.939, 116.779, 123.68]) | `torchvision` (RGB in 0–1, minus
//! mean [0.485, 0.456, 0.406], over std [0.229, 0.224, 0.225]). A file without metadata is
//! taken as torchvision weights; its variant is read from its tensors.

use std::collections::HashMap;
use std::path::Path;

use tch::{nn, Device, TchError, Tensor};

use super::weights::{self, WeightsError};

/// Which VGG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VggVariant {
    /// 13 conv layers; features up to conv4_3.
    Vgg16,
    /// 16 conv layers; features up to conv4_4 (the original CartoonGAN's choice).
    Vgg19,
}

impl VggVariant {
    /// torchvision `features` indices of the conv layers up to conv4, and whether a max-pool
    /// follows each.
    fn layers(self) -> Vec<(usize, i64, i64, bool)> {
        let blocks: &[(i64, usize)] = match self {
            VggVariant::Vgg16 => &[(64, 2), (128, 2), (256, 3), (512, 3)],
            VggVariant::Vgg19 => &[(64, 2), (128, 2), (256, 4), (512, 4)],
        };
        let (mut index, mut cin, mut layers) = (0, 3, Vec::new());
        for (b, &(cout, convs)) in blocks.iter().enumerate() {
            for c in 0..convs {
                let pool = c + 1 == convs && b + 1 < blocks.len();
                layers.push((index, cin, cout, pool));
                cin = cout;
                index += 2; // conv, relu
            }
            index += 1; // pool
        }
        layers
    }

    /// Its name in metadata.
    pub fn name(self) -> &'static str {
        match self {
            VggVariant::Vgg16 => "vgg16",
            VggVariant::Vgg19 => "vgg19",
        }
    }
}

/// How inputs must be prepared for a set of VGG weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VggInput {
    /// Caffe / Keras weights: BGR, 0–255, minus the ImageNet mean.
    Caffe,
    /// torchvision weights: RGB, 0–1, ImageNet mean and std.
    Torchvision,
}

impl VggInput {
    /// Its name in metadata.
    pub fn name(self) -> &'static str {
        match self {
            VggInput::Caffe => "caffe",
            VggInput::Torchvision => "torchvision",
        }
    }
}

/// Pixels of mirrored picture [`Vgg::features_away_from_edges`] is usually given: about half
/// the conv4_3 receptive field (92 px), in whole feature cells of 8 px.
pub const EDGE_PAD: i64 = 48;

/// The VGG conv base with its input convention; weights are frozen.
pub struct Vgg {
    vs: nn::VarStore,
    convs: Vec<(Tensor, Tensor, bool)>,
    variant: VggVariant,
    input: VggInput,
    scale: Tensor,
    shift: Tensor,
}

impl Vgg {
    fn build(variant: VggVariant, input: VggInput, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let convs = variant
            .layers()
            .into_iter()
            .map(|(index, cin, cout, pool)| {
                let p = &root / "features" / index;
                let conv = nn::conv2d(p, cin, cout, 3, nn::ConvConfig { padding: 1, ..Default::default() });
                (conv.ws, conv.bs.expect("bias"), pool)
            })
            .collect();
        // Maps x in [-1, 1] (RGB) to the network's input as scale * x + shift, per channel,
        // in the network's channel order.
        let (scale, shift): (Vec<f32>, Vec<f32>) = match input {
            VggInput::Caffe => {
                // BGR order: v255 = 127.5 (x + 1); v255 - mean.
                let mean = [103.939f32, 116.779, 123.68];
                (vec![127.5; 3], mean.iter().map(|m| 127.5 - m).collect())
            }
            VggInput::Torchvision => {
                let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
                // v01 = (x + 1) / 2; (v01 - mean) / std.
                ((0..3).map(|c| 0.5 / std[c]).collect(), (0..3).map(|c| (0.5 - mean[c]) / std[c]).collect())
            }
        };
        let scale = Tensor::from_slice(&scale).view([1, 3, 1, 1]).to_device(device);
        let shift = Tensor::from_slice(&shift).view([1, 3, 1, 1]).to_device(device);
        Self { vs, convs, variant, input, scale, shift }
    }

    /// A VGG with random weights (tests and benchmarks), drawn from libtorch's global
    /// generator: call it inside [`crate::model::with_seed`] or
    /// [`crate::model::with_global_rng`].
    pub fn random(variant: VggVariant, input: VggInput, device: Device) -> Self {
        let mut vgg = Self::build(variant, input, device);
        vgg.vs.freeze();
        vgg
    }

    /// Loads a conv base (extra tensors such as block 5 or the classifier are ignored).
    pub fn load(path: &Path, device: Device) -> Result<Self, WeightsError> {
        let bytes = weights::read_file(path)?;
        let meta = weights::metadata_of(&bytes, path)?;
        let names: Vec<String> = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| weights::corrupt(path, e))?
            .names()
            .into_iter()
            .map(str::to_string)
            .collect();
        let bad = |reason: String| WeightsError::NotAGenerator { path: path.into(), reason };
        let variant = match meta.get("japanim.vgg.variant").map(String::as_str) {
            Some("vgg16") => VggVariant::Vgg16,
            Some("vgg19") => VggVariant::Vgg19,
            Some(other) => return Err(bad(format!("japanim.vgg.variant {other:?} is not vgg16 or vgg19"))),
            // conv3_4 exists in VGG19 only (index 16 is a pool in VGG16).
            None if names.iter().any(|n| n == "features.16.weight") => VggVariant::Vgg19,
            None => VggVariant::Vgg16,
        };
        let input = match meta.get("japanim.vgg.input").map(String::as_str) {
            Some("caffe") => VggInput::Caffe,
            Some("torchvision") | None => VggInput::Torchvision,
            Some(other) => return Err(bad(format!("japanim.vgg.input {other:?} is not caffe or torchvision"))),
        };
        let mut vgg = super::with_global_rng(|| Self::build(variant, input, Device::Cpu));
        weights::load_into(&vgg.vs.variables(), &bytes, path, "", true, &format!("{} conv base", variant.name()))?;
        vgg.vs.set_device(device);
        vgg.vs.freeze();
        let (scale, shift) = (vgg.scale.to_device(device), vgg.shift.to_device(device));
        vgg.scale = scale;
        vgg.shift = shift;
        Ok(vgg)
    }

    /// Saves the weights with their variant and input convention.
    pub fn save(&self, path: &Path, description: &str) -> Result<(), WeightsError> {
        let metadata: HashMap<String, String> = [
            ("japanim.vgg.variant", self.variant.name().to_string()),
            ("japanim.vgg.input", self.input.name().to_string()),
            ("japanim.description", description.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        weights::save_tensors(self.vs.variables(), metadata, weights::StoredPrecision::F32, path)
    }

    /// The variables, by torchvision name.
    pub fn variables(&self) -> HashMap<String, Tensor> {
        self.vs.variables()
    }

    /// Which VGG and input convention.
    pub fn describe(&self) -> (VggVariant, VggInput) {
        (self.variant, self.input)
    }

    /// Prepares RGB in [-1, 1] as the weights expect (channel order, range, mean, std).
    pub fn preprocess(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let x = if self.input == VggInput::Caffe { x.f_flip([1])? } else { x.shallow_clone() };
        x.f_mul(&self.scale.f_to_kind(x.kind())?)?.f_add(&self.shift.f_to_kind(x.kind())?)
    }

    /// conv4 features (after ReLU) of RGB in [-1, 1].
    pub fn features(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let mut h = self.preprocess(x)?;
        for (weight, bias, pool) in &self.convs {
            let (weight, bias) = (super::generator::like(weight, &h)?, super::generator::like(bias, &h)?);
            h = h.f_conv2d(&weight, Some(&bias), [1], [1], [1], 1)?.f_relu()?;
            if *pool {
                h = h.f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)?;
            }
        }
        Ok(h)
    }

    /// conv4 features of RGB in [-1, 1] as if the picture went on past its edges: the image is
    /// extended by `pad` px of its mirror image (at most what it holds, in whole feature cells
    /// of 8 px), and the features of the extension are cut off again. Without it the conv
    /// base's zero padding makes every feature within about 46 px (half the conv4_3 receptive
    /// field) of an edge describe the edge, not the picture: a 128² crop's conv4 map is all
    /// such features, and a 512-px photo's Gram matrix is moved as much by painting its
    /// outer 8 px as by restyling the whole inside.
    pub fn features_away_from_edges(&self, x: &Tensor, pad: i64) -> Result<Tensor, TchError> {
        let (_, _, h, w) = x.size4()?;
        let pad = pad.min(h - 1).min(w - 1).max(0) / 8 * 8;
        if pad == 0 {
            return self.features(x);
        }
        let f = self.features(&x.f_reflection_pad2d([pad, pad, pad, pad])?)?;
        let cell = pad / 8;
        f.f_narrow(2, cell, h / 8)?.f_narrow(3, cell, w / 8)
    }

    /// The response of the first conv layer alone (before ReLU): for checking conversions.
    pub fn first_conv(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let (weight, bias, _) = &self.convs[0];
        self.preprocess(x)?.f_conv2d(weight, Some(bias), [1], [1], [1], 1)
    }
}

/// Gram matrices of NCHW features, normalised by C·H·W: N×C×C.
pub fn gram(features: &Tensor) -> Result<Tensor, TchError> {
    let (n, c, h, w) = features.size4()?;
    let f = features.f_reshape([n, c, h * w])?;
    f.f_bmm(&f.f_transpose(1, 2)?)?.f_div_scalar((c * h * w) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_indices_match_torchvision() {
        let idx: Vec<usize> = VggVariant::Vgg16.layers().iter().map(|l| l.0).collect();
        assert_eq!(idx, [0, 2, 5, 7, 10, 12, 14, 17, 19, 21]);
        let idx: Vec<usize> = VggVariant::Vgg19.layers().iter().map(|l| l.0).collect();
        assert_eq!(idx, [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25]);
    }

    #[test]
    fn gram_by_hand() {
        // One image, two channels over a 1×2 map: rows a = [1, 2], b = [3, 4].
        let f = Tensor::from_slice(&[1f32, 2., 3., 4.]).view([1, 2, 1, 2]);
        let g = gram(&f).unwrap();
        let expected = [[5.0, 11.0], [11.0, 25.0]].map(|r| r.map(|v| v / 4.0)); // / (C·H·W = 4)
        for (i, row) in expected.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                assert!((g.double_value(&[0, i as i64, j as i64]) - v).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn features_away_from_edges_match_inside_and_differ_at_the_edges() {
        let vgg = crate::model::with_seed(3, || Vgg::random(VggVariant::Vgg16, VggInput::Caffe, Device::Cpu));
        let x =
            crate::model::with_seed(4, || Tensor::rand([1, 3, 196, 164], (tch::Kind::Float, Device::Cpu)) * 2.0 - 1.0);
        let zero = vgg.features(&x).unwrap();
        let away = vgg.features_away_from_edges(&x, EDGE_PAD).unwrap();
        // One feature cell per 8 px, as without the mirror (196 / 8 rounds down to 24).
        assert_eq!(away.size(), [1, 512, 24, 20]);
        assert_eq!(away.size(), zero.size());
        // conv4_3 sees 46 px either side: cells whose view stays inside the picture (from
        // 56 px in) are the same either way; those at the edge are not.
        let inner = |f: &Tensor| f.narrow(2, 7, 10).narrow(3, 7, 6);
        let inside = (inner(&zero) - inner(&away)).abs().max().double_value(&[]);
        assert!(inside < 1e-4 * zero.abs().max().double_value(&[]), "{inside}");
        let edge = (zero.narrow(3, 0, 1) - away.narrow(3, 0, 1)).abs().max().double_value(&[]);
        assert!(edge > 1e-2 * zero.abs().max().double_value(&[]), "{edge}");
        // A picture smaller than the mirror is mirrored by as much as it holds.
        let small = x.narrow(2, 0, 20).narrow(3, 0, 12);
        assert_eq!(vgg.features_away_from_edges(&small, EDGE_PAD).unwrap().size(), [1, 512, 2, 1]);
        assert_eq!(vgg.features_away_from_edges(&small.narrow(3, 0, 8), EDGE_PAD).unwrap().size(), [1, 512, 2, 1]);
    }

    #[test]
    fn preprocessing_by_hand() {
        let caffe = crate::model::with_global_rng(|| Vgg::random(VggVariant::Vgg16, VggInput::Caffe, Device::Cpu));
        // RGB (255, 0, 127.5) is x = (1, -1, 0): BGR 0–255 minus mean.
        let x = Tensor::from_slice(&[1f32, -1., 0.]).view([1, 3, 1, 1]);
        let y = caffe.preprocess(&x).unwrap();
        let want = [127.5 - 103.939, 0.0 - 116.779, 255.0 - 123.68];
        for (c, w) in want.iter().enumerate() {
            assert!((y.double_value(&[0, c as i64, 0, 0]) - w).abs() < 1e-3, "caffe channel {c}");
        }
        let tv = crate::model::with_global_rng(|| Vgg::random(VggVariant::Vgg16, VggInput::Torchvision, Device::Cpu));
        let y = tv.preprocess(&x).unwrap();
        let want = [(1.0 - 0.485) / 0.229, (0.0 - 0.456) / 0.224, (0.5 - 0.406) / 0.225];
        for (c, w) in want.iter().enumerate() {
            assert!((y.double_value(&[0, c as i64, 0, 0]) - w).abs() < 1e-4, "torchvision channel {c}");
        }
    }
}
