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
use crate::model::vgg::{gram, Vgg};
use crate::model::StyleModel;
use crate::Error;

/// Figures for one model on a photo set.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalFigures {
    /// Mean conv4 L1 between output and input (lower keeps more content).
    pub content_l1: f64,
    /// Mean Gram L1 between outputs and the style set (lower is closer to the style).
    pub style_distance: f64,
    /// Gram L1 between the outputs' mean Gram matrix and the style set's: the set of outputs
    /// against the set of style images, rather than each output against the set's average.
    pub set_style_distance: f64,
    /// Mean share of flat pixels of the outputs ([`crate::look::flat_share`]; cartoons are
    /// flatter than photos).
    pub flat_share: f64,
    /// Mean grid-artefact score of the outputs ([`crate::look::grid_score`]; 10 and more is a
    /// visible grid).
    pub grid_score: f64,
}

/// Everything `eval` reports.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// Photos measured.
    pub photos: usize,
    /// Style images averaged.
    pub style_images: usize,
    /// Gram L1 between the unchanged photos and the style set.
    pub input_style_distance: f64,
    /// Mean Gram L1 of the style images themselves to the set's mean (each image counts in
    /// the mean, so this is a little low): how close "as cartoon as the set" is.
    pub style_self_distance: f64,
    /// Mean share of flat pixels of the style images, at the size their Gram matrices are
    /// taken.
    pub style_flat_share: f64,
    /// Mean-Gram L1 between the unchanged photos and the style set.
    pub input_set_style_distance: f64,
    /// Mean-Gram L1 between two halves of the style set (every other image): the floor a
    /// set of outputs as cartoon as the set would reach.
    pub style_halves_distance: f64,
    /// Mean share of flat pixels of the photos, as scaled for the models.
    pub input_flat_share: f64,
    /// Mean grid-artefact score of the photos, as scaled for the models.
    pub input_grid_score: f64,
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
        let style_gram_of = |path: &PathBuf| -> Result<(crate::frame::Frame, Tensor), Error> {
            let frame = load_scaled(path, 256)?;
            let f = vgg.features(&to_input(&frame)?).map_err(crate::engine::EngineError::from)?;
            Ok((frame, gram(&f).map_err(crate::engine::EngineError::from)?))
        };
        // The set's Gram sums in two halves (every other image), whose means also give the
        // floor of the set figure.
        let mut halves: [Option<Tensor>; 2] = [None, None];
        let mut style_flat = 0.0;
        for (i, path) in style_paths.iter().enumerate() {
            let (frame, g) = style_gram_of(path)?;
            style_flat += look::flat_share(&frame.data, frame.width, frame.height);
            add_to(&mut halves[i % 2], g);
        }
        let [Some(first), second] = halves else { unreachable!("at least one style image") };
        let style_gram = match &second {
            Some(second) => (&first + second) / style_paths.len() as f64,
            None => &first / style_paths.len() as f64,
        };
        let style_halves_distance = match second {
            Some(second) => {
                let (na, nb) = (style_paths.len().div_ceil(2) as f64, (style_paths.len() / 2) as f64);
                mean_l1(&(first / na), &(second / nb))
            }
            None => f64::NAN,
        };
        // Second pass: each style image against the mean (keeping all the matrices would
        // take 1 MB each).
        let mut self_distance = 0.0;
        for path in &style_paths {
            self_distance += mean_l1(&style_gram_of(path)?.1, &style_gram);
        }
        let frames: Vec<_> = photo_paths.iter().map(|p| load_scaled(p, max_side)).collect::<Result<_, _>>()?;
        let mut input_distance = 0.0;
        let mut input_features = Vec::new();
        let mut input_sum = None;
        let (input_flat, input_grid) = look_of(&frames);
        for frame in &frames {
            let f = vgg.features(&to_input(frame)?).map_err(crate::engine::EngineError::from)?;
            let g = gram(&f).map_err(crate::engine::EngineError::from)?;
            input_distance += mean_l1(&g, &style_gram);
            add_to(&mut input_sum, g);
            input_features.push(f);
        }
        let n = frames.len() as f64;
        let input_set_style_distance = mean_l1(&(input_sum.expect("at least one photo") / n), &style_gram);
        let mut results = Vec::new();
        for model_path in models {
            let mut engine = Engine::new(StyleModel::load(model_path, Device::Cpu, Kind::Float)?);
            let (mut content, mut distance) = (0.0, 0.0);
            let (mut flat, mut grid) = (0.0, 0.0);
            let mut output_sum = None;
            for (frame, input_f) in frames.iter().zip(&input_features) {
                let mut out = vec![Vec::new()];
                engine.stylize(&[frame], &mut out)?;
                let styled = crate::frame::Frame { data: out.remove(0), ..frame.clone() };
                let f = vgg.features(&to_input(&styled)?).map_err(crate::engine::EngineError::from)?;
                content += mean_l1(&f, input_f);
                let g = gram(&f).map_err(crate::engine::EngineError::from)?;
                distance += mean_l1(&g, &style_gram);
                add_to(&mut output_sum, g);
                flat += look::flat_share(&styled.data, styled.width, styled.height);
                grid += look::grid_score(&styled.data, styled.width, styled.height);
            }
            let set_style_distance = mean_l1(&(output_sum.expect("at least one photo") / n), &style_gram);
            results.push((
                model_path.clone(),
                EvalFigures {
                    content_l1: content / n,
                    style_distance: distance / n,
                    set_style_distance,
                    flat_share: flat / n,
                    grid_score: grid / n,
                },
            ));
        }
        Ok(EvalReport {
            photos: frames.len(),
            style_images: style_paths.len(),
            input_style_distance: input_distance / frames.len() as f64,
            style_self_distance: self_distance / style_paths.len() as f64,
            style_flat_share: style_flat / style_paths.len() as f64,
            input_set_style_distance,
            style_halves_distance,
            input_flat_share: input_flat,
            input_grid_score: input_grid,
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

/// Mean flat share and mean grid score of frames, each measured at its own size.
fn look_of(frames: &[crate::frame::Frame]) -> (f64, f64) {
    let n = frames.len().max(1) as f64;
    let flat = frames.iter().map(|f| look::flat_share(&f.data, f.width, f.height)).sum::<f64>();
    let grid = frames.iter().map(|f| look::grid_score(&f.data, f.width, f.height)).sum::<f64>();
    (flat / n, grid / n)
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
