//! Image files and folders of them, as frames.

use std::path::{Path, PathBuf};

use crate::frame::{check_frame_size, Frame, StageError};

/// Extensions read and written as images.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp"];

/// Errors reading or writing images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Decoding or encoding failed.
    #[error("{path}: {source}")]
    Codec {
        /// The file.
        path: PathBuf,
        /// What the codec said.
        source: image::ImageError,
    },
    /// An image too large to process.
    #[error("{path}: {reason}")]
    Size {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A folder could not be listed.
    #[error("{path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl ImageError {
    /// The same error naming `shown` instead of the file written: the user's output, where
    /// the file written was its hidden temporary file.
    pub fn naming(self, shown: &Path) -> Self {
        match self {
            ImageError::Codec { source, .. } => ImageError::Codec { path: shown.to_path_buf(), source },
            ImageError::Size { reason, .. } => ImageError::Size { path: shown.to_path_buf(), reason },
            ImageError::Io { source, .. } => ImageError::Io { path: shown.to_path_buf(), source },
        }
    }
}

/// Whether a path names an image by its extension.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Reads an image as an RGB frame (alpha is dropped, grey expanded).
pub fn read_image(path: &Path) -> Result<Frame, ImageError> {
    let codec = |source| ImageError::Codec { path: path.to_path_buf(), source };
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| codec(image::ImageError::IoError(e)))?
        .with_guessed_format()
        .map_err(|e| codec(image::ImageError::IoError(e)))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(crate::frame::MAX_SIDE);
    limits.max_image_height = Some(crate::frame::MAX_SIDE);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(codec)?;
    // Phones store a portrait photo as landscape with an EXIF orientation: turn it upright,
    // since the output carries no EXIF.
    let orientation = image::ImageDecoder::orientation(&mut decoder).map_err(codec)?;
    let mut picture = image::DynamicImage::from_decoder(decoder).map_err(codec)?;
    if orientation != image::metadata::Orientation::NoTransforms {
        tracing::info!("{}: EXIF orientation {orientation:?} applied", path.display());
        picture.apply_orientation(orientation);
    }
    let rgb = picture.into_rgb8();
    check_frame_size(rgb.width(), rgb.height()).map_err(|reason| ImageError::Size { path: path.into(), reason })?;
    Ok(Frame { width: rgb.width(), height: rgb.height(), data: rgb.into_raw(), pts: None, index: 0 })
}

/// Reads an image as an `RgbImage` (for the dataset tools, which work on `image` buffers).
pub fn read_rgb(path: &Path) -> Result<image::RgbImage, ImageError> {
    let frame = read_image(path)?;
    Ok(image::RgbImage::from_raw(frame.width, frame.height, frame.data).expect("a frame's buffer matches its size"))
}

/// Reads an image scaled so the longer side is at most `max_side` (keeping the aspect,
/// Triangle filter; smaller images are kept as they are): how `japanim eval` sees photos and
/// style images, and how a training run measures a style folder's mean Gram matrix.
pub fn read_scaled(path: &Path, max_side: u32) -> Result<image::RgbImage, ImageError> {
    let img = read_rgb(path)?;
    let (width, height) = img.dimensions();
    let longest = width.max(height);
    if longest <= max_side {
        return Ok(img);
    }
    let (w, h) = ((width * max_side / longest).max(1), (height * max_side / longest).max(1));
    Ok(image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle))
}

/// Writes a frame as an image, its format chosen by the extension (WebP is lossless).
pub fn write_image(frame: &Frame, path: &Path) -> Result<(), ImageError> {
    write_rgb(path, &frame.data, frame.width, frame.height)
}

/// Writes packed RGB as an image, its format chosen by the extension. PNG uses the fast
/// deflate setting: on a 1080p photo it is 22 ms against 520 ms for the default, for files
/// 8 % larger, and key frames, crops and outputs are written by the thousand.
pub fn write_rgb(path: &Path, rgb: &[u8], width: u32, height: u32) -> Result<(), ImageError> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let codec = |source| ImageError::Codec { path: path.to_path_buf(), source };
    let is_png = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return image::save_buffer(path, rgb, width, height, image::ExtendedColorType::Rgb8).map_err(codec);
    }
    let file = std::fs::File::create(path).map_err(|e| codec(image::ImageError::IoError(e)))?;
    let mut writer = std::io::BufWriter::new(file);
    let encoder = PngEncoder::new_with_quality(&mut writer, CompressionType::Fast, FilterType::Adaptive);
    image::ImageEncoder::write_image(encoder, rgb, width, height, image::ExtendedColorType::Rgb8).map_err(codec)?;
    std::io::Write::flush(&mut writer).map_err(|e| codec(image::ImageError::IoError(e)))
}

