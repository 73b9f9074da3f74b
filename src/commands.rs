//! One function per subcommand: turn parsed flags into library calls.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tracing_subscriber::EnvFilter;

use japanim::config::{EncoderSettings, PipelineFile};
use japanim::device::{self, DeviceChoice, PrecisionChoice};
use japanim::engine::tiles::align4;
use japanim::engine::Engine;
use japanim::frame::Frame;
use japanim::io::raw::RawKind;
use japanim::model::{self, GeneratorConfig, StoredPrecision, StyleModel};
use japanim::output::PendingFile;
use japanim::stream::StreamOptions;
use japanim::stylize::{self, StylizeJob};
use tch::Tensor;

use crate::cli::{
    BenchArgs, BuildArgs, Cli, Command, CropArgs, DatasetCommand, EvalArgs, ExportArgs, KeyframesArgs, ModelCommand,
    ModelInitArgs, RawOutput, SavedPrecision, StylizeArgs, TrainArgs,
};

/// Logs go to stderr (stdout may carry frames); `RUST_LOG` overrides the level.
pub fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Whether an error is a closed pipe downstream (`japanim … - | head`), which ends quietly.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<japanim::Error>().is_some_and(japanim::Error::is_broken_pipe)
            || cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, each cause once (library errors often quote
/// their cause already).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Stylize(args) => stylize(args, !cli.quiet),
        Command::Model(ModelCommand::Init(args)) => model_init(args),
        Command::Model(ModelCommand::Info { path }) => model_info(&path),
        Command::Model(ModelCommand::ConvertVgg { onnx, output, overwrite }) => convert_vgg(&onnx, &output, overwrite),
        Command::Dataset(DatasetCommand::Keyframes(args)) => dataset_keyframes(args, !cli.quiet),
        Command::Dataset(DatasetCommand::Crop(args)) => dataset_crop(args, !cli.quiet),
        Command::Dataset(DatasetCommand::Smooth { input, output }) => dataset_smooth(&input, &output, !cli.quiet),
        Command::Dataset(DatasetCommand::Build(args)) => dataset_build(args, !cli.quiet),
        Command::Train(args) => train(args, !cli.quiet),
        Command::Export(args) => export(args),
        Command::Eval(args) => eval(args),
        Command::Bench(args) => bench(args),
        Command::Doctor => doctor(),
    }
}

