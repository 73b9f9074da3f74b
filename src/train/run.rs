//! The training loop, validation, checkpoints and export.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::{nn::VarStore, Device, Kind, Tensor};

use super::abstraction::abstraction;
use super::adam::Adam;
use super::checkpoint;
use super::config::{StyleTarget, TrainConfig, STYLE_SIDE};
use super::data::{self, Dataset, Split};
use super::losses::{bce_logits, flatness, gram_l1, gram_l1_to, l1, local_chroma_l2};
use super::metrics::{self, StepMetrics};
use super::schedule::{lr_factor, LrSchedule};
use super::temporal::{temporal_loss, Motion};
use super::TrainError;
use crate::device::{self, DeviceChoice};
use crate::io::image::{list_images, read_scaled};
use crate::model::discriminator::Discriminator;
use crate::model::vgg::{gram, Vgg, EDGE_PAD};
use crate::model::weights::{ModelInfo, StoredPrecision};
use crate::model::{Generator, GeneratorConfig, StyleModel};
use crate::output::PendingFile;

/// What to train and where.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Dataset folder (the layout `japanim dataset build` writes).
    pub data: PathBuf,
    /// Run folder.
    pub run: PathBuf,
    /// Configuration of a new run; `None` when resuming (the run's own is used).
    pub config: Option<TrainConfig>,
    /// Continue the run in `run` from its newest checkpoint.
    pub resume: bool,
    /// Stop after this step (checkpointed; the run can be resumed).
    pub until_step: Option<u64>,
    /// Show a progress bar.
    pub progress: bool,
}

/// What a finished (or stopped) run reached.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Last step done.
    pub step: u64,
    /// Steps the whole run has.
    pub total_steps: u64,
    /// Steps done by this call.
    pub steps_this_call: u64,
    /// Wall-clock seconds of this call.
    pub seconds: f64,
    /// Newest checkpoint.
    pub checkpoint: PathBuf,
    /// Metrics of the last step.
    pub last: StepMetrics,
}

const CONFIG_FILE: &str = "config.toml";

fn io(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.into(), source }
}

/// Resolves the run's configuration: a resumed run's own, or the given one for a new run.
/// Writes nothing: [`create_run`] does, once everything the run needs has been found.
fn run_config(options: &TrainOptions) -> Result<TrainConfig, TrainError> {
    let config_path = options.run.join(CONFIG_FILE);
    if options.resume {
        if !config_path.is_file() {
            return Err(TrainError::Run(format!("nothing to resume: {} has no {CONFIG_FILE}", options.run.display())));
        }
        let saved = TrainConfig::read(&config_path)?;
        if let Some(given) = &options.config {
            if *given != saved {
                return Err(TrainError::Run(format!(
                    "--resume continues {} with its own {CONFIG_FILE}; a different configuration was given",
                    options.run.display()
                )));
            }
        }
        saved.validate()?;
        return Ok(saved);
    }
    if config_path.exists() {
        return Err(TrainError::Run(format!(
            "{} already holds a run: pass --resume to continue it, or choose another --out",
            options.run.display()
        )));
    }
    let config = options.config.clone().unwrap_or_default();
    config.validate()?;
    Ok(config)
}

/// Makes a new run's folder and writes its configuration.
fn create_run(run: &Path, config: &TrainConfig) -> Result<(), TrainError> {
    let config_path = run.join(CONFIG_FILE);
    std::fs::create_dir_all(run).map_err(io(run))?;
    std::fs::write(&config_path, config.to_toml()).map_err(io(&config_path))
}

fn find_vgg(config: &TrainConfig) -> Result<PathBuf, TrainError> {
    if let Some(path) = &config.vgg {
        return Ok(path.clone());
    }
    crate::model::find_in_models("vgg16.safetensors").ok_or_else(|| {
        TrainError::Run(
            "no VGG weights: scripts/setup.sh converts the VGG16 conv base to models/vgg16.safetensors, \
             or set vgg = \"PATH\" in the training config"
                .into(),
        )
    })
}

