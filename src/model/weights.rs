//! Generator weights in safetensors, with the architecture in the file's metadata.
//!
//! Metadata keys (all strings):
//! - `japanim.format` = `cartoongan-generator`, `japanim.format_version` = `1`
//! - `japanim.base_channels`, `japanim.residual_blocks`, `japanim.upsampling`: the
//!   [`GeneratorConfig`] (`upsampling` is `transposed` or `resize`; files written before it
//!   existed lack it and are `transposed`), `japanim.input_skip` and `japanim.outlines`
//!   (`true` or `false`; absent is `false`), `japanim.outline_ink` (the most ink an outline
//!   takes, percent 1–100; absent is 70), `japanim.antialias` (`true` or `false`; absent is
//!   `false`), `japanim.margin` (mirrored pixels around the frame, a multiple of 4 up to 256;
//!   absent is 0), `japanim.reflect_padding` (`true` or `false`; absent is `false`),
//!   `japanim.detail_channels` (the full-resolution detail path's width, 0–256; absent is 0)
//! - `japanim.input` / `japanim.output`: the value convention (RGB, NCHW, [-1, 1])
//! - `japanim.work_size`: the longer side, in px, `stylize` draws larger frames at before
//!   scaling the result back (the scale the model learned its look at); 0 or absent: frames
//!   are drawn at their own size
//! - `japanim.trained`: `true` for a trained model, `false` for random initialisation
//! - `japanim.description`: free text (how it was made)
//!
//! Tensors are named as in [`super::generator`], stored as F32, F16 or BF16.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use tch::{nn::VarStore, Kind, Tensor};

use super::generator::{
    valid_margin, valid_work_size, GeneratorConfig, DEFAULT_OUTLINE_INK, MAX_DETAIL_CHANNELS, MAX_MARGIN, MIN_WORK_SIZE,
};

const FORMAT: &str = "cartoongan-generator";
const FORMAT_VERSION: &str = "1";
/// The value convention of a generator's input, as written into metadata.
pub const INPUT_CONVENTION: &str = "RGB, NCHW float, value = u8 / 127.5 - 1 in [-1, 1]";
/// The value convention of a generator's output.
pub const OUTPUT_CONVENTION: &str =
    "RGB, NCHW float in [-1, 1] (tanh, or clipped with an input skip); u8 = round((v + 1) * 127.5)";

/// What can be wrong with a weights file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a safetensors file, or a damaged one.
    #[error("{path} is not a valid safetensors file ({reason})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        reason: String,
    },
    /// A safetensors file without japanim's generator metadata, or with bad values in it.
    #[error("{path} is not a japanim generator: {reason}")]
    NotAGenerator {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("{path}: tensor {name} is missing")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
    },
    /// A tensor has the wrong shape for the architecture in the metadata.
    #[error("{path}: tensor {name} has shape {found:?}, the architecture needs {expected:?}")]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// Shape the architecture needs.
        expected: Vec<i64>,
        /// Shape in the file.
        found: Vec<i64>,
    },
    /// A tensor in a dtype japanim does not load.
    #[error("{path}: tensor {name} is {dtype:?}; japanim loads F32, F16 and BF16")]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// Its dtype.
        dtype: Dtype,
    },
    /// The file has tensors the architecture does not know.
    #[error("{path}: unexpected tensor {name} ({what})")]
    UnexpectedTensor {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// Which architecture was expected.
        what: String,
    },
    /// libtorch refused an operation.
    #[error("{path}: {source}")]
    Torch {
        /// The file.
        path: PathBuf,
        /// The libtorch error.
        source: tch::TchError,
    },
}

/// A generator's description, as stored beside its weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// Width and depth.
    pub config: GeneratorConfig,
    /// Whether the weights were trained (false: random initialisation).
    pub trained: bool,
    /// The longer side larger frames are drawn at and scaled back from (0: their own size;
    /// see [`crate::engine::Engine::with_work_size`]).
    pub work_size: u32,
    /// How the model was made.
    pub description: String,
}

