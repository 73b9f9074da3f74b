//! Pipeline files (`pipelines/*.toml`): a job's settings in one editable file. Command-line
//! flags override them; the merged result is what a job runs with and logs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::device::{DeviceChoice, PrecisionChoice};

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
    pub tile_norm: Option<String>,
    /// Tiles per generator call.
    pub tile_batch: Option<usize>,
    /// Temporal smoothing of video: the weight of the past, 0 for off.
    pub stabilize: Option<f64>,
    /// Video encoder settings.
    pub encoder: Option<EncoderSection>,
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
    #[serde(default)]
    pub dataset: DatasetSection,
}

impl PipelineFile {
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