/// `stylize`: merge flags over the pipeline file, resolve the model, run the job.
fn stylize(args: StylizeArgs, progress: bool) -> Result<()> {
    let pipeline = match &args.pipeline {
        Some(path) => PipelineFile::read(path)?,
        None => PipelineFile::default(),
    };
    let section = pipeline.stylize;
    let tiles = tile_request(&args.tiles, &section)?;
    let encoder_section = section.encoder.unwrap_or_default();
    let defaults = EncoderSettings::default();
    let model = match args.model.or(section.model) {
        Some(path) => path,
        None => model::default_model_path().context(
            "no --model given and no default model is installed (models/default.safetensors): \
             pass --model PATH, or make an untrained one to try the pipeline with `japanim model init`",
        )?,
    };
    let job = StylizeJob {
        input: args.input,
        output: args.output,
        model,
        device: args.device.or(section.device).unwrap_or(DeviceChoice::Auto),
        precision: args.precision.or(section.precision).unwrap_or(PrecisionChoice::Auto),
        batch: args.batch.or(section.batch),
        encoder: EncoderSettings {
            codec: args.codec.or(encoder_section.codec).unwrap_or(defaults.codec),
            crf: args.crf.or(encoder_section.crf).or(defaults.crf),
            preset: args.preset.or(encoder_section.preset).or(defaults.preset),
        },
        tiles,
        raw_size: args.size,
        raw_fps: args.fps,
        raw_output: args.output_format.map(|f| match f {
            RawOutput::Rgb24 => RawKind::Rgb24,
            RawOutput::Y4m => RawKind::Y4m,
        }),
        overwrite: args.overwrite,
        progress,
    };
    tracing::info!("stylize settings: {}", serde_json::to_string(&job)?);
    let summary = stylize::run(&job)?;
    let seconds = summary.elapsed.as_secs_f64();
    // Which stage limited the run: the one busy nearly all the time.
    let stages = summary.stream.map(|s| {
        let [source, engine, sink] = s.busy_shares().map(|x| x * 100.0);
        format!("; busy: reading {source:.0} %, stylizing {engine:.0} %, writing {sink:.0} %")
    });
    tracing::info!(
        "wrote {} ({} frames in {seconds:.1} s, {:.2} frames/s{})",
        summary.output,
        summary.frames,
        summary.frames as f64 / seconds.max(1e-9),
        stages.unwrap_or_default()
    );
    Ok(())
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
fn dataset_keyframes(args: KeyframesArgs, progress: bool) -> Result<()> {
    use japanim::dataset::keyframes::{extract, MANIFEST_HEADER};
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
                rows.push(format!("{},,,,,\"skipped: {}\",", video.display(), e.to_string().replace('"', "'")));
                failed += 1;
            }
        }
    }
    let manifest = args.output.join("manifest.csv");
    std::fs::write(&manifest, format!("{MANIFEST_HEADER}\n{}\n", rows.join("\n")))?;
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
fn dataset_keyframes(_args: KeyframesArgs, _progress: bool) -> Result<()> {
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
fn dataset_crop(args: CropArgs, progress: bool) -> Result<()> {
    use japanim::dataset::crop::{crops, CropSpec};
    let images = folder_job(&args.input, &args.output)?;
    let spec = CropSpec {
        size: args.crop.size.unwrap_or(256),
        per_image: args.crop.per_image.unwrap_or(6),
        mode: args.crop.mode.unwrap_or(japanim::dataset::crop::CropMode::Grid),
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
fn dataset_smooth(input: &std::path::Path, output: &std::path::Path, progress: bool) -> Result<()> {
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
fn dataset_build(args: BuildArgs, progress: bool) -> Result<()> {
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
        size: args.crop.size.or(file.size).unwrap_or(256),
        per_image: args.crop.per_image.or(file.per_image).unwrap_or(6),
        photo_scales: scales(args.photo_scales, &file.photo_scales),
        anime_scales: scales(args.anime_scales, &file.anime_scales),
        mode: args.crop.mode.or(file.mode).unwrap_or(japanim::dataset::crop::CropMode::Grid),
        val_fraction: args.val_fraction.or(file.val_fraction).unwrap_or(0.2),
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

/// `train`: a new run, or `--resume` of one.
fn train(args: TrainArgs, progress: bool) -> Result<()> {
    let config = match &args.config {
        Some(path) => Some(japanim::train::TrainConfig::read(path)?),
        None if args.resume => None,
        None => Some(japanim::train::TrainConfig::default()),
    };
    let options = japanim::train::run::TrainOptions {
        data: args.data,
        run: args.out,
        config,
        resume: args.resume,
        until_step: args.until_step,
        progress,
    };
    let summary = japanim::train::train(&options)?;
    let state = if summary.step >= summary.total_steps { "finished" } else { "stopped (resume with --resume)" };
    tracing::info!(
        "{} {state} at step {}/{} ({} steps in {:.0} s, {:.2} s/step); checkpoint {}",
        options.run.display(),
        summary.step,
        summary.total_steps,
        summary.steps_this_call,
        summary.seconds,
        summary.seconds / summary.steps_this_call.max(1) as f64,
        summary.checkpoint.display()
    );
    Ok(())
}

/// `export`: the trained generator as a stylize-ready file.
fn export(args: ExportArgs) -> Result<()> {
    let precision = match args.precision {
        SavedPrecision::F32 => StoredPrecision::F32,
        SavedPrecision::F16 => StoredPrecision::F16,
    };
    let path = japanim::train::export(&args.run, &args.output, precision, args.overwrite)?;
    tracing::info!("wrote {}", path.display());
    Ok(())
}

/// Tiling from flags over the pipeline file; `None` for whole frames.
fn tile_request(
    flags: &crate::cli::TileOptions,
    section: &japanim::config::StylizeSection,
) -> Result<Option<japanim::stylize::TileRequest>> {
    let max_tile = flags.tile.or(section.tile).unwrap_or(0);
    if max_tile == 0 {
        return Ok(None);
    }
    let norm = match (flags.tile_norm, &section.tile_norm) {
        (Some(n), _) => n,
        (None, Some(text)) => text.parse().map_err(anyhow::Error::msg)?,
        (None, None) => japanim::engine::tiled::NormStrategy::Exact,
    };
    Ok(Some(japanim::stylize::TileRequest {
        max_tile,
        halo: flags.halo.or(section.halo),
        feather: flags.feather.or(section.feather).unwrap_or(8),
        batch: flags.tile_batch.or(section.tile_batch),
        norm,
    }))
}

/// `model init`: an untrained generator, clearly marked so.
fn model_init(args: ModelInitArgs) -> Result<()> {
    let config = GeneratorConfig { base_channels: args.base_channels, residual_blocks: args.residual_blocks };
    let description = format!("untrained: random initialisation, seed {}, by `japanim model init`", args.seed);
    let model = StyleModel::init(config, args.seed, &description);
    let pending = PendingFile::new(&args.output, args.overwrite)?;
    let precision = match args.precision {
        SavedPrecision::F32 => StoredPrecision::F32,
        SavedPrecision::F16 => StoredPrecision::F16,
    };
    model.save(precision, pending.temp_path())?;
    let path = pending.commit()?;
    tracing::info!(
        "wrote untrained generator {} ({:.2} M parameters)",
        path.display(),
        model.parameter_count() as f64 / 1e6
    );
    Ok(())
}

/// `model info`.
fn model_info(path: &std::path::Path) -> Result<()> {
    let model = StyleModel::load(path, tch::Device::Cpu, tch::Kind::Float)?;
    let info = model.info();
    println!("file:            {}", path.display());
    println!(
        "architecture:    CartoonGAN generator, {} base channels, {} residual blocks",
        info.config.base_channels, info.config.residual_blocks
    );
    println!("parameters:      {}", model.parameter_count());
    println!("multiply-adds:   {:.3} M per pixel", info.config.macs_per_pixel() / 1e6);
    println!("trained:         {}", info.trained);
    println!("description:     {}", info.description);
    println!("input:           {}", model::weights::INPUT_CONVENTION);
    println!("output:          {}", model::weights::OUTPUT_CONVENTION);
    Ok(())
}

/// `model convert-vgg`: the perceptual network's weights from a Keras VGG16 ONNX file.
fn convert_vgg(onnx: &std::path::Path, output: &std::path::Path, overwrite: bool) -> Result<()> {
    let vgg = model::onnx::vgg16_from_keras_onnx(onnx)?;
    let pending = PendingFile::new(output, overwrite)?;
    let description = format!("VGG16 conv base (ImageNet, Keras/Caffe convention) converted from {}", onnx.display());
    vgg.save(pending.temp_path(), &description)?;
    let path = pending.commit()?;
    tracing::info!("wrote {}", path.display());
    Ok(())
}

/// `eval`: content kept and style gained, per model.
fn eval(args: EvalArgs) -> Result<()> {
    let vgg = match args.vgg {
        Some(path) => path,
        None => model::find_in_models("vgg16.safetensors")
            .context("no models/vgg16.safetensors: run scripts/setup.sh or pass --vgg")?,
    };
    let report =
        japanim::eval::evaluate(&args.models, &args.photos, &args.style, &vgg, args.max_side, args.style_images)?;
    println!(
        "{} photos (longer side ≤ {} px), style set: {} images of {}",
        report.photos,
        args.max_side,
        report.style_images,
        args.style.display()
    );
    println!("{:<48} {:>14} {:>16}", "", "content L1", "Gram L1 to style");
    println!("{:<48} {:>14} {:>16.4}", "input photos (unchanged)", "0", report.input_style_distance);
    for (path, f) in &report.models {
        println!("{:<48} {:>14.4} {:>16.4}", path.display(), f.content_l1, f.style_distance);
    }
    Ok(())
}

/// Peak resident memory of this process (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// `bench`: generator (or tiled engine) throughput, and optionally tiled-vs-whole accuracy.
fn bench(args: BenchArgs) -> Result<()> {
    if args.batch == 0 || args.frames == 0 {
        bail!("--batch and --frames must be at least 1");
    }
    let (device, kind) = device::resolve(args.device, args.precision)?;
    if args.train {
        let config = japanim::train::TrainConfig {
            base_channels: args.base_channels,
            residual_blocks: args.residual_blocks,
            crop: args.size.0,
            batch: args.batch,
            ..Default::default()
        };
        let seconds = japanim::train::run::benchmark_steps(&config, args.frames, device, kind)?;
        println!(
            "training step {}ch/{}res, {}² crops, batch {}, {device:?} {kind:?} arithmetic (f32 weights), {} threads: {seconds:.3} s/step",
            args.base_channels,
            args.residual_blocks,
            args.size.0,
            args.batch,
            tch::get_num_threads()
        );
        return Ok(());
    }
    let temp = std::env::temp_dir().join(format!("japanim-bench-{}.safetensors", std::process::id()));
    let path = match &args.model {
        Some(path) => path.clone(),
        None => {
            let config = GeneratorConfig { base_channels: args.base_channels, residual_blocks: args.residual_blocks };
            StyleModel::init(config, 0, "bench").save(StoredPrecision::F32, &temp)?;
            temp.clone()
        }
    };
    let result = match &args.video {
        Some(video) => bench_video(&args, &path, video),
        None => bench_with(&args, &path, device, kind),
    };
    let _ = std::fs::remove_file(&temp);
    result
}

/// `bench --video`: the whole stylize pipeline on a real file, beside decoding alone.
#[cfg(feature = "video")]
fn bench_video(args: &BenchArgs, model: &std::path::Path, video: &std::path::Path) -> Result<()> {
    use japanim::frame::{FramePool, FrameSource, Item};
    let mut source = japanim::io::video::VideoSource::open(video, false)?;
    let (w, h) = (source.format().width, source.format().height);
    let pool = FramePool::new(4);
    let start = std::time::Instant::now();
    let mut decoded = 0u64;
    while let Some(item) = source.next_item(&pool)? {
        if let Item::Frame(frame) = item {
            decoded += 1;
            pool.give(frame.data);
        }
    }
    let decode_fps = decoded as f64 / start.elapsed().as_secs_f64();
    drop(source);
    let extension = video.extension().and_then(|e| e.to_str()).unwrap_or("mkv");
    let output = std::env::temp_dir().join(format!("japanim-bench-{}.{extension}", std::process::id()));
    let job = StylizeJob {
        input: video.to_path_buf(),
        output: output.clone(),
        model: model.to_path_buf(),
        device: args.device,
        precision: args.precision,
        batch: Some(args.batch),
        encoder: EncoderSettings::default(),
        tiles: tile_request(&args.tiles, &japanim::config::StylizeSection::default())?,
        raw_size: None,
        raw_fps: None,
        raw_output: None,
        overwrite: true,
        progress: false,
    };
    let summary = stylize::run(&job);
    let _ = std::fs::remove_file(&output);
    let summary = summary?;
    let fps = summary.frames as f64 / summary.elapsed.as_secs_f64();
    println!("video {}: {decoded} frames of {w}x{h}; decoding alone {decode_fps:.2} frames/s", video.display());
    let [decoding, stylizing, encoding] =
        summary.stream.map(|s| s.busy_shares().map(|x| x * 100.0)).unwrap_or([f64::NAN; 3]);
    println!(
        "  full pipeline (decode → stylize → encode, other streams copied), batch {}: {fps:.3} frames/s; \
         busy: decoding {decoding:.0} %, stylizing {stylizing:.0} %, encoding {encoding:.0} %",
        args.batch
    );
    Ok(())
}

#[cfg(not(feature = "video"))]
fn bench_video(_args: &BenchArgs, _model: &std::path::Path, _video: &std::path::Path) -> Result<()> {
    bail!("this japanim was built without the `video` feature, so `bench --video` cannot decode files")
}

fn bench_with(args: &BenchArgs, path: &std::path::Path, device: tch::Device, kind: tch::Kind) -> Result<()> {
    let load = || StyleModel::load(path, device, kind);
    let config = load()?.info().config;
    let (w, h) = args.size;
    let sources: Vec<Frame> = if args.image.is_empty() {
        vec![Frame {
            width: w,
            height: h,
            data: (0..Frame::byte_len(w, h)).map(|j| ((j * 7) % 251) as u8).collect(),
            pts: None,
            index: 0,
        }]
    } else {
        args.image
            .iter()
            .map(|p| {
                let img = japanim::io::image::read_rgb(p)?;
                let img = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
                Ok(Frame { width: w, height: h, data: img.into_raw(), pts: None, index: 0 })
            })
            .collect::<Result<_>>()?
    };
    let tiles = tile_request(&args.tiles, &japanim::config::StylizeSection::default())?
        .map(|t| t.settings(config.residual_blocks, device));
    let make_engine = || -> Result<Engine> {
        Ok(match tiles {
            Some(t) => Engine::with_tiles(load()?, t),
            None => Engine::new(load()?),
        })
    };
    let calls = args.frames.div_ceil(args.batch);
    let frame_count = (calls * args.batch) as u64;
    let mut engine = make_engine()?;
    tch::no_grad(|| -> Result<()> {
        // Warm-up: cuDNN picks its algorithms for this shape before the clock starts.
        let frames: Vec<&Frame> = (0..args.batch).map(|i| &sources[i % sources.len()]).collect();
        engine.stylize(&frames, &mut vec![Vec::new(); args.batch])?;
        Ok(())
    })?;
    // The whole engine as a stream runs it: a source thread copies frames into pool buffers
    // as a decoder would, the engine batches, uploads, runs and downloads, a sink takes them.
    let options =
        StreamOptions { batch: args.batch, in_flight: args.in_flight.map(|n| n as usize), ..Default::default() };
    let in_flight = options.in_flight.unwrap_or_else(|| engine.batches_in_flight());
    let source = japanim::bench::SyntheticSource::new(sources.clone(), frame_count);
    let stats = japanim::stream::run(Box::new(source), &mut engine, Box::new(japanim::bench::DiscardSink), &options)?;
    drop(engine);
    let engine_peak = peak_rss_mib();
    // libtorch's caching allocator keeps the blocks it reserved, so device memory in use after
    // the run is about the engine's peak on the device.
    let device_memory = match device {
        tch::Device::Cuda(n) => device::cuda::memory(n).map(|(free, total)| {
            format!("; device in use {:.0} of {:.0} MiB", (total - free) as f64 / 1048576.0, total as f64 / 1048576.0)
        }),
        _ => None,
    }
    .unwrap_or_default();
    // The bare generator on the same frames, already on the device as padded tensors: what
    // the engine's transfers, conversions, padding and tiling cost on top.
    let bare_seconds = tch::no_grad(|| -> Result<f64> {
        let generator_model = load()?;
        let x = Tensor::f_rand(
            [args.batch as i64, 3, i64::from(align4(h).max(8)), i64::from(align4(w).max(8))],
            (tch::Kind::Float, device),
        )?
        .f_to_kind(kind)?;
        let _ = generator_model.generator().forward(&x)?;
        if let tch::Device::Cuda(n) = device {
            tch::Cuda::synchronize(n as i64);
        }
        let start = std::time::Instant::now();
        for _ in 0..calls {
            let _ = generator_model.generator().forward(&x)?;
        }
        if let tch::Device::Cuda(n) = device {
            tch::Cuda::synchronize(n as i64);
        }
        Ok(start.elapsed().as_secs_f64())
    })?;
    let fps = stats.frames as f64 / stats.elapsed.as_secs_f64();
    let bare_fps = frame_count as f64 / bare_seconds;
    let flop_per_frame = 2.0 * config.macs_per_pixel() * f64::from(w) * f64::from(h);
    let (tflops, bare_tflops) = (flop_per_frame * fps / 1e12, flop_per_frame * bare_fps / 1e12);
    let how = match tiles {
        Some(t) if t.norm == japanim::engine::tiled::NormStrategy::Exact => format!(
            "tiles ≤{} px (cores of {} px, halo {} px, segment by segment), Exact",
            t.max_tile,
            japanim::engine::tiled::exact_core(t.max_tile),
            japanim::engine::tiled::EXACT_HALO
        ),
        Some(t) => {
            let plan = japanim::engine::tiles::TilePlan::new(align4(w).max(8), align4(h).max(8), t.max_tile, t.halo)
                .map_err(anyhow::Error::msg)?;
            format!(
                "tiles ≤{} px ({} of {}x{}, halo {}, {:.2}x pixels), {:?}",
                t.max_tile,
                plan.tiles.len(),
                plan.width,
                plan.height,
                t.halo,
                plan.overhead(align4(w).max(8), align4(h).max(8)),
                t.norm
            )
        }
        None => "whole frames".to_string(),
    };
    let (device_name, known_peak) = japanim::bench::device_peak(device, kind);
    let peak = args.peak_tflops.or(known_peak);
    let share = |achieved: f64| peak.map(|p| format!(", {:.1} % of the {p:.0} TFLOP/s peak", 100.0 * achieved / p));
    let [source_busy, engine_busy, sink_busy] = stats.busy_shares().map(|x| x * 100.0);
    println!(
        "generator {}ch/{}res, {w}x{h}, batch {}, {how}, {device:?} {kind:?}{}, {} threads",
        config.base_channels,
        config.residual_blocks,
        args.batch,
        device_name.map(|n| format!(" ({n})")).unwrap_or_default(),
        tch::get_num_threads()
    );
    println!(
        "  engine stream: {fps:.3} frames/s ({:.2} ms/frame), {in_flight} batch(es) in flight, {} frames; \
         busy: source {source_busy:.0} %, engine {engine_busy:.0} %, sink {sink_busy:.0} %",
        1000.0 / fps,
        stats.frames
    );
    println!(
        "  bare generator: {bare_fps:.3} frames/s ({:.2} ms/frame); engine at {:.1} % of it",
        1000.0 / bare_fps,
        100.0 * fps / bare_fps
    );
    println!(
        "  arithmetic: engine {tflops:.3} TFLOP/s useful{}; bare generator {bare_tflops:.3}{}",
        share(tflops).unwrap_or_default(),
        share(bare_tflops).unwrap_or_default()
    );
    println!("  memory: peak host {:.0} MiB (engine run){device_memory}", engine_peak.unwrap_or(f64::NAN));
    if args.compare {
        let Some(t) = tiles else { bail!("--compare needs --tile") };
        let plan = japanim::engine::tiles::TilePlan::new(align4(w).max(8), align4(h).max(8), t.max_tile, t.halo)
            .map_err(anyhow::Error::msg)?;
        let mut whole = Engine::new(load()?);
        let (mut first_psnr, mut second_psnr, mut seams, mut whole_seams) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for frame in &sources {
            let mut reference = vec![Vec::new()];
            let mut tiled_out = vec![Vec::new()];
            let mut tiled = Engine::with_tiles(load()?, t);
            tch::no_grad(|| -> Result<()> {
                whole.stylize(&[frame], &mut reference)?;
                tiled.stylize(&[frame], &mut tiled_out)?;
                first_psnr.push(japanim::engine::tiles::psnr(&tiled_out[0], &reference[0]));
                seams.push(japanim::engine::tiles::seam_ratio(&tiled_out[0], w, h, &plan));
                whole_seams.push(japanim::engine::tiles::seam_ratio(&reference[0], w, h, &plan));
                tiled.stylize(&[frame], &mut tiled_out)?; // the same frame again: temporal statistics settle
                second_psnr.push(japanim::engine::tiles::psnr(&tiled_out[0], &reference[0]));
                Ok(())
            })?;
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "tiled vs whole frame over {} image(s): PSNR {:.2} dB (min {:.2}), on a repeat {:.2} dB; seam ratio {:.3} (whole frame at the same lines {:.3})",
            sources.len(),
            mean(&first_psnr),
            first_psnr.iter().copied().fold(f64::INFINITY, f64::min),
            mean(&second_psnr),
            mean(&seams),
            mean(&whole_seams)
        );
    }
    Ok(())
}

/// `doctor`: what japanim finds on this machine.
fn doctor() -> Result<()> {
    println!("japanim {}", env!("CARGO_PKG_VERSION"));
    println!("{}", device::describe());
    println!(
        "video (FFmpeg) support: {}",
        if cfg!(feature = "video") { "yes" } else { "no (built without the video feature)" }
    );
    match model::default_model_path() {
        Some(path) => println!("default model: {}", path.display()),
        None => println!("default model: none installed (models/{})", model::DEFAULT_MODEL_FILE),
    }
    Ok(())
}
