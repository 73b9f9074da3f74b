//! The stylize job: picks the source and sink for the input and output the user named, loads
//! the model and runs the stream (or the image loop), writing outputs atomically.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
#[cfg(feature = "video")]
use std::time::Instant;

use serde::Serialize;

use crate::device::{self, DeviceChoice, PrecisionChoice};
use crate::engine::tiled::{NormStrategy, TileSettings};
use crate::engine::tiles::{align4, receptive_radius, TilePlan};
use crate::engine::Engine;
use crate::frame::FrameSink;
use crate::io::colour::{Chroma, Range};
use crate::io::image::{is_image_path, list_images, IMAGE_EXTENSIONS};
use crate::io::raw::{RawFormat, RawKind, RawReader, RawSink, RawSource, RawWriter};
use crate::io::EncoderSettings;
use crate::model::ModelSource;
use crate::output::PendingFile;
use crate::stream::{self, StreamOptions};
use crate::Error;

/// A fully resolved stylize job (flags merged over a pipeline file); logged as it runs.
#[derive(Debug, Clone, Serialize)]
pub struct StylizeJob {
    /// Input path, or `-` for raw frames on stdin.
    pub input: PathBuf,
    /// Output path, or `-` for raw frames on stdout.
    pub output: PathBuf,
    /// Generator weights.
    pub model: ModelSource,
    /// Device choice.
    pub device: DeviceChoice,
    /// Precision choice.
    pub precision: PrecisionChoice,
    /// Frames per generator call; `None`: the engine's choice ([`Engine::automatic_batch`]).
    pub batch: Option<usize>,
    /// Video encoder settings.
    pub encoder: EncoderSettings,
    /// Tiled inference: (max tile, halo or the model's receptive radius, feather, tiles per
    /// call, normalisation). `None` leaves it to the engine ([`Engine::with_automatic_tiles`]:
    /// exact tiles on the CPU for large frames and wherever whole frames would crowd
    /// memory); a `max_tile` of 0 runs whole frames.
    pub tiles: Option<TileRequest>,
    /// Size of rgb24 frames on stdin.
    pub raw_size: Option<(u32, u32)>,
    /// Frame rate of raw frames on stdin, for encoding.
    pub raw_fps: Option<(u32, u32)>,
    /// Format of frames written to stdout (default: y4m, or rgb24 for rgb24 input).
    pub raw_output: Option<RawKind>,
    /// Temporal smoothing of the normalisation statistics for video and raw streams: the weight
    /// of the past in the moving average (0: off; see [`crate::engine::temporal`]).
    pub stabilize: f64,
    /// Frames and images with a longer side over this many px are stylized scaled down to it
    /// and scaled back (0: at full size; see [`Engine::with_work_size`]); `None`: the model's
    /// (`japanim.work_size`).
    pub work_size: Option<u32>,
    /// Fail on the first damaged video frame or packet instead of concealing and counting.
    pub strict_decode: bool,
    /// Stylize only this part of a video (`--part K/N`), for `join` to put together.
    pub part: Option<crate::parts::PartSpec>,
    /// Replace existing outputs.
    pub overwrite: bool,
    /// Show progress.
    pub progress: bool,
}

/// Tiling as asked for, before the model's receptive field fills in the halo.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TileRequest {
    /// Largest tile side.
    pub max_tile: u32,
    /// Halo; `None` for the model's receptive-field radius.
    pub halo: Option<u32>,
    /// Blend width.
    pub feather: u32,
    /// Tiles per generator call; `None`: 1 on the CPU (larger batches are slower there and
    /// take more memory), 4 on a GPU.
    pub batch: Option<usize>,
    /// Normalisation strategy.
    pub norm: NormStrategy,
}

impl TileRequest {
    /// Whole frames, never tiles (`--tile 0`).
    pub fn whole_frames() -> Self {
        Self { max_tile: 0, halo: None, feather: 0, batch: None, norm: NormStrategy::Exact }
    }

    /// The engine settings for a model of layout `generator` on `device`.
    pub fn settings(&self, generator: &crate::model::GeneratorConfig, device: tch::Device) -> TileSettings {
        // The exact strategy needs only one segment's receptive field around each tile.
        let halo = if self.norm.is_exact() {
            crate::engine::tiled::EXACT_HALO as u32
        } else {
            self.halo.unwrap_or_else(|| receptive_radius(generator.residual_blocks, generator.antialias))
        };
        TileSettings {
            max_tile: self.max_tile,
            halo,
            feather: self.feather.min(halo),
            batch: self.batch.unwrap_or(if device.is_cuda() { 4 } else { 1 }).max(1),
            norm: self.norm,
        }
    }
}

