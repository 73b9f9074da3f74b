//! `dataset build`: from folders of photos and of anime images to the layout `japanim train`
//! reads — `photo/{train,val}`, `anime/{train,val}`, `anime_smooth/{train,val}` — with a
//! `manifest.csv` (every source image, its split, crops, or why it was skipped) and a
//! `dataset.toml` (sources, parameters, counts). The split is by source image, so the crops
//! of one picture never land on both sides. Re-running skips crops already written.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Serialize;

use super::crop::{crops, stable_hash, CropMode, CropSpec};
use super::smooth::smooth;
use super::write_atomically;
use super::DatasetError;
use crate::io::image::{is_image_path, list_images, read_rgb};

/// Everything a build needs; recorded in `dataset.toml`.
#[derive(Debug, Clone, Serialize)]
pub struct BuildSpec {
    /// How key frames of video sources are picked.
    pub keyframes: super::keyframes::KeyframeSpec,
    /// Photo sources: folders of images or single images.
    pub photos: Vec<PathBuf>,
    /// Anime sources.
    pub anime: Vec<PathBuf>,
    /// Dataset folder to write.
    pub out: PathBuf,
    /// Crop side.
    pub size: u32,
    /// Crops per image and scale.
    pub per_image: usize,
    /// Scales photos are cut at (1 = full resolution).
    pub photo_scales: Vec<f64>,
    /// Scales anime images are cut at.
    pub anime_scales: Vec<f64>,
    /// Crop placement.
    pub mode: CropMode,
    /// Share of source images held out for validation.
    pub val_fraction: f64,
    /// Seed of crops and split.
    pub seed: u64,
}

/// Counts of a finished build.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BuildCounts {
    /// Photo crops (train, val).
    pub photo: (usize, usize),
    /// Anime crops, each with its smoothed copy (train, val).
    pub anime: (usize, usize),
    /// Source images skipped (reasons in the manifest).
    pub skipped: usize,
    /// Crops already present from an earlier run.
    pub reused: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Photo,
    Anime,
}

/// A source image: its label (source name), path, and split group (the image itself, or the
/// whole video its frame came from).
struct SourceImage {
    label: String,
    path: PathBuf,
    group: String,
}

/// The split group of a single image: its source label and file stem.
fn image_group(label: &str, path: &Path) -> String {
    format!("{label}/{}", path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default())
}

/// Lists the images of the sources; videos are first reduced to their key frames under
/// `OUT/keyframes/KIND/STEM/` (kept there, so a re-run does not decode them again).
fn sources(paths: &[PathBuf], what: &str, spec: &BuildSpec) -> Result<Vec<SourceImage>, crate::Error> {
    let mut images = Vec::new();
    for source in paths {
        let label = source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "source".into());
        if source.is_dir() {
            let found = list_images(source)?;
            if found.is_empty() {
                return Err(
                    DatasetError::Invalid(format!("{what} source {} contains no images", source.display())).into()
                );
            }
            images.extend(found.into_iter().map(|p| SourceImage {
                group: image_group(&label, &p),
                label: label.clone(),
                path: p,
            }));
        } else if source.is_file() && is_image_path(source) {
            images.push(SourceImage { group: image_group(&label, source), label: label.clone(), path: source.clone() });
        } else if source.is_file() {
            let frames = video_keyframes(source, &spec.out.join("keyframes").join(what).join(&label), &spec.keyframes)?;
            let group = format!("video:{}", source.display());
            images.extend(frames.into_iter().map(|p| SourceImage {
                label: label.clone(),
                path: p,
                group: group.clone(),
            }));
        } else {
            return Err(DatasetError::Invalid(format!("{what} source {} does not exist", source.display())).into());
        }
    }
    Ok(images)
}