impl ModelInfo {
    pub(crate) fn to_metadata(&self) -> HashMap<String, String> {
        [
            ("japanim.format", FORMAT.to_string()),
            ("japanim.format_version", FORMAT_VERSION.to_string()),
            ("japanim.base_channels", self.config.base_channels.to_string()),
            ("japanim.residual_blocks", self.config.residual_blocks.to_string()),
            ("japanim.upsampling", self.config.upsampling.name().to_string()),
            ("japanim.input_skip", self.config.input_skip.to_string()),
            ("japanim.outlines", self.config.outlines.to_string()),
            ("japanim.outline_ink", self.config.outline_ink.to_string()),
            ("japanim.antialias", self.config.antialias.to_string()),
            ("japanim.margin", self.config.margin.to_string()),
            ("japanim.reflect_padding", self.config.reflect_padding.to_string()),
            ("japanim.detail_channels", self.config.detail_channels.to_string()),
            ("japanim.input", INPUT_CONVENTION.to_string()),
            ("japanim.output", OUTPUT_CONVENTION.to_string()),
            ("japanim.work_size", self.work_size.to_string()),
            ("japanim.trained", self.trained.to_string()),
            ("japanim.description", self.description.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub(crate) fn from_metadata(path: &Path, meta: Option<&HashMap<String, String>>) -> Result<Self, WeightsError> {
        let bad = |reason: String| WeightsError::NotAGenerator { path: path.to_path_buf(), reason };
        let meta = meta.ok_or_else(|| bad("the file has no metadata".into()))?;
        let get = |key: &str| meta.get(key).ok_or_else(|| bad(format!("metadata key {key} is missing")));
        if get("japanim.format")? != FORMAT {
            return Err(bad(format!("japanim.format is {:?}, expected {FORMAT:?}", meta["japanim.format"])));
        }
        if get("japanim.format_version")? != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {} is not supported (this japanim reads {FORMAT_VERSION})",
                meta["japanim.format_version"]
            )));
        }
        let int = |key: &str, max: i64| -> Result<i64, WeightsError> {
            let text = get(key)?;
            text.parse::<i64>()
                .ok()
                .filter(|v| (1..=max).contains(v))
                .ok_or_else(|| bad(format!("{key} = {text:?} is not a whole number from 1 to {max}")))
        };
        // Options added after the format: absent in older files, which were made without them.
        let flag = |key: &str| -> Result<bool, WeightsError> {
            match meta.get(key).map(String::as_str) {
                None | Some("false") => Ok(false),
                Some("true") => Ok(true),
                Some(other) => Err(bad(format!("{key} = {other:?} is not true or false"))),
            }
        };
        let config = GeneratorConfig {
            base_channels: int("japanim.base_channels", 1024)?,
            residual_blocks: int("japanim.residual_blocks", 64)?,
            upsampling: match meta.get("japanim.upsampling") {
                Some(text) => text.parse().map_err(bad)?,
                None => Default::default(),
            },
            input_skip: flag("japanim.input_skip")?,
            outlines: flag("japanim.outlines")?,
            outline_ink: match meta.get("japanim.outline_ink") {
                None => DEFAULT_OUTLINE_INK,
                Some(text) => text.parse::<u8>().ok().filter(|v| (1..=100).contains(v)).ok_or_else(|| {
                    bad(format!("japanim.outline_ink = {text:?} is not a whole number from 1 to 100"))
                })?,
            },
            antialias: flag("japanim.antialias")?,
            margin: match meta.get("japanim.margin") {
                None => 0,
                Some(text) => text.parse::<u32>().ok().filter(|v| valid_margin(*v)).ok_or_else(|| {
                    bad(format!("japanim.margin = {text:?} is not a multiple of 4 from 0 to {MAX_MARGIN}"))
                })?,
            },
            reflect_padding: flag("japanim.reflect_padding")?,
            detail_channels: match meta.get("japanim.detail_channels") {
                None => 0,
                Some(text) => text.parse::<u32>().ok().filter(|v| *v <= MAX_DETAIL_CHANNELS).ok_or_else(|| {
                    bad(format!(
                        "japanim.detail_channels = {text:?} is not a whole number from 0 to {MAX_DETAIL_CHANNELS}"
                    ))
                })?,
            },
        };
        let work_size = match meta.get("japanim.work_size") {
            None => 0,
            Some(text) => text.parse::<u32>().ok().filter(|&v| valid_work_size(v)).ok_or_else(|| {
                bad(format!("japanim.work_size = {text:?} is not 0 or a whole number from {MIN_WORK_SIZE}"))
            })?,
        };
        Ok(Self {
            config,
            work_size,
            trained: meta.get("japanim.trained").is_some_and(|t| t == "true"),
            description: meta.get("japanim.description").cloned().unwrap_or_default(),
        })
    }
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    match dtype {
        Dtype::F32 => Some(Kind::Float),
        Dtype::F16 => Some(Kind::Half),
        Dtype::BF16 => Some(Kind::BFloat16),
        _ => None,
    }
}

