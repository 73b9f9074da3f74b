//! Training the GAN: generator pre-training on the content loss, then adversarial training
//! with a VGG perceptual loss; exact resume from checkpoints; logs, plots and sample grids.
//!
//! A run folder holds `config.toml` (the resolved configuration), `checkpoints/`,
//! `metrics.csv` (every loss term of every step), `validation.csv` (per epoch),
//! `losses.png`, `samples/epoch-NNNN.png` and `tensorboard/` (the same losses as TensorBoard
//! scalars).

pub mod abstraction;
pub mod adam;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod losses;
pub mod metrics;
pub mod run;
pub mod schedule;
pub mod temporal;
pub mod tensorboard;

pub use config::TrainConfig;
pub use run::{export, train, TrainSummary};

/// Errors while training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The dataset folder is not in the layout `japanim dataset build` writes.
    #[error("dataset {path}: {reason}")]
    Dataset {
        /// The dataset folder.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A run folder problem (exists, missing, no checkpoint, bad config).
    #[error("{0}")]
    Run(String),
    /// A style image could not be read.
    #[error(transparent)]
    Image(#[from] crate::io::image::ImageError),
    /// libtorch failed.
    #[error("training step failed: {0}")]
    Torch(#[from] tch::TchError),
    /// Reading or writing a run's files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}
