//! Temporal stability learned in training, without optical flow at inference: the compound
//! regularisation of Wang et al., AAAI 2020 ("Consistent Video Style Transfer via Compound
//! Regularization"). A photo moved by a small random affine motion, with a little noise added,
//! stands in for the next video frame; the generator is penalised where stylizing the moved
//! photo differs from moving the stylized one: `|warp(G(x)) − G(warp(x) + noise)|`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, TchError, Tensor};

/// What kind of motion the temporal term draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MotionKind {
    /// A small rotation, zoom and shift (bilinear: a moved textured output is also blurred,
    /// so the term penalises fine texture as well as instability).
    #[default]
    Affine,
    /// A shift by whole pixels (-3..=3, each axis; a slow pan): the warp is exact, so only an
    /// output that does not move with its input is penalised. Shifts that are not multiples
    /// of 4 change the sampling phase of the two stride-2 layers, where texture crawls.
    Shift,
}

/// The random motion of one training step: one affine matrix per image and the noise.
pub struct Motion {
    /// N×2×3 affine matrices (normalised coordinates, as `affine_grid` takes them).
    pub theta: Tensor,
    /// Noise added to the moved photo, same shape as the batch.
    pub noise: Tensor,
}

/// Largest shift, in pixels; rotation in degrees; relative zoom. A slow pan or a hand-held
/// phone moves a few pixels a frame.
const MAX_SHIFT_PX: f64 = 3.0;
const MAX_ROTATION_DEG: f64 = 1.0;
const MAX_ZOOM: f64 = 0.02;

impl Motion {
    /// A motion drawn from `seed` alone (so a resumed run draws the same), for a batch of
    /// `shape` (N, C, H, W) with noise of standard deviation `noise_std` (values in [-1, 1]).
    pub fn random(
        seed: u64,
        shape: [i64; 4],
        noise_std: f64,
        kind: MotionKind,
        device: tch::Device,
    ) -> Result<Self, TchError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let [n, c, h, w] = shape;
        let mut theta = Vec::with_capacity(n as usize * 6);
        for _ in 0..n {
            let (angle, zoom, sx, sy) = match kind {
                MotionKind::Affine => (
                    rng.gen_range(-MAX_ROTATION_DEG..=MAX_ROTATION_DEG).to_radians(),
                    1.0 + rng.gen_range(-MAX_ZOOM..=MAX_ZOOM),
                    rng.gen_range(-MAX_SHIFT_PX..=MAX_SHIFT_PX),
                    rng.gen_range(-MAX_SHIFT_PX..=MAX_SHIFT_PX),
                ),
                MotionKind::Shift => {
                    let whole = MAX_SHIFT_PX as i64;
                    (0.0, 1.0, rng.gen_range(-whole..=whole) as f64, rng.gen_range(-whole..=whole) as f64)
                }
            };
            // affine_grid's coordinates run from -1 to 1 across the image: a pixel is 2 / side.
            let (tx, ty) = (sx * 2.0 / w as f64, sy * 2.0 / h as f64);
            let (sin, cos) = angle.sin_cos();
            theta.extend([cos * zoom, -sin * zoom, tx, sin * zoom, cos * zoom, ty].map(|v| v as f32));
        }
        // Box–Muller from the same stream.
        let count = (n * c * h * w) as usize;
        let mut noise = Vec::with_capacity(count);
        while noise.len() < count {
            let (u1, u2): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.gen());
            let radius = (-2.0 * u1.ln()).sqrt() * noise_std;
            let angle = std::f64::consts::TAU * u2;
            noise.push((radius * angle.cos()) as f32);
            noise.push((radius * angle.sin()) as f32);
        }
        noise.truncate(count);
        Ok(Self {
            theta: Tensor::from_slice(&theta).f_view([n, 2, 3])?.f_to_device(device)?,
            noise: Tensor::from_slice(&noise).f_view([n, c, h, w])?.f_to_device(device)?,
        })
    }

    /// The identity motion without noise (for tests: the term must then vanish).
    pub fn identity(shape: [i64; 4], device: tch::Device) -> Result<Self, TchError> {
        let [n, ..] = shape;
        let one = Tensor::from_slice(&[1f32, 0., 0., 0., 1., 0.]).f_view([1, 2, 3])?;
        Ok(Self {
            theta: one.f_expand([n, 2, 3], false)?.f_contiguous()?.f_to_device(device)?,
            noise: Tensor::f_zeros(shape, (Kind::Float, device))?,
        })
    }

    /// `x` moved by the motion (bilinear; outside the image is 0), in f32: libtorch's CPU
    /// grid sampler gives NaN in bf16.
    pub fn warp(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let grid = Tensor::f_affine_grid_generator(&self.theta, x.size(), false)?;
        // Modes: 0 = bilinear, 0 = zeros outside.
        x.f_to_kind(Kind::Float)?.f_grid_sampler(&grid, 0, 0, false)
    }

    /// Where the moved image has a full source pixel (N×1×H×W, 1 or 0).
    fn valid(&self, like: &Tensor) -> Result<Tensor, TchError> {
        let (n, _, h, w) = like.size4()?;
        let ones = Tensor::f_ones([n, 1, h, w], (Kind::Float, like.device()))?;
        self.warp(&ones)?.f_gt(0.999)?.f_to_kind(Kind::Float)
    }
}