/// Reads only a weights file's metadata.
pub fn read_info(path: &Path) -> Result<ModelInfo, WeightsError> {
    info_of(&read(path)?, path)
}

/// The metadata of a weights file's bytes (`path` names it in errors).
pub fn info_of(bytes: &[u8], path: &Path) -> Result<ModelInfo, WeightsError> {
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| corrupt(path, e))?;
    ModelInfo::from_metadata(path, metadata.metadata().as_ref())
}

fn read(path: &Path) -> Result<Vec<u8>, WeightsError> {
    std::fs::read(path).map_err(|source| WeightsError::Io { path: path.to_path_buf(), source })
}

pub(crate) fn corrupt(path: &Path, e: impl std::fmt::Display) -> WeightsError {
    WeightsError::Corrupt { path: path.to_path_buf(), reason: e.to_string() }
}

/// Reads and parses a safetensors file; returns the bytes (the parsed view borrows them).
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, WeightsError> {
    let bytes = read(path)?;
    SafeTensors::deserialize(&bytes).map_err(|e| corrupt(path, e))?;
    Ok(bytes)
}

/// The metadata of a parsed file.
pub(crate) fn metadata_of(bytes: &[u8], path: &Path) -> Result<HashMap<String, String>, WeightsError> {
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| corrupt(path, e))?;
    Ok(metadata.metadata().clone().unwrap_or_default())
}

/// Copies the tensors named `prefix + name` of a file into `variables`, checking names,
/// shapes and dtypes. Tensors under `prefix` that no variable takes are an error unless
/// `allow_extra`.
pub(crate) fn load_into(
    variables: &HashMap<String, Tensor>,
    bytes: &[u8],
    path: &Path,
    prefix: &str,
    allow_extra: bool,
    what: &str,
) -> Result<(), WeightsError> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| corrupt(path, e))?;
    if !allow_extra {
        // In name order, so the error names the same tensor every time.
        let mut names = file.names();
        names.sort();
        for name in names {
            if let Some(bare) = name.strip_prefix(prefix) {
                if !variables.contains_key(bare) {
                    return Err(WeightsError::UnexpectedTensor {
                        path: path.into(),
                        name: name.into(),
                        what: what.into(),
                    });
                }
            }
        }
    }
    let mut names: Vec<_> = variables.keys().collect();
    names.sort();
    tch::no_grad(|| {
        for name in names {
            let var = &variables[name];
            let full = format!("{prefix}{name}");
            let view = file
                .tensor(&full)
                .map_err(|_| WeightsError::MissingTensor { path: path.into(), name: full.clone() })?;
            let found: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            if found != var.size() {
                return Err(WeightsError::ShapeMismatch { path: path.into(), name: full, expected: var.size(), found });
            }
            let kind = kind_of(view.dtype()).ok_or_else(|| WeightsError::UnsupportedDtype {
                path: path.into(),
                name: full.clone(),
                dtype: view.dtype(),
            })?;
            let torch = |source| WeightsError::Torch { path: path.into(), source };
            let value = Tensor::f_from_data_size(view.data(), &found, kind).map_err(torch)?;
            let mut var = var.shallow_clone();
            var.f_copy_(&value.f_to_device(var.device()).map_err(torch)?).map_err(torch)?;
        }
        Ok(())
    })
}