/// What a finished job did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Frames or images stylized.
    pub frames: u64,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// Where the results are.
    pub output: String,
    /// For a stream (video, raw frames): the figures of its stages.
    pub stream: Option<stream::StreamStats>,
    /// Whether the output was already finished and kept (a part run again).
    pub kept: bool,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}

fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Runs a stylize job.
pub fn run(job: &StylizeJob) -> Result<Summary, Error> {
    if job.batch == Some(0) {
        return Err(invalid("--batch must be at least 1"));
    }
    if job.part.is_some() && is_dash(&job.input) {
        return Err(invalid("--part splits a video file; frames on stdin cannot be split"));
    }
    if is_dash(&job.input) {
        return run_stdin(job);
    }
    let input = &job.input;
    let meta = std::fs::metadata(input).map_err(|e| invalid(format!("input {}: {e}", input.display())))?;
    if meta.is_dir() {
        if job.part.is_some() {
            return Err(invalid(format!("--part splits a video file; {} is a folder", input.display())));
        }
        return run_folder(job);
    }
    if meta.len() == 0 {
        return Err(invalid(format!("input {} is an empty file", input.display())));
    }
    if job.part.is_some() && is_image_path(input) {
        return Err(invalid(format!("--part splits a video; {} is an image", input.display())));
    }
    if is_image_path(input) {
        run_image(job)
    } else {
        run_video(job)
    }
}

/// A fingerprint of everything that shapes a part's pictures and stream: the model's bytes,
/// the encoder, tiles, temporal smoothing, the work size, the device kind and precision as they resolve on
/// this machine, and japanim's version. `join` refuses parts whose fingerprints differ.
pub fn settings_fingerprint(job: &StylizeJob) -> Result<u64, Error> {
    let mut hash = crate::parts::Fnv::default();
    let (bytes, name) = match &job.model {
        ModelSource::File(path) => (
            std::borrow::Cow::Owned(
                std::fs::read(path).map_err(|e| invalid(format!("model {}: {e}", path.display())))?,
            ),
            path.as_path(),
        ),
        ModelSource::BuiltIn => {
            (std::borrow::Cow::Borrowed(crate::model::BUILT_IN_DEFAULT), Path::new(crate::model::BUILT_IN_NAME))
        }
    };
    hash.write(&bytes);
    // The size frames are drawn at, resolved: naming the model's own work size makes the same
    // parts as leaving it to the model.
    let work_size = match job.work_size {
        Some(n) => n,
        None => crate::model::weights::info_of(&bytes, name)?.work_size,
    };
    // What the device and precision resolve to here (auto is bf16 on some CPUs, f32 on
    // others), and the build: parts from different machines must have run the same arithmetic.
    let (device, kind) = device::resolve(job.device, job.precision)?;
    let shape = serde_json::json!({
        "encoder": job.encoder,
        "tiles": job.tiles,
        "stabilize": job.stabilize,
        "work_size": work_size,
        "device": if device.is_cuda() { "cuda" } else { "cpu" },
        "kind": format!("{kind:?}"),
        "japanim": env!("CARGO_PKG_VERSION"),
    });
    hash.write(shape.to_string().as_bytes());
    Ok(hash.0)
}

/// Weight of the past in the temporal smoothing of video, unless `--stabilize` says
/// otherwise: about a third of a second of memory at 30 frames/s.
pub const DEFAULT_STABILIZE: f64 = 0.9;

/// The engine for a stream of consecutive frames: [`load_engine`] with the temporal
/// smoothing asked for.
fn stream_engine(job: &StylizeJob) -> Result<Engine, Error> {
    let engine = load_engine(job)?;
    if job.stabilize <= 0.0 {
        return Ok(engine);
    }
    if job.stabilize >= 1.0 || job.stabilize.is_nan() {
        return Err(invalid(format!("--stabilize {} must be from 0 (off) to below 1", job.stabilize)));
    }
    if let Some(tiles) = job.tiles.as_ref().filter(|t| t.max_tile > 0 && !t.norm.is_exact()) {
        // Only whole frames and exact tiles measure the whole-frame statistics to smooth.
        tracing::warn!("--tile-norm {:?} measures no whole-frame statistics: no temporal smoothing", tiles.norm);
        return Ok(engine);
    }
    tracing::info!("normalisation statistics smoothed over each shot (past weight {})", job.stabilize);
    Ok(engine.with_temporal_smoothing(job.stabilize))
}

