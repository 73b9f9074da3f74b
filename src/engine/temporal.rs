//! Temporal stability at inference: each InstanceNorm layer normalises a video frame with an
//! exponential moving average of the whole-frame statistics of the frames before it in the
//! shot, instead of the frame's own. A frame's own statistics jitter with compression noise
//! and with what enters and leaves the picture; the network turns that jitter into colour and
//! texture that pulses from frame to frame. The average is reset at a cut, found where the
//! first layer's statistics (which no earlier layer influences) jump.
//!
//! The statistics are those of the whole frame in both the whole-frame and the exact tiled
//! path, and frames of one batch are folded in order, so tiles and `--batch` change nothing.

use tch::{Kind, TchError, Tensor};

use crate::model::generator::{NormHook, NORM_EPS};

/// The moving average of every layer's statistics over the frames of a shot.
pub struct StatisticsSmoother {
    /// Weight of the past in the average (0: every frame its own statistics).
    past_weight: f64,
    /// Per layer: the (mean, biased variance) used for the last frame, 1×C f32.
    state: Vec<Option<(Tensor, Tensor)>>,
    /// Per frame of the batch being run: whether it starts a shot (decided at layer 0).
    starts_shot: Vec<bool>,
    /// Frames that started a shot, for the log.
    cuts: u64,
}

/// How far the first layer's statistics may move between frames of one shot, in units of
/// their spread (mean channel shift or relative spread change); what the tiled engine's
/// `temporal` strategy also takes as a cut.
const CUT_THRESHOLD: f64 = 0.25;

impl StatisticsSmoother {
    /// A smoother whose average gives the past `past_weight` (in [0, 1)).
    pub fn new(past_weight: f64) -> Self {
        Self { past_weight: past_weight.clamp(0.0, 0.999), state: Vec::new(), starts_shot: Vec::new(), cuts: 0 }
    }

    /// Frames that started a new shot so far (the first frame counts).
    pub fn shots(&self) -> u64 {
        self.cuts
    }

    /// Statistics to normalise layer `layer` of a batch with, given each frame's own (`mean`,
    /// biased `var`: N×C, f32), in frame order; returns N×C each.
    pub fn smooth(&mut self, layer: usize, mean: &Tensor, var: &Tensor) -> Result<(Tensor, Tensor), TchError> {
        if self.state.len() <= layer {
            self.state.resize_with(layer + 1, || None);
        }
        let (n, _) = mean.size2()?;
        if layer == 0 {
            self.starts_shot.clear();
        }
        let (mut means, mut vars) = (Vec::new(), Vec::new());
        for i in 0..n {
            let (m, v) = (mean.f_narrow(0, i, 1)?, var.f_narrow(0, i, 1)?);
            if layer == 0 {
                let cut = match &self.state[0] {
                    Some((pm, pv)) => statistics_jumped(pm, pv, &m, &v)?,
                    None => true,
                };
                self.cuts += u64::from(cut);
                self.starts_shot.push(cut);
            }
            let fresh = self.starts_shot.get(i as usize).copied().unwrap_or(true);
            let used = match (&self.state[layer], fresh) {
                (Some((pm, pv)), false) => {
                    let w = self.past_weight;
                    (
                        pm.f_mul_scalar(w)?.f_add(&m.f_mul_scalar(1.0 - w)?)?,
                        pv.f_mul_scalar(w)?.f_add(&v.f_mul_scalar(1.0 - w)?)?,
                    )
                }
                _ => (m, v),
            };
            means.push(used.0.shallow_clone());
            vars.push(used.1.shallow_clone());
            self.state[layer] = Some(used);
        }
        Ok((Tensor::f_cat(&means, 0)?, Tensor::f_cat(&vars, 0)?))
    }
}

/// Whether per-channel statistics moved more than [`CUT_THRESHOLD`] of their spread: the
/// mean channel shift, or the mean relative change of the spread (a cut).
pub fn statistics_jumped(prev_mean: &Tensor, prev_var: &Tensor, mean: &Tensor, var: &Tensor) -> Result<bool, TchError> {
    let spread = prev_var.f_add_scalar(NORM_EPS)?.f_sqrt()?;
    let shift = mean.f_sub(prev_mean)?.f_abs()?.f_div(&spread)?.f_mean(Kind::Float)?.double_value(&[]);
    let change = var
        .f_add_scalar(NORM_EPS)?
        .f_sqrt()?
        .f_div(&spread)?
        .f_sub_scalar(1.0)?
        .f_abs()?
        .f_mean(Kind::Float)?
        .double_value(&[]);
    Ok(shift > CUT_THRESHOLD || change > CUT_THRESHOLD)
}

