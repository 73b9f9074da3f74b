//! Reads the dataset layout `japanim dataset build` writes:
//! `photo/{train,val}`, `anime/{train,val}` and `anime_smooth/{train,val}` (smoothed copies
//! paired with the anime images by file name). Batches are drawn with an RNG seeded by
//! (seed, step), so any step's batch can be drawn again: resuming needs no data-loader state.

use std::path::{Path, PathBuf};

use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::{TrainConfig, TrainError};
use crate::io::image::list_images;

/// Training or validation half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Training images.
    Train,
    /// Held-out images.
    Val,
}

impl Split {
    fn dir(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }
}

/// One step's images, NCHW float in [-1, 1].
pub struct Batch {
    /// Real photos (content domain).
    pub photo: Tensor,
    /// Anime images (style domain).
    pub anime: Tensor,
    /// The same anime images with smoothed edges.
    pub smooth: Tensor,
}

/// The image lists of a dataset.
pub struct Dataset {
    photos: [Vec<PathBuf>; 2],
    anime: [Vec<(PathBuf, PathBuf)>; 2],
}

fn index(split: Split) -> usize {
    split as usize
}

impl Dataset {
    /// Lists a dataset folder, checking the layout and the anime/smoothed pairing.
    pub fn open(root: &Path) -> Result<Self, TrainError> {
        let bad = |reason: String| TrainError::Dataset { path: root.into(), reason };
        if !root.is_dir() {
            return Err(bad("no such folder".into()));
        }
        let list = |kind: &str, split: Split| -> Result<Vec<PathBuf>, TrainError> {
            let dir = root.join(kind).join(split.dir());
            if !dir.is_dir() {
                return if split == Split::Val {
                    Ok(Vec::new())
                } else {
                    Err(bad(format!("{kind}/{} is missing", split.dir())))
                };
            }
            list_images(&dir).map_err(|e| bad(e.to_string()))
        };
        let mut photos: [Vec<PathBuf>; 2] = Default::default();
        let mut anime: [Vec<(PathBuf, PathBuf)>; 2] = Default::default();
        for split in [Split::Train, Split::Val] {
            photos[index(split)] = list("photo", split)?;
            let smooth_dir = root.join("anime_smooth").join(split.dir());
            for a in list("anime", split)? {
                let s = smooth_dir.join(a.file_name().expect("listed files have names"));
                if !s.is_file() {
                    return Err(bad(format!("{} has no smoothed copy at {}", a.display(), s.display())));
                }
                anime[index(split)].push((a, s));
            }
        }
        if photos[0].is_empty() || anime[0].is_empty() {
            return Err(bad("photo/train and anime/train must each hold at least one image".into()));
        }
        Ok(Self { photos, anime })
    }

    /// Number of images of a kind in a split: (photos, anime).
    pub fn counts(&self, split: Split) -> (usize, usize) {
        (self.photos[index(split)].len(), self.anime[index(split)].len())
    }

    /// Validation photos (or training photos when there are none), in order.
    pub fn sample_photos(&self, n: usize) -> &[PathBuf] {
        let photos = if self.photos[1].is_empty() { &self.photos[0] } else { &self.photos[1] };
        &photos[..n.min(photos.len())]
    }

    /// Up to `n` training anime images spread evenly over the set, in order.
    pub fn anime_spread(&self, n: usize) -> Vec<&Path> {
        let anime = &self.anime[0];
        let stride = anime.len().div_ceil(n.max(1)).max(1);
        anime.iter().step_by(stride).map(|(a, _)| a.as_path()).collect()
    }

    /// The batch of `step`: random images, random crops, random flips (training only).
    pub fn batch(&self, split: Split, step: u64, config: &TrainConfig, device: Device) -> Result<Batch, TrainError> {
        self.crops(split, step, config)?.to_batch(device)
    }

    /// The crops of `step`'s batch, on the CPU. Every random choice (images, windows, flips)
    /// is drawn in order from the step's RNG first; the images are then read and cut in
    /// parallel, so the result does not depend on the number of threads.
    pub fn crops(&self, split: Split, step: u64, config: &TrainConfig) -> Result<Crops, TrainError> {
        use rayon::prelude::*;
        let (seed, batch, crop) = (config.seed, config.batch, config.crop);
        let flips = config.flips && split == Split::Train;
        let salt = if split == Split::Train { 0 } else { 0x5EED };
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (step << 1) ^ salt);
        let (photos, anime) = (&self.photos[index(split)], &self.anime[index(split)]);
        let (photos, anime) =
            if photos.is_empty() || anime.is_empty() { (&self.photos[0], &self.anime[0]) } else { (photos, anime) };
        let draws: Vec<_> = (0..batch)
            .map(|_| {
                let photo = (&photos[rng.gen_range(0..photos.len())], placement(&mut rng, flips));
                let anime = (&anime[rng.gen_range(0..anime.len())], placement(&mut rng, flips));
                (photo, anime)
            })
            .collect();
        let samples = draws
            .par_iter()
            .map(|&((photo_path, (px, py, pflip)), ((anime_path, smooth_path), (ax, ay, aflip)))| {
                let photo = cut(&load(photo_path)?, crop, px, py, pflip);
                let anime = cut(&load(anime_path)?, crop, ax, ay, aflip);
                let smooth = cut(&load(smooth_path)?, crop, ax, ay, aflip);
                Ok((photo, anime, smooth))
            })
            .collect::<Result<Vec<_>, TrainError>>()?;
        let mut crops = Crops { crop, photo: Vec::new(), anime: Vec::new(), smooth: Vec::new() };
        for (photo, anime, smooth) in samples {
            crops.photo.push(photo);
            crops.anime.push(anime);
            crops.smooth.push(smooth);
        }
        Ok(crops)
    }
}