/// The networks and optimisers of a run.
struct Nets {
    g_vs: VarStore,
    generator: Generator,
    d_vs: VarStore,
    discriminator: Discriminator,
    adam_g: Adam,
    adam_d: Adam,
}

impl Nets {
    fn new(config: &TrainConfig, device: Device) -> Self {
        let (g_vs, d_vs) = (VarStore::new(device), VarStore::new(device));
        let (generator, discriminator) = crate::model::with_seed(config.seed, || {
            (Generator::new(&g_vs.root(), config.generator()), Discriminator::new(&d_vs.root(), config.disc_channels))
        });
        let adam_g = Adam::new(g_vs.variables(), config.lr_g, config.beta1, config.beta2);
        let adam_d = Adam::new(d_vs.variables(), config.lr_d, config.beta1, config.beta2);
        Self { g_vs, generator, d_vs, discriminator, adam_g, adam_d }
    }

    /// Every state tensor by checkpoint name.
    fn state(&self) -> Vec<(String, Tensor)> {
        let g = self.g_vs.variables().into_iter().map(|(k, t)| (format!("g.{k}"), t));
        let d = self.d_vs.variables().into_iter().map(|(k, t)| (format!("d.{k}"), t));
        let ag = self.adam_g.state().into_iter().map(|(k, t)| (format!("adam_g.{k}"), t));
        let ad = self.adam_d.state().into_iter().map(|(k, t)| (format!("adam_d.{k}"), t));
        g.chain(d).chain(ag).chain(ad).collect()
    }

    fn checkpoint(&self, run: &Path, step: u64, keep: usize) -> Result<PathBuf, TrainError> {
        let metadata = HashMap::from([
            ("japanim.adam_g_steps".to_string(), self.adam_g.steps.to_string()),
            ("japanim.adam_d_steps".to_string(), self.adam_d.steps.to_string()),
        ]);
        checkpoint::save(&run.join("checkpoints"), step, self.state(), metadata, keep)
    }

    /// Copies the generator weights a new run starts from (the `init` key, checked by
    /// [`read_init`]) into its generator.
    fn start_from(&mut self, path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
        let fail = |e: crate::model::weights::WeightsError| TrainError::Run(format!("init: {e}"));
        let file = crate::model::weights::info_of(bytes, path).map_err(fail)?;
        // A detail path the file does not have keeps its initialisation (its last layer zero).
        let skipped = if file.config.detail_channels == 0 { self.generator.detail_tensor_names() } else { Vec::new() };
        let info = crate::model::weights::load_bytes_except(&mut self.g_vs, bytes, path, &skipped).map_err(fail)?;
        tracing::info!("generator starts from {} ({})", path.display(), info.description);
        Ok(())
    }

    fn restore(&mut self, path: &Path) -> Result<u64, TrainError> {
        let targets: HashMap<String, Tensor> = self.state().into_iter().collect();
        let meta = checkpoint::load(path, &targets)?;
        let number = |key: &str| -> Result<i64, TrainError> {
            meta.get(key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| TrainError::Run(format!("checkpoint {} lacks {key}", path.display())))
        };
        self.adam_g.steps = number("japanim.adam_g_steps")?;
        self.adam_d.steps = number("japanim.adam_d_steps")?;
        Ok(number("japanim.step")? as u64)
    }
}

/// Reads the `init` weights file, refusing one whose weights' layout is not the configured
/// one (before the run folder is made).
fn read_init(path: &Path, config: &TrainConfig) -> Result<Vec<u8>, TrainError> {
    let fail = |e: crate::model::weights::WeightsError| TrainError::Run(format!("init: {e}"));
    let bytes = crate::model::weights::read_file(path).map_err(fail)?;
    let info = crate::model::weights::info_of(&bytes, path).map_err(fail)?;
    // Outlines, anti-aliasing, the margin and the padding have no weights: a run may draw
    // outlines, resample, frame or pad the picture otherwise than the file it starts from.
    // A file without a detail path may start a run with one (the path starts at zero).
    let wanted = config.generator();
    let same_weights = GeneratorConfig {
        outlines: wanted.outlines,
        outline_ink: wanted.outline_ink,
        antialias: wanted.antialias,
        margin: wanted.margin,
        reflect_padding: wanted.reflect_padding,
        detail_channels: if info.config.detail_channels == 0 {
            wanted.detail_channels
        } else {
            info.config.detail_channels
        },
        ..info.config
    };
    if same_weights != wanted {
        return Err(TrainError::Run(format!(
            "init: {} is a generator with {}, but the configuration asks for {}",
            path.display(),
            info.config,
            config.generator()
        )));
    }
    Ok(bytes)
}

