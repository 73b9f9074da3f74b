//! `japanim eval`: how much of a photo's content a model keeps and how much cartoon style it
//! adds, measured with the perceptual network: content = mean L1 between the conv4 features of
//! each output and its input; style = mean L1 between each output's Gram matrix and the mean
//! Gram matrix of a style set (the same figure for the inputs themselves is the baseline).
//! With them, the look as `shared/tools` measures it ([`crate::look`]): the share of flat pixels
//! and the grid-artefact score, of the outputs and of the inputs; and for a video and its
//! stylized version, a warping error ([`evaluate_video`]).

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use crate::engine::Engine;
use crate::io::image::{list_images, read_scaled};
use crate::look::{self, TemporalFigures};
use crate::model::vgg::{gram, Vgg, EDGE_PAD};
use crate::model::StyleModel;
use crate::Error;

/// How far a set of images is from the style set by VGG conv4 Gram matrices (lower is closer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StyleFigures {
    /// Mean over the images of each one's Gram L1 to the style set's mean Gram matrix.
    pub each: f64,
    /// Gram L1 between the images' mean Gram matrix and the style set's: the set of images
    /// against the set of style images, rather than each image against the set's average.
    pub set: f64,
}

/// The Gram figures of a set of images taken both ways.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GramFigures {
    /// As the picture issue defines them: the conv base pads each image with zeros.
    pub zero_padded: StyleFigures,
    /// With every image, style images too, measured away from its edges
    /// ([`Vgg::features_away_from_edges`], [`EDGE_PAD`] px): what the picture looks like
    /// inside, not at its border.
    pub inside: StyleFigures,
}

/// Figures of one image (a photo, or a model's output of it).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFigures {
    /// The photo.
    pub photo: PathBuf,
    /// Conv4 L1 between the output and the photo (0 for the photo itself).
    pub content_l1: f64,
    /// Gram L1 to the style set's mean Gram matrix, the conv base padding with zeros.
    pub gram_each: f64,
    /// The same away from the image's edges.
    pub gram_each_inside: f64,
    /// Share of flat pixels.
    pub flat_share: f64,
    /// Grid-artefact score.
    pub grid_score: f64,
}

/// Figures for one model on a photo set.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalFigures {
    /// Mean conv4 L1 between output and input (lower keeps more content).
    pub content_l1: f64,
    /// Gram distances of the outputs to the style set.
    pub style: GramFigures,
    /// Mean share of flat pixels of the outputs ([`crate::look::flat_share`]; cartoons are
    /// flatter than photos).
    pub flat_share: f64,
    /// Mean grid-artefact score of the outputs ([`crate::look::grid_score`]; 10 and more is a
    /// visible grid).
    pub grid_score: f64,
    /// The same for each output, in the order of the photos: which photos a model fails on.
    pub images: Vec<ImageFigures>,
}

/// Everything `eval` reports.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// Photos measured.
    pub photos: usize,
    /// Style images averaged.
    pub style_images: usize,
    /// Gram distances of the unchanged photos to the style set.
    pub input_style: GramFigures,
    /// The style images themselves: `each` is each against the set's mean (each image counts
    /// in the mean, so it is a little low: how close "as cartoon as the set" is), `set` the
    /// two halves of the set (every other image) against each other (the floor a set of
    /// outputs as cartoon as the set would reach).
    pub style_self: GramFigures,
    /// Mean share of flat pixels of the style images, at the size their Gram matrices are
    /// taken.
    pub style_flat_share: f64,
    /// Mean share of flat pixels of the photos, as scaled for the models.
    pub input_flat_share: f64,
    /// Mean grid-artefact score of the photos, as scaled for the models.
    pub input_grid_score: f64,
    /// The figures of each photo, unchanged.
    pub input_images: Vec<ImageFigures>,
    /// Per model: its path and figures.
    pub models: Vec<(PathBuf, EvalFigures)>,
}