/// One batch's crops on the CPU (HWC u8, `crop`² each), before they become tensors: what a
/// loader thread prepares while the device runs the previous step.
pub struct Crops {
    crop: u32,
    photo: Vec<Vec<u8>>,
    anime: Vec<Vec<u8>>,
    smooth: Vec<Vec<u8>>,
}

impl Crops {
    /// The batch on `device`.
    pub fn to_batch(&self, device: Device) -> Result<Batch, TrainError> {
        Ok(Batch {
            photo: to_tensor(&self.photo, self.crop, device)?,
            anime: to_tensor(&self.anime, self.crop, device)?,
            smooth: to_tensor(&self.smooth, self.crop, device)?,
        })
    }
}

/// Reads an image as RGB.
pub fn load(path: &Path) -> Result<RgbImage, TrainError> {
    image::open(path)
        .map(|i| i.into_rgb8())
        .map_err(|e| TrainError::Dataset { path: path.into(), reason: format!("cannot read image: {e}") })
}

/// Scales an image up, keeping its aspect, so both sides are at least `crop`.
fn at_least(img: &RgbImage, crop: u32) -> std::borrow::Cow<'_, RgbImage> {
    let (w, h) = img.dimensions();
    if w >= crop && h >= crop {
        return std::borrow::Cow::Borrowed(img);
    }
    let scale = f64::from(crop) / f64::from(w.min(h));
    let (nw, nh) = (((f64::from(w) * scale).ceil() as u32).max(crop), ((f64::from(h) * scale).ceil() as u32).max(crop));
    std::borrow::Cow::Owned(image::imageops::resize(img, nw, nh, image::imageops::FilterType::Triangle))
}

/// A crop position as fractions of the free range (so an anime image and its smoothed copy
/// get the same window) and whether to mirror.
fn placement(rng: &mut ChaCha8Rng, flips: bool) -> (f64, f64, bool) {
    let fx: f64 = rng.gen();
    let fy: f64 = rng.gen();
    (fx, fy, flips && rng.gen_bool(0.5))
}

/// Cuts a `crop`² window at fractional offsets, mirrored when `flip`.
fn cut(img: &RgbImage, crop: u32, fx: f64, fy: f64, flip: bool) -> Vec<u8> {
    let img = at_least(img, crop);
    let (w, h) = img.dimensions();
    let x0 = ((f64::from(w - crop) * fx).floor() as u32).min(w - crop);
    let y0 = ((f64::from(h - crop) * fy).floor() as u32).min(h - crop);
    let mut out = Vec::with_capacity((crop * crop * 3) as usize);
    for y in y0..y0 + crop {
        for i in 0..crop {
            let x = if flip { x0 + crop - 1 - i } else { x0 + i };
            out.extend_from_slice(&img.get_pixel(x, y).0);
        }
    }
    out
}

/// Center crop of `crop`² (after scaling up if needed), for sample grids.
pub fn center_crop(img: &RgbImage, crop: u32) -> Vec<u8> {
    cut(img, crop, 0.5, 0.5, false)
}

/// Packs HWC u8 crops into an NCHW float batch in [-1, 1].
pub fn to_tensor(crops: &[Vec<u8>], crop: u32, device: Device) -> Result<Tensor, TrainError> {
    let c = i64::from(crop);
    packed(&crops.concat(), [crops.len() as i64, c, c], device)
}

/// One whole image as a 1×3×H×W float tensor in [-1, 1].
pub fn image_tensor(img: &RgbImage, device: Device) -> Result<Tensor, TrainError> {
    let (w, h) = img.dimensions();
    packed(img.as_raw(), [1, i64::from(h), i64::from(w)], device)
}

fn packed(bytes: &[u8], [n, h, w]: [i64; 3], device: Device) -> Result<Tensor, TrainError> {
    Ok(Tensor::f_from_data_size(bytes, &[n, h, w, 3], Kind::Uint8)?
        .f_to_device(device)?
        .f_permute([0, 3, 1, 2])?
        // NCHW, as the weights are: channels-last strides from the permute would run the
        // networks channels-last, slower on the CPU (a step of dt2's recipe: 1.63 → 1.47 s).
        .f_contiguous()?
        .f_to_kind(Kind::Float)?
        .f_mul_scalar(1.0 / 127.5)?
        .f_sub_scalar(1.0)?)
}
