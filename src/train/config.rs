//! A training run's configuration, saved as `config.toml` in the run folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::abstraction::AbstractionConfig;
use super::schedule::LrSchedule;
use super::temporal::MotionKind;
use super::TrainError;
use crate::device::PrecisionChoice;
use crate::model::generator::Upsampling;
use crate::model::GeneratorConfig;

/// What the generator's Gram matrices are pulled towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StyleTarget {
    /// Each output towards the anime crop it is batched with (the original).
    #[default]
    Pair,
    /// Every output towards the mean Gram matrix of the training anime set, measured once at
    /// the start: the style of the set rather than of one random picture, and what
    /// `japanim eval` measures. Each image is centre-cropped to the training crop.
    Mean,
    /// As `mean`, but of whole images: those of `style_images`, each scaled to at most
    /// [`STYLE_SIDE`] px as `japanim eval` scales its style set (the target `eval` measures),
    /// or where that is unset the dataset's anime crops whole, at the size they were cut.
    /// A Gram matrix of a smaller window is a noisier, busier statistic (the photos' Gram L1 to
    /// the set is 0.99 whole at 512 px, 1.50 over 128² windows), so a `mean` target measured on
    /// small crops asks for texture the whole picture does not need.
    Set,
}

/// The longer side, in pixels, of the `style_images` whose mean Gram matrix is the `set`
/// target: what `japanim eval` scales its style set to.
pub const STYLE_SIDE: u32 = 256;

