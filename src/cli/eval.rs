//! `japanim eval`: content kept, style gained and the look, per model; or the temporal
//! stability of a stylized video against its source.

use std::path::PathBuf;

use super::say;
use anyhow::{bail, Context, Result};
use clap::Args;

use japanim::eval::{EvalReport, GramFigures};
use japanim::model;
use japanim::output::PendingFile;

/// `japanim eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Generator weights to compare (e.g. a trained model and an untrained one).
    #[arg(long = "model", num_args = 1..)]
    pub models: Vec<PathBuf>,
    /// Folder of photos to stylize.
    #[arg(long)]
    pub photos: Option<PathBuf>,
    /// Folder of style images (the cartoon set).
    #[arg(long)]
    pub style: Option<PathBuf>,
    /// VGG conv base; default models/vgg16.safetensors.
    #[arg(long)]
    pub vgg: Option<PathBuf>,
    /// Photos are scaled so their longer side is at most this.
    #[arg(long, default_value_t = 512)]
    pub max_side: u32,
    /// Style images averaged (spread evenly over the set).
    #[arg(long, default_value_t = 200)]
    pub style_images: usize,
    /// Instead of models on photos: the warping error of a stylized video OUTPUT against its
    /// SOURCE, and their ratio (1: the stylization adds no flicker), like shared/tools/flicker.py.
    #[arg(long, num_args = 2, value_names = ["SOURCE", "OUTPUT"])]
    pub video: Option<Vec<PathBuf>>,
    /// With --video: frames compared, from the start.
    #[arg(long, default_value_t = 120)]
    pub frames: usize,
    /// Also write each photo's figures, unchanged and per model, to this CSV file: which
    /// photos a model fails on.
    #[arg(long, value_name = "CSV")]
    pub per_image: Option<PathBuf>,
    /// Replace the --per-image file if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

/// `eval`: content kept, style gained and the look, per model; or a video's temporal figures.
pub fn run(args: EvalArgs) -> Result<()> {
    if let Some(videos) = &args.video {
        if !args.models.is_empty() || args.photos.is_some() || args.style.is_some() || args.per_image.is_some() {
            bail!("eval --video compares two videos: leave out --model, --photos, --style and --per-image");
        }
        return video(&videos[0], &videos[1], args.frames);
    }
    let (Some(photos), Some(style)) = (&args.photos, &args.style) else {
        bail!("eval needs --model, --photos and --style (or --video SOURCE OUTPUT)");
    };
    if args.models.is_empty() {
        bail!("eval needs --model, --photos and --style (or --video SOURCE OUTPUT)");
    }
    let vgg = match args.vgg {
        Some(path) => path,
        None => model::find_in_models("vgg16.safetensors")
            .context("no models/vgg16.safetensors: run scripts/setup.sh or pass --vgg")?,
    };
    // Reserved first: an existing file is refused before minutes of work.
    let per_image = args.per_image.as_deref().map(|path| PendingFile::new(path, args.overwrite)).transpose()?;
    let report = japanim::eval::evaluate(&args.models, photos, style, &vgg, args.max_side, args.style_images)?;
    if let Some(file) = per_image {
        write_per_image(file, &report)?;
    }
    say!(
        "{} photos (longer side ≤ {} px), style set: {} images of {}",
        report.photos,
        args.max_side,
        report.style_images,
        style.display()
    )?;
    say!(
        "{:<48} {:>11} {:>10} {:>10} {:>12} {:>11} {:>11} {:>11}",
        "",
        "content L1",
        "Gram each",
        "Gram set",
        "each inside",
        "set inside",
        "flat share",
        "grid score"
    )?;
    let row = |name: &str, content: &str, style: &GramFigures, flat: f64, grid: &str| -> Result<()> {
        say!(
            "{:<48} {:>11} {:>10.4} {:>10.4} {:>12.4} {:>11.4} {:>11.3} {:>11}",
            name,
            content,
            style.zero_padded.each,
            style.zero_padded.set,
            style.inside.each,
            style.inside.set,
            flat,
            grid
        )?;
        Ok(())
    };
    let input_grid = format!("{:.2}", report.input_grid_score);
    row("input photos (unchanged)", "0", &report.input_style, report.input_flat_share, &input_grid)?;
    row("style images themselves (at 256 px; set: halves)", "–", &report.style_self, report.style_flat_share, "–")?;
    for (path, f) in &report.models {
        let content = format!("{:.4}", f.content_l1);
        row(&path.display().to_string(), &content, &f.style, f.flat_share, &format!("{:.2}", f.grid_score))?;
    }
    say!(
        "Gram each: mean over images of each one's Gram L1 to the style set's mean Gram; Gram set: \
         the images' mean Gram against the style set's (lower is closer to the style); inside: the \
         same with every image measured away from its edges (mirrored by {} px, whose features are cut off)",
        japanim::model::vgg::EDGE_PAD
    )?;
    Ok(())
}

/// Writes every photo's figures, unchanged (`model` empty) and per model, as CSV.
fn write_per_image(file: PendingFile, report: &EvalReport) -> Result<()> {
    let name = file.destination().display().to_string();
    let mut writer = csv::Writer::from_path(file.temp_path()).with_context(|| name.clone())?;
    writer
        .write_record(["model", "photo", "content_l1", "gram_each", "gram_each_inside", "flat_share", "grid_score"])
        .with_context(|| name.clone())?;
    let unchanged = std::iter::once((String::new(), &report.input_images));
    let models = report.models.iter().map(|(path, f)| (path.display().to_string(), &f.images));
    for (model, images) in unchanged.chain(models) {
        for i in images {
            let figures = [i.content_l1, i.gram_each, i.gram_each_inside, i.flat_share, i.grid_score];
            let mut record = vec![model.clone(), i.photo.display().to_string()];
            record.extend(figures.map(|v| format!("{v:.4}")));
            writer.write_record(&record).with_context(|| name.clone())?;
        }
    }
    writer.flush().with_context(|| name.clone())?;
    drop(writer);
    file.commit()?;
    Ok(())
}

/// `eval --video SOURCE OUTPUT`.
fn video(source: &std::path::Path, output: &std::path::Path, frames: usize) -> Result<()> {
    if frames < 2 {
        bail!("--frames must be at least 2: the figures compare consecutive frames");
    }
    let report = japanim::eval::evaluate_video(source, output, frames)?;
    let f = report.figures;
    say!(
        "{} against {} at {}x{}: warping error with the source's global motion",
        output.display(),
        source.display(),
        report.width,
        report.height
    )?;
    say!(
        "frames {}  warp error source {:.3}e-3  output {:.3}e-3  ratio {:.2}",
        f.frames,
        f.source_error * 1e3,
        f.output_error * 1e3,
        f.ratio
    )?;
    Ok(())
}
