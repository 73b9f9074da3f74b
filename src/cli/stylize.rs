//! `japanim stylize`: flags over the pipeline file's `[stylize]` table, then the job.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use japanim::config::{EncoderSection, PipelineFile, StylizeRun, StylizeSection};
use japanim::device::{DeviceChoice, PrecisionChoice};
use japanim::io::raw::{parse_fps, parse_size, RawKind};
use japanim::stylize;

/// Format of raw frames written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RawOutput {
    /// Packed 8-bit RGB, no header.
    Rgb24,
    /// YUV4MPEG2 (carries size and rate).
    Y4m,
}

/// `japanim stylize`.
#[derive(Debug, Args)]
pub struct StylizeArgs {
    /// Image, folder of images, video file, or `-` for raw frames on stdin (rgb24 with
    /// --size, or YUV4MPEG2, detected from its header).
    pub input: PathBuf,
    /// Output image, folder, video file, or `-` for raw frames on stdout.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Generator weights (.safetensors). Default: the installed default model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Pipeline file whose [stylize] settings apply under these flags.
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// Where to run: auto, cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<DeviceChoice>,
    /// Number format on the device: auto (f32 on CPU, bf16 on GPU), f32, f16 or bf16.
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionChoice>,
    /// Frames per generator call [default: 1 on the CPU; on a GPU as many as fit in half its
    /// free memory, at most 8].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Video encoder (FFmpeg name).
    #[arg(long)]
    pub codec: Option<String>,
    /// Encoder quality, constant rate factor (x264: 0–51, lower is better).
    #[arg(long)]
    pub crf: Option<u32>,
    /// Encoder preset (x264: ultrafast … veryslow).
    #[arg(long)]
    pub preset: Option<String>,
    #[command(flatten)]
    pub tiles: TileOptions,
    /// Size of rgb24 frames on stdin, WIDTHxHEIGHT.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<(u32, u32)>,
    /// Frame rate of raw frames on stdin (25, 29.97, 30000/1001), for encoding.
    #[arg(long, value_parser = parse_fps)]
    pub fps: Option<(u32, u32)>,
    /// Format of raw frames on stdout [default: rgb24 for rgb24 input, else y4m].
    #[arg(long, value_enum)]
    pub output_format: Option<RawOutput>,
    /// Steadier video: each layer's normalisation statistics are a moving average over the
    /// shot, restarted at cuts; the weight of the past, 0 for off [default: 0.9]. Video and
    /// raw streams only (images are stylized alone).
    #[arg(long)]
    pub stabilize: Option<f64>,
    /// Stylize frames and images at most N px on the longer side and scale the result back
    /// to their size: the look is drawn at the scale the model learned it (a 1080p frame
    /// stylized whole comes out barely flatter than the photo), and fewer pixels go through
    /// the network; 0 for full size [default: the model's: 960 for the default model, full
    /// size for models without one].
    #[arg(long, value_name = "N")]
    pub work_size: Option<u32>,
    /// Fail on a damaged video frame or packet. By default FFmpeg conceals the damage and
    /// japanim warns with the number of damaged frames and their times.
    #[arg(long)]
    pub strict_decode: bool,
    /// Stylize only part K of N of a video (K from 0), for `japanim join` to put together;
    /// `auto/N` takes K from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX. Parts follow from
    /// the video alone, so machines need not talk; a finished part is kept on a re-run.
    #[arg(long, value_name = "K/N")]
    pub part: Option<String>,
    /// Also write the settings this run resolved (flags over the pipeline file over the
    /// defaults) as a pipeline file, to re-run the same job with --pipeline FILE.
    #[arg(long, value_name = "FILE")]
    pub save_settings: Option<PathBuf>,
    /// Replace the output if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

/// Tiled inference, shared by `stylize` and `bench`.
#[derive(Debug, Args, Clone)]
pub struct TileOptions {
    /// Cut frames whose padded size exceeds N px into tiles of at most N px (0: whole frames)
    /// [default: exact tiles of 512 px on the CPU, and on a GPU where whole frames would crowd
    /// its memory; else whole frames].
    #[arg(long)]
    pub tile: Option<u32>,
    /// Context around each tile's core [default: the model's receptive-field radius].
    #[arg(long)]
    pub halo: Option<u32>,
    /// Cosine blend on each side of a tile boundary, px.
    #[arg(long)]
    pub feather: Option<u32>,
    /// How tiles are normalised: exact (segment by segment, whole-frame statistics: the
    /// whole-frame result; the activations between segments go to temporary files where they
    /// would crowd memory) [default], exact:disk (always in temporary files: memory bounded by
    /// the tile), downscaled:N (statistics of a small whole-frame pass, then N measuring
    /// passes; memory bounded by the tile, approximate),
    /// refine:N (N measuring passes; exact when N is the number of InstanceNorm layers),
    /// temporal (the previous frame's), or tile (each tile its own).
    #[arg(long)]
    pub tile_norm: Option<japanim::engine::tiled::NormStrategy>,
    /// Tiles of one shape per generator call [default: 1 on the CPU, where larger batches are
    /// slower and take more memory; 4 on a GPU].
    #[arg(long)]
    pub tile_batch: Option<usize>,
}

/// `stylize`: the flags over the pipeline file (merged in `config`), then the job.
pub fn run(args: StylizeArgs, progress: bool) -> Result<()> {
    let pipeline = match &args.pipeline {
        Some(path) => PipelineFile::read(path)?,
        None => PipelineFile::default(),
    };
    let flags = StylizeSection {
        model: args.model,
        device: args.device,
        precision: args.precision,
        batch: args.batch,
        stabilize: args.stabilize,
        work_size: args.work_size,
        encoder: Some(EncoderSection { codec: args.codec, crf: args.crf, preset: args.preset }),
        ..tile_flags(&args.tiles)
    };
    let part = args
        .part
        .as_deref()
        .map(|text| japanim::parts::PartSpec::parse(text, japanim::parts::task_index_from_env()))
        .transpose()?;
    let job = flags.over(pipeline.stylize).job(StylizeRun {
        input: args.input,
        output: args.output,
        raw_size: args.size,
        raw_fps: args.fps,
        raw_output: args.output_format.map(|f| match f {
            RawOutput::Rgb24 => RawKind::Rgb24,
            RawOutput::Y4m => RawKind::Y4m,
        }),
        strict_decode: args.strict_decode,
        part,
        overwrite: args.overwrite,
        progress,
    });
    if let Some(path) = &args.save_settings {
        let file = PipelineFile {
            description: Some(format!(
                "Settings of `japanim stylize {} -o {}`; re-run with --pipeline {}",
                job.input.display(),
                job.output.display(),
                path.display()
            )),
            stylize: StylizeSection::of_job(&job),
            ..Default::default()
        };
        file.write(path)?;
        tracing::info!("settings saved to {} (use them with --pipeline)", path.display());
    }
    tracing::info!("stylize settings: {}", serde_json::to_string(&job)?);
    let summary = stylize::run(&job)?;
    if summary.kept {
        return Ok(());
    }
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

/// The tile flags as settings (each unset where not given).
pub fn tile_flags(flags: &TileOptions) -> StylizeSection {
    StylizeSection {
        tile: flags.tile,
        halo: flags.halo,
        feather: flags.feather,
        tile_norm: flags.tile_norm,
        tile_batch: flags.tile_batch,
        ..Default::default()
    }
}