/// The image files directly inside a folder, sorted by name.
pub fn list_images(folder: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let io = |source| ImageError::Io { path: folder.to_path_buf(), source };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_file() && is_image_path(&path) {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// How the images of a folder fared, shared by its source and sink: each failure is logged
/// as it happens (the run fails at the end with their count), and each image whose fate is
/// settled (written, or failed to read or write) is marked, so that a run stopped by the
/// engine knows which image it was on.
#[derive(Debug, Default)]
pub struct FolderProgress {
    /// What went wrong, one line per failed image.
    pub failures: Vec<String>,
    /// Indices of the images written or failed.
    pub settled: std::collections::BTreeSet<u64>,
}

/// [`FolderProgress`] shared between threads.
pub type Failures = std::sync::Arc<std::sync::Mutex<FolderProgress>>;

fn lock(failures: &Failures) -> std::sync::MutexGuard<'_, FolderProgress> {
    failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Logs and counts the failure of image `index`.
pub fn record(failures: &Failures, index: u64, error: &dyn std::fmt::Display) {
    tracing::error!("{error}");
    let mut progress = lock(failures);
    progress.failures.push(error.to_string());
    progress.settled.insert(index);
}

/// Image files as a stream of frames: file `i` is frame `i`, whatever its size (frames of
/// another size start a new batch). With a `failures` list (a folder), an image that cannot
/// be read is recorded there and skipped; without, it ends the stream with its error.
pub struct ImageSource {
    paths: Vec<PathBuf>,
    next: usize,
    failures: Option<Failures>,
}

impl ImageSource {
    /// Frames from `paths`, in order.
    pub fn new(paths: Vec<PathBuf>, failures: Option<Failures>) -> Self {
        Self { paths, next: 0, failures }
    }
}

impl crate::frame::FrameSource for ImageSource {
    fn next_item(&mut self, _pool: &mut crate::frame::FramePool) -> Result<Option<crate::frame::Item>, StageError> {
        while let Some(path) = self.paths.get(self.next) {
            let index = self.next as u64;
            self.next += 1;
            match read_image(path) {
                Ok(frame) => return Ok(Some(crate::frame::Item::Frame(Frame { index, ..frame }))),
                Err(e) => match &self.failures {
                    Some(failures) => record(failures, index, &e),
                    None => return Err(e.into()),
                },
            }
        }
        Ok(None)
    }
}

/// Frames written as image files: frame `i` to destination `i`, each under a temporary name
/// until complete. With a `failures` list, a write that fails is recorded there and the
/// others go on; without, it ends the stream with its error.
pub struct ImageSink {
    destinations: Vec<PathBuf>,
    failures: Option<Failures>,
}

impl ImageSink {
    /// Writes frame `i` to `destinations[i]` (replacing it: the caller checked).
    pub fn new(destinations: Vec<PathBuf>, failures: Option<Failures>) -> Self {
        Self { destinations, failures }
    }

    fn write(&self, frame: &Frame) -> Result<(), StageError> {
        let destination = self
            .destinations
            .get(frame.index as usize)
            .ok_or_else(|| StageError::msg(format!("internal error: no destination for image {}", frame.index)))?;
        let pending = crate::output::PendingFile::new(destination, true)?;
        write_image(frame, pending.temp_path()).map_err(|e| e.naming(pending.destination()))?;
        pending.commit()?;
        Ok(())
    }
}

impl crate::frame::FrameSink for ImageSink {
    fn write_frame(&mut self, frame: &Frame) -> Result<(), StageError> {
        match (self.write(frame), &self.failures) {
            (Err(e), Some(failures)) => {
                record(failures, frame.index, &e);
                Ok(())
            }
            (Ok(()), Some(failures)) => {
                lock(failures).settled.insert(frame.index);
                Ok(())
            }
            (result, None) => result,
        }
    }

    fn finish(&mut self) -> Result<(), StageError> {
        Ok(())
    }
}

impl From<ImageError> for StageError {
    fn from(error: ImageError) -> Self {
        StageError::new(error)
    }
}
