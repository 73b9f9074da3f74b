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
/// it (CUDA devices by name; see [`peak_tflops`]). f32 on CUDA counts
/// TF32 tensor cores, which cuDNN uses for f32 convolutions by default.
pub fn device_peak(device: Device, kind: Kind) -> (Option<String>, Option<f64>) {
    match device {
        Device::Cuda(index) => {
            let name = crate::device::cuda::device_name(index);
            let peak = name.as_deref().and_then(|n| peak_tflops(n, kind != Kind::Float));
            (name, peak)
        }
        _ => (None, None),
    }
}

/// Peak dense tensor-core throughput of known data-centre and workstation GPUs, in TFLOP/s,
/// for 16-bit (bf16, f16) and for f32 (which cuDNN runs as TF32 by default): datasheet
/// figures without sparsity. The first entry whose words all occur in the device's name
/// wins, so more specific names come first.
const PEAKS: &[(&[&str], f64, f64)] = &[
    (&["H100", "PCIe"], 756.0, 378.0),
    (&["H100", "NVL"], 835.0, 418.0),
    (&["H100"], 989.0, 495.0),
    (&["H200", "NVL"], 835.0, 418.0),
    (&["H200"], 989.0, 495.0),
    (&["H20"], 148.0, 74.0),
    (&["B200"], 2250.0, 1100.0),
    (&["A100"], 312.0, 156.0),
    (&["A10"], 125.0, 62.5),
    (&["L40S"], 362.0, 183.0),
    (&["L40"], 181.0, 90.5),
    (&["L4"], 121.0, 60.0),
    (&["RTX", "4090"], 165.0, 82.6),
];

/// The datasheet peak in TFLOP/s of a GPU named `name` for 16-bit (`half`) or f32
/// arithmetic, when it is one japanim knows.
pub fn peak_tflops(name: &str, half: bool) -> Option<f64> {
    let words: Vec<&str> = name.split_whitespace().collect();
    PEAKS
        .iter()
        .find(|(needed, _, _)| needed.iter().all(|n| words.iter().any(|w| w.eq_ignore_ascii_case(n))))
        .map(|&(_, half_peak, f32_peak)| if half { half_peak } else { f32_peak })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_of_named_devices() {
        assert_eq!(peak_tflops("NVIDIA H100 80GB HBM3", true), Some(989.0));
        assert_eq!(peak_tflops("NVIDIA H100 PCIe", true), Some(756.0));
        assert_eq!(peak_tflops("NVIDIA H200", false), Some(495.0));
        assert_eq!(peak_tflops("NVIDIA H200 NVL", true), Some(835.0));
        assert_eq!(peak_tflops("NVIDIA L4", true), Some(121.0));
        assert_eq!(peak_tflops("NVIDIA L40S", true), Some(362.0));
        assert_eq!(peak_tflops("NVIDIA GeForce RTX 4090", true), Some(165.0));
        assert_eq!(peak_tflops("Some Future GPU", true), None);
    }
}
