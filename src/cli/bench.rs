//! `japanim bench`: the generator alone, the engine as a stream, a video pipeline, or
//! training steps.

use std::path::PathBuf;

use super::say;
use anyhow::{bail, Result};
use clap::Args;

use super::stylize::{tile_flags, TileOptions};
use japanim::bench::{EngineBench, EngineReport};
use japanim::device::{self, DeviceChoice, PrecisionChoice};
use japanim::io::raw::parse_size;
use japanim::model::{GeneratorConfig, StoredPrecision, StyleModel, Upsampling};

/// `japanim bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Generator weights; without it, a random generator of --base-channels/--residual-blocks.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Channels of the first layer of the random generator.
    #[arg(long, default_value_t = 64)]
    pub base_channels: i64,
    /// Residual blocks of the random generator.
    #[arg(long, default_value_t = 8)]
    pub residual_blocks: i64,
    /// Upsampling of the random generator: transposed or resize.
    #[arg(long, default_value_t = Upsampling::Transposed)]
    pub upsampling: Upsampling,
    /// Give the random generator an input skip.
    #[arg(long)]
    pub input_skip: bool,
    /// Give the random generator outlines.
    #[arg(long)]
    pub outlines: bool,
    /// Give the random generator anti-aliased resolution changes.
    #[arg(long)]
    pub antialias: bool,
    /// Frame size, WIDTHxHEIGHT.
    #[arg(long, value_parser = parse_size, default_value = "1280x720")]
    pub size: (u32, u32),
    /// Frames per generator call.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Timed frames (after one warm-up batch).
    #[arg(long, default_value_t = 4)]
    pub frames: usize,
    /// Where to run: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Number format on the device.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    pub precision: PrecisionChoice,
    #[command(flatten)]
    pub tiles: TileOptions,
    /// Real images to run instead of synthetic frames (scaled to --size).
    #[arg(long, num_args = 1..)]
    pub image: Vec<PathBuf>,
    /// Also run whole frames and report the tiled output's PSNR and seam ratio against them.
    #[arg(long)]
    pub compare: bool,
    /// Time adversarial training steps instead (crops of --size's width, --batch, --frames
    /// steps), on random data.
    #[arg(long)]
    pub train: bool,
    /// Batches kept on the device before the oldest is collected [default: 2 on a GPU, 1 on
    /// the CPU]; 1 turns off overlapping transfers with computation.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub in_flight: Option<u32>,
    /// The device's peak TFLOP/s for the chosen precision, to report the achieved share of
    /// it [default: known GPUs by name].
    #[arg(long)]
    pub peak_tflops: Option<f64>,
    /// Time the full pipeline on this video file instead: decoding alone, then decode →
    /// stylize → encode (audio copied) into a temporary file, deleted after.
    #[arg(long, conflicts_with_all = ["train", "compare", "image"])]
    pub video: Option<PathBuf>,
    /// Stylize frames at most N px on the longer side and scale them back, as `stylize
    /// --work-size` does; 0: frames at their own size.
    #[arg(long, value_name = "N", default_value_t = 0, conflicts_with_all = ["train", "compare"])]
    pub work_size: u32,
}