fn scalar(t: &Tensor) -> f64 {
    t.double_value(&[])
}

/// The generator terms both phases share: the pixel L1 to the photo's cartoon abstraction
/// and the temporal term, each weighted, added to `loss`; their unweighted values go to `m`.
fn shared_generator_terms(
    nets: &Nets,
    photo: &Tensor,
    fake: &Tensor,
    config: &TrainConfig,
    step_number: u64,
    mut loss: Tensor,
    m: &mut StepMetrics,
) -> Result<Tensor, TrainError> {
    if config.abstraction_weight > 0.0 || config.colour_weight > 0.0 {
        let target = tch::no_grad(|| abstraction(photo, &config.abstraction))?;
        if config.abstraction_weight > 0.0 {
            let term = l1(fake, &target)?;
            m.abstraction = scalar(&term);
            loss = loss.f_add(&term.f_mul_scalar(config.abstraction_weight)?)?;
        }
        if config.colour_weight > 0.0 {
            let term = local_chroma_l2(fake, &target, i64::from(config.colour_cell))?;
            m.colour = scalar(&term);
            loss = loss.f_add(&term.f_mul_scalar(config.colour_weight)?)?;
        }
    }
    if config.temporal_weight > 0.0 {
        // Drawn from the run's seed and the step alone, so a resumed run draws the same.
        let seed = config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step_number;
        let shape = photo.size4()?;
        let motion = Motion::random(
            seed,
            [shape.0, shape.1, shape.2, shape.3],
            config.temporal_noise,
            config.temporal_motion,
            photo.device(),
        )?;
        let term = temporal_loss(photo, fake, &motion, |x| nets.generator.stylize(x))?;
        m.temporal = scalar(&term);
        loss = loss.f_add(&term.f_mul_scalar(config.temporal_weight)?)?;
    }
    Ok(loss)
}

/// The VGG conv base as the run's perceptual losses read it: with its zero padding, or away
/// from the images' edges (`losses_away_from_edges`).
struct Perceptual {
    vgg: Vgg,
    away_from_edges: bool,
}

impl Perceptual {
    fn features(&self, x: &Tensor) -> Result<Tensor, tch::TchError> {
        if self.away_from_edges {
            self.vgg.features_away_from_edges(x, EDGE_PAD)
        } else {
            self.vgg.features(x)
        }
    }
}

