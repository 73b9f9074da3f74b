//! Pieces of `japanim bench`: a synthetic frame source and a discarding sink, so the whole
//! staged stream can be timed without FFmpeg, and the device's peak throughput, so achieved
//! TFLOP/s can be read as a share of it.

use tch::{Device, Kind};

use crate::frame::{Frame, FramePool, FrameSink, FrameSource, Item};

/// Yields `count` frames cycling through `templates`, each copied into a pool buffer as a
/// decoder would write it.
pub struct SyntheticSource {
    templates: Vec<Frame>,
    count: u64,
    next: u64,
}

impl SyntheticSource {
    /// `count` frames made from `templates` (at least one).
    pub fn new(templates: Vec<Frame>, count: u64) -> Self {
        assert!(!templates.is_empty(), "a synthetic source needs a frame to repeat");
        Self { templates, count, next: 0 }
    }
}

impl FrameSource for SyntheticSource {
    fn next_item(&mut self, pool: &mut FramePool) -> Result<Option<Item>, crate::Error> {
        if self.next == self.count {
            return Ok(None);
        }
        let template = &self.templates[(self.next % self.templates.len() as u64) as usize];
        let mut data = pool.take(template.data.len());
        data.copy_from_slice(&template.data);
        let frame = Frame {
            width: template.width,
            height: template.height,
            data,
            pts: Some(self.next as i64),
            index: self.next,
        };
        self.next += 1;
        Ok(Some(Item::Frame(frame)))
    }
}

/// Drops every frame: the cheapest possible output stage.
#[derive(Debug, Default)]
pub struct DiscardSink;

impl FrameSink for DiscardSink {
    fn write_frame(&mut self, _frame: &Frame) -> Result<(), crate::Error> {
        Ok(())
    }

    fn finish(&mut self) -> Result<(), crate::Error> {
        Ok(())
    }
}

/// The device's name and peak dense throughput in TFLOP/s for `kind`, where japanim knows
/// it (CUDA devices by name; see [`crate::device::cuda::peak_tflops`]). f32 on CUDA counts
/// TF32 tensor cores, which cuDNN uses for f32 convolutions by default.
pub fn device_peak(device: Device, kind: Kind) -> (Option<String>, Option<f64>) {
    match device {
        Device::Cuda(index) => {
            let name = crate::device::cuda::device_name(index);
            let peak = name.as_deref().and_then(|n| crate::device::cuda::peak_tflops(n, kind != Kind::Float));
            (name, peak)
        }
        _ => (None, None),
    }
}
