//! `japanim dataset …`: key frames, crops, smoothing and whole datasets.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use japanim::config;

use super::one_line;
use japanim::config::PipelineFile;

/// `japanim dataset …`.
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Pick key frames of videos (difference peaks), dropping near-duplicates and blank frames.
    Keyframes(KeyframesArgs),
    /// Cut square crops from every image of a folder.
    Crop(CropArgs),
    /// Write the CartoonGAN edge-smoothed copy of every image of a folder.
    Smooth {
        /// Folder of anime images.
        input: PathBuf,
        /// Folder to write (existing files are kept).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Photos and anime images → the dataset layout `japanim train` reads.
    Build(BuildArgs),
}

/// Crop placement and size, shared by `crop` and `build`.
#[derive(Debug, Args)]
pub struct CropOptions {
    /// Side of the square crops [default: 256].
    #[arg(long)]
    pub size: Option<u32>,
    /// Crops per image (and scale) [default: 6].
    #[arg(long)]
    pub per_image: Option<usize>,
    /// Placement: a grid of regions (the original 3×2 for six) or anywhere [default: grid].
    #[arg(long, value_enum)]
    pub mode: Option<japanim::dataset::crop::CropMode>,
    /// Seed of the offsets (and of the split) [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
}

/// `japanim dataset crop`.
#[derive(Debug, Args)]
pub struct CropArgs {
    /// Folder of images.
    pub input: PathBuf,
    /// Folder to write (existing files are kept).
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub crop: CropOptions,
    /// Rescale each image by this factor before cutting.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
}

/// `japanim dataset build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Pipeline file whose [dataset] table applies under these flags.
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// Photo sources: videos, folders of images or image files.
    #[arg(long, num_args = 1..)]
    pub photos: Vec<PathBuf>,
    /// Anime sources: videos, folders of images or image files.
    #[arg(long, num_args = 1..)]
    pub anime: Vec<PathBuf>,
    /// Dataset folder to write; re-running it resumes.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub crop: CropOptions,
    #[command(flatten)]
    pub keyframes: KeyframeOptions,
    /// Scales photos are cut at, comma-separated (0.5 halves a frame before cutting) [default: 1].
    #[arg(long, value_delimiter = ',')]
    pub photo_scales: Vec<f64>,
    /// Scales anime images are cut at [default: 1].
    #[arg(long, value_delimiter = ',')]
    pub anime_scales: Vec<f64>,
    /// Share of sources held out for validation [default: 0.2].
    #[arg(long)]
    pub val_fraction: Option<f64>,
}

/// `japanim dataset keyframes`.
#[derive(Debug, Args)]
pub struct KeyframesArgs {
    /// Video files.
    #[arg(required = true)]
    pub videos: Vec<PathBuf>,
    /// Folder for the frames (PNG), `manifest.csv` and plots.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub keyframes: KeyframeOptions,
    /// Draw each video's difference curve with the picked frames as STEM_curve.png.
    #[arg(long)]
    pub plot: bool,
}

/// Key-frame selection, shared by `keyframes` and `build`.
#[derive(Debug, Args)]
pub struct KeyframeOptions {
    /// Frames in the peak window (a frame is kept when it has the largest difference in it)
    /// [default: 25].
    #[arg(long)]
    pub window: Option<usize>,
    /// Exponential smoothing of the difference curve (the original used 0.07).
    #[arg(long)]
    pub smoothing: Option<f64>,
    /// Keep every Nth frame instead of difference peaks.
    #[arg(long)]
    pub every: Option<u64>,
    /// Hash distance (of 64 bits) at or under which a frame is a near-duplicate [default: 6].
    #[arg(long)]
    pub duplicate_distance: Option<u32>,
    /// Cut black bars (letterbox or pillarbox: borders black in every frame) off key frames.
    #[arg(long)]
    pub letterbox: bool,
}

impl KeyframeOptions {
    /// The library's form, flags over the pipeline file's `[dataset]` table.
    pub fn spec(&self, file: &japanim::config::DatasetSection) -> japanim::dataset::keyframes::KeyframeSpec {
        let defaults = japanim::dataset::keyframes::KeyframeSpec::default();
        japanim::dataset::keyframes::KeyframeSpec {
            window: self.window.or(file.window).unwrap_or(defaults.window).max(1),
            smoothing: self.smoothing.or(file.smoothing),
            every: self.every.or(file.every),
            duplicate_distance: self
                .duplicate_distance
                .or(file.duplicate_distance)
                .unwrap_or(defaults.duplicate_distance),
            letterbox: self.letterbox || file.letterbox.unwrap_or(false),
            ..defaults
        }
    }
}