/// The batch asked for, or the engine's choice for frames of this size (logged).
fn stream_batch(job: &StylizeJob, engine: &Engine, width: u32, height: u32) -> usize {
    job.batch.unwrap_or_else(|| {
        let batch = engine.automatic_batch(width, height);
        tracing::info!("{batch} frame(s) per generator call (automatic; --batch sets it)");
        batch
    })
}

fn load_engine(job: &StylizeJob) -> Result<Engine, Error> {
    let (device, kind) = device::resolve(job.device, job.precision)?;
    if job.precision == PrecisionChoice::Auto && device == tch::Device::Cpu && kind == tch::Kind::BFloat16 {
        tracing::info!("this CPU has bf16 instructions: running in bf16 (--precision f32 for f32)");
    }
    let model = job.model.load(device, kind)?;
    let info = model.info();
    tracing::info!(
        "model {} ({} base channels, {} residual blocks, {:.2} M parameters) on {device:?} as {kind:?}",
        job.model,
        info.config.base_channels,
        info.config.residual_blocks,
        model.parameter_count() as f64 / 1e6
    );
    if !info.trained {
        tracing::warn!(
            "model {} is untrained (random weights): the output shows the pipeline working, not a style",
            job.model
        );
    }
    let work_size = match job.work_size {
        Some(n) => match crate::model::generator::work_size_problem(n) {
            Some(problem) => return Err(invalid(format!("work size {problem}"))),
            None => n,
        },
        None => info.work_size,
    };
    Ok(tiled_engine(job, model, device)?.with_work_size(work_size))
}

/// The engine for the tiling the job asks for: the engine's own choice, whole frames, or
/// tiles of a given size.
fn tiled_engine(job: &StylizeJob, model: crate::model::StyleModel, device: tch::Device) -> Result<Engine, Error> {
    let Some(request) = &job.tiles else { return Ok(Engine::new(model).with_automatic_tiles()) };
    if request.max_tile == 0 {
        tracing::info!("whole frames (--tile 0)");
        return Ok(Engine::new(model));
    }
    let settings = request.settings(&model.info().config, device);
    let side = align4(settings.max_tile.max(8));
    TilePlan::new(side, side, settings.max_tile, settings.halo)
        .map_err(|e| invalid(format!("--tile {}: {e}", settings.max_tile)))?;
    tracing::info!(
        "tiles of at most {} px, halo {}, feather {}, {:?} normalisation, {} per call",
        settings.max_tile,
        settings.halo,
        settings.feather,
        settings.norm,
        settings.batch
    );
    Ok(Engine::with_tiles(model, settings))
}

fn require_image_output(job: &StylizeJob) -> Result<(), Error> {
    if is_dash(&job.output) || !is_image_path(&job.output) {
        return Err(invalid(format!(
            "an image input needs an image output ({}), not {}",
            IMAGE_EXTENSIONS.join(", "),
            job.output.display()
        )));
    }
    Ok(())
}

fn run_image(job: &StylizeJob) -> Result<Summary, Error> {
    require_image_output(job)?;
    // Refused before any work if it exists (without --overwrite) or its folder does not.
    drop(PendingFile::new(&job.output, job.overwrite)?);
    let summary = run_images(job, vec![job.input.clone()], vec![job.output.clone()], None)?;
    Ok(Summary { output: job.output.display().to_string(), ..summary })
}

/// Images through the stream: file `i` of `inputs` stylized into `destinations[i]`, each
/// alone (no temporal smoothing), frames of different sizes in separate batches.
fn run_images(
    job: &StylizeJob,
    inputs: Vec<PathBuf>,
    destinations: Vec<PathBuf>,
    failures: Option<crate::io::image::Failures>,
) -> Result<Summary, Error> {
    use crate::io::image::{ImageSink, ImageSource};
    let mut engine = load_engine(job)?;
    let options = StreamOptions {
        batch: job.batch.unwrap_or(1),
        progress: job.progress && inputs.len() > 1,
        expected_frames: Some(inputs.len() as u64),
        ..Default::default()
    };
    let source = ImageSource::new(inputs, failures.clone());
    let sink = ImageSink::new(destinations, failures);
    let stats = stream::run(Box::new(source), &mut engine, Box::new(sink), &options)?;
    Ok(Summary {
        frames: stats.frames,
        elapsed: stats.elapsed,
        output: job.output.display().to_string(),
        stream: Some(stats),
        kept: false,
    })
}

