//! Pipeline files (`pipelines/*.toml`): a job's settings in one editable file. Command-line
//! flags override them; the merged result is what a job runs with and logs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::device::{DeviceChoice, PrecisionChoice};
use crate::engine::tiled::NormStrategy;
use crate::model::ModelSource;
use crate::stylize::{StylizeJob, TileRequest, DEFAULT_STABILIZE};

/// Blend width on each side of a tile boundary unless set, px.
pub const DEFAULT_FEATHER: u32 = 8;
/// Side of dataset crops unless set, px.
pub const DEFAULT_CROP_SIZE: u32 = 256;
/// Crops per image (and scale) unless set: the original 3×2 grid.
pub const DEFAULT_CROPS_PER_IMAGE: usize = 6;
/// Crop placement unless set.
pub const DEFAULT_CROP_MODE: crate::dataset::crop::CropMode = crate::dataset::crop::CropMode::Grid;
/// Share of dataset sources held out for validation unless set.
pub const DEFAULT_VAL_FRACTION: f64 = 0.2;

/// The `[stylize]` table of a pipeline file; every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StylizeSection {
    /// Generator weights; relative paths are relative to the pipeline file.
    pub model: Option<PathBuf>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: Option<DeviceChoice>,
    /// `auto`, `f32`, `f16` or `bf16`.
    pub precision: Option<PrecisionChoice>,
    /// Frames per generator call.
    pub batch: Option<usize>,
    /// Tile side (0: whole frames; unset: the engine chooses, see `Engine::with_automatic_tiles`).
    pub tile: Option<u32>,
    /// Tile halo.
    pub halo: Option<u32>,
    /// Blend width at tile boundaries.
    pub feather: Option<u32>,
    /// Tile normalisation: exact, exact:disk, temporal, downscaled:N, refine:N or tile.
    pub tile_norm: Option<NormStrategy>,
    /// Tiles per generator call.
    pub tile_batch: Option<usize>,
    /// Temporal smoothing of video: the weight of the past, 0 for off.
    pub stabilize: Option<f64>,
    /// Longest side frames are stylized at (scaled back after), 0 for full size; unset: the
    /// model's.
    pub work_size: Option<u32>,
    /// Video encoder settings.
    pub encoder: Option<EncoderSection>,
}

/// What one run of `stylize` is given besides its settings: what to read and write, and how.
#[derive(Debug, Clone)]
pub struct StylizeRun {
    /// Input path, or `-`.
    pub input: PathBuf,
    /// Output path, or `-`.
    pub output: PathBuf,
    /// Size of rgb24 frames on stdin.
    pub raw_size: Option<(u32, u32)>,
    /// Frame rate of raw frames on stdin.
    pub raw_fps: Option<(u32, u32)>,
    /// Format of frames on stdout.
    pub raw_output: Option<crate::io::raw::RawKind>,
    /// Damaged video is an error.
    pub strict_decode: bool,
    /// One part of a video.
    pub part: Option<crate::parts::PartSpec>,
    /// Replace outputs.
    pub overwrite: bool,
    /// Show progress.
    pub progress: bool,
}

impl StylizeSection {
    /// These settings over `below` (flags over a pipeline file): each key from `self` where
    /// it is set, else from `below`.
    pub fn over(self, below: StylizeSection) -> StylizeSection {
        let encoder = match (self.encoder, below.encoder) {
            (Some(a), Some(b)) => Some(a.over(b)),
            (a, b) => a.or(b),
        };
        StylizeSection {
            model: self.model.or(below.model),
            device: self.device.or(below.device),
            precision: self.precision.or(below.precision),
            batch: self.batch.or(below.batch),
            tile: self.tile.or(below.tile),
            halo: self.halo.or(below.halo),
            feather: self.feather.or(below.feather),
            tile_norm: self.tile_norm.or(below.tile_norm),
            tile_batch: self.tile_batch.or(below.tile_batch),
            stabilize: self.stabilize.or(below.stabilize),
            work_size: self.work_size.or(below.work_size),
            encoder,
        }
    }

