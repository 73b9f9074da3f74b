//! A whole-frame activation between two segments of the exact tiled strategy, held in memory
//! or in a temporary file.
//!
//! In memory it is one tensor, and memory grows with the frame (a 4K frame's
//! full-resolution activations take gigabytes). On disk only the tiles being read or written
//! are in memory: the file holds the activation row by row with channels last, so a tile's
//! region is one positional read or write per row. The file is unlinked from the start
//! (`tempfile::tempfile`), so nothing is left behind however the process ends, and the
//! kernel's page cache keeps it in RAM while RAM is free.

use std::fs::File;
use std::os::unix::fs::FileExt;

use tch::{Device, Kind, TchError, Tensor};

use super::moments::Moments;

/// Rows read at a time while measuring statistics: bands of about this many bytes.
const BAND_BYTES: i64 = 16 << 20;

/// A 1×C×H×W activation of one frame.
pub enum Activation {
    /// A tensor on the device.
    Memory(Tensor),
    /// A temporary file; tiles come to and go from `device`.
    File(FileActivation),
}

/// An activation in a temporary file: H rows of W pixels of C channels of `kind`.
pub struct FileActivation {
    file: File,
    channels: i64,
    height: i64,
    width: i64,
    kind: Kind,
    device: Device,
}

impl Activation {
    /// A zero activation, in a temporary file when `on_disk`. Either way it is laid out
    /// channels-last (in memory: an N×C×H×W view of N×H×W×C storage), the layout the
    /// convolutions produce for channels-last input: tiles are then cut and stitched without
    /// transposing copies (1080p, tile 512, CPU: 4.1 s a frame instead of 5.3).
    pub fn zeros(
        on_disk: bool,
        [channels, height, width]: [i64; 3],
        kind: Kind,
        device: Device,
    ) -> Result<Self, TchError> {
        if !on_disk {
            let storage = Tensor::f_zeros([1, height, width, channels], (kind, device))?;
            return Ok(Self::Memory(storage.f_permute([0, 3, 1, 2])?));
        }
        let file = tempfile::tempfile()?;
        // A sparse file of zeros: disk is used only as tiles are written.
        file.set_len((channels * height * width) as u64 * kind.elt_size_in_bytes() as u64)?;
        Ok(Self::File(FileActivation { file, channels, height, width, kind, device }))
    }

    /// Width in pixels.
    pub fn width(&self) -> Result<i64, TchError> {
        match self {
            Self::Memory(t) => Ok(t.size4()?.3),
            Self::File(f) => Ok(f.width),
        }
    }

    /// The region x0..x1 × y0..y1 as a 1×C×h×w tensor on the device.
    pub fn crop(&self, [x0, y0, x1, y1]: [i64; 4]) -> Result<Tensor, TchError> {
        match self {
            Self::Memory(t) => t.f_narrow(2, y0, y1 - y0)?.f_narrow(3, x0, x1 - x0),
            Self::File(f) => f.read([x0, y0, x1, y1]),
        }
    }

    /// Writes a 1×C×h×w tensor at (x, y).
    pub fn place(&mut self, x: i64, y: i64, part: &Tensor) -> Result<(), TchError> {
        match self {
            Self::Memory(t) => {
                let (_, _, h, w) = part.size4()?;
                t.f_narrow(2, y, h)?.f_narrow(3, x, w)?.f_copy_(part)
            }
            Self::File(f) => f.write(x, y, part),
        }
    }

    /// Per-channel mean and biased variance over the whole frame, each 1×C f32 on the device:
    /// the statistics of the InstanceNorm layer this activation feeds.
    pub fn mean_var(&self) -> Result<(Tensor, Tensor), TchError> {
        match self {
            Self::Memory(t) => {
                let (mean, var) = channel_stats(t)?;
                Ok((mean.f_unsqueeze(0)?, var.f_unsqueeze(0)?))
            }
            Self::File(f) => f.mean_var(),
        }
    }

    /// The whole activation as a tensor on the device.
    pub fn into_tensor(self) -> Result<Tensor, TchError> {
        match self {
            Self::Memory(t) => Ok(t),
            Self::File(f) => f.read([0, 0, f.width, f.height]),
        }
    }
}

impl FileActivation {
    fn offset(&self, x: i64, y: i64) -> u64 {
        ((y * self.width + x) * self.channels) as u64 * self.kind.elt_size_in_bytes() as u64
    }

    /// Rows are read straight into a channels-last tensor, which goes on as it is (see
    /// [`Activation::zeros`]); `write` then needs no transposing copy either.
    fn read(&self, [x0, y0, x1, y1]: [i64; 4]) -> Result<Tensor, TchError> {
        let (w, h) = (x1 - x0, y1 - y0);
        let host = Tensor::f_empty([1, h, w, self.channels], (self.kind, Device::Cpu))?;
        let row_bytes = (w * self.channels) as usize * self.kind.elt_size_in_bytes();
        if row_bytes == 0 || h == 0 {
            // An empty tensor's data pointer may be null: no slice is made from it.
            return host.f_to_device(self.device)?.f_permute([0, 3, 1, 2]);
        }
        // SAFETY: `host` is a new contiguous CPU tensor of exactly h rows of `row_bytes` bytes,
        // referenced nowhere else while this slice lives.
        let bytes = unsafe { std::slice::from_raw_parts_mut(host.data_ptr().cast::<u8>(), row_bytes * h as usize) };
        for (row, chunk) in bytes.chunks_exact_mut(row_bytes).enumerate() {
            self.file.read_exact_at(chunk, self.offset(x0, y0 + row as i64))?;
        }
        host.f_to_device(self.device)?.f_permute([0, 3, 1, 2])
    }

