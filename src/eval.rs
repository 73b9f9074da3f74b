//! `japanim eval`: how much of a photo's content a model keeps and how much cartoon style it
//! adds, measured with the perceptual network: content = mean L1 between the conv4 features of
//! each output and its input; style = mean L1 between each output's Gram matrix and the mean
//! Gram matrix of a style set (the same figure for the inputs themselves is the baseline).

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use crate::engine::Engine;
use crate::io::image::{list_images, read_rgb};
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
    /// Per model: its path and figures.
    pub models: Vec<(PathBuf, EvalFigures)>,
}

/// Resizes so the longer side is at most `max_side` (keeping the aspect), as a frame.
fn load_scaled(path: &Path, max_side: u32) -> Result<crate::frame::Frame, Error> {
    let img = read_rgb(path)?;
    let (width, height) = img.dimensions();
    let longest = width.max(height);
    if longest <= max_side {
        return Ok(crate::frame::Frame { width, height, data: img.into_raw(), pts: None, index: 0 });
    }
    let (w, h) = ((width * max_side / longest).max(1), (height * max_side / longest).max(1));
    let small = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
    Ok(crate::frame::Frame { width: w, height: h, data: small.into_raw(), pts: None, index: 0 })
}

fn to_input(frame: &crate::frame::Frame) -> Result<Tensor, Error> {
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
        let mut style_gram: Option<Tensor> = None;
        for path in &style_paths {
            let g =
                gram(&vgg.features(&to_input(&load_scaled(path, 256)?)?).map_err(crate::engine::EngineError::from)?)
                    .map_err(crate::engine::EngineError::from)?;
            style_gram = Some(match style_gram {
                Some(sum) => sum + g,
                None => g,
            });
        }
        let style_gram = style_gram.expect("at least one style image") / style_paths.len() as f64;
        let frames: Vec<_> = photo_paths.iter().map(|p| load_scaled(p, max_side)).collect::<Result<_, _>>()?;
        let mut input_distance = 0.0;
        let mut input_features = Vec::new();
        for frame in &frames {
            let f = vgg.features(&to_input(frame)?).map_err(crate::engine::EngineError::from)?;
            input_distance += mean_l1(&gram(&f).map_err(crate::engine::EngineError::from)?, &style_gram);
            input_features.push(f);
        }
        let mut results = Vec::new();
        for model_path in models {
            let mut engine = Engine::new(StyleModel::load(model_path, Device::Cpu, Kind::Float)?);
            let (mut content, mut distance) = (0.0, 0.0);
            for (frame, input_f) in frames.iter().zip(&input_features) {
                let mut out = vec![Vec::new()];
                engine.stylize(&[frame], &mut out)?;
                let styled = crate::frame::Frame { data: out.remove(0), ..frame.clone() };
                let f = vgg.features(&to_input(&styled)?).map_err(crate::engine::EngineError::from)?;
                content += mean_l1(&f, input_f);
                distance += mean_l1(&gram(&f).map_err(crate::engine::EngineError::from)?, &style_gram);
            }
            let n = frames.len() as f64;
            results.push((model_path.clone(), EvalFigures { content_l1: content / n, style_distance: distance / n }));
        }
        Ok(EvalReport {
            photos: frames.len(),
            style_images: style_paths.len(),
            input_style_distance: input_distance / frames.len() as f64,
            models: results,
        })
    })
}