/// The compound regularisation term: mean `|warp(stylized) − stylize(warp(photo) + noise)|`
/// over the pixels the motion keeps inside the image. `stylized` is `stylize(photo)`,
/// already computed by the step.
pub fn temporal_loss(
    photo: &Tensor,
    stylized: &Tensor,
    motion: &Motion,
    stylize: impl Fn(&Tensor) -> Result<Tensor, TchError>,
) -> Result<Tensor, TchError> {
    let moved_photo = motion.warp(photo)?.f_add(&motion.noise)?.f_to_kind(photo.kind())?;
    let stylized_moved = stylize(&moved_photo)?.f_to_kind(Kind::Float)?;
    let moved_stylized = motion.warp(&stylized.f_to_kind(Kind::Float)?)?;
    let mask = motion.valid(stylized)?;
    let channels = stylized.size4()?.1 as f64;
    let area = mask.f_sum(Kind::Float)?.f_mul_scalar(channels)?.f_clamp_min(1.0)?;
    moved_stylized.f_sub(&stylized_moved)?.f_abs()?.f_mul(&mask)?.f_sum(Kind::Float)?.f_div(&area)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn blur(x: &Tensor) -> Result<Tensor, TchError> {
        x.f_avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None)
    }

    #[test]
    fn the_term_is_zero_for_the_identity_without_noise() {
        tch::manual_seed(2);
        let photo = Tensor::rand([2, 3, 24, 32], (Kind::Float, Device::Cpu)) * 2 - 1;
        let motion = Motion::identity([2, 3, 24, 32], Device::Cpu).unwrap();
        let stylized = blur(&photo).unwrap();
        let loss = temporal_loss(&photo, &stylized, &motion, blur).unwrap().double_value(&[]);
        assert!(loss.abs() < 1e-6, "{loss}");
    }

    #[test]
    fn whole_pixel_shifts_do_not_penalise_texture_that_moves_with_the_picture() {
        let shape = [4, 3, 24, 32];
        tch::manual_seed(4);
        let photo = Tensor::rand(shape, (Kind::Float, Device::Cpu)) * 2 - 1;
        // A non-linear per-pixel map of a noise image: sharp texture that moves exactly with
        // its input. A bilinear sub-pixel warp blurs it; a whole-pixel shift does not.
        let sharpen = |x: &Tensor| x.f_mul_scalar(3.0)?.f_tanh();
        let term = |kind| {
            let motion = Motion::random(11, shape, 0.0, kind, Device::Cpu).unwrap();
            temporal_loss(&photo, &sharpen(&photo).unwrap(), &motion, sharpen).unwrap().double_value(&[])
        };
        let (shift, affine) = (term(MotionKind::Shift), term(MotionKind::Affine));
        assert!(shift < 1e-6, "{shift}");
        assert!(affine > 0.05, "{affine}");
        let motion = Motion::random(11, shape, 0.0, MotionKind::Shift, Device::Cpu).unwrap();
        let theta = Vec::<f32>::try_from(motion.theta.flatten(0, -1)).unwrap();
        for m in theta.chunks(6) {
            assert_eq!((m[0], m[1], m[3], m[4]), (1.0, 0.0, 0.0, 1.0), "no rotation or zoom");
            let (px, py) = (m[2] * 32.0 / 2.0, m[5] * 24.0 / 2.0);
            assert!((px - px.round()).abs() < 1e-4 && (py - py.round()).abs() < 1e-4, "whole pixels: {px}, {py}");
            assert!(px.abs() <= 3.0 && py.abs() <= 3.0);
        }
    }

    #[test]
    fn a_motion_is_seeded_and_makes_a_pointwise_filter_consistent() {
        let shape = [2, 3, 32, 32];
        let a = Motion::random(7, shape, 0.0, MotionKind::Affine, Device::Cpu).unwrap();
        let b = Motion::random(7, shape, 0.0, MotionKind::Affine, Device::Cpu).unwrap();
        assert!(a.theta.equal(&b.theta) && a.noise.equal(&b.noise));
        assert!(!a.theta.equal(&Motion::random(8, shape, 0.0, MotionKind::Affine, Device::Cpu).unwrap().theta));
        tch::manual_seed(3);
        let photo = Tensor::rand(shape, (Kind::Float, Device::Cpu)) * 2 - 1;
        // A per-pixel map commutes with any warp up to interpolation of a non-linear map: small.
        let pointwise = |x: &Tensor| x.f_mul_scalar(0.5);
        let consistent = temporal_loss(&photo, &pointwise(&photo).unwrap(), &a, pointwise).unwrap();
        // Mapping each image to noise of its own does not commute: large.
        let inconsistent = |x: &Tensor| Ok(Tensor::rand_like(x));
        let shaky = temporal_loss(&photo, &Tensor::rand_like(&photo), &a, inconsistent).unwrap();
        assert!(consistent.double_value(&[]) < 1e-5, "{}", consistent.double_value(&[]));
        assert!(shaky.double_value(&[]) > 0.2);
        // Noise is drawn with the asked spread.
        let noisy = Motion::random(7, shape, 0.05, MotionKind::Affine, Device::Cpu).unwrap();
        let std = noisy.noise.std(true).double_value(&[]);
        assert!((std - 0.05).abs() < 0.005, "{std}");
    }
}