/// Loads a file's tensors into the variables of `vs` (built for the file's architecture),
/// checking every name and shape. Returns the file's description.
pub fn load(vs: &mut VarStore, path: &Path) -> Result<ModelInfo, WeightsError> {
    load_bytes(vs, &read_file(path)?, path)
}

/// [`load`] from a file's bytes already in memory (`path` names it in errors).
pub fn load_bytes(vs: &mut VarStore, bytes: &[u8], path: &Path) -> Result<ModelInfo, WeightsError> {
    load_bytes_except(vs, bytes, path, &[])
}

/// [`load_bytes`], leaving the store's tensors named in `skipped` as they are (the file need
/// not have them): a layout's optional parts a file made without them lacks.
pub fn load_bytes_except(
    vs: &mut VarStore,
    bytes: &[u8],
    path: &Path,
    skipped: &[String],
) -> Result<ModelInfo, WeightsError> {
    let info = ModelInfo::from_metadata(path, Some(&metadata_of(bytes, path)?))?;
    let what = format!("not part of a generator with {}", info.config);
    let mut variables = vs.variables();
    variables.retain(|name, _| !skipped.contains(name));
    load_into(&variables, bytes, path, "", false, &what)?;
    Ok(info)
}

/// The number format weights are stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredPrecision {
    /// 32-bit float.
    F32,
    /// IEEE half: the usual choice for shipping (half the size, no visible change).
    F16,
    /// bfloat16.
    BF16,
}

/// Writes named tensors with metadata, converted to `precision`, to `path` directly
/// (callers wanting atomicity pass a temporary path).
pub(crate) fn save_tensors(
    named: impl IntoIterator<Item = (String, Tensor)>,
    metadata: HashMap<String, String>,
    precision: StoredPrecision,
    path: &Path,
) -> Result<(), WeightsError> {
    let (kind, dtype) = match precision {
        StoredPrecision::F32 => (Kind::Float, Dtype::F32),
        StoredPrecision::F16 => (Kind::Half, Dtype::F16),
        StoredPrecision::BF16 => (Kind::BFloat16, Dtype::BF16),
    };
    let torch = |source| WeightsError::Torch { path: path.into(), source };
    let mut tensors = Vec::new();
    for (name, var) in named {
        let value = var
            .f_to_kind(kind)
            .and_then(|t| t.f_to_device(tch::Device::Cpu))
            .and_then(|t| t.f_contiguous())
            .map_err(torch)?;
        let numel = value.numel();
        let mut data = vec![0u8; numel * kind.elt_size_in_bytes()];
        value.f_copy_data_u8(&mut data, numel).map_err(torch)?;
        let shape: Vec<usize> = value.size().iter().map(|&d| d as usize).collect();
        tensors.push((name, shape, data));
    }
    let views: Vec<_> = tensors
        .iter()
        .map(|(name, shape, data)| {
            let view =
                safetensors::tensor::TensorView::new(dtype, shape.clone(), data).map_err(|e| corrupt(path, e))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<_, WeightsError>>()?;
    safetensors::serialize_to_file(views, Some(metadata), path).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(source) => WeightsError::Io { path: path.into(), source },
        other => corrupt(path, other),
    })?;
    // The safetensors crate creates files readable by their owner only; weights are shared.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
    }
    Ok(())
}

/// Writes the generator variables of `vs` with `info` as metadata.
pub fn save(vs: &VarStore, info: &ModelInfo, precision: StoredPrecision, path: &Path) -> Result<(), WeightsError> {
    save_tensors(vs.variables(), info.to_metadata(), precision, path)
}