    /// The tiling asked for: `None` when no tile size is set (the engine chooses), a
    /// request with `max_tile` 0 for whole frames.
    pub fn tile_request(&self) -> Option<TileRequest> {
        let max_tile = self.tile?;
        Some(TileRequest {
            max_tile,
            halo: self.halo,
            feather: self.feather.unwrap_or(DEFAULT_FEATHER),
            batch: self.tile_batch,
            norm: self.tile_norm.unwrap_or(NormStrategy::Exact),
        })
    }

    /// The job these settings make for `run`, every unset key at its default.
    pub fn job(self, run: StylizeRun) -> StylizeJob {
        let tiles = self.tile_request();
        StylizeJob {
            input: run.input,
            output: run.output,
            // Then $JAPANIM_MODEL, then the model built in.
            model: self.model.map_or_else(ModelSource::default_model, ModelSource::File),
            device: self.device.unwrap_or(DeviceChoice::Auto),
            precision: self.precision.unwrap_or(PrecisionChoice::Auto),
            batch: self.batch,
            encoder: self.encoder.unwrap_or_default().settings(),
            tiles,
            raw_size: run.raw_size,
            raw_fps: run.raw_fps,
            raw_output: run.raw_output,
            stabilize: self.stabilize.unwrap_or(DEFAULT_STABILIZE),
            work_size: self.work_size,
            strict_decode: run.strict_decode,
            part: run.part,
            overwrite: run.overwrite,
            progress: run.progress,
        }
    }

    /// The settings `job` ran with, as a `[stylize]` table that `--pipeline` reads back
    /// (`--save-settings`): every key written, the model as an absolute path (none for the
    /// built-in model); what the engine chose at run time (tiles, batch) stays unset so it
    /// is chosen again on the machine that re-runs it.
    pub fn of_job(job: &StylizeJob) -> StylizeSection {
        let tiles = job.tiles;
        StylizeSection {
            model: match &job.model {
                ModelSource::File(path) => Some(std::path::absolute(path).unwrap_or_else(|_| path.clone())),
                ModelSource::BuiltIn => None,
            },
            device: Some(job.device),
            precision: Some(job.precision),
            batch: job.batch,
            tile: tiles.map(|t| t.max_tile),
            halo: tiles.and_then(|t| t.halo),
            feather: tiles.map(|t| t.feather),
            tile_norm: tiles.map(|t| t.norm),
            tile_batch: tiles.and_then(|t| t.batch),
            stabilize: Some(job.stabilize),
            work_size: job.work_size,
            encoder: Some(EncoderSection {
                codec: Some(job.encoder.codec.clone()),
                crf: job.encoder.crf,
                preset: job.encoder.preset.clone(),
            }),
        }
    }
}

/// The `[stylize.encoder]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderSection {
    /// FFmpeg encoder name.
    pub codec: Option<String>,
    /// Constant rate factor.
    pub crf: Option<u32>,
    /// Encoder preset.
    pub preset: Option<String>,
}

/// Encoder choices for a video output (defined beside the media code that uses them).
pub use crate::io::EncoderSettings;

/// The `[dataset]` table: the settings of `japanim dataset build`; every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSection {
    /// Photo sources (videos, folders, images); relative to the pipeline file.
    #[serde(default)]
    pub photos: Vec<PathBuf>,
    /// Anime sources.
    #[serde(default)]
    pub anime: Vec<PathBuf>,
    /// Dataset folder to write.
    pub output: Option<PathBuf>,
    /// Crop side.
    pub size: Option<u32>,
    /// Crops per image and scale.
    pub per_image: Option<usize>,
    /// `grid` or `random`.
    pub mode: Option<crate::dataset::crop::CropMode>,
    /// Seed of crops and split.
    pub seed: Option<u64>,
    /// Scales photos are cut at.
    pub photo_scales: Option<Vec<f64>>,
    /// Scales anime images are cut at.
    pub anime_scales: Option<Vec<f64>>,
    /// Share of sources held out for validation.
    pub val_fraction: Option<f64>,
    /// Key-frame peak window.
    pub window: Option<usize>,
    /// Exponential smoothing of the difference curve.
    pub smoothing: Option<f64>,
    /// Keep every Nth frame instead of peaks.
    pub every: Option<u64>,
    /// Near-duplicate hash distance.
    pub duplicate_distance: Option<u32>,
    /// Cut black bars off key frames of videos.
    pub letterbox: Option<bool>,
}

