//! Checkpoints: every tensor of a run's state in one safetensors file, written under a
//! temporary name and renamed, so a run killed mid-write leaves the previous one intact.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::Tensor;

use super::TrainError;
use crate::model::weights::{self, StoredPrecision};
use crate::output::PendingFile;

fn name_of(step: u64) -> String {
    format!("ckpt-{step:08}.safetensors")
}

/// Finished checkpoints in a folder, oldest first.
pub fn list(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let step = name.strip_prefix("ckpt-")?.strip_suffix(".safetensors")?.parse().ok()?;
            Some((step, path))
        })
        .collect();
    found.sort();
    found
}

/// Writes a checkpoint of `tensors` at `step` with `metadata`, then deletes all but the
/// newest `keep`.
pub fn save(
    dir: &Path,
    step: u64,
    tensors: Vec<(String, Tensor)>,
    mut metadata: HashMap<String, String>,
    keep: usize,
) -> Result<PathBuf, TrainError> {
    std::fs::create_dir_all(dir).map_err(|source| TrainError::Io { path: dir.into(), source })?;
    metadata.insert("japanim.step".into(), step.to_string());
    let destination = dir.join(name_of(step));
    let pending = PendingFile::new(&destination, true).map_err(|e| TrainError::Run(e.to_string()))?;
    weights::save_tensors(tensors, metadata, StoredPrecision::F32, pending.temp_path())
        .map_err(|e| TrainError::Run(format!("writing checkpoint: {e}")))?;
    let path = pending.commit().map_err(|e| TrainError::Run(e.to_string()))?;
    let all = list(dir);
    for (_, old) in all.iter().take(all.len().saturating_sub(keep)) {
        let _ = std::fs::remove_file(old);
    }
    Ok(path)
}

/// Loads a checkpoint into `targets` (every name must be present with its shape); returns
/// its metadata.
pub fn load(path: &Path, targets: &HashMap<String, Tensor>) -> Result<HashMap<String, String>, TrainError> {
    let run = |e: weights::WeightsError| TrainError::Run(format!("loading checkpoint: {e}"));
    let bytes = weights::read_file(path).map_err(run)?;
    weights::load_into(targets, &bytes, path, "", false, "not part of this run's state").map_err(run)?;
    weights::metadata_of(&bytes, path).map_err(run)
}