fn run_folder(job: &StylizeJob) -> Result<Summary, Error> {
    let images = list_images(&job.input)?;
    if images.is_empty() {
        return Err(invalid(format!("{} contains no images ({})", job.input.display(), IMAGE_EXTENSIONS.join(", "))));
    }
    if is_dash(&job.output) || is_image_path(&job.output) {
        return Err(invalid(format!("a folder of images needs a folder as output, not {}", job.output.display())));
    }
    std::fs::create_dir_all(&job.output)
        .map_err(|e| invalid(format!("output folder {}: {e}", job.output.display())))?;
    // Check every destination before any work, so a refused run changes nothing.
    let mut destinations = Vec::new();
    for image in &images {
        let destination = job.output.join(image.file_name().expect("listed files have names"));
        if destination.exists() && !job.overwrite {
            return Err(crate::output::OutputError::Exists(destination).into());
        }
        destinations.push(destination);
    }
    // One bad image must not cost the others: each failure is named as it happens and
    // counted, and the run fails at the end if any image failed. An image the engine fails
    // on (too large for the device's memory, say) stops the stream: it is counted and the
    // stream starts again after it.
    let count = images.len();
    let mut todo: Vec<usize> = (0..count).collect();
    let mut summary = None;
    let mut failed_in_engine = Vec::new();
    while !todo.is_empty() {
        let failures = crate::io::image::Failures::default();
        let inputs = todo.iter().map(|&i| images[i].clone()).collect();
        let outputs = todo.iter().map(|&i| destinations[i].clone()).collect();
        let result = run_images(job, inputs, outputs, Some(failures.clone()));
        let progress = std::mem::take(&mut *failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        failed_in_engine.extend(progress.failures);
        match result {
            Ok(done) => {
                summary = Some(done);
                break;
            }
            Err(Error::Stage(e)) if e.downcast_ref::<crate::engine::EngineError>().is_some() => {
                let Some(at) = (0..todo.len() as u64).find(|i| !progress.settled.contains(i)) else { break };
                let image = &images[todo[at as usize]];
                let failure = format!("{}: {e}", image.display());
                tracing::error!("{failure}");
                failed_in_engine.push(failure);
                todo.drain(..=at as usize);
            }
            Err(e) => return Err(e),
        }
    }
    let failures = failed_in_engine;
    if let Some(first) = failures.first() {
        return Err(invalid(format!(
            "{} of {count} images in {} failed (the other {} were written to {}); the first: {first}",
            failures.len(),
            job.input.display(),
            count - failures.len(),
            job.output.display()
        )));
    }
    let summary = summary.unwrap_or(Summary {
        frames: 0,
        elapsed: Duration::ZERO,
        output: job.output.display().to_string(),
        stream: None,
        kept: false,
    });
    Ok(summary)
}

/// Where frames go: a file being written under a temporary name, or stdout.
enum Destination {
    File(PendingFile),
    Stdout,
}

fn destination(job: &StylizeJob) -> Result<Destination, Error> {
    if is_dash(&job.output) {
        return Ok(Destination::Stdout);
    }
    if is_image_path(&job.output) {
        return Err(invalid(format!(
            "a video or raw input needs a video output (e.g. .mp4, .mkv) or -, not {}",
            job.output.display()
        )));
    }
    #[cfg(feature = "video")]
    if !crate::io::video::has_container_for(&job.output) {
        return Err(invalid(format!(
            "{}: FFmpeg has no container for this file extension: use e.g. .mp4, .mkv or .mov",
            job.output.display()
        )));
    }
    Ok(Destination::File(PendingFile::new(&job.output, job.overwrite)?))
}

fn stdout_sink(
    job: &StylizeJob,
    width: u32,
    height: u32,
    fps: Option<(u32, u32)>,
    input_kind: RawKind,
    chroma: Chroma,
    range: Range,
) -> Box<dyn FrameSink> {
    let kind = job.raw_output.unwrap_or(input_kind);
    let format = RawFormat { kind, width, height, fps, chroma, range };
    let writer = BufWriter::with_capacity(1 << 20, std::io::stdout());
    Box::new(RawSink(RawWriter::new(Box::new(writer) as Box<dyn Write + Send>, format)))
}

fn finish(stats: stream::StreamStats, destination: Destination) -> Result<Summary, Error> {
    let output = match destination {
        Destination::File(pending) => pending.commit()?.display().to_string(),
        Destination::Stdout => "stdout".to_string(),
    };
    Ok(Summary { frames: stats.frames, elapsed: stats.elapsed, output, stream: Some(stats), kept: false })
}

fn run_stdin(job: &StylizeJob) -> Result<Summary, Error> {
    let reader = RawReader::new(std::io::stdin(), job.raw_size, job.raw_fps)?;
    let format = *reader.format();
    let destination = destination(job)?;
    let sink: Box<dyn FrameSink> = match &destination {
        Destination::Stdout => {
            stdout_sink(job, format.width, format.height, format.fps, format.kind, format.chroma, format.range)
        }
        Destination::File(pending) => video_sink_for_raw(pending, &format, job)?,
    };
    let mut engine = stream_engine(job)?;
    let batch = stream_batch(job, &engine, format.width, format.height);
    let options = StreamOptions { batch, progress: job.progress, ..Default::default() };
    let stats = stream::run(Box::new(RawSource(reader)), &mut engine, sink, &options)?;
    finish(stats, destination)
}

#[cfg(feature = "video")]
fn video_sink_for_raw(
    pending: &PendingFile,
    format: &RawFormat,
    job: &StylizeJob,
) -> Result<Box<dyn FrameSink>, Error> {
    use crate::io::video::{ColourDescription, VideoFormat, VideoSink};
    use ffmpeg_next::Rational;
    let (num, den) = format.fps.ok_or_else(|| {
        invalid("encoding raw frames to a video file needs --fps (a YUV4MPEG2 stream carries its own)")
    })?;
    let video = VideoFormat {
        width: format.width,
        height: format.height,
        frame_rate: Rational(num as i32, den as i32),
        time_base: Rational(den as i32, num as i32),
        colour: ColourDescription::default_for(format.height),
        copied: Vec::new(),
        metadata: Vec::new(),
        frames: None,
        display_matrix: None,
    };
    Ok(Box::new(VideoSink::create_as(pending.temp_path(), pending.destination(), &video, &job.encoder)?))
}

#[cfg(not(feature = "video"))]
fn video_sink_for_raw(
    _pending: &PendingFile,
    _format: &RawFormat,
    _job: &StylizeJob,
) -> Result<Box<dyn FrameSink>, Error> {
    Err(no_video_feature())
}

#[cfg(not(feature = "video"))]
fn no_video_feature() -> Error {
    invalid("this japanim was built without the `video` feature: pipe raw frames through FFmpeg instead (see README)")
}

#[cfg(not(feature = "video"))]
fn run_video(_job: &StylizeJob) -> Result<Summary, Error> {
    Err(no_video_feature())
}

/// Whether `path` is a finished part with `label`: its label and all its frames.
#[cfg(feature = "video")]
fn part_is_finished(path: &Path, label: &crate::parts::PartLabel) -> bool {
    use crate::io::parts::{read_label, scan_frames};
    path.exists()
        && read_label(path).ok().flatten().as_ref() == Some(label)
        && scan_frames(path).is_ok_and(|t| t.frames() == label.end - label.first)
}

/// One part of a video (`--part K/N`): its frames, each stylized as a run over the whole
/// video stylizes it, encoded with the source's timestamps into a file labelled with the
/// part, the video and the settings. A finished part with the same label is kept.
#[cfg(feature = "video")]
fn run_video_part(job: &StylizeJob, part: crate::parts::PartSpec) -> Result<Summary, Error> {
    use crate::io::parts::{scan_frames, FromFrame, PartSource};
    use crate::io::video::{VideoSink, VideoSource};
    use crate::parts::PartLabel;
    if is_dash(&job.output) {
        return Err(invalid("--part writes a part file for `japanim join`: give -o PART.mkv (or .mp4), not -"));
    }
    if let Some(t) = job.tiles.filter(|t| t.max_tile > 0 && t.norm == NormStrategy::Temporal) {
        return Err(invalid(format!(
            "--part with --tile-norm {}: that strategy carries statistics from frame to frame without end, so a \
             part could not match a run over the whole video; use exact tiles",
            t.norm
        )));
    }
    let start = Instant::now();
    let table = scan_frames(&job.input)?;
    let bounds = table.plan(part, 0, 0)?;
    let label = PartLabel {
        part,
        first: bounds.first,
        end: bounds.end,
        total: bounds.total,
        source: table.fingerprint(),
        settings: settings_fingerprint(job)?,
    };
    if !job.overwrite && part_is_finished(&job.output, &label) {
        tracing::info!(
            "{}: part {part} of this video with these settings is already finished: kept (--overwrite redoes it)",
            job.output.display()
        );
        return Ok(Summary {
            frames: bounds.frames(),
            elapsed: start.elapsed(),
            output: job.output.display().to_string(),
            stream: None,
            kept: true,
        });
    }
    // How many frames a part must run before its own depends on the model's depth and the
    // temporal smoothing, so the engine comes before the plan.
    let mut engine = stream_engine(job)?;
    let video = VideoSource::open(&job.input, false)?.strict(job.strict_decode);
    let plan = table.plan(part, engine.warm_up_frames(), video.look_back())?;
    let mut format = video.format().clone();
    format.metadata.retain(|(key, _)| !key.eq_ignore_ascii_case("comment"));
    format.metadata.push(("comment".into(), label.to_string()));
    format.frames = Some(plan.end - plan.warm_first);
    let destination = destination(job)?;
    let Destination::File(pending) = &destination else { unreachable!("checked above: not stdout") };
    let sink = VideoSink::create_as(pending.temp_path(), pending.destination(), &format, &job.encoder)?;
    let from = match plan.decode_from {
        Some((key, _)) => format!("key frame {key}"),
        None => "the start".to_string(),
    };
    tracing::info!(
        "part {part}: frames {}..{} of {} ({} warm-up frames first; decoding from {from})",
        plan.first,
        plan.end,
        plan.total,
        plan.first - plan.warm_first
    );
    let source = PartSource::new(video, &table, plan)?;
    let options = StreamOptions {
        batch: stream_batch(job, &engine, format.width, format.height),
        progress: job.progress,
        expected_frames: format.frames,
        ..Default::default()
    };
    let sink = FromFrame { sink: Box::new(sink), first: plan.first };
    let stats = stream::run(Box::new(source), &mut engine, Box::new(sink), &options)?;
    let mut summary = finish(stats, destination)?;
    summary.frames = plan.frames();
    Ok(summary)
}

#[cfg(feature = "video")]
fn run_video(job: &StylizeJob) -> Result<Summary, Error> {
    use crate::io::video::{VideoSink, VideoSource};
    if let Some(part) = job.part {
        return run_video_part(job, part);
    }
    let to_stdout = is_dash(&job.output);
    let source = VideoSource::open(&job.input, !to_stdout)?.strict(job.strict_decode);
    let format = source.format().clone();
    if let Some(degrees) = format.rotation().filter(|d| d.abs() > 0.01) {
        tracing::info!(
            "{}: the stream asks players to rotate it by {degrees:.0}°: frames are stylized as stored and the output keeps the rotation",
            job.input.display()
        );
    }
    let destination = destination(job)?;
    let sink: Box<dyn FrameSink> = match &destination {
        Destination::Stdout => {
            let rate = format.frame_rate;
            let fps = (rate.numerator() > 0 && rate.denominator() > 0)
                .then(|| (rate.numerator() as u32, rate.denominator() as u32));
            stdout_sink(job, format.width, format.height, fps, RawKind::Y4m, Chroma::C420, Range::Limited)
        }
        Destination::File(pending) => {
            Box::new(VideoSink::create_as(pending.temp_path(), pending.destination(), &format, &job.encoder)?)
        }
    };
    let mut engine = stream_engine(job)?;
    let options = StreamOptions {
        batch: stream_batch(job, &engine, format.width, format.height),
        progress: job.progress,
        expected_frames: format.frames,
        ..Default::default()
    };
    let stats = stream::run(Box::new(source), &mut engine, sink, &options)?;
    if let Some(shots) = engine.shots() {
        tracing::info!("{shots} shot(s): the smoothed statistics restarted at each cut");
    }
    finish(stats, destination)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_fingerprint_the_work_size_they_draw_at() {
        let run = crate::config::StylizeRun {
            input: "in.mp4".into(),
            output: "out.mp4".into(),
            raw_size: None,
            raw_fps: None,
            raw_output: None,
            strict_decode: false,
            part: None,
            overwrite: false,
            progress: false,
        };
        let job = StylizeJob { model: ModelSource::BuiltIn, ..crate::config::StylizeSection::default().job(run) };
        let with = |work_size: Option<u32>| settings_fingerprint(&StylizeJob { work_size, ..job.clone() }).unwrap();
        // The built-in model's own work size, named or left to it, draws the same parts.
        assert_eq!(with(None), with(Some(960)));
        assert_ne!(with(None), with(Some(0)));
    }
}