/// Reads an image scaled so the longer side is at most `max_side` ([`read_scaled`]), as a
/// frame: how `eval` sees photos and style images.
pub fn load_scaled(path: &Path, max_side: u32) -> Result<crate::frame::Frame, Error> {
    let img = read_scaled(path, max_side)?;
    let (width, height) = img.dimensions();
    Ok(crate::frame::Frame { width, height, data: img.into_raw(), pts: None, index: 0 })
}

/// A frame as the 1×3×H×W f32 tensor in [-1, 1] the networks take.
pub fn to_input(frame: &crate::frame::Frame) -> Result<Tensor, Error> {
    let t =
        Tensor::f_from_data_size(&frame.data, &[1, i64::from(frame.height), i64::from(frame.width), 3], Kind::Uint8)
            .and_then(|t| t.f_permute([0, 3, 1, 2]))
            .and_then(|t| t.f_to_kind(Kind::Float))
            .and_then(|t| t.f_mul_scalar(1.0 / 127.5))
            .and_then(|t| t.f_sub_scalar(1.0))
            .map_err(crate::engine::EngineError::from)?;
    Ok(t)
}

fn mean_l1(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().mean(Kind::Float).double_value(&[])
}

/// An image's conv4 features (for content) and its two Gram matrices: with the conv base's
/// zero padding, and away from the edges.
fn features_and_grams(vgg: &Vgg, frame: &crate::frame::Frame) -> Result<(Tensor, [Tensor; 2]), Error> {
    let x = to_input(frame)?;
    let grams = || -> Result<_, tch::TchError> {
        let f = vgg.features(&x)?;
        let (zero, inside) = (gram(&f)?, gram(&vgg.features_away_from_edges(&x, EDGE_PAD)?)?);
        Ok((f, [zero, inside]))
    };
    Ok(grams().map_err(crate::engine::EngineError::from)?)
}

/// Running sums of Gram distances to a target pair and of the Gram matrices themselves, both
/// ways ([`features_and_grams`]).
#[derive(Default)]
struct GramTally {
    distance: [f64; 2],
    sum: [Option<Tensor>; 2],
    images: usize,
}

impl GramTally {
    /// Counts an image's Gram matrices; returns its distances to `target`, both ways.
    fn add(&mut self, grams: [Tensor; 2], target: &[Tensor; 2]) -> [f64; 2] {
        let mut distances = [0.0; 2];
        for (way, g) in grams.into_iter().enumerate() {
            distances[way] = mean_l1(&g, &target[way]);
            self.distance[way] += distances[way];
            add_to(&mut self.sum[way], g);
        }
        self.images += 1;
        distances
    }

    /// Each image's mean distance and the mean matrix's distance, both ways.
    fn figures(&self, target: &[Tensor; 2]) -> GramFigures {
        let n = self.images.max(1) as f64;
        let [zero_padded, inside] = [0, 1].map(|way| StyleFigures {
            each: self.distance[way] / n,
            set: self.sum[way].as_ref().map_or(f64::NAN, |s| mean_l1(&(s / n), &target[way])),
        });
        GramFigures { zero_padded, inside }
    }
}