/// One training step; returns its metrics (step and timing filled by the caller).
fn step(
    nets: &mut Nets,
    vgg: &Perceptual,
    batch: &data::Batch,
    config: &TrainConfig,
    (step_number, pretrain): (u64, bool),
    compute: Kind,
    style_gram: Option<&Tensor>,
) -> Result<StepMetrics, TrainError> {
    let mut m = StepMetrics { pretrain, ..Default::default() };
    // Mixed precision: the networks compute in `compute`, weights and losses stay f32.
    let batch = &data::Batch {
        photo: batch.photo.f_to_kind(compute)?,
        anime: batch.anime.f_to_kind(compute)?,
        smooth: batch.smooth.f_to_kind(compute)?,
    };
    let photo_features = tch::no_grad(|| vgg.features(&batch.photo))?;
    if pretrain {
        let fake = nets.generator.stylize(&batch.photo)?;
        let content = l1(&vgg.features(&fake)?, &photo_features)?;
        let mut loss = content.f_mul_scalar(config.content_weight)?;
        if config.pretrain_pixel_weight > 0.0 {
            loss = loss.f_add(&l1(&fake, &batch.photo)?.f_mul_scalar(config.pretrain_pixel_weight)?)?;
        }
        let loss = shared_generator_terms(nets, &batch.photo, &fake, config, step_number, loss, &mut m)?;
        nets.adam_g.backward_step(&loss)?;
        m.content = scalar(&content);
        m.g_total = scalar(&loss);
        return Ok(m);
    }
    // With no adversarial weight the discriminator would train for nothing: it is skipped
    // (its weights stay as they are, its losses are logged as 0).
    let adversarial = config.adversarial_weight != 0.0;
    let zero = || Tensor::zeros([], (Kind::Float, batch.photo.device()));
    let (d_real, d_fake, d_smooth, d_loss) = if adversarial {
        // Discriminator: anime is real; generated and edge-smoothed anime are fake.
        let fake = tch::no_grad(|| nets.generator.stylize(&batch.photo))?;
        let d_real = bce_logits(&nets.discriminator.forward(&batch.anime)?, 1.0)?;
        let d_fake = bce_logits(&nets.discriminator.forward(&fake)?, 0.0)?;
        let d_smooth = bce_logits(&nets.discriminator.forward(&batch.smooth)?, 0.0)?;
        let d_loss = d_real.f_add(&d_fake)?.f_add(&d_smooth)?;
        nets.adam_d.backward_step(&d_loss)?;
        (d_real, d_fake, d_smooth, d_loss)
    } else {
        (zero(), zero(), zero(), zero())
    };
    // Generator: fool D, keep the photo's content, take the anime's Gram statistics.
    let fake = nets.generator.stylize(&batch.photo)?;
    let g_adv = if adversarial { bce_logits(&nets.discriminator.forward(&fake)?, 1.0)? } else { zero() };
    let fake_features = vgg.features(&fake)?;
    let content = l1(&fake_features, &photo_features)?;
    let style = if config.style_weight > 0.0 {
        style_loss(vgg, &fake_features, &batch.anime, style_gram)?
    } else {
        Tensor::zeros([], (Kind::Float, fake.device()))
    };
    let mut loss = g_adv
        .f_mul_scalar(config.adversarial_weight)?
        .f_add(&content.f_mul_scalar(config.content_weight)?)?
        .f_add(&style.f_mul_scalar(config.style_weight)?)?;
    if config.flat_weight > 0.0 {
        let term = flatness(&fake, config.flat_threshold)?;
        m.flat = scalar(&term);
        loss = loss.f_add(&term.f_mul_scalar(config.flat_weight)?)?;
    }
    let loss = shared_generator_terms(nets, &batch.photo, &fake, config, step_number, loss, &mut m)?;
    nets.adam_g.backward_step(&loss)?;
    // The discriminator's parameters collected gradients from the generator's step: clear them.
    nets.adam_d.zero_grad();
    m.d_real = scalar(&d_real);
    m.d_fake = scalar(&d_fake);
    m.d_smooth = scalar(&d_smooth);
    m.d_loss = scalar(&d_loss);
    m.g_adv = scalar(&g_adv);
    m.content = scalar(&content);
    m.style = scalar(&style);
    m.g_total = scalar(&loss);
    Ok(m)
}

/// The Gram L1 of generated features: towards the style set's mean Gram matrix where the run
/// has one (`style_target = "mean"` or `"set"`), else each towards its batch's anime image.
fn style_loss(
    vgg: &Perceptual,
    fake_features: &Tensor,
    anime: &Tensor,
    style_gram: Option<&Tensor>,
) -> Result<Tensor, TrainError> {
    Ok(match style_gram {
        Some(target) => gram_l1_to(fake_features, target)?,
        None => gram_l1(fake_features, &tch::no_grad(|| vgg.features(anime))?)?,
    })
}