/// Runs a `dataset` subcommand.
pub fn run(command: DatasetCommand, progress: bool) -> Result<()> {
    match command {
        DatasetCommand::Keyframes(args) => keyframes(args, progress),
        DatasetCommand::Crop(args) => crop(args, progress),
        DatasetCommand::Smooth { input, output } => smooth(&input, &output, progress),
        DatasetCommand::Build(args) => build(args, progress),
    }
}

/// The images of a folder and where each one's results go; refuses an output inside the input.
fn folder_job(input: &std::path::Path, output: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let images = japanim::io::image::list_images(input)?;
    if images.is_empty() {
        bail!("{} contains no images", input.display());
    }
    let (inp, out) = (input.canonicalize()?, output.canonicalize().unwrap_or_else(|_| output.to_path_buf()));
    if out.starts_with(&inp) {
        bail!("output {} is inside the input {}: choose another folder", output.display(), input.display());
    }
    std::fs::create_dir_all(output).with_context(|| format!("creating {}", output.display()))?;
    Ok(images)
}

/// `dataset keyframes`: every video decoded once; an unreadable one is skipped with its
/// reason in the manifest.
#[cfg(feature = "video")]
fn keyframes(args: KeyframesArgs, progress: bool) -> Result<()> {
    use japanim::dataset::keyframes::extract;
    use japanim::dataset::manifest::{self, KeyframeRow, KEYFRAME_HEADER};
    std::fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    let spec = args.keyframes.spec(&Default::default());
    let mut rows = Vec::new();
    let (mut kept, mut failed) = (0, 0);
    for video in &args.videos {
        let bar = if progress { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} {msg} {wide_bar} {pos}/{len} frames, {per_sec}, ETA {eta}",
            )
            .expect("valid"),
        );
        bar.set_message(video.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        let show = |done: u64, total: Option<u64>| {
            if done % 25 == 1 {
                bar.set_length(total.unwrap_or(0).max(done));
                bar.set_position(done);
            }
        };
        let outcome = extract(video, &args.output, &spec, &show);
        bar.finish_and_clear();
        match outcome {
            Ok(result) => {
                let n = result.candidates.iter().filter(|c| c.dropped.is_none()).count();
                tracing::info!(
                    "{}: {} frames, {n} key frames kept, {} dropped",
                    video.display(),
                    result.frames,
                    result.candidates.len() - n
                );
                kept += n;
                rows.extend(result.manifest_rows());
                if args.plot {
                    let stem = video.file_stem().unwrap_or_default().to_string_lossy();
                    result.plot(&args.output.join(format!("{stem}_curve.png")))?;
                }
            }
            Err(e) => {
                tracing::warn!("skipped {}: {e}", video.display());
                rows.push(KeyframeRow {
                    source: video.display().to_string(),
                    status: format!("skipped: {e}"),
                    ..Default::default()
                });
                failed += 1;
            }
        }
    }
    let manifest = args.output.join("manifest.csv");
    manifest::write(&manifest, &KEYFRAME_HEADER, &rows)?;
    if failed == args.videos.len() {
        bail!("no video could be read (reasons in {})", manifest.display());
    }
    tracing::info!(
        "{kept} key frames in {} ({failed} videos skipped); manifest {}",
        args.output.display(),
        manifest.display()
    );
    Ok(())
}

#[cfg(not(feature = "video"))]
fn keyframes(_args: KeyframesArgs, _progress: bool) -> Result<()> {
    bail!("this japanim was built without the `video` feature: it cannot decode videos")
}

/// Runs `work` on every image of a folder job on all cores, with a progress bar. An image
/// that fails is skipped with its reason logged; the job fails only when every image did.
/// Returns the number of outputs written and the skipped images.
fn for_each_image(
    images: &[std::path::PathBuf],
    progress: bool,
    work: impl Fn(&std::path::Path) -> Result<usize> + Sync,
) -> Result<(usize, usize)> {
    use rayon::prelude::*;
    let bar =
        if progress { indicatif::ProgressBar::new(images.len() as u64) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} {wide_bar} {pos}/{len} images, {per_sec}, ETA {eta}",
        )
        .expect("valid"),
    );
    let outcomes: Vec<Result<usize>> = images
        .par_iter()
        .map(|path| {
            let outcome = work(path);
            bar.inc(1);
            outcome
        })
        .collect();
    bar.finish_and_clear();
    let (mut written, mut skipped) = (0, 0);
    let mut last_error = None;
    for (path, outcome) in images.iter().zip(outcomes) {
        match outcome {
            Ok(n) => written += n,
            Err(err) => {
                let reason = one_line(&err);
                tracing::warn!("skipped {}: {reason}", path.display());
                skipped += 1;
                last_error = Some(reason);
            }
        }
    }
    match last_error {
        Some(reason) if skipped == images.len() => bail!("no image could be used; the last one: {reason}"),
        _ => Ok((written, skipped)),
    }
}