/// Measures `models` on the images of `photos` against the images of `style`.
pub fn evaluate(
    models: &[PathBuf],
    photos: &Path,
    style: &Path,
    vgg_path: &Path,
    max_side: u32,
    style_limit: usize,
) -> Result<EvalReport, Error> {
    let vgg = Vgg::load(vgg_path, Device::Cpu)?;
    let photo_paths = list_images(photos)?;
    let mut style_paths = list_images(style)?;
    if photo_paths.is_empty() || style_paths.is_empty() {
        return Err(Error::Invalid(format!("{} and {} must each hold images", photos.display(), style.display())));
    }
    // An even spread over the style set when it is larger than the limit.
    let stride = style_paths.len().div_ceil(style_limit.max(1));
    style_paths = style_paths.into_iter().step_by(stride.max(1)).collect();
    tch::no_grad(|| {
        let style_grams_of = |path: &PathBuf| -> Result<(crate::frame::Frame, [Tensor; 2]), Error> {
            let frame = load_scaled(path, 256)?;
            let (_, grams) = features_and_grams(&vgg, &frame)?;
            Ok((frame, grams))
        };
        // The set's Gram sums in two halves (every other image), whose means also give the
        // floor of the set figure.
        let mut halves: [[Option<Tensor>; 2]; 2] = Default::default();
        let mut style_flat = 0.0;
        for (i, path) in style_paths.iter().enumerate() {
            let (frame, grams) = style_grams_of(path)?;
            style_flat += look::flat_share(&frame.data, frame.width, frame.height);
            for (way, g) in grams.into_iter().enumerate() {
                add_to(&mut halves[way][i % 2], g);
            }
        }
        let (na, nb) = (style_paths.len().div_ceil(2) as f64, (style_paths.len() / 2) as f64);
        let style_gram = halves.each_ref().map(|[first, second]| {
            let first = first.as_ref().expect("at least one style image");
            second.as_ref().map_or_else(|| first.shallow_clone(), |second| first + second) / style_paths.len() as f64
        });
        let halves_distance = halves
            .map(|[first, second]| second.map_or(f64::NAN, |second| mean_l1(&(first.unwrap() / na), &(second / nb))));
        // Second pass: each style image against the mean (keeping all the matrices would
        // take 1 MB each).
        let mut style_self = GramTally::default();
        for path in &style_paths {
            style_self.add(style_grams_of(path)?.1, &style_gram);
        }
        // The set's mean against itself would be 0: its `set` figure is the halves'.
        let GramFigures { zero_padded, inside } = style_self.figures(&style_gram);
        let style_self = GramFigures {
            zero_padded: StyleFigures { each: zero_padded.each, set: halves_distance[0] },
            inside: StyleFigures { each: inside.each, set: halves_distance[1] },
        };
        let frames: Vec<_> = photo_paths.iter().map(|p| load_scaled(p, max_side)).collect::<Result<_, _>>()?;
        let mut input_tally = GramTally::default();
        let mut input_features = Vec::new();
        let mut input_images = Vec::new();
        for (frame, photo) in frames.iter().zip(&photo_paths) {
            let (f, grams) = features_and_grams(&vgg, frame)?;
            let gram_each = input_tally.add(grams, &style_gram);
            input_features.push(f);
            input_images.push(image_figures(photo, 0.0, gram_each, frame));
        }
        let mut results = Vec::new();
        for model_path in models {
            // Drawn as `stylize` draws it: photos larger than the model's work size at that size.
            let model = StyleModel::load(model_path, Device::Cpu, Kind::Float)?;
            let work_size = model.info().work_size;
            let mut engine = Engine::new(model).with_work_size(work_size);
            let mut tally = GramTally::default();
            let mut images = Vec::new();
            for ((frame, input_f), photo) in frames.iter().zip(&input_features).zip(&photo_paths) {
                let mut out = vec![Vec::new()];
                engine.stylize(&[frame], &mut out)?;
                let styled = crate::frame::Frame { data: out.remove(0), ..frame.clone() };
                let (f, grams) = features_and_grams(&vgg, &styled)?;
                let gram_each = tally.add(grams, &style_gram);
                images.push(image_figures(photo, mean_l1(&f, input_f), gram_each, &styled));
            }
            results.push((
                model_path.clone(),
                EvalFigures {
                    content_l1: mean_of(&images, |i| i.content_l1),
                    style: tally.figures(&style_gram),
                    flat_share: mean_of(&images, |i| i.flat_share),
                    grid_score: mean_of(&images, |i| i.grid_score),
                    images,
                },
            ));
        }
        Ok(EvalReport {
            photos: frames.len(),
            style_images: style_paths.len(),
            input_style: input_tally.figures(&style_gram),
            style_self,
            style_flat_share: style_flat / style_paths.len() as f64,
            input_flat_share: mean_of(&input_images, |i| i.flat_share),
            input_grid_score: mean_of(&input_images, |i| i.grid_score),
            input_images,
            models: results,
        })
    })
}