/// Everything that determines a run. Unset keys take the original JapanimationGAN values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Generator width (64 in the original; narrower is faster on CPU).
    pub base_channels: i64,
    /// Generator residual blocks (8 in the original).
    pub residual_blocks: i64,
    /// Generator upsampling: `transposed` (the original) or `resize` (no checkerboard grid).
    pub upsampling: Upsampling,
    /// Generator input skip: a 7×7 filter of the photo added before the output tanh, so the
    /// output keeps the photo's colours (InstanceNorm makes the original layout blind to them).
    pub input_skip: bool,
    /// Generator outlines: dark lines drawn along the edges of the photo's surface after the
    /// network (a fixed step, see `model::generator`).
    pub outlines: bool,
    /// The most ink an outline takes, in percent (1–100; 70 when unset).
    pub outline_ink: u8,
    /// Generator anti-aliasing: a [1 2 1] blur before each stride-2 convolution and bilinear
    /// doubling with `resize` upsampling, so the output follows sub-grid motion smoothly.
    pub antialias: bool,
    /// Generator margin: pixels of mirrored picture around each crop (and at inference each
    /// frame) that the network runs on and that are cut off after, so the network's own edge
    /// never falls in the picture; a multiple of 4 (0 when unset).
    pub margin: u32,
    /// Generator 3×3 convolutions pad by reflection instead of with zeros (no zero border
    /// tells the network where the picture ends).
    pub reflect_padding: bool,
    /// Generator detail path: channels of three full-resolution 3×3 convolutions that add
    /// fine detail where the photo has it (0 when unset: none). A run may start (`init`) from
    /// a file without one; the path then starts at zero.
    pub detail_channels: u32,
    /// Written into the exported model (`japanim.work_size`): the longer side `stylize` draws
    /// larger frames at, the scale of this run's training pictures (0 when unset: frames at
    /// their own size). Training itself does not read it.
    pub work_size: u32,
    /// Discriminator width (32 in the original).
    pub disc_channels: i64,
    /// Side of the square training crops.
    pub crop: u32,
    /// Images per step (each of photo, anime, smoothed anime).
    pub batch: usize,
    /// Random horizontal flips.
    pub flips: bool,
    /// Seed of initialisation and data order.
    pub seed: u64,
    /// Epochs of generator pre-training on the content loss alone.
    pub pretrain_epochs: u32,
    /// Epochs of adversarial training.
    pub epochs: u32,
    /// Steps per epoch; 0 means one pass over the training photos.
    pub steps_per_epoch: u64,
    /// Generator learning rate (Adam).
    pub lr_g: f64,
    /// Discriminator learning rate (Adam).
    pub lr_d: f64,
    /// How both rates change over the main steps: `constant` (the original) or `cosine`
    /// (down toward zero at the last step). Pre-training runs at the configured rates.
    pub lr_schedule: LrSchedule,
    /// Steps of linear warm-up at the start of the main steps (0 = none).
    pub lr_warmup: u64,
    /// Adam β1 (0.5 in the original).
    pub beta1: f64,
    /// Adam β2.
    pub beta2: f64,
    /// Weight of the generator's adversarial loss (1 in the original).
    pub adversarial_weight: f64,
    /// ω, the weight of the VGG content loss (10 in the original).
    pub content_weight: f64,
    /// Weight of the Gram-matrix style loss.
    pub style_weight: f64,
    /// What the style loss compares each output's Gram matrix with.
    pub style_target: StyleTarget,
    /// With `style_target = "set"`: a folder of style images (e.g. the cartoon set the dataset
    /// was cut from) whose mean Gram matrix, measured as `japanim eval` measures it, is the
    /// target. Read once when the run starts.
    pub style_images: Option<PathBuf>,
    /// Content and Gram losses (and the `mean`/`set` style target) taken away from the images'
    /// edges: each is extended by mirroring before the VGG conv base and those features cut
    /// off ([`crate::model::vgg::Vgg::features_away_from_edges`]). Without it every conv4
    /// feature of a 128² crop lies within reach of the conv base's zero padding, so the Gram
    /// loss pays for painting the crop's border (the edge blots of earlier runs). Costs a
    /// VGG pass about three times as large at 128².
    pub losses_away_from_edges: bool,
    /// Weight of a pixel L1 between output and photo during pre-training only (0 = off, the
    /// original). A little of it teaches the generator to pass its input through in far fewer
    /// steps than the VGG loss alone, which helps short CPU runs.
    pub pretrain_pixel_weight: f64,
    /// Weight of a pixel L1 between the output and the photo's cartoon abstraction (surface
    /// smoothing, colour flattening, outlines; see [`super::abstraction`]), in both phases
    /// (0 = off, the original). It brings the flat, outlined look in a short run.
    pub abstraction_weight: f64,
    /// Parameters of that abstraction.
    pub abstraction: AbstractionConfig,
    /// Weight of the flatness term ([`super::losses::flatness`], truncated total variation of
    /// the output) in the adversarial phase (0 = off, the original): flat colour areas with
    /// sharp borders, against the fine texture the Gram style loss brings.
    pub flat_weight: f64,
    /// Differences (values in [-1, 1]) from which the flatness term counts an edge as an edge
    /// and stops pulling it down.
    pub flat_threshold: f64,
    /// Weight of the local-colour term ([`super::losses::local_chroma_l2`]): the squared
    /// difference between the output's and the photo's cartoon abstraction's chroma, each
    /// averaged over cells of `colour_cell` px, in both phases (0 = off). It keeps each region
    /// the colour of the photo's region while leaving luma (shading, outlines) and detail finer
    /// than a cell free; squared, so a blot of another hue costs far more than the same change
    /// spread thin (Gram-weighted runs paint such blots; models/README.md, session 15).
    pub colour_weight: f64,
    /// Side in pixels of the cells the local-colour term averages over.
    pub colour_cell: u32,
    /// Weight of the temporal term (compound regularisation, see [`super::temporal`]):
    /// stylizing a photo moved by a small random motion must equal moving its stylization
    /// (0 = off, the original). Costs one more generator pass per step.
    pub temporal_weight: f64,
    /// Standard deviation of the noise added to the moved photo (values in [-1, 1]).
    pub temporal_noise: f64,
    /// The motion the temporal term draws: `affine` (small rotation, zoom and shift; the
    /// default) or `shift` (whole-pixel shifts: exact warps, so texture that moves with the
    /// picture is not penalised).
    pub temporal_motion: MotionKind,
    /// Checkpoint every N steps; 0 means at the end of every epoch.
    pub checkpoint_every: u64,
    /// Checkpoints kept (older ones are deleted).
    pub keep_checkpoints: usize,
    /// Validation photos shown in each epoch's sample grid.
    pub sample_images: usize,
    /// VGG conv base (safetensors); default `models/vgg16.safetensors`.
    pub vgg: Option<PathBuf>,
    /// Generator weights to start from instead of a random initialisation (fine-tuning, e.g.
    /// the default model on one's own films). Its weights' layout must be the one configured
    /// here; outlines, which have no weights, may differ.
    /// Read once when the run starts; a resumed run continues from its checkpoints.
    pub init: Option<PathBuf>,
    /// Device: auto, cpu, cuda or cuda:N.
    pub device: String,
    /// Arithmetic of the forward and backward passes: auto (bf16 on a GPU, f32 on the CPU),
    /// f32 or bf16. Weights, optimiser moments and losses stay f32 either way (mixed
    /// precision); f16 is refused, since it would need loss scaling.
    pub precision: PrecisionChoice,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            base_channels: 64,
            residual_blocks: 8,
            upsampling: Upsampling::Transposed,
            input_skip: false,
            outlines: false,
            outline_ink: crate::model::generator::DEFAULT_OUTLINE_INK,
            antialias: false,
            margin: 0,
            reflect_padding: false,
            detail_channels: 0,
            work_size: 0,
            disc_channels: 32,
            crop: 256,
            batch: 8,
            flips: true,
            seed: 0,
            pretrain_epochs: 1,
            epochs: 10,
            steps_per_epoch: 0,
            lr_g: 1e-4,
            lr_d: 1e-4,
            lr_schedule: LrSchedule::Constant,
            lr_warmup: 0,
            beta1: 0.5,
            beta2: 0.999,
            adversarial_weight: 1.0,
            content_weight: 10.0,
            style_weight: 1.0,
            style_target: StyleTarget::Pair,
            style_images: None,
            losses_away_from_edges: false,
            pretrain_pixel_weight: 0.0,
            abstraction_weight: 0.0,
            abstraction: AbstractionConfig::default(),
            flat_weight: 0.0,
            flat_threshold: 0.1,
            colour_weight: 0.0,
            colour_cell: 8,
            temporal_weight: 0.0,
            temporal_noise: 0.03,
            temporal_motion: MotionKind::Affine,
            checkpoint_every: 0,
            keep_checkpoints: 3,
            sample_images: 4,
            vgg: None,
            init: None,
            device: "auto".into(),
            precision: PrecisionChoice::Auto,
        }
    }
}

