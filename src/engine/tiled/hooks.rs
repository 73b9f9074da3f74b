//! The InstanceNorm hooks of tiled inference: one gathers each layer's moments over tile
//! cores into per-frame statistics while normalising with the statistics in use, the other
//! normalises whole frames with given statistics.

use super::*;
use crate::engine::temporal::{normalize_with, statistics_jumped};
use crate::model::generator::{own_instance_norm, NormHook};

pub(super) fn finish(moments: Vec<Option<Moments>>) -> Result<FrameStats, TchError> {
    moments.into_iter().map(|m| m.expect("every layer saw every tile").mean_var()).collect()
}

/// Whether any frame's first-layer statistics moved between the statistics used and those
/// measured as far as a cut moves them ([`statistics_jumped`]).
pub(super) fn cut_between(used: &[FrameStats], measured: &[FrameStats]) -> Result<bool, TchError> {
    for (u, m) in used.iter().zip(measured) {
        let ((um, uv), (mm, mv)) = (&u[0], &m[0]);
        if statistics_jumped(um, uv, mm, mv)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The hook for one batch of tiles.
pub(super) struct TileHook<'a> {
    /// Per sample: its frame slot and core (x0, y0, x1, y1) relative to the tile.
    pub(super) samples: &'a [(usize, [i64; 4])],
    /// Height of the tiles, input pixels (a layer's scale is this over its height).
    pub(super) tile_height: i64,
    /// Statistics to normalise with, per frame; `None`: each tile its own.
    pub(super) given: Option<&'a [FrameStats]>,
    /// Where to gather each frame's moments, per layer.
    pub(super) collect: Option<&'a mut Vec<Vec<Option<Moments>>>>,
}

impl NormHook for TileHook<'_> {
    fn normalize(&mut self, layer: usize, x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor, TchError> {
        let (n, c, h, _) = x.size4()?;
        if let Some(acc) = self.collect.as_deref_mut() {
            let scale = self.tile_height / h;
            for (i, &(frame, [x0, y0, x1, y1])) in self.samples.iter().enumerate() {
                let region = x
                    .f_get(i as i64)?
                    .f_narrow(1, y0 / scale, (y1 - y0) / scale)?
                    .f_narrow(2, x0 / scale, (x1 - x0) / scale)?
                    .f_to_kind(Kind::Double)?;
                let count = ((y1 - y0) / scale * (x1 - x0) / scale) as f64;
                let mean = region.f_mean_dim(&[1i64, 2][..], false, Kind::Double)?;
                let m2 = region.f_sub(&mean.f_view([c, 1, 1])?)?.f_square()?.f_sum_dim_intlist(
                    &[1i64, 2][..],
                    false,
                    Kind::Double,
                )?;
                Moments::add_to(&mut acc[frame][layer], count, mean, m2)?;
            }
        }
        let Some(stats) = self.given else { return own_instance_norm(x, weight, bias) };
        let means = Tensor::f_stack(&self.samples.iter().map(|&(f, _)| &stats[f][layer].0).collect::<Vec<_>>(), 0)?;
        let vars = Tensor::f_stack(&self.samples.iter().map(|&(f, _)| &stats[f][layer].1).collect::<Vec<_>>(), 0)?;
        normalize_with(x, weight, bias, &means.f_view([n, c])?, &vars.f_view([n, c])?)
    }
}

/// Normalises with the whole frame's per-channel statistics (`mean`, biased `var`: 1×C, f32).
pub(super) struct FrameStatistics {
    /// Per-channel mean.
    pub(super) mean: Tensor,
    /// Per-channel biased variance.
    pub(super) var: Tensor,
}

impl NormHook for FrameStatistics {
    fn normalize(&mut self, _layer: usize, x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor, TchError> {
        normalize_with(x, weight, bias, &self.mean, &self.var)
    }
}