/// `bench`: generator (or tiled engine) throughput, and optionally tiled-vs-whole accuracy.
pub fn run(args: BenchArgs) -> Result<()> {
    if args.batch == 0 || args.frames == 0 {
        bail!("--batch and --frames must be at least 1");
    }
    if let Some(problem) = japanim::model::generator::work_size_problem(args.work_size) {
        bail!("--work-size {problem}");
    }
    let (device, kind) = device::resolve(args.device, args.precision)?;
    if args.train {
        let config = japanim::train::TrainConfig {
            base_channels: args.base_channels,
            residual_blocks: args.residual_blocks,
            upsampling: args.upsampling,
            crop: args.size.0,
            batch: args.batch,
            ..Default::default()
        };
        let seconds = japanim::train::run::benchmark_steps(&config, args.frames, device, kind)?;
        say!(
            "training step {}ch/{}res, {}² crops, batch {}, {device:?} {kind:?} arithmetic (f32 weights), {} threads: {seconds:.3} s/step",
            args.base_channels,
            args.residual_blocks,
            args.size.0,
            args.batch,
            tch::get_num_threads()
        )?;
        return Ok(());
    }
    let temp = std::env::temp_dir().join(format!("japanim-bench-{}.safetensors", std::process::id()));
    let path = match &args.model {
        Some(path) => path.clone(),
        None => {
            let config = GeneratorConfig {
                base_channels: args.base_channels,
                residual_blocks: args.residual_blocks,
                upsampling: args.upsampling,
                input_skip: args.input_skip,
                outlines: args.outlines,
                antialias: args.antialias,
                ..Default::default()
            };
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
    use japanim::config::EncoderSettings;
    use japanim::frame::{FramePool, FrameSource, Item};
    use japanim::stylize::{self, StylizeJob};
    let mut source = japanim::io::video::VideoSource::open(video, false)?;
    let (w, h) = (source.format().width, source.format().height);
    let (mut pool, mut back) = FramePool::new(4);
    let start = std::time::Instant::now();
    let mut decoded = 0u64;
    while let Some(item) = source.next_item(&mut pool)? {
        if let Item::Frame(frame) = item {
            decoded += 1;
            back.give(frame.data);
        }
    }
    let decode_fps = decoded as f64 / start.elapsed().as_secs_f64();
    drop(source);
    let extension = video.extension().and_then(|e| e.to_str()).unwrap_or("mkv");
    let output = std::env::temp_dir().join(format!("japanim-bench-{}.{extension}", std::process::id()));
    let job = StylizeJob {
        input: video.to_path_buf(),
        output: output.clone(),
        model: japanim::model::ModelSource::File(model.to_path_buf()),
        device: args.device,
        precision: args.precision,
        batch: Some(args.batch),
        encoder: EncoderSettings::default(),
        // Whole frames unless --tile names a size: a benchmark runs what it is told.
        tiles: Some(tile_flags(&args.tiles).tile_request().unwrap_or_else(japanim::stylize::TileRequest::whole_frames)),
        raw_size: None,
        raw_fps: None,
        raw_output: None,
        stabilize: 0.0,
        work_size: Some(args.work_size),
        strict_decode: false,
        part: None,
        overwrite: true,
        progress: false,
    };
    let summary = stylize::run(&job);
    let _ = std::fs::remove_file(&output);
    let summary = summary?;
    let fps = summary.frames as f64 / summary.elapsed.as_secs_f64();
    say!("video {}: {decoded} frames of {w}x{h}; decoding alone {decode_fps:.2} frames/s", video.display())?;
    let [decoding, stylizing, encoding] =
        summary.stream.map(|s| s.busy_shares().map(|x| x * 100.0)).unwrap_or([f64::NAN; 3]);
    say!(
        "  full pipeline (decode → stylize → encode, other streams copied), batch {}: {fps:.3} frames/s; \
         busy: decoding {decoding:.0} %, stylizing {stylizing:.0} %, encoding {encoding:.0} %",
        args.batch
    )?;
    Ok(())
}

#[cfg(not(feature = "video"))]
fn bench_video(_args: &BenchArgs, _model: &std::path::Path, _video: &std::path::Path) -> Result<()> {
    bail!("this japanim was built without the `video` feature, so `bench --video` cannot decode files")
}

fn bench_with(args: &BenchArgs, path: &std::path::Path, device: tch::Device, kind: tch::Kind) -> Result<()> {
    let config = StyleModel::load(path, device, kind)?.info().config;
    let tiles = tile_flags(&args.tiles).tile_request().filter(|t| t.max_tile > 0).map(|t| t.settings(&config, device));
    let bench = EngineBench {
        model: path.to_path_buf(),
        device,
        kind,
        size: args.size,
        batch: args.batch,
        frames: args.frames,
        tiles,
        images: args.image.clone(),
        in_flight: args.in_flight.map(|n| n as usize),
        compare: args.compare,
        work_size: args.work_size,
    };
    let report = japanim::bench::run_engine(&bench)?;
    print_report(args, &report, device, kind)
}

fn print_report(args: &BenchArgs, r: &EngineReport, device: tch::Device, kind: tch::Kind) -> Result<()> {
    let (w, h) = args.size;
    let (fps, bare_fps) = (r.engine_fps, r.bare_fps);
    let (tflops, bare_tflops) = (r.flop_per_frame * fps / 1e12, r.flop_per_frame * bare_fps / 1e12);
    let peak = args.peak_tflops.or(r.known_peak_tflops);
    let share = |achieved: f64| peak.map(|p| format!(", {:.1} % of the {p:.0} TFLOP/s peak", 100.0 * achieved / p));
    let [source_busy, engine_busy, sink_busy] = r.stats.busy_shares().map(|x| x * 100.0);
    say!(
        "generator {}ch/{}res, {w}x{h}, batch {}, {}, {device:?} {kind:?}{}, {} threads",
        r.config.base_channels,
        r.config.residual_blocks,
        args.batch,
        r.layout,
        r.device_name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default(),
        tch::get_num_threads()
    )?;
    say!(
        "  engine stream: {fps:.3} frames/s ({:.2} ms/frame), {} batch(es) in flight, {} frames; \
         busy: source {source_busy:.0} %, engine {engine_busy:.0} %, sink {sink_busy:.0} %",
        1000.0 / fps,
        r.in_flight,
        r.stats.frames
    )?;
    say!(
        "  bare generator: {bare_fps:.3} frames/s ({:.2} ms/frame); engine at {:.1} % of it",
        1000.0 / bare_fps,
        100.0 * fps / bare_fps
    )?;
    say!(
        "  arithmetic: engine {tflops:.3} TFLOP/s useful{}; bare generator {bare_tflops:.3}{}",
        share(tflops).unwrap_or_default(),
        share(bare_tflops).unwrap_or_default()
    )?;
    let device_memory = r
        .device_memory_mib
        .map(|(used, total)| format!("; device in use {used:.0} of {total:.0} MiB"))
        .unwrap_or_default();
    say!("  memory: peak host {:.0} MiB (engine run){device_memory}", r.peak_host_mib.unwrap_or(f64::NAN))?;
    if let Some(c) = &r.comparison {
        say!(
            "tiled vs whole frame over {} image(s): PSNR {:.2} dB (min {:.2}), on a repeat {:.2} dB; seam ratio {:.3} (whole frame at the same lines {:.3})",
            c.images,
            c.psnr,
            c.psnr_min,
            c.psnr_repeat,
            c.seam_ratio,
            c.whole_seam_ratio
        )?;
    }
    Ok(())
}
