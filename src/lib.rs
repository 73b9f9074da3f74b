//! japanim: turn real-world video into anime-style video with a CartoonGAN generator.
//!
//! Data flows one way through the modules: [`io`] decodes frames, [`engine`] runs the
//! [`model`] on them, [`io`] encodes the results; [`stream`] runs those stages on threads
//! joined by bounded channels, and [`stylize`] is the whole job as the command line runs it.

pub mod bench;
pub mod cluster;
pub mod config;
pub mod dataset;
pub mod device;
pub mod engine;
pub mod eval;
pub mod frame;
pub mod io;
pub mod look;
pub mod model;
pub mod output;
pub mod parts;
pub mod plot;
pub mod stream;
pub mod stylize;
pub mod train;

/// Any error of the library, each carrying its own context.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Raw frame streams.
    #[error(transparent)]
    Raw(#[from] io::raw::RawError),
    /// Image files.
    #[error(transparent)]
    Image(#[from] io::image::ImageError),
    /// Media files.
    #[cfg(feature = "video")]
    #[error(transparent)]
    Video(#[from] io::video::VideoError),
    /// Parts of a video: made, checked and joined.
    #[cfg(feature = "video")]
    #[error(transparent)]
    Parts(#[from] io::parts::PartsError),
    /// Planning a part.
    #[error(transparent)]
    Part(#[from] parts::PartError),
    /// Inference.
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    /// Weight files.
    #[error(transparent)]
    Weights(#[from] model::WeightsError),
    /// Device selection.
    #[error(transparent)]
    Device(#[from] device::DeviceError),
    /// Output files.
    #[error(transparent)]
    Output(#[from] output::OutputError),
    /// Dataset building.
    #[error(transparent)]
    Dataset(#[from] dataset::DatasetError),
    /// Training.
    #[error(transparent)]
    Train(#[from] train::TrainError),
    /// A stage of a stream (its own typed error inside).
    #[error(transparent)]
    Stage(#[from] frame::StageError),
    /// Invalid settings or inputs, explained.
    #[error("{0}")]
    Invalid(String),
    /// A bug: a stage died unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether the error is a closed pipe downstream, which ends a run quietly.
    pub fn is_broken_pipe(&self) -> bool {
        let broken =
            |e: &io::raw::RawError| matches!(e, io::raw::RawError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe);
        match self {
            Error::Raw(e) => broken(e),
            Error::Stage(e) => e.downcast_ref::<io::raw::RawError>().is_some_and(broken),
            _ => false,
        }
    }
}
