//! Getting frames in and out: image files, raw streams and (feature `video`) media files.
//! Knows bytes and containers, not tensors.

pub mod colour;
pub mod image;
#[cfg(feature = "video")]
pub mod parts;
pub mod raw;
#[cfg(feature = "video")]
pub mod scale;
#[cfg(feature = "video")]
pub mod video;
