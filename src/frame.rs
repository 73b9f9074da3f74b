//! The one frame type that flows through every stage, and the pool its buffers come from.

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// Largest width or height japanim accepts from a header, a flag or a file: 16384 px.
pub const MAX_SIDE: u32 = 16_384;
/// Largest frame area japanim accepts: 8K UHD (7680×4320) times four.
pub const MAX_PIXELS: u64 = 7680 * 4320 * 4;

/// A packed RGB frame: `width * height * 3` bytes, row-major, no row padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RGB bytes, `width * height * 3` of them.
    pub data: Vec<u8>,
    /// Presentation timestamp in the source's time base, when the source has one.
    pub pts: Option<i64>,
    /// Position of the frame in its stream, from 0.
    pub index: u64,
}

impl Frame {
    /// Number of bytes an RGB frame of this size holds.
    pub fn byte_len(width: u32, height: u32) -> usize {
        width as usize * height as usize * 3
    }
}

/// Checks a frame size read from a flag or a header before anything is allocated for it.
pub fn check_frame_size(width: u32, height: u32) -> Result<(), String> {
    if width == 0 || height == 0 {
        return Err(format!("frame size {width}x{height} is empty: both sides must be at least 1"));
    }
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(format!(
            "frame size {width}x{height} exceeds the limit of {MAX_SIDE} px a side and {MAX_PIXELS} px in all"
        ));
    }
    Ok(())
}

/// The taking end of a pool of frame buffers: the stage that fills frames (a decoder, the
/// engine writing its results) takes its buffers here.
///
/// A pool is a single-producer single-consumer ring of idle buffers (`ringbuf`): exactly one
/// later stage gives buffers back ([`PoolReturn`]) and exactly one stage takes them, so a
/// stream has one pool per pair of stages (see `stream::run`) and no lock or shared queue.
/// Buffers given back are reused, so a long video allocates only as many buffers as the
/// channels between stages can hold at once: memory depends on the channel bounds, not on
/// the video's length.
pub struct FramePool {
    free: HeapCons<Vec<u8>>,
}

/// The giving end of a [`FramePool`]: the stage done with a frame's buffer hands it back.
pub struct PoolReturn {
    free: HeapProd<Vec<u8>>,
}

impl FramePool {
    /// A pool that keeps at most `capacity` idle buffers, and the end that gives them back.
    pub fn new(capacity: usize) -> (Self, PoolReturn) {
        let (free_tx, free_rx) = HeapRb::new(capacity.max(1)).split();
        (Self { free: free_rx }, PoolReturn { free: free_tx })
    }

    /// A zeroed-or-reused buffer of exactly `len` bytes.
    pub fn take(&mut self, len: usize) -> Vec<u8> {
        let mut buffer = self.free.try_pop().unwrap_or_default();
        buffer.resize(len, 0);
        buffer
    }

    /// Idle buffers waiting to be taken.
    pub fn idle(&self) -> usize {
        self.free.occupied_len()
    }
}

impl PoolReturn {
    /// Returns a buffer for reuse; dropped if the pool is full.
    pub fn give(&mut self, buffer: Vec<u8>) {
        let _ = self.free.try_push(buffer);
    }
}

/// An error of a stream stage (a source, the engine, a sink): the stage's own typed error,
/// boxed, so that this bottom layer names no module above it. Each module that has stages
/// converts its error into it (`impl From<ItsError> for StageError`); the message is the
/// stage error's own, and [`StageError::downcast_ref`] gets the typed error back.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StageError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl StageError {
    /// Wraps a stage's typed error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }

    /// An error that is only a message.
    pub fn msg(message: impl Into<String>) -> Self {
        #[derive(Debug, thiserror::Error)]
        #[error("{0}")]
        struct Message(String);
        Self::new(Message(message.into()))
    }

    /// The typed error inside, if it is a `T`.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }
}

/// Anything a source passes through a stream untouched (e.g. an audio packet); only a sink
/// that knows its type uses it, the others drop it.
pub type Passthrough = Box<dyn std::any::Any + Send>;

/// What flows from a source to a sink.
pub enum Item {
    /// A picture to stylize.
    Frame(Frame),
    /// Data forwarded as it is.
    Passthrough(Passthrough),
}

/// The first stage of a stream: yields frames (and passthrough data) in order.
pub trait FrameSource: Send {
    /// The next item, taking frame buffers from `pool`; `None` at the end.
    fn next_item(&mut self, pool: &mut FramePool) -> Result<Option<Item>, StageError>;
}

/// The last stage of a stream: consumes stylized frames in order.
pub trait FrameSink: Send {
    /// Writes one frame.
    fn write_frame(&mut self, frame: &Frame) -> Result<(), StageError>;
    /// Writes forwarded data; sinks that cannot use it ignore it.
    fn write_passthrough(&mut self, _item: Passthrough) -> Result<(), StageError> {
        Ok(())
    }
    /// Completes the output after the last frame. Not called when the stream fails.
    fn finish(&mut self) -> Result<(), StageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_reuses_buffers_and_stays_bounded() {
        let (mut pool, mut back) = FramePool::new(2);
        let a = pool.take(12);
        let ptr = a.as_ptr();
        back.give(a);
        let b = pool.take(12);
        assert_eq!(b.as_ptr(), ptr, "a given-back buffer is reused");
        assert_eq!(b.len(), 12);
        back.give(b);
        back.give(vec![0; 3]);
        back.give(vec![0; 3]); // over capacity: dropped
        assert_eq!(pool.idle(), 2);
    }

    #[test]
    fn frame_size_limits() {
        assert!(check_frame_size(1, 1).is_ok());
        assert!(check_frame_size(1920, 1080).is_ok());
        assert!(check_frame_size(0, 0).unwrap_err().contains("empty"));
        assert!(check_frame_size(100_000, 10).unwrap_err().contains("limit"));
    }
}
