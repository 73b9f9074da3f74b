//! Building training sets: crops, the CartoonGAN edge smoothing of anime crops, and the
//! whole chain into the layout `japanim train` reads.

pub mod build;
pub mod crop;
pub mod keyframes;
pub mod manifest;
pub mod smooth;

/// Writes an image (format from the extension) under a temporary name and renames it over
/// `path`: a dataset file is either complete or absent.
pub fn write_atomically(img: &image::RgbImage, path: &std::path::Path) -> Result<(), DatasetError> {
    let invalid = |e: crate::output::OutputError| DatasetError::Invalid(e.to_string());
    let pending = crate::output::PendingFile::new(path, true).map_err(invalid)?;
    crate::io::image::write_rgb(pending.temp_path(), img.as_raw(), img.width(), img.height())
        .map_err(|e| e.naming(path))?;
    pending.commit().map_err(invalid)?;
    Ok(())
}

/// Grey levels of packed RGB as OpenCV's `cvtColor(…, BGR2GRAY)` computes them (0.299 R +
/// 0.587 G + 0.114 B in 15-bit fixed point, rounded; checked against OpenCV on all of a
/// random image's pixels).
pub fn opencv_grey(rgb: &[u8], width: u32, height: u32) -> image::GrayImage {
    let data = rgb
        .chunks_exact(3)
        .map(|p| ((u32::from(p[0]) * 9798 + u32::from(p[1]) * 19235 + u32::from(p[2]) * 3735 + (1 << 14)) >> 15) as u8);
    image::GrayImage::from_raw(width, height, data.collect()).expect("one grey byte per pixel")
}

/// Errors of the dataset tools.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Invalid parameters or paths, explained.
    #[error("{0}")]
    Invalid(String),
    /// An image could not be read or written.
    #[error(transparent)]
    Image(#[from] crate::io::image::ImageError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}