/// The mean Gram matrix (C×C, f32) of the VGG features of up to [`STYLE_SET_IMAGES`]
/// training anime images, each centre-cropped to `crop`, or whole where `crop` is `None`.
fn style_set_gram(
    vgg: &Perceptual,
    dataset: &Dataset,
    config: &TrainConfig,
    crop: Option<u32>,
    device: Device,
) -> Result<Tensor, TrainError> {
    let paths = dataset.anime_spread(STYLE_SET_IMAGES);
    // Whole crops may differ in size, so they go one at a time.
    let per_pass = if crop.is_some() { config.batch.max(1) } else { 1 };
    let batches = paths.chunks(per_pass).map(|chunk| {
        let images = chunk.iter().map(|p| data::load(p)).collect::<Result<Vec<_>, _>>()?;
        match crop {
            Some(crop) => {
                let crops = images.iter().map(|img| data::center_crop(img, crop)).collect::<Vec<_>>();
                data::to_tensor(&crops, crop, device)
            }
            None => data::image_tensor(&images[0], device),
        }
    });
    mean_gram(vgg, batches)
}

/// The mean Gram matrix (C×C, f32) of up to [`STYLE_SET_IMAGES`] images of `folder`, spread
/// evenly over it, each scaled to at most [`STYLE_SIDE`] px: the style set as `japanim eval`
/// measures it.
fn style_folder_gram(vgg: &Perceptual, folder: &Path, device: Device) -> Result<Tensor, TrainError> {
    let paths = list_images(folder)?;
    if paths.is_empty() {
        return Err(TrainError::Run(format!("style_images {}: no images in the folder", folder.display())));
    }
    let stride = paths.len().div_ceil(STYLE_SET_IMAGES).max(1);
    let batches = paths.iter().step_by(stride).map(|path| data::image_tensor(&read_scaled(path, STYLE_SIDE)?, device));
    mean_gram(vgg, batches)
}

/// The mean Gram matrix (C×C, f32) over every image of `batches` (at least one).
fn mean_gram(
    vgg: &Perceptual,
    batches: impl Iterator<Item = Result<Tensor, TrainError>>,
) -> Result<Tensor, TrainError> {
    let (mut sum, mut images): (Option<Tensor>, i64) = (None, 0);
    tch::no_grad(|| -> Result<(), TrainError> {
        for batch in batches {
            let batch = batch?;
            images += batch.size4()?.0;
            let grams = gram(&vgg.features(&batch)?.f_to_kind(Kind::Float)?)?.f_sum_dim_intlist(
                &[0i64][..],
                false,
                Kind::Float,
            )?;
            sum = Some(match sum.take() {
                Some(s) => s.f_add(&grams)?,
                None => grams,
            });
        }
        Ok(())
    })?;
    Ok(sum.expect("at least one style image").f_div_scalar(images as f64)?)
}

/// Anime images whose mean Gram matrix is the `mean` style target.
const STYLE_SET_IMAGES: usize = 256;

/// Validation losses over a few fixed batches: (content, style, adversarial).
fn validate(
    nets: &Nets,
    vgg: &Perceptual,
    dataset: &Dataset,
    config: &TrainConfig,
    (device, compute): (Device, Kind),
    style_gram: Option<&Tensor>,
) -> Result<(f64, f64, f64), TrainError> {
    let (photos, _) = dataset.counts(Split::Val);
    let batches = photos.div_ceil(config.batch).clamp(1, 4) as u64;
    let (mut content, mut style, mut adv) = (0.0, 0.0, 0.0);
    tch::no_grad(|| -> Result<(), TrainError> {
        for b in 0..batches {
            let batch = dataset.batch(Split::Val, b, config, device)?;
            let (photo, anime) = (batch.photo.f_to_kind(compute)?, batch.anime.f_to_kind(compute)?);
            let fake = nets.generator.stylize(&photo)?;
            let fake_features = vgg.features(&fake)?;
            content += scalar(&l1(&fake_features, &vgg.features(&photo)?)?);
            style += scalar(&style_loss(vgg, &fake_features, &anime, style_gram)?);
            adv += scalar(&bce_logits(&nets.discriminator.forward(&fake)?, 1.0)?);
        }
        Ok(())
    })?;
    let n = batches as f64;
    Ok((content / n, style / n, adv / n))
}