impl TrainConfig {
    /// The generator's architecture.
    pub fn generator(&self) -> GeneratorConfig {
        GeneratorConfig {
            base_channels: self.base_channels,
            residual_blocks: self.residual_blocks,
            upsampling: self.upsampling,
            input_skip: self.input_skip,
            outlines: self.outlines,
            outline_ink: self.outline_ink,
            antialias: self.antialias,
            margin: self.margin,
            reflect_padding: self.reflect_padding,
            detail_channels: self.detail_channels,
        }
    }

    /// Reads a configuration file (unknown keys are errors).
    pub fn read(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io { path: path.into(), source })?;
        toml::from_str(&text).map_err(|e| TrainError::Run(format!("config {}: {}", path.display(), e.message())))
    }

    /// Checks ranges, naming the key and what is allowed.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |msg: String| Err(TrainError::Run(format!("invalid training config: {msg}")));
        if !(1..=1024).contains(&self.base_channels) || !(1..=64).contains(&self.residual_blocks) {
            return bad("base_channels must be 1–1024 and residual_blocks 1–64".into());
        }
        if !(1..=1024).contains(&self.disc_channels) {
            return bad("disc_channels must be 1–1024".into());
        }
        if self.crop < 16 || !self.crop.is_multiple_of(4) || self.crop > 2048 {
            return bad(format!("crop {} must be a multiple of 4 from 16 to 2048", self.crop));
        }
        if self.precision == PrecisionChoice::F16 {
            return bad("precision f16 is not supported for training (it needs loss scaling): use bf16".into());
        }
        if self.batch == 0 || self.batch > 1024 {
            return bad("batch must be 1–1024".into());
        }
        if self.pretrain_epochs == 0 && self.epochs == 0 {
            return bad("pretrain_epochs and epochs are both 0: nothing to train".into());
        }
        for (name, v) in [("lr_g", self.lr_g), ("lr_d", self.lr_d)] {
            if !(v > 0.0 && v < 1.0) {
                return bad(format!("{name} {v} must be in (0, 1)"));
            }
        }
        for (name, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return bad(format!("{name} {v} must be in [0, 1)"));
            }
        }
        let weights = [
            self.adversarial_weight,
            self.content_weight,
            self.style_weight,
            self.pretrain_pixel_weight,
            self.abstraction_weight,
            self.flat_weight,
            self.colour_weight,
            self.temporal_weight,
            self.temporal_noise,
        ];
        if weights.iter().any(|w| !(*w >= 0.0 && w.is_finite())) {
            return bad("loss weights and temporal_noise must be finite and not negative".into());
        }
        if !(1..=100).contains(&self.outline_ink) {
            return bad(format!("outline_ink {} must be a percentage from 1 to 100", self.outline_ink));
        }
        if !crate::model::generator::valid_margin(self.margin) {
            let most = crate::model::generator::MAX_MARGIN;
            return bad(format!("margin {} must be a multiple of 4 from 0 to {most}", self.margin));
        }
        if self.detail_channels > crate::model::generator::MAX_DETAIL_CHANNELS {
            let most = crate::model::generator::MAX_DETAIL_CHANNELS;
            return bad(format!("detail_channels {} must be from 0 to {most}", self.detail_channels));
        }
        if let Some(problem) = crate::model::generator::work_size_problem(self.work_size) {
            return bad(format!("work_size {problem}"));
        }
        if !(1..=64).contains(&self.colour_cell) || self.colour_cell > self.crop {
            return bad(format!("colour_cell {} must be from 1 to 64 px and at most the crop", self.colour_cell));
        }
        if !(self.flat_threshold > 0.0 && self.flat_threshold.is_finite()) {
            return bad(format!("flat_threshold {} must be above 0", self.flat_threshold));
        }
        let a = &self.abstraction;
        if !(1..=32).contains(&a.radius) || a.eps <= 0.0 || a.passes > 16 || a.levels > 256 || a.line_sigma <= 0.0 {
            return bad("abstraction: radius 1–32, eps > 0, passes ≤ 16, levels ≤ 256, line_sigma > 0".into());
        }
        if self.abstraction_weight > 0.0 && i64::from(self.crop) < 2 * a.radius + 1 {
            return bad(format!("crop {} is smaller than the abstraction's box", self.crop));
        }
        if self.style_images.is_some() && self.style_target != StyleTarget::Set {
            return bad("style_images is read only with style_target = \"set\"".into());
        }
        if self.keep_checkpoints == 0 {
            return bad("keep_checkpoints must be at least 1".into());
        }
        Ok(())
    }

    /// As TOML, for the run folder.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a config serialises")
    }
}