#[cfg(feature = "video")]
fn video_keyframes(
    video: &Path,
    dir: &Path,
    spec: &super::keyframes::KeyframeSpec,
) -> Result<Vec<PathBuf>, crate::Error> {
    if let Some(frames) = earlier_keyframes(video, dir) {
        tracing::info!(
            "{}: reusing the {} key frames in {} (picked earlier, e.g. by `dataset keyframes` on a cluster; delete the \
             folder to pick them again)",
            video.display(),
            frames.len(),
            dir.display()
        );
        return Ok(frames);
    }
    let result = super::keyframes::extract(video, dir, spec, &|_, _| {})?;
    super::manifest::write(&dir.join("manifest.csv"), &super::manifest::KEYFRAME_HEADER, &result.manifest_rows())?;
    Ok(result.candidates.into_iter().filter_map(|c| c.file).collect())
}

/// The key frames of `video` an earlier run left in `dir`: `dataset keyframes VIDEO -o DIR`
/// (one array task per film, see pipelines/slurm/) or an earlier build. Its manifest must
/// list the video and every kept frame must still be there; else `None`, and they are picked again.
#[cfg(feature = "video")]
fn earlier_keyframes(video: &Path, dir: &Path) -> Option<Vec<PathBuf>> {
    let rows = super::manifest::read_keyframes(&dir.join("manifest.csv")).ok()?;
    let same = |source: &str| {
        source == video.display().to_string()
            || Path::new(source).canonicalize().ok().is_some_and(|s| video.canonicalize().ok() == Some(s))
    };
    let rows: Vec<_> = rows.into_iter().filter(|r| same(&r.source)).collect();
    // A video that could not be read earlier, or that gave no frame, is read again.
    if rows.iter().any(|r| r.status.starts_with("skipped")) || !rows.iter().any(|r| r.status == "kept") {
        return None;
    }
    let kept = rows.iter().filter(|r| r.status == "kept" && !r.file.is_empty());
    // A frame is found where the manifest says, or by its name in `dir` (a run from another
    // working folder wrote another relative path).
    kept.map(|r| {
        let named = PathBuf::from(&r.file);
        if named.is_file() {
            Some(named)
        } else {
            named.file_name().map(|n| dir.join(n)).filter(|p| p.is_file())
        }
    })
    .collect()
}

#[cfg(not(feature = "video"))]
fn video_keyframes(
    video: &Path,
    _dir: &Path,
    _spec: &super::keyframes::KeyframeSpec,
) -> Result<Vec<PathBuf>, crate::Error> {
    Err(DatasetError::Invalid(format!(
        "{}: this japanim was built without the `video` feature and cannot decode videos",
        video.display()
    ))
    .into())
}

fn check_output(spec: &BuildSpec) -> Result<(), DatasetError> {
    let out = spec.out.canonicalize().unwrap_or_else(|_| spec.out.clone());
    for source in spec.photos.iter().chain(&spec.anime) {
        let source = source.canonicalize().unwrap_or_else(|_| source.clone());
        // A folder source must not contain the output (its crops would be read as sources next
        // time) nor lie inside it; a file source only must not lie inside it.
        let overlaps = if source.is_dir() {
            out.starts_with(&source) || source.starts_with(&out)
        } else {
            source.starts_with(&out)
        };
        if overlaps {
            return Err(DatasetError::Invalid(format!(
                "output {} overlaps source {}: choose a folder outside the sources",
                spec.out.display(),
                source.display()
            )));
        }
    }
    if !(0.0..1.0).contains(&spec.val_fraction) {
        return Err(DatasetError::Invalid(format!("--val-fraction {} must be in [0, 1)", spec.val_fraction)));
    }
    Ok(())
}

