//! Frames in, stylized frames out: u8 ↔ tensor conversion on the device, padding to the
//! generator's size grid, batching. Knows tensors and frames, not files or containers.

pub mod tiled;
pub mod tiles;

use tch::{Device, Kind, TchError, Tensor};

use crate::frame::Frame;
use crate::model::StyleModel;

/// Errors while stylizing.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// libtorch failed (out of device memory, most often).
    #[error("inference failed: {0}")]
    Torch(#[from] TchError),
    /// Frames of one batch differ in size.
    #[error("frames of one batch must share a size: {0}x{1} vs {2}x{3}")]
    MixedSizes(u32, u32, u32, u32),
}

/// Sides are padded to a multiple of this (two stride-2 stages) and to at least
/// [`MIN_SIDE`], so the bottleneck is at least 2×2 and InstanceNorm has statistics to take.
const SIZE_MULTIPLE: i64 = 4;
const MIN_SIDE: i64 = 8;

fn padded(side: i64) -> i64 {
    ((side + SIZE_MULTIPLE - 1) / SIZE_MULTIPLE * SIZE_MULTIPLE).max(MIN_SIDE)
}

/// Pads an NCHW batch on the right and bottom: by reflection where the side is long enough,
/// else by repeating the edge (reflection cannot pad by more than side − 1).
fn pad_to_grid(x: &Tensor, height: i64, width: i64) -> Result<Tensor, TchError> {
    let (pad_h, pad_w) = (padded(height) - height, padded(width) - width);
    if pad_h == 0 && pad_w == 0 {
        return Ok(x.shallow_clone());
    }
    if pad_h < height && pad_w < width {
        x.f_reflection_pad2d([0, pad_w, 0, pad_h])
    } else {
        x.f_replication_pad2d([0, pad_w, 0, pad_h])
    }
}

/// Runs a model over frames, whole or in tiles.
pub struct Engine {
    model: StyleModel,
    staging: Vec<u8>,
    tiled: Option<tiled::TiledRunner>,
}

impl Engine {
    /// An engine that runs whole frames.
    pub fn new(model: StyleModel) -> Self {
        Self { model, staging: Vec::new(), tiled: None }
    }

    /// An engine that cuts frames larger than `settings.max_tile` into tiles.
    pub fn with_tiles(model: StyleModel, settings: tiled::TileSettings) -> Self {
        Self { model, staging: Vec::new(), tiled: Some(tiled::TiledRunner::new(settings)) }
    }

    /// The model.
    pub fn model(&self) -> &StyleModel {
        &self.model
    }

    /// Stylizes frames of one size, writing each result into the matching output buffer
    /// (resized to the frame's byte length). Call inside `tch::no_grad`.
    pub fn stylize(&mut self, frames: &[&Frame], outputs: &mut [Vec<u8>]) -> Result<(), EngineError> {
        let Some(first) = frames.first() else { return Ok(()) };
        let (w, h) = (first.width, first.height);
        if let Some(f) = frames.iter().find(|f| (f.width, f.height) != (w, h)) {
            return Err(EngineError::MixedSizes(w, h, f.width, f.height));
        }
        let (device, kind) = (self.model.device(), self.model.kind());
        let (wi, hi, n) = (i64::from(w), i64::from(h), frames.len() as i64);
        let input = if let [single] = frames {
            Tensor::f_from_data_size(&single.data, &[1, hi, wi, 3], Kind::Uint8)?
        } else {
            self.staging.clear();
            for f in frames {
                self.staging.extend_from_slice(&f.data);
            }
            Tensor::f_from_data_size(&self.staging, &[n, hi, wi, 3], Kind::Uint8)?
        };
        // u8 → [-1, 1] on the device: only bytes cross the bus.
        let x = input
            .f_to_device(device)?
            .f_permute([0, 3, 1, 2])?
            .f_to_kind(kind)?
            .f_mul_scalar(1.0 / 127.5)?
            .f_sub_scalar(1.0)?;
        let x = pad_to_grid(&x, hi, wi)?;
        let (_, _, hp, wp) = x.size4()?;
        let y = match &mut self.tiled {
            Some(runner) if hp.max(wp) > i64::from(runner.settings().max_tile) => {
                let frames = (0..n).map(|i| x.f_narrow(0, i, 1)).collect::<Result<Vec<_>, _>>()?;
                Tensor::f_cat(&runner.run(self.model.generator(), &frames)?, 0)?
            }
            _ => self.model.generator().forward(&x)?,
        };
        let y = y
            .f_narrow(2, 0, hi)?
            .f_narrow(3, 0, wi)?
            .f_add_scalar(1.0)?
            .f_mul_scalar(127.5)?
            .f_round()?
            .f_clamp(0.0, 255.0)?
            .f_to_kind(Kind::Uint8)?
            .f_permute([0, 2, 3, 1])?
            .f_contiguous()?
            .f_to_device(Device::Cpu)?;
        let frame_len = Frame::byte_len(w, h);
        for (i, out) in outputs.iter_mut().enumerate().take(frames.len()) {
            out.resize(frame_len, 0);
            y.f_get(i as i64)?.f_copy_data_u8(out, frame_len)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_grid() {
        assert_eq!([1, 4, 5, 8, 9, 17, 1080].map(padded), [8, 8, 8, 8, 12, 20, 1080]);
        let x = Tensor::arange(3 * 5, (Kind::Float, Device::Cpu)).view([1, 1, 3, 5]);
        let p = pad_to_grid(&x, 3, 5).unwrap();
        assert_eq!(p.size(), vec![1, 1, 8, 8]); // pads of 5 and 3 exceed the sides: replicate
        let x = Tensor::arange(9 * 10, (Kind::Float, Device::Cpu)).view([1, 1, 9, 10]);
        let p = pad_to_grid(&x, 9, 10).unwrap();
        assert_eq!(p.size(), vec![1, 1, 12, 12]);
        // reflection: column 10 mirrors column 8
        assert_eq!(p.double_value(&[0, 0, 0, 10]), 8.0);
        assert_eq!(p.double_value(&[0, 0, 9, 0]), 70.0);
    }
}