/// Adds `value` to a running sum that starts empty.
fn add_to(sum: &mut Option<Tensor>, value: Tensor) {
    *sum = Some(match sum.take() {
        Some(s) => s + value,
        None => value,
    });
}

/// The mean of one figure over images.
fn mean_of(images: &[ImageFigures], figure: fn(&ImageFigures) -> f64) -> f64 {
    images.iter().map(figure).sum::<f64>() / images.len().max(1) as f64
}

/// One image's figures; its look measured at its own size.
fn image_figures(
    photo: &Path,
    content_l1: f64,
    [gram_each, gram_each_inside]: [f64; 2],
    image: &crate::frame::Frame,
) -> ImageFigures {
    ImageFigures {
        photo: photo.to_path_buf(),
        content_l1,
        gram_each,
        gram_each_inside,
        flat_share: look::flat_share(&image.data, image.width, image.height),
        grid_score: look::grid_score(&image.data, image.width, image.height),
    }
}

/// Videos are compared at most this wide, as `flicker.py` compares them.
pub const VIDEO_WIDTH: u32 = 960;

/// What `eval --video` reports.
#[derive(Debug, Clone)]
pub struct VideoEval {
    /// Width the frames were compared at.
    pub width: u32,
    /// Height the frames were compared at.
    pub height: u32,
    /// Warping errors and their ratio.
    pub figures: TemporalFigures,
}

/// The size `flicker.py` compares a `width`×`height` video at: at most [`VIDEO_WIDTH`] wide,
/// the height then rounded to an even number.
pub fn video_size(width: u32, height: u32) -> (u32, u32) {
    if width <= VIDEO_WIDTH {
        return (width, height);
    }
    let half = f64::from(height) * f64::from(VIDEO_WIDTH) / f64::from(width) / 2.0;
    (VIDEO_WIDTH, (half.round_ties_even() as u32).max(1) * 2)
}

/// Temporal stability of `output` (a stylized video) against its `source`, over their first
/// `max_frames` frames: both are scaled to [`video_size`] of the source, and
/// [`look::TemporalMeter`] measures the output's frame-to-frame change with the source's
/// global motion.
#[cfg(feature = "video")]
pub fn evaluate_video(source: &Path, output: &Path, max_frames: usize) -> Result<VideoEval, Error> {
    use crate::frame::{FramePool, FrameSource, Item};
    use crate::io::video::VideoSource;
    use crate::look::TemporalMeter;

    let (mut source_video, mut output_video) = (VideoSource::open(source, false)?, VideoSource::open(output, false)?);
    let (width, height) = video_size(source_video.format().width, source_video.format().height);
    let (mut pool, mut back) = FramePool::new(4);
    let mut next = |video: &mut VideoSource| -> Result<Option<Vec<u8>>, Error> {
        loop {
            match video.next_item(&mut pool)? {
                Some(Item::Frame(frame)) => {
                    let scaled = look::resize_area(&frame.data, frame.width, frame.height, 3, width, height);
                    back.give(frame.data);
                    return Ok(Some(scaled));
                }
                Some(Item::Passthrough(_)) => continue,
                None => return Ok(None),
            }
        }
    };
    let mut meter = TemporalMeter::new(width, height);
    for _ in 0..max_frames {
        let (Some(s), Some(o)) = (next(&mut source_video)?, next(&mut output_video)?) else { break };
        meter.push(&s, &o);
    }
    let figures = meter.figures();
    if figures.frames < 2 {
        return Err(Error::Invalid(format!(
            "{} and {} need two frames each to compare",
            source.display(),
            output.display()
        )));
    }
    Ok(VideoEval { width, height, figures })
}

/// Without the `video` feature there is no decoder for `eval --video`.
#[cfg(not(feature = "video"))]
pub fn evaluate_video(_source: &Path, _output: &Path, _max_frames: usize) -> Result<VideoEval, Error> {
    Err(Error::Invalid("this japanim was built without the `video` feature: eval --video needs it".into()))
}
