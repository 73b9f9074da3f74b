//! `japanim bench`: the generator alone, the engine as a stream, a video pipeline, or
//! training steps.

use std::path::PathBuf;

use super::say;
use anyhow::{bail, Result};
use clap::Args;
use tch::Tensor;

use super::stylize::{tile_request, TileOptions};
use japanim::device::{self, DeviceChoice, PrecisionChoice};
use japanim::engine::tiles::align4;
use japanim::engine::Engine;
use japanim::frame::Frame;
use japanim::io::raw::parse_size;
use japanim::model::{GeneratorConfig, StoredPrecision, StyleModel, Upsampling};
use japanim::stream::StreamOptions;

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
}

/// Peak resident memory of this process (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// `bench`: generator (or tiled engine) throughput, and optionally tiled-vs-whole accuracy.
pub fn run(args: BenchArgs) -> Result<()> {
    if args.batch == 0 || args.frames == 0 {
        bail!("--batch and --frames must be at least 1");
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
        tiles: Some(
            tile_request(&args.tiles, &japanim::config::StylizeSection::default())?
                .unwrap_or_else(japanim::stylize::TileRequest::whole_frames),
        ),
        raw_size: None,
        raw_fps: None,
        raw_output: None,
        stabilize: 0.0,
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
        .filter(|t| t.max_tile > 0)
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
        Some(t) if t.norm.is_exact() => format!(
            "tiles ≤{} px (cores of {} px, halo {} px, segment by segment), {:?}",
            t.max_tile,
            japanim::engine::tiled::exact_core(t.max_tile),
            japanim::engine::tiled::EXACT_HALO,
            t.norm
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
    say!(
        "generator {}ch/{}res, {w}x{h}, batch {}, {how}, {device:?} {kind:?}{}, {} threads",
        config.base_channels,
        config.residual_blocks,
        args.batch,
        device_name.map(|n| format!(" ({n})")).unwrap_or_default(),
        tch::get_num_threads()
    )?;
    say!(
        "  engine stream: {fps:.3} frames/s ({:.2} ms/frame), {in_flight} batch(es) in flight, {} frames; \
         busy: source {source_busy:.0} %, engine {engine_busy:.0} %, sink {sink_busy:.0} %",
        1000.0 / fps,
        stats.frames
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
    say!("  memory: peak host {:.0} MiB (engine run){device_memory}", engine_peak.unwrap_or(f64::NAN))?;
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
        say!(
            "tiled vs whole frame over {} image(s): PSNR {:.2} dB (min {:.2}), on a repeat {:.2} dB; seam ratio {:.3} (whole frame at the same lines {:.3})",
            sources.len(),
            mean(&first_psnr),
            first_psnr.iter().copied().fold(f64::INFINITY, f64::min),
            mean(&second_psnr),
            mean(&seams),
            mean(&whole_seams)
        )?;
    }
    Ok(())
}
