//! The generator network and its weights. Knows tensors and weight files, nothing of video.

pub mod discriminator;
pub mod generator;
pub mod onnx;
pub mod surface;
pub mod vgg;
pub mod weights;

use std::path::Path;

use tch::{nn::VarStore, Device, Kind};

pub use generator::{Generator, GeneratorConfig, Upsampling};
pub use weights::{ModelInfo, StoredPrecision, WeightsError};

/// Serialises seeded initialisations: libtorch has one global random generator per process,
/// so two threads seeding and drawing from it at once (parallel tests, a library user's
/// threads) would each get the other's numbers.
static GLOBAL_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `build` with libtorch's global generator seeded with `seed` and no other seeded
/// initialisation interleaved, so weights drawn inside are a function of the seed alone.
pub fn with_seed<T>(seed: u64, build: impl FnOnce() -> T) -> T {
    let _guard = GLOBAL_RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(seed as i64);
    build()
}

/// Runs `build`, which draws from libtorch's global generator without needing a seed (a
/// network built only to be overwritten by loaded weights), outside any seeded
/// initialisation: its draws would otherwise change the weights another thread is seeding.
pub fn with_global_rng<T>(build: impl FnOnce() -> T) -> T {
    let _guard = GLOBAL_RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    build()
}

/// A generator with its weights, on a device, in a precision.
pub struct StyleModel {
    vs: VarStore,
    generator: Generator,
    info: ModelInfo,
}

impl StyleModel {
    /// Loads a weights file onto `device`, then casts to `kind` (casting after loading,
    /// since the stored dtype need not be the one wanted).
    pub fn load(path: &Path, device: Device, kind: Kind) -> Result<Self, WeightsError> {
        Self::load_bytes(&weights::read_file(path)?, path, device, kind)
    }

    /// [`Self::load`] from a weights file's bytes (`path` names them in errors).
    pub fn load_bytes(bytes: &[u8], path: &Path, device: Device, kind: Kind) -> Result<Self, WeightsError> {
        let config = weights::info_of(bytes, path)?.config;
        let mut vs = VarStore::new(Device::Cpu);
        let generator = with_global_rng(|| Generator::new(&vs.root(), config));
        let info = weights::load_bytes(&mut vs, bytes, path)?;
        vs.set_device(device);
        vs.set_kind(kind);
        vs.freeze();
        Ok(Self { vs, generator, info })
    }

    /// A randomly initialised (untrained) generator on the CPU, seeded for reproducibility.
    pub fn init(config: GeneratorConfig, seed: u64, description: &str) -> Self {
        let vs = VarStore::new(Device::Cpu);
        let generator = with_seed(seed, || Generator::new(&vs.root(), config));
        let info = ModelInfo { config, trained: false, work_size: 0, description: description.to_string() };
        Self { vs, generator, info }
    }

    /// Saves the weights (see [`weights::save`]).
    pub fn save(&self, precision: StoredPrecision, path: &Path) -> Result<(), WeightsError> {
        weights::save(&self.vs, &self.info, precision, path)
    }

    /// Saves the weights with another description (e.g. when exporting a trained run).
    pub fn save_with_info(
        &self,
        info: &ModelInfo,
        precision: StoredPrecision,
        path: &Path,
    ) -> Result<(), WeightsError> {
        weights::save(&self.vs, info, precision, path)
    }

    /// The variables by name (shallow handles: writing into them changes the model).
    pub fn variables(&self) -> std::collections::HashMap<String, tch::Tensor> {
        self.vs.variables()
    }

    /// The network.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// The weights' description.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Where the weights are.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The weights' tensor kind.
    pub fn kind(&self) -> Kind {
        self.vs.kind()
    }

    /// Number of scalar parameters.
    pub fn parameter_count(&self) -> usize {
        self.vs.variables().values().map(|t| t.numel()).sum()
    }
}

/// The default model's weights, built into the binary (`models/default.safetensors` of the
/// source tree at build time, 3.2 MB), so the main job works wherever the binary is.
pub const BUILT_IN_DEFAULT: &[u8] = include_bytes!("../../models/default.safetensors");

/// Where a generator's weights come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A weights file.
    File(std::path::PathBuf),
    /// The default model built into the binary ([`BUILT_IN_DEFAULT`]).
    BuiltIn,
}

impl ModelSource {
    /// The default: `$JAPANIM_MODEL` where it is set, else the built-in model.
    pub fn default_model() -> Self {
        match std::env::var_os("JAPANIM_MODEL") {
            Some(path) if !path.is_empty() => ModelSource::File(path.into()),
            _ => ModelSource::BuiltIn,
        }
    }

    /// Loads the weights onto `device` in `kind`.
    pub fn load(&self, device: Device, kind: Kind) -> Result<StyleModel, WeightsError> {
        match self {
            ModelSource::File(path) => StyleModel::load(path, device, kind),
            ModelSource::BuiltIn => StyleModel::load_bytes(BUILT_IN_DEFAULT, Path::new(BUILT_IN_NAME), device, kind),
        }
    }
}

/// Written as its path, or as "the built-in default model" (in a run's logged settings).
impl serde::Serialize for ModelSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

/// How the built-in model is named in messages.
pub(crate) const BUILT_IN_NAME: &str = "the built-in default model";

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::File(path) => write!(f, "{}", path.display()),
            ModelSource::BuiltIn => f.write_str(BUILT_IN_NAME),
        }
    }
}

/// A file in the `models/` folder beside the binary (`<prefix>/models`, or the source
/// tree's for a binary in `target/<profile>/`), else under the current folder.
pub fn find_in_models(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let mut candidates: Vec<std::path::PathBuf> =
        exe.ancestors().skip(1).take(4).map(|dir| dir.join("models").join(name)).collect();
    candidates.push(Path::new("models").join(name));
    candidates.into_iter().find(|p| p.is_file())
}