fn to_u8(t: &Tensor) -> Result<Vec<u8>, TrainError> {
    let t = t
        .f_to_kind(Kind::Float)?
        .f_add_scalar(1.0)?
        .f_mul_scalar(127.5)?
        .f_round()?
        .f_clamp(0.0, 255.0)?
        .f_to_kind(Kind::Uint8)?;
    let t = t.f_permute([1, 2, 0])?.f_contiguous()?.f_to_device(Device::Cpu)?;
    let mut out = vec![0u8; t.numel()];
    t.f_copy_data_u8(&mut out, t.numel())?;
    Ok(out)
}

fn sample_grid(
    nets: &Nets,
    dataset: &Dataset,
    config: &TrainConfig,
    device: Device,
    compute: Kind,
    path: &Path,
) -> Result<(), TrainError> {
    let crops: Vec<Vec<u8>> = dataset
        .sample_photos(config.sample_images.max(1))
        .iter()
        .map(|p| data::load(p).map(|img| data::center_crop(&img, config.crop)))
        .collect::<Result<_, _>>()?;
    let input = data::to_tensor(&crops, config.crop, device)?.f_to_kind(compute)?;
    let output = tch::no_grad(|| nets.generator.stylize(&input))?;
    let outputs = (0..crops.len() as i64).map(|i| to_u8(&output.f_get(i)?)).collect::<Result<Vec<_>, _>>()?;
    metrics::sample_grid(path, &crops, &outputs, config.crop)
}

