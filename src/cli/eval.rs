//! `japanim eval`: content kept and style gained, per model.

use std::path::PathBuf;

use super::say;
use anyhow::{Context, Result};
use clap::Args;

use japanim::model;

/// `japanim eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Generator weights to compare (e.g. a trained model and an untrained one).
    #[arg(long = "model", num_args = 1.., required = true)]
    pub models: Vec<PathBuf>,
    /// Folder of photos to stylize.
    #[arg(long)]
    pub photos: PathBuf,
    /// Folder of style images (the cartoon set).
    #[arg(long)]
    pub style: PathBuf,
    /// VGG conv base; default models/vgg16.safetensors.
    #[arg(long)]
    pub vgg: Option<PathBuf>,
    /// Photos are scaled so their longer side is at most this.
    #[arg(long, default_value_t = 512)]
    pub max_side: u32,
    /// Style images averaged (spread evenly over the set).
    #[arg(long, default_value_t = 200)]
    pub style_images: usize,
}

/// `eval`: content kept and style gained, per model.
pub fn run(args: EvalArgs) -> Result<()> {
    let vgg = match args.vgg {
        Some(path) => path,
        None => model::find_in_models("vgg16.safetensors")
            .context("no models/vgg16.safetensors: run scripts/setup.sh or pass --vgg")?,
    };
    let report =
        japanim::eval::evaluate(&args.models, &args.photos, &args.style, &vgg, args.max_side, args.style_images)?;
    say!(
        "{} photos (longer side ≤ {} px), style set: {} images of {}",
        report.photos,
        args.max_side,
        report.style_images,
        args.style.display()
    )?;
    say!("{:<48} {:>14} {:>16}", "", "content L1", "Gram L1 to style")?;
    say!("{:<48} {:>14} {:>16.4}", "input photos (unchanged)", "0", report.input_style_distance)?;
    for (path, f) in &report.models {
        say!("{:<48} {:>14.4} {:>16.4}", path.display(), f.content_l1, f.style_distance)?;
    }
    Ok(())
}