/// Runs the whole chain. `progress` is told each finished source image.
pub fn build(spec: &BuildSpec, progress: &(dyn Fn() + Sync)) -> Result<BuildCounts, crate::Error> {
    check_output(spec)?;
    let jobs: Vec<(Kind, SourceImage)> = sources(&spec.photos, "photo", spec)?
        .into_iter()
        .map(|s| (Kind::Photo, s))
        .chain(sources(&spec.anime, "anime", spec)?.into_iter().map(|s| (Kind::Anime, s)))
        .collect();
    for dir in ["photo", "anime", "anime_smooth"] {
        for split in ["train", "val"] {
            let path = spec.out.join(dir).join(split);
            std::fs::create_dir_all(&path).map_err(|source| DatasetError::Io { path, source })?;
        }
    }
    let counts = [[AtomicUsize::new(0), AtomicUsize::new(0)], [AtomicUsize::new(0), AtomicUsize::new(0)]];
    let (skipped, reused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let manifest = Mutex::new(Vec::new());
    jobs.par_iter().try_for_each(|(kind, source)| -> Result<(), DatasetError> {
        let (label, path) = (&source.label, &source.path);
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let group = image_group(label, path);
        let val =
            (stable_hash(&format!("{}:{}", spec.seed, source.group)) % 10_000) as f64 / 10_000.0 < spec.val_fraction;
        let split = if val { "val" } else { "train" };
        let (dir, scales) = match kind {
            Kind::Photo => ("photo", &spec.photo_scales),
            Kind::Anime => ("anime", &spec.anime_scales),
        };
        let mut written = 0;
        let mut note = String::from("ok");
        match read_rgb(path) {
            Err(e) => note = format!("skipped: {e}"),
            Ok(img) => {
                for (si, &scale) in scales.iter().enumerate() {
                    let crop_spec = CropSpec {
                        size: spec.size,
                        per_image: spec.per_image,
                        mode: spec.mode,
                        scale,
                        seed: spec.seed,
                    };
                    let pieces = match crops(&img, &crop_spec, &group) {
                        Ok(p) => p,
                        Err(e) => {
                            note = format!("skipped scale {scale}: {e}");
                            continue;
                        }
                    };
                    for (k, piece) in pieces.iter().enumerate() {
                        let name = format!("{label}_{stem}_s{si}_{k}.png");
                        let target = spec.out.join(dir).join(split).join(&name);
                        let smooth_target = spec.out.join("anime_smooth").join(split).join(&name);
                        let done = target.is_file() && (*kind == Kind::Photo || smooth_target.is_file());
                        if done {
                            reused.fetch_add(1, Ordering::Relaxed);
                        } else {
                            if *kind == Kind::Anime {
                                write_atomically(&smooth(piece), &smooth_target)?;
                            }
                            write_atomically(piece, &target)?;
                        }
                        written += 1;
                    }
                }
            }
        }
        if written == 0 {
            skipped.fetch_add(1, Ordering::Relaxed);
        }
        counts[*kind as usize][usize::from(val)].fetch_add(written, Ordering::Relaxed);
        manifest.lock().expect("no panics hold the lock").push(super::manifest::BuildRow {
            kind: dir.to_string(),
            source: label.clone(),
            image: path.display().to_string(),
            split: split.to_string(),
            crops: written,
            note,
        });
        progress();
        Ok(())
    })?;
    let load = |k: usize, s: usize| counts[k][s].load(Ordering::Relaxed);
    let result = BuildCounts {
        photo: (load(0, 0), load(0, 1)),
        anime: (load(1, 0), load(1, 1)),
        skipped: skipped.load(Ordering::Relaxed),
        reused: reused.load(Ordering::Relaxed),
    };
    let mut rows = manifest.into_inner().expect("no panics hold the lock");
    rows.sort();
    super::manifest::write(&spec.out.join("manifest.csv"), &super::manifest::BUILD_HEADER, &rows)?;
    #[derive(Serialize)]
    struct Record<'a> {
        spec: &'a BuildSpec,
        counts: &'a BuildCounts,
    }
    let record = toml::to_string_pretty(&Record { spec, counts: &result }).expect("serialisable");
    let record_path = spec.out.join("dataset.toml");
    std::fs::write(&record_path, record).map_err(|source| DatasetError::Io { path: record_path, source })?;
    Ok(result)
}
