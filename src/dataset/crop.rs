//! Square crops of training images. The original tool cut six 256×256 crops from a 3×2 grid
//! of regions of each 1920×1080 frame, at a random offset inside each region; `Grid` does that
//! for any size and count, `Random` places crops anywhere. Deterministic per seed and file name.

use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::DatasetError;

/// Where crops are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CropMode {
    /// One crop per cell of a grid of regions (3×2 for six crops of a 16:9 frame).
    Grid,
    /// Crops anywhere in the image.
    Random,
}

/// How to cut crops.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CropSpec {
    /// Side of the square crops.
    pub size: u32,
    /// Crops per image.
    pub per_image: usize,
    /// Placement.
    pub mode: CropMode,
    /// Rescale factor applied to the image first (1 = none).
    pub scale: f64,
    /// Seed of the offsets.
    pub seed: u64,
}

/// A stable 64-bit hash (FNV-1a), so crops and splits do not depend on processing order.
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Rows and columns of the grid for `n` crops of a `w`×`h` image.
fn grid_shape(n: usize, w: u32, h: u32) -> (usize, usize) {
    let cols = ((n as f64 * f64::from(w) / f64::from(h)).sqrt().round() as usize).clamp(1, n);
    (n.div_ceil(cols), cols)
}

/// Top-left corners of the crops of an image of `w`×`h` (already scaled), keyed by `key`.
pub fn placements(spec: &CropSpec, w: u32, h: u32, key: &str) -> Result<Vec<(u32, u32)>, DatasetError> {
    let size = spec.size;
    if w < size || h < size {
        return Err(DatasetError::Invalid(format!(
            "{w}x{h} (after scaling by {}) is smaller than the {size}x{size} crop",
            spec.scale
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ stable_hash(key));
    let n = spec.per_image;
    Ok(match spec.mode {
        CropMode::Random => (0..n).map(|_| (rng.gen_range(0..=w - size), rng.gen_range(0..=h - size))).collect(),
        CropMode::Grid => {
            let (rows, cols) = grid_shape(n, w, h);
            (0..n)
                .map(|i| {
                    let (r, c) = ((i / cols) as u32, (i % cols) as u32);
                    let (x0, x1) = (c * w / cols as u32, (c + 1) * w / cols as u32);
                    let (y0, y1) = (r * h / rows as u32, (r + 1) * h / rows as u32);
                    // Inside the region where it fits; else as near its centre as the image allows.
                    let place = |lo: u32, hi: u32, limit: u32, rng: &mut ChaCha8Rng| {
                        if hi - lo >= size {
                            rng.gen_range(lo..=hi - size)
                        } else {
                            ((lo + hi) / 2).saturating_sub(size / 2).min(limit - size)
                        }
                    };
                    (place(x0, x1, w, &mut rng), place(y0, y1, h, &mut rng))
                })
                .collect()
        }
    })
}

/// The crops of an image.
pub fn crops(img: &RgbImage, spec: &CropSpec, key: &str) -> Result<Vec<RgbImage>, DatasetError> {
    if spec.size == 0 || spec.per_image == 0 || !(spec.scale > 0.0 && spec.scale <= 16.0) {
        return Err(DatasetError::Invalid("crop size and count must be at least 1, scale in (0, 16]".into()));
    }
    let scaled;
    let img = if (spec.scale - 1.0).abs() > 1e-9 {
        let (w, h) = (
            (f64::from(img.width()) * spec.scale).round() as u32,
            (f64::from(img.height()) * spec.scale).round() as u32,
        );
        scaled = image::imageops::resize(img, w.max(1), h.max(1), image::imageops::FilterType::Lanczos3);
        &scaled
    } else {
        img
    };
    let corners = placements(spec, img.width(), img.height(), key)?;
    Ok(corners
        .into_iter()
        .map(|(x, y)| image::imageops::crop_imm(img, x, y, spec.size, spec.size).to_image())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_of_six_on_a_hd_frame_is_three_by_two() {
        assert_eq!(grid_shape(6, 1920, 1080), (2, 3));
        let spec = CropSpec { size: 256, per_image: 6, mode: CropMode::Grid, scale: 1.0, seed: 1 };
        let corners = placements(&spec, 1920, 1080, "a.png").unwrap();
        for (i, (x, y)) in corners.iter().enumerate() {
            let (col, row) = ((i % 3) as u32, (i / 3) as u32);
            assert!(*x >= col * 640 && x + 256 <= (col + 1) * 640, "crop {i} x {x} outside its region");
            assert!(*y >= row * 540 && y + 256 <= (row + 1) * 540, "crop {i} y {y} outside its region");
        }
    }

    #[test]
    fn deterministic_per_seed_and_inside_the_image() {
        for mode in [CropMode::Grid, CropMode::Random] {
            for (w, h) in [(300, 260), (256, 256), (1000, 300)] {
                let spec = CropSpec { size: 256, per_image: 7, mode, scale: 1.0, seed: 9 };
                let a = placements(&spec, w, h, "x.jpg").unwrap();
                assert_eq!(a, placements(&spec, w, h, "x.jpg").unwrap());
                assert!(a.iter().all(|(x, y)| x + 256 <= w && y + 256 <= h), "{mode:?} {w}x{h}: {a:?}");
                // Grid regions smaller than the crop leave no room to move: only random crops
                // (and grid crops in large regions) depend on the seed.
                if w > 256 && mode == CropMode::Random {
                    let other = CropSpec { seed: 10, ..spec };
                    assert_ne!(a, placements(&other, w, h, "x.jpg").unwrap(), "another seed moves the crops");
                }
            }
        }
    }

    #[test]
    fn image_smaller_than_the_crop_is_an_error() {
        let spec = CropSpec { size: 256, per_image: 1, mode: CropMode::Grid, scale: 0.5, seed: 0 };
        let err = crops(&RgbImage::new(400, 300), &spec, "k").unwrap_err().to_string();
        assert_eq!(err, "200x150 (after scaling by 0.5) is smaller than the 256x256 crop");
    }
}
