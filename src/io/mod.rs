//! Getting frames in and out: image files, raw streams and (feature `video`) media files.
//! Knows bytes and containers, not tensors.

pub mod colour;
#[cfg(feature = "video")]
pub mod convert;
#[cfg(feature = "video")]
pub mod deinterlace;
#[cfg(feature = "video")]
pub mod filter;
#[cfg(feature = "video")]
pub mod hdr;
pub mod image;
#[cfg(feature = "video")]
pub mod parts;
pub mod raw;
#[cfg(feature = "video")]
pub mod video;

use serde::{Deserialize, Serialize};

/// Encoder choices for a video output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderSettings {
    /// FFmpeg encoder name (`libx264`, `libx265`, `libvpx-vp9`, …).
    pub codec: String,
    /// Constant rate factor, when the encoder takes one (x264: 0–51, lower is better).
    pub crf: Option<u32>,
    /// Encoder preset (x264: ultrafast … veryslow).
    pub preset: Option<String>,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self { codec: "libx264".into(), crf: Some(18), preset: Some("medium".into()) }
    }
}