    fn write(&mut self, x: i64, y: i64, part: &Tensor) -> Result<(), TchError> {
        let part = part.f_to_kind(self.kind)?.f_permute([0, 2, 3, 1])?.f_contiguous()?.f_to_device(Device::Cpu)?;
        let (_, h, w, c) = part.size4()?;
        if c != self.channels || x + w > self.width || y + h > self.height {
            return Err(TchError::Shape(format!(
                "a {c}-channel {w}x{h} part at ({x}, {y}) does not fit a {}-channel {}x{} activation",
                self.channels, self.width, self.height
            )));
        }
        if h == 0 || w == 0 {
            return Ok(());
        }
        let len = (h * w * c) as usize * self.kind.elt_size_in_bytes();
        // SAFETY: `part` is a contiguous CPU tensor of `len` bytes that outlives the slice.
        let bytes = unsafe { std::slice::from_raw_parts(part.data_ptr().cast::<u8>(), len) };
        for (row, chunk) in bytes.chunks_exact(len / h as usize).enumerate() {
            self.file.write_all_at(chunk, self.offset(x, y + row as i64))?;
        }
        Ok(())
    }

    fn mean_var(&self) -> Result<(Tensor, Tensor), TchError> {
        let row_bytes = self.width * self.channels * self.kind.elt_size_in_bytes() as i64;
        self.mean_var_in_bands((BAND_BYTES / row_bytes.max(1)).clamp(1, self.height.max(1)))
    }

    /// Statistics band by band (`rows` rows at a time), combined exactly (in f64).
    fn mean_var_in_bands(&self, rows: i64) -> Result<(Tensor, Tensor), TchError> {
        let mut total: Option<Moments> = None;
        for y0 in (0..self.height).step_by(rows as usize) {
            let y1 = (y0 + rows).min(self.height);
            let (mean, var) = channel_stats(&self.read([0, y0, self.width, y1])?)?;
            let count = ((y1 - y0) * self.width) as f64;
            let (mean, m2) = (mean.f_to_kind(Kind::Double)?, var.f_to_kind(Kind::Double)?.f_mul_scalar(count)?);
            Moments::add_to(&mut total, count, mean, m2)?;
        }
        let m = total.ok_or_else(|| TchError::Shape("an empty activation has no statistics".into()))?;
        let (mean, var) = m.mean_var()?;
        Ok((mean.f_unsqueeze(0)?, var.f_unsqueeze(0)?))
    }
}

/// Per-channel mean and biased variance (C each, f32) of a 1×C×H×W tensor. Batch-norm
/// statistics of one frame are its instance statistics, and libtorch's kernel for them is
/// vectorised: on the CPU 3× faster than `var_mean`'s Welford reduction. The input is made
/// f32 first, so the results are f32 whatever the activation's type.
fn channel_stats(x: &Tensor) -> Result<(Tensor, Tensor), TchError> {
    x.f_to_kind(Kind::Float)?.f_batch_norm_update_stats(None::<Tensor>, None::<Tensor>, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_activation_holds_what_memory_holds() {
        let (c, h, w) = (5, 13, 11);
        for kind in [Kind::Float, Kind::BFloat16] {
            let mut memory = Activation::zeros(false, [c, h, w], kind, Device::Cpu).unwrap();
            let mut file = Activation::zeros(true, [c, h, w], kind, Device::Cpu).unwrap();
            // Three overlapping parts written in turn, the last over part of the others.
            for (x, y, pw, ph, seed) in [(0, 0, 7, 9, 1), (4, 5, 7, 8, 2), (2, 3, 5, 4, 3)] {
                tch::manual_seed(seed);
                let part = (Tensor::randn([1, c, ph, pw], (Kind::Float, Device::Cpu)) * 3 + 1).to_kind(kind);
                memory.place(x, y, &part).unwrap();
                file.place(x, y, &part).unwrap();
            }
            for region in [[0, 0, w, h], [3, 2, 9, 12], [10, 12, 11, 13]] {
                let (a, b) = (memory.crop(region).unwrap(), file.crop(region).unwrap());
                assert_eq!(a.size(), b.size());
                assert_eq!((&a - &b).abs().max().double_value(&[]), 0.0, "{kind:?} {region:?}");
            }
            let (mean, var) = memory.mean_var().unwrap();
            let Activation::File(inner) = &file else { unreachable!() };
            for (mean_f, var_f) in [file.mean_var().unwrap(), inner.mean_var_in_bands(4).unwrap()] {
                assert_eq!(mean_f.size(), [1, c]);
                assert!((&mean - &mean_f).abs().max().double_value(&[]) < 1e-5);
                assert!((&var - &var_f).abs().max().double_value(&[]) < 1e-4);
            }
            let whole = file.into_tensor().unwrap();
            assert_eq!((whole - memory.into_tensor().unwrap()).abs().max().double_value(&[]), 0.0);
        }
    }

    #[test]
    fn parts_outside_the_file_are_refused() {
        let mut file = Activation::zeros(true, [2, 4, 4], Kind::Float, Device::Cpu).unwrap();
        let part = Tensor::zeros([1, 2, 2, 3], (Kind::Float, Device::Cpu));
        assert!(file.place(2, 0, &part).is_err());
        assert!(file.place(1, 2, &part).is_ok());
    }
}
