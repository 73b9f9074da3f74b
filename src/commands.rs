//! One function per subcommand: turn parsed flags into library calls.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use tracing_subscriber::EnvFilter;

use japanim::config::{EncoderSettings, PipelineFile};
use japanim::device::{self, DeviceChoice, PrecisionChoice};
use japanim::engine::Engine;
use japanim::frame::Frame;
use japanim::io::raw::RawKind;
use japanim::model::{self, GeneratorConfig, StoredPrecision, StyleModel};
use japanim::output::PendingFile;
use japanim::stylize::{self, StylizeJob};

use crate::cli::{
    BenchArgs, Cli, Command, ExportArgs, ModelCommand, ModelInitArgs, RawOutput, SavedPrecision, StylizeArgs, TrainArgs,
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
        Command::Train(args) => train(args, !cli.quiet),
        Command::Export(args) => export(args),
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
        batch: args.batch.or(section.batch).unwrap_or(1),
        encoder: EncoderSettings {
            codec: args.codec.or(encoder_section.codec).unwrap_or(defaults.codec),
            crf: args.crf.or(encoder_section.crf).or(defaults.crf),
            preset: args.preset.or(encoder_section.preset).or(defaults.preset),
        },
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
    tracing::info!(
        "wrote {} ({} frames in {seconds:.1} s, {:.2} frames/s)",
        summary.output,
        summary.frames,
        summary.frames as f64 / seconds.max(1e-9)
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

/// `bench`: generator throughput on synthetic frames.
fn bench(args: BenchArgs) -> Result<()> {
    if args.batch == 0 || args.frames == 0 {
        bail!("--batch and --frames must be at least 1");
    }
    let (device, kind) = device::resolve(args.device, args.precision)?;
    let model = match &args.model {
        Some(path) => StyleModel::load(path, device, kind)?,
        None => {
            let config = GeneratorConfig { base_channels: args.base_channels, residual_blocks: args.residual_blocks };
            let path = std::env::temp_dir().join(format!("japanim-bench-{}.safetensors", std::process::id()));
            StyleModel::init(config, 0, "bench").save(StoredPrecision::F32, &path)?;
            let model = StyleModel::load(&path, device, kind);
            let _ = std::fs::remove_file(&path);
            model?
        }
    };
    let config = model.info().config;
    let (w, h) = args.size;
    let frames: Vec<Frame> = (0..args.batch)
        .map(|i| Frame {
            width: w,
            height: h,
            data: (0..Frame::byte_len(w, h)).map(|j| ((j * 7 + i * 13) % 251) as u8).collect(),
            pts: None,
            index: i as u64,
        })
        .collect();
    let inputs: Vec<&Frame> = frames.iter().collect();
    let mut outputs = vec![Vec::new(); args.batch];
    let mut engine = Engine::new(model);
    let calls = args.frames.div_ceil(args.batch);
    let seconds = tch::no_grad(|| -> Result<f64> {
        engine.stylize(&inputs, &mut outputs)?; // warm-up (cuDNN picks its algorithms)
        let start = std::time::Instant::now();
        for _ in 0..calls {
            engine.stylize(&inputs, &mut outputs)?;
        }
        Ok(start.elapsed().as_secs_f64())
    })?;
    let timed = (calls * args.batch) as f64;
    let fps = timed / seconds;
    let tflops = 2.0 * config.macs_per_pixel() * f64::from(w) * f64::from(h) * fps / 1e12;
    println!(
        "generator {}ch/{}res, {w}x{h}, batch {}, {device:?} {kind:?}: {fps:.3} frames/s ({:.3} s/frame), {tflops:.3} TFLOP/s",
        config.base_channels,
        config.residual_blocks,
        args.batch,
        1.0 / fps
    );
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
