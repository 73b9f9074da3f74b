//! Building training sets: crops, the CartoonGAN edge smoothing of anime crops, and the
//! whole chain into the layout `japanim train` reads.

pub mod build;
pub mod crop;
pub mod keyframes;
pub mod smooth;

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