/// Per-channel (mean, biased variance) of each image of an N×C×H×W batch, N×C f32.
pub fn own_statistics(x: &Tensor) -> Result<(Tensor, Tensor), TchError> {
    let (var, mean) = x.f_to_kind(Kind::Float)?.f_var_mean_correction(&[2i64, 3][..], 0, false)?;
    Ok((mean, var))
}

/// InstanceNorm of an N×C×H×W batch with given statistics (`mean`, biased `var`: N×C, f32):
/// y = x · a + b', with a = weight / √(var + eps) and b' = bias − mean · a.
pub fn normalize_with(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    mean: &Tensor,
    var: &Tensor,
) -> Result<Tensor, TchError> {
    let (n, c) = mean.size2()?;
    let a = weight.f_to_kind(Kind::Float)?.f_view([1, c])?.f_div(&var.f_add_scalar(NORM_EPS)?.f_sqrt()?)?;
    let b = bias.f_to_kind(Kind::Float)?.f_view([1, c])?.f_sub(&mean.f_mul(&a)?)?;
    let (a, b) = (a.f_view([n, c, 1, 1])?.f_to_kind(x.kind())?, b.f_view([n, c, 1, 1])?.f_to_kind(x.kind())?);
    x.f_mul(&a)?.f_add(&b)
}

/// Whole frames normalised with smoothed statistics.
pub struct SmoothedStatistics<'a>(pub &'a mut StatisticsSmoother);

impl NormHook for SmoothedStatistics<'_> {
    fn normalize(&mut self, layer: usize, x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor, TchError> {
        let (mean, var) = own_statistics(x)?;
        let (mean, var) = self.0.smooth(layer, &mean, &var)?;
        normalize_with(x, weight, bias, &mean, &var)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn stats(values: &[f32]) -> (Tensor, Tensor) {
        let mean = Tensor::from_slice(values).view([1, values.len() as i64]);
        (mean, Tensor::ones([1, values.len() as i64], (Kind::Float, Device::Cpu)))
    }

    #[test]
    fn the_average_follows_a_shot_and_resets_at_a_cut() {
        let mut s = StatisticsSmoother::new(0.5);
        let frames = [[0.0f32, 0.0], [0.2, 0.2], [0.2, 0.2], [5.0, 5.0]];
        let mut used = Vec::new();
        for f in frames {
            let (m, v) = stats(&f);
            // Layer 0 decides the cut; layer 1 follows it.
            let (m0, _) = s.smooth(0, &m, &v).unwrap();
            let (m1, _) = s.smooth(1, &m, &v).unwrap();
            assert!(m0.equal(&m1));
            used.push(m0.double_value(&[0, 0]));
        }
        // 0 → 0.1 → 0.15 (half-way each frame), then a jump of 5 spreads starts a new shot.
        assert_eq!(used.iter().map(|v| (v * 1000.0).round() / 1000.0).collect::<Vec<_>>(), [0.0, 0.1, 0.15, 5.0]);
        assert_eq!(s.shots(), 2);
    }

    #[test]
    fn a_batch_is_folded_in_frame_order() {
        let (mut one, mut batched) = (StatisticsSmoother::new(0.7), StatisticsSmoother::new(0.7));
        let means = Tensor::from_slice(&[0.0f32, 0.1, 0.3, 0.2, 0.15, 0.05]).view([3, 2]);
        let vars = Tensor::from_slice(&[1.0f32, 1.1, 0.9, 1.0, 1.2, 1.0]).view([3, 2]);
        let (bm, bv) = batched.smooth(0, &means, &vars).unwrap();
        for i in 0..3 {
            let (m, v) = one.smooth(0, &means.narrow(0, i, 1), &vars.narrow(0, i, 1)).unwrap();
            assert!(m.allclose(&bm.narrow(0, i, 1), 1e-6, 1e-7, false));
            assert!(v.allclose(&bv.narrow(0, i, 1), 1e-6, 1e-7, false));
        }
    }
}