/// A whole pipeline file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// What the pipeline is for.
    pub description: Option<String>,
    /// Settings of `japanim stylize`.
    #[serde(default)]
    pub stylize: StylizeSection,
    /// Settings of `japanim dataset build`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub dataset: DatasetSection,
}

impl EncoderSection {
    /// These settings over `below`.
    pub fn over(self, below: EncoderSection) -> EncoderSection {
        EncoderSection {
            codec: self.codec.or(below.codec),
            crf: self.crf.or(below.crf),
            preset: self.preset.or(below.preset),
        }
    }

    /// The encoder settings, unset keys at their defaults.
    pub fn settings(self) -> EncoderSettings {
        let defaults = EncoderSettings::default();
        EncoderSettings {
            codec: self.codec.unwrap_or(defaults.codec),
            crf: self.crf.or(defaults.crf),
            preset: self.preset.or(defaults.preset),
        }
    }
}

impl PipelineFile {
    /// Writes the file as TOML (a temporary name, then renamed).
    pub fn write(&self, path: &Path) -> Result<(), crate::Error> {
        let text = toml::to_string_pretty(self)
            .map_err(|e| crate::Error::Invalid(format!("settings for {}: {e}", path.display())))?;
        let pending = crate::output::PendingFile::new(path, true)?;
        std::fs::write(pending.temp_path(), text)
            .map_err(|e| crate::Error::Invalid(format!("settings file {}: {e}", path.display())))?;
        pending.commit()?;
        Ok(())
    }

    /// Reads a pipeline file; relative paths in it become relative to its folder.
    pub fn read(path: &Path) -> Result<Self, crate::Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| crate::Error::Invalid(format!("pipeline file {}: {e}", path.display())))?;
        let mut file: Self = toml::from_str(&text)
            .map_err(|e| crate::Error::Invalid(format!("pipeline file {}: {}", path.display(), e.message())))?;
        let base = path.parent().unwrap_or(Path::new(""));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        file.stylize.model.iter_mut().for_each(rebase);
        let d = &mut file.dataset;
        d.photos.iter_mut().chain(d.anime.iter_mut()).chain(d.output.iter_mut()).for_each(rebase);
        Ok(file)
    }
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pipeline_files_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[stylize]\nmodel = \"m.safetensors\"\ndevice = \"cuda:1\"\nprecision = \"bf16\"\n[stylize.encoder]\ncrf = 20\n").unwrap();
        let file = PipelineFile::read(&path).unwrap();
        assert_eq!(file.stylize.model, Some(dir.path().join("m.safetensors")));
        assert_eq!(file.stylize.device, Some(DeviceChoice::Cuda(1)));
        assert_eq!(file.stylize.precision, Some(PrecisionChoice::Bf16));
        assert_eq!(file.stylize.encoder.unwrap().crf, Some(20));

        std::fs::write(&path, "[stylize]\ndevcie = \"cpu\"\n").unwrap();
        let err = PipelineFile::read(&path).unwrap_err().to_string();
        assert!(err.contains("unknown field `devcie`"), "{err}");
        std::fs::write(&path, "[stylize]\ndevice = \"gpu\"\n").unwrap();
        assert!(PipelineFile::read(&path).unwrap_err().to_string().contains("auto, cpu"));
    }

    #[test]
    fn shipped_pipelines_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                PipelineFile::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                count += 1;
            }
        }
        assert!(count >= 1);
    }
}