/// `dataset crop`.
fn crop(args: CropArgs, progress: bool) -> Result<()> {
    use japanim::dataset::crop::{crops, CropSpec};
    let images = folder_job(&args.input, &args.output)?;
    let spec = CropSpec {
        size: args.crop.size.unwrap_or(config::DEFAULT_CROP_SIZE),
        per_image: args.crop.per_image.unwrap_or(config::DEFAULT_CROPS_PER_IMAGE),
        mode: args.crop.mode.unwrap_or(config::DEFAULT_CROP_MODE),
        scale: args.scale,
        seed: args.crop.seed.unwrap_or(0),
    };
    let (written, skipped) = for_each_image(&images, progress, |path| {
        let name = path.file_name().expect("listed").to_string_lossy().into_owned();
        let stem = path.file_stem().expect("listed").to_string_lossy().into_owned();
        let img = japanim::io::image::read_rgb(path)?;
        let pieces = crops(&img, &spec, &name)?;
        for (k, piece) in pieces.iter().enumerate() {
            let target = args.output.join(format!("{stem}_{k}.png"));
            if !target.exists() {
                japanim::dataset::write_atomically(piece, &target)?;
            }
        }
        Ok(pieces.len())
    })?;
    tracing::info!("{written} crops in {} ({skipped} images skipped)", args.output.display());
    Ok(())
}

/// `dataset smooth`.
fn smooth(input: &std::path::Path, output: &std::path::Path, progress: bool) -> Result<()> {
    let images = folder_job(input, output)?;
    let (written, skipped) = for_each_image(&images, progress, |path| {
        let target = output.join(path.file_name().expect("listed")).with_extension("png");
        if !target.exists() {
            let img = japanim::io::image::read_rgb(path)?;
            japanim::dataset::write_atomically(&japanim::dataset::smooth::smooth(&img), &target)?;
        }
        Ok(1)
    })?;
    tracing::info!("{written} smoothed images in {} ({skipped} images skipped)", output.display());
    Ok(())
}

/// `dataset build`.
fn build(args: BuildArgs, progress: bool) -> Result<()> {
    let file = match &args.pipeline {
        Some(path) => PipelineFile::read(path)?.dataset,
        None => Default::default(),
    };
    let pick = |flags: Vec<PathBuf>, from_file: &[PathBuf]| if flags.is_empty() { from_file.to_vec() } else { flags };
    let scales = |flags: Vec<f64>, from_file: &Option<Vec<f64>>| {
        if flags.is_empty() {
            from_file.clone().unwrap_or_else(|| vec![1.0])
        } else {
            flags
        }
    };
    let spec = japanim::dataset::build::BuildSpec {
        keyframes: args.keyframes.spec(&file),
        photos: pick(args.photos, &file.photos),
        anime: pick(args.anime, &file.anime),
        out: args
            .output
            .or(file.output.clone())
            .context("no output folder: pass -o DIR or set output in the pipeline file")?,
        size: args.crop.size.or(file.size).unwrap_or(config::DEFAULT_CROP_SIZE),
        per_image: args.crop.per_image.or(file.per_image).unwrap_or(config::DEFAULT_CROPS_PER_IMAGE),
        photo_scales: scales(args.photo_scales, &file.photo_scales),
        anime_scales: scales(args.anime_scales, &file.anime_scales),
        mode: args.crop.mode.or(file.mode).unwrap_or(config::DEFAULT_CROP_MODE),
        val_fraction: args.val_fraction.or(file.val_fraction).unwrap_or(config::DEFAULT_VAL_FRACTION),
        seed: args.crop.seed.or(file.seed).unwrap_or(0),
    };
    if spec.photos.is_empty() || spec.anime.is_empty() {
        bail!("dataset build needs --photos and --anime sources (or photos and anime in the pipeline file)");
    }
    tracing::info!("dataset settings: {}", serde_json::to_string(&spec)?);
    let bar = if progress { indicatif::ProgressBar::new_spinner() } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} {pos} source images, {per_sec}").expect("valid"),
    );
    let counts = japanim::dataset::build::build(&spec, &|| bar.inc(1))?;
    bar.finish_and_clear();
    tracing::info!(
        "dataset {}: photo crops {} train / {} val, anime crops {} train / {} val (each smoothed), {} source images skipped, {} crops reused",
        spec.out.display(),
        counts.photo.0,
        counts.photo.1,
        counts.anime.0,
        counts.anime.1,
        counts.skipped,
        counts.reused
    );
    Ok(())
}