/// Trains (or resumes) a run.
pub fn train(options: &TrainOptions) -> Result<TrainSummary, TrainError> {
    let config = run_config(options)?;
    let dataset = Dataset::open(&options.data)?;
    let device_choice: DeviceChoice = config.device.parse().map_err(TrainError::Run)?;
    let (device, compute) =
        device::resolve(device_choice, config.precision).map_err(|e| TrainError::Run(e.to_string()))?;
    let vgg_path = find_vgg(&config)?;
    let vgg = Vgg::load(&vgg_path, device).map_err(|e| TrainError::Run(e.to_string()))?;
    let vgg = Perceptual { vgg, away_from_edges: config.losses_away_from_edges };
    let init = match (&config.init, options.resume) {
        (Some(path), false) => Some((path.clone(), read_init(path, &config)?)),
        _ => None,
    };
    // Measured before the run folder exists: a bad style folder leaves nothing behind.
    let style_gram = match config.style_target {
        StyleTarget::Mean => Some(style_set_gram(&vgg, &dataset, &config, Some(config.crop), device)?),
        StyleTarget::Set => Some(match &config.style_images {
            Some(folder) => style_folder_gram(&vgg, folder, device)?,
            None => style_set_gram(&vgg, &dataset, &config, None, device)?,
        }),
        StyleTarget::Pair => None,
    };
    // Only a run that can start leaves a folder behind.
    if !options.resume {
        create_run(&options.run, &config)?;
    }
    let mut nets = Nets::new(&config, device);
    if let Some((path, bytes)) = &init {
        nets.start_from(path, bytes)?;
    }
    let (photos, anime) = dataset.counts(Split::Train);
    let per_epoch =
        if config.steps_per_epoch > 0 { config.steps_per_epoch } else { (photos / config.batch).max(1) as u64 };
    let pretrain_steps = u64::from(config.pretrain_epochs) * per_epoch;
    let total = pretrain_steps + u64::from(config.epochs) * per_epoch;
    let checkpoint_every = if config.checkpoint_every > 0 { config.checkpoint_every } else { per_epoch };

    let mut start = 0;
    let mut last_checkpoint = PathBuf::new();
    if options.resume {
        let (_, path) = checkpoint::list(&options.run.join("checkpoints")).pop().ok_or_else(|| {
            TrainError::Run(format!("nothing to resume: {} has no checkpoint yet", options.run.display()))
        })?;
        start = nets.restore(&path)?;
        tracing::info!("resuming {} from step {start} ({})", options.run.display(), path.display());
        last_checkpoint = path;
    }
    // A run folder copied without its pictures gets the folder back rather than failing at
    // the end of its first epoch.
    std::fs::create_dir_all(options.run.join("samples")).map_err(io(&options.run))?;
    let keep = options.resume.then_some(start).or(Some(0));
    let mut step_log = metrics::step_log(&options.run, keep)?;
    let mut val_log = metrics::validation_log(&options.run, keep)?;
    let mut board = super::tensorboard::EventWriter::create(&options.run.join("tensorboard"), start + 1)?;
    tracing::info!(
        "training {}: {photos} photos, {anime} anime images; {per_epoch} steps per epoch, {pretrain_steps} pre-training + {} adversarial steps; VGG {}",
        options.run.display(),
        total - pretrain_steps,
        vgg_path.display()
    );

    if config.lr_schedule != LrSchedule::Constant || config.lr_warmup > 0 {
        tracing::info!(
            "learning rates: {:?} over the {} main steps, {} steps of warm-up",
            config.lr_schedule,
            total - pretrain_steps,
            config.lr_warmup
        );
    }
    let end = options.until_step.map_or(total, |u| u.min(total));
    let bar = if options.progress && end > start {
        indicatif::ProgressBar::new(end - start)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] step {msg} {per_sec}, ETA {eta}")
            .expect("valid template"),
    );
    let began = Instant::now();
    let mut last = StepMetrics::default();
    let (dataset, loader_config) = (&dataset, &config);
    std::thread::scope(|scope| -> Result<(), TrainError> {
        // The next batches' images are read and cut on another thread while this step runs.
        // `batches` is dropped when this closure returns, so a loader blocked on a full queue
        // stops before the scope joins it, also after an error.
        let (to_trainer, batches) = crossbeam_channel::bounded(PREFETCH_BATCHES);
        scope.spawn(move || {
            for s in start + 1..=end {
                let crops = dataset.crops(Split::Train, s, loader_config);
                let failed = crops.is_err();
                if to_trainer.send(crops).is_err() || failed {
                    break;
                }
            }
        });
        for s in start + 1..=end {
            let t0 = Instant::now();
            let crops = batches.recv().map_err(|_| TrainError::Run("the data loader stopped".into()))??;
            let batch = crops.to_batch(device)?;
            let factor = if s > pretrain_steps {
                lr_factor(config.lr_schedule, config.lr_warmup, s - pretrain_steps, total - pretrain_steps)
            } else {
                1.0
            };
            nets.adam_g.set_lr(config.lr_g * factor);
            nets.adam_d.set_lr(config.lr_d * factor);
            let mut m = step(&mut nets, &vgg, &batch, &config, (s, s <= pretrain_steps), compute, style_gram.as_ref())?;
            m.step = s;
            m.epoch = (s - 1) / per_epoch + 1;
            m.seconds = t0.elapsed().as_secs_f64();
            if !m.g_total.is_finite() || !m.d_loss.is_finite() {
                return Err(TrainError::Run(format!("losses became non-finite at step {s}: {}", m.row())));
            }
            step_log.append(&m.row())?;
            board.scalars(s, &m.scalars())?;
            last = m;
            if s % checkpoint_every == 0 || s == end {
                last_checkpoint = nets.checkpoint(&options.run, s, config.keep_checkpoints)?;
            }
            if s % per_epoch == 0 {
                let (content, style, adv) =
                    validate(&nets, &vgg, dataset, &config, (device, compute), style_gram.as_ref())?;
                val_log.append(&format!("{},{s},{content:.6},{style:.6},{adv:.6}", m.epoch))?;
                board.scalars(s, &[("val/content", content), ("val/style", style), ("val/g_adv", adv)])?;
                sample_grid(
                    &nets,
                    dataset,
                    &config,
                    device,
                    compute,
                    &options.run.join("samples").join(format!("epoch-{:04}.png", m.epoch)),
                )?;
                metrics::plot(&options.run)?;
                tracing::info!(
                    "epoch {} (step {s}): content {:.4}, style {:.6}, val content {content:.4}, val style {style:.6}",
                    m.epoch,
                    m.content,
                    m.style
                );
            }
            bar.set_message(format!("{s}/{total}"));
            bar.inc(1);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    if end > start {
        metrics::plot(&options.run)?;
    }
    Ok(TrainSummary {
        step: end.max(start),
        total_steps: total,
        steps_this_call: end.saturating_sub(start),
        seconds: began.elapsed().as_secs_f64(),
        checkpoint: last_checkpoint,
        last,
    })
}

/// Batches the loader thread prepares ahead of the training loop.
const PREFETCH_BATCHES: usize = 2;

/// Seconds per adversarial training step on random data (after one warm-up step), for
/// benchmarks: the same networks, losses and optimiser updates as `train`, no data loading.
pub fn benchmark_steps(config: &TrainConfig, steps: usize, device: Device, compute: Kind) -> Result<f64, TrainError> {
    config.validate()?;
    let mut nets = Nets::new(config, device);
    let vgg = crate::model::with_global_rng(|| {
        Vgg::random(crate::model::vgg::VggVariant::Vgg16, crate::model::vgg::VggInput::Caffe, device)
    });
    let vgg = Perceptual { vgg, away_from_edges: config.losses_away_from_edges };
    let c = i64::from(config.crop);
    let random = || {
        Tensor::f_rand([config.batch as i64, 3, c, c], (Kind::Float, device))
            .and_then(|t| t.f_mul_scalar(2.0)?.f_sub_scalar(1.0))
    };
    let mut seconds = 0.0;
    for i in 0..=steps {
        let batch = data::Batch { photo: random()?, anime: random()?, smooth: random()? };
        let start = Instant::now();
        step(&mut nets, &vgg, &batch, config, (i as u64 + 1, false), compute, None)?;
        if let Device::Cuda(n) = device {
            tch::Cuda::synchronize(n as i64);
        }
        if i > 0 {
            seconds += start.elapsed().as_secs_f64();
        }
    }
    Ok(seconds / steps.max(1) as f64)
}

/// Writes the generator of a run's newest checkpoint as a stylize-ready weights file.
pub fn export(run: &Path, output: &Path, precision: StoredPrecision, overwrite: bool) -> Result<PathBuf, TrainError> {
    let config_path = run.join(CONFIG_FILE);
    if !config_path.is_file() {
        return Err(TrainError::Run(format!("{} is not a training run: it has no {CONFIG_FILE}", run.display())));
    }
    let config = TrainConfig::read(&config_path)?;
    let (step, path) = checkpoint::list(&run.join("checkpoints"))
        .pop()
        .ok_or_else(|| TrainError::Run(format!("{} has no checkpoint to export", run.display())))?;
    let run_name = run.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let description = format!(
        "trained by `japanim train` (run {run_name}, step {step}, crop {}, batch {}, content weight {}, style weight {})",
        config.crop, config.batch, config.content_weight, config.style_weight
    );
    let model = StyleModel::init(config.generator(), 0, &description);
    let targets: HashMap<String, Tensor> = model.variables().into_iter().map(|(k, t)| (format!("g.{k}"), t)).collect();
    let bytes = crate::model::weights::read_file(&path).map_err(|e| TrainError::Run(e.to_string()))?;
    crate::model::weights::load_into(&targets, &bytes, &path, "", true, "generator")
        .map_err(|e| TrainError::Run(e.to_string()))?;
    let info = ModelInfo { config: config.generator(), trained: true, work_size: config.work_size, description };
    let pending = PendingFile::new(output, overwrite).map_err(|e| TrainError::Run(e.to_string()))?;
    model.save_with_info(&info, precision, pending.temp_path()).map_err(|e| TrainError::Run(e.to_string()))?;
    pending.commit().map_err(|e| TrainError::Run(e.to_string()))
}
