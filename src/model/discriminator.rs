//! The CartoonGAN patch discriminator: a map of real/fake logits, one per receptive field.
//!
//! conv 3×3 C, LReLU → conv 3×3 2C stride 2, LReLU → conv 3×3 4C, IN, LReLU →
//! conv 3×3 4C stride 2, LReLU → conv 3×3 8C, IN, LReLU → conv 3×3 8C, IN, LReLU → conv 3×3 1.
//! C is 32 in the original. Tensor names: `conv.{0..6}`, `norm.{2,4,5}` (weight, bias).

use tch::{nn, TchError, Tensor};

use super::generator::{leaky_relu, Conv, InstanceNorm};

/// The discriminator network.
#[derive(Debug)]
pub struct Discriminator {
    convs: Vec<Conv>,
    norms: Vec<Option<InstanceNorm>>,
}

impl Discriminator {
    /// Creates the layers under `p` with `base_channels` (32 in the original).
    pub fn new(p: &nn::Path, base_channels: i64) -> Self {
        let c = base_channels;
        // (in, out, stride, instance norm)
        let layers = [
            (3, c, 1, false),
            (c, 2 * c, 2, false),
            (2 * c, 4 * c, 1, true),
            (4 * c, 4 * c, 2, false),
            (4 * c, 8 * c, 1, true),
            (8 * c, 8 * c, 1, true),
            (8 * c, 1, 1, false),
        ];
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        for (i, &(cin, cout, stride, norm)) in layers.iter().enumerate() {
            convs.push(Conv::new(p / "conv" / i, cin, cout, 3, stride, false));
            norms.push(norm.then(|| InstanceNorm::new(p / "norm" / i, cout)));
        }
        Self { convs, norms }
    }

    /// Logits for an NCHW batch in [-1, 1]: shape N×1×H/4×W/4.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let last = self.convs.len() - 1;
        let mut h = x.shallow_clone();
        for (i, (conv, norm)) in self.convs.iter().zip(&self.norms).enumerate() {
            h = conv.forward(&h)?;
            if i == last {
                break;
            }
            if let Some(norm) = norm {
                h = norm.forward(&h)?;
            }
            h = leaky_relu(&h)?;
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn patch_map_shape() {
        let vs = nn::VarStore::new(Device::Cpu);
        let d = crate::model::with_global_rng(|| Discriminator::new(&vs.root(), 4));
        let y = d.forward(&Tensor::zeros([2, 3, 32, 24], (Kind::Float, Device::Cpu))).unwrap();
        assert_eq!(y.size(), vec![2, 1, 8, 6]);
    }
}
