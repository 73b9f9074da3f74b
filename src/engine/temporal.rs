//! Temporal stability at inference: each InstanceNorm layer normalises a video frame with an
//! exponential moving average of the whole-frame statistics of the frames before it in the
//! shot, instead of the frame's own. A frame's own statistics jitter with compression noise
//! and with what enters and leaves the picture; the network turns that jitter into colour and
//! texture that pulses from frame to frame. The average is reset at a cut, found where the
//! first layer's statistics (which no earlier layer influences) jump from one frame to the next.
//!
//! The average is taken over a finite window ([`StatisticsSmoother::window`] frames, where the
//! older past would weigh under 1 %), recomputed from the window's own statistics each frame,
//! and a cut is decided from two neighbouring frames alone. So a layer's statistics depend on
//! its window and, through the layers before it, on theirs: a part of a video that starts
//! `layers × (window − 1)` frames early ([`StatisticsSmoother::warm_up_frames`]) normalises
//! its frames bit for bit as a run over the whole video does.
//!
//! The statistics are those of the whole frame in both the whole-frame and the exact tiled
//! path, and frames of one batch are folded in order, so tiles and `--batch` change nothing.

use std::collections::VecDeque;

use tch::{Kind, TchError, Tensor};

use crate::model::generator::{NormHook, NORM_EPS};

/// The moving average of every layer's statistics over the frames of a shot.
pub struct StatisticsSmoother {
    /// Weight of the past in the average (0: every frame its own statistics).
    past_weight: f64,
    /// Frames the average reaches back over, the current one included.
    window: usize,
    /// Per layer: the own (mean, biased variance) of the shot's last frames, oldest first,
    /// at most `window`, each 1×C f32.
    history: Vec<VecDeque<(Tensor, Tensor)>>,
    /// The previous frame's own first-layer statistics, to find cuts.
    previous_first: Option<(Tensor, Tensor)>,
    /// The average's weights for each history length (index n − 1), made once on the
    /// statistics' device: the same for every layer and frame.
    weights: Vec<Option<Tensor>>,
    /// Per frame of the batch being run: whether it starts a shot (decided at layer 0).
    starts_shot: Vec<bool>,
    /// Frames that started a shot, for the log.
    cuts: u64,
}

/// How far the first layer's statistics may move between frames of one shot, in units of
/// their spread (mean channel shift or relative spread change); what the tiled engine's
/// `temporal` strategy also takes as a cut.
const CUT_THRESHOLD: f64 = 0.25;

/// The weight of the past beyond the window, at most: 1 %.
const FORGOTTEN_WEIGHT: f64 = 0.01;

impl StatisticsSmoother {
    /// A smoother whose average gives the past `past_weight` (in [0, 1)).
    pub fn new(past_weight: f64) -> Self {
        let past_weight = past_weight.clamp(0.0, 0.999);
        Self {
            past_weight,
            window: Self::window_for(past_weight),
            history: Vec::new(),
            previous_first: None,
            weights: Vec::new(),
            starts_shot: Vec::new(),
            cuts: 0,
        }
    }

    /// Frames the average of `past_weight` reaches back over, the current one included: the
    /// fewest after which the older past would weigh at most 1 %.
    pub fn window_for(past_weight: f64) -> usize {
        if past_weight <= 0.0 {
            return 1;
        }
        (FORGOTTEN_WEIGHT.ln() / past_weight.ln()).ceil().max(1.0) as usize
    }

    /// Frames a run must see before a frame to normalise it exactly as a run from the start
    /// of the video does, for a network of `layers` InstanceNorm layers: each layer's window
    /// (`window − 1` frames back), once per layer, since a layer's own statistics depend on
    /// how the layers before it were normalised over their windows. (A run's first frame
    /// starts a shot, which is where a window would begin anyway; a cut inside the window is
    /// found from the two frames around it, both seen.)
    pub fn warm_up_frames(&self, layers: usize) -> usize {
        layers * (self.window - 1)
    }

    /// Frames that started a new shot so far (the first frame counts).
    pub fn shots(&self) -> u64 {
        self.cuts
    }

    /// Statistics to normalise layer `layer` of a batch with, given each frame's own (`mean`,
    /// biased `var`: N×C, f32), in frame order; returns N×C each.
    pub fn smooth(&mut self, layer: usize, mean: &Tensor, var: &Tensor) -> Result<(Tensor, Tensor), TchError> {
        if self.history.len() <= layer {
            self.history.resize_with(layer + 1, VecDeque::new);
        }
        let (n, _) = mean.size2()?;
        if layer == 0 {
            self.starts_shot.clear();
        }
        let (mut means, mut vars) = (Vec::new(), Vec::new());
        for i in 0..n {
            let (m, v) = (mean.f_narrow(0, i, 1)?, var.f_narrow(0, i, 1)?);
            if layer == 0 {
                let cut = match &self.previous_first {
                    Some((pm, pv)) => statistics_jumped(pm, pv, &m, &v)?,
                    None => true,
                };
                self.previous_first = Some((m.shallow_clone(), v.shallow_clone()));
                self.cuts += u64::from(cut);
                self.starts_shot.push(cut);
            }
            let history = &mut self.history[layer];
            if self.starts_shot.get(i as usize).copied().unwrap_or(true) {
                history.clear();
            }
            if history.len() == self.window {
                history.pop_front();
            }
            history.push_back((m, v));
            let n = history.len();
            if self.weights.len() < n {
                self.weights.resize_with(n, || None);
            }
            let weights = match &mut self.weights[n - 1] {
                Some(w) => w,
                slot => slot.insert(average_weights(n, self.past_weight, history[0].0.device())?),
            };
            let (used_mean, used_var) = windowed_average(history, weights)?;
            means.push(used_mean);
            vars.push(used_var);
        }
        Ok((Tensor::f_cat(&means, 0)?, Tensor::f_cat(&vars, 0)?))
    }
}

/// The weights of an exponential moving average of past weight `w` started afresh `n` frames
/// back, oldest first: the oldest weighs w^(n−1), the k-th newest (1 − w)·w^k; 1×n f32.
fn average_weights(n: usize, w: f64, device: tch::Device) -> Result<Tensor, TchError> {
    let weights: Vec<f32> = (0..n)
        .map(|i| {
            let age = (n - 1 - i) as i32;
            if i == 0 {
                w.powi(age) as f32
            } else {
                ((1.0 - w) * w.powi(age)) as f32
            }
        })
        .collect();
    Tensor::from_slice(&weights).f_to_device(device)?.f_view([1, n as i64])
}

/// The moving average of `history` (oldest first) with `weights` (from [`average_weights`]):
/// one weighted sum, the same arithmetic wherever the window comes from.
fn windowed_average(history: &VecDeque<(Tensor, Tensor)>, weights: &Tensor) -> Result<(Tensor, Tensor), TchError> {
    if history.len() == 1 {
        let (m, v) = &history[0];
        return Ok((m.shallow_clone(), v.shallow_clone()));
    }
    let stack = |pick: fn(&(Tensor, Tensor)) -> &Tensor| -> Result<Tensor, TchError> {
        let rows: Vec<&Tensor> = history.iter().map(pick).collect();
        weights.f_matmul(&Tensor::f_cat(&rows, 0)?)
    };
    Ok((stack(|h| &h.0)?, stack(|h| &h.1)?))
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
    fn the_window_forgets_the_past_so_a_late_start_catches_up_exactly() {
        let w = 0.6;
        let window = StatisticsSmoother::window_for(w);
        // 0.6^9 ≈ 0.0101, 0.6^10 ≈ 0.006: ten frames.
        assert_eq!(window, 10);
        assert_eq!(StatisticsSmoother::window_for(0.0), 1);
        assert_eq!(StatisticsSmoother::window_for(0.9), 44);
        // A slow drift (no cut): a run from frame 0 and one that starts `warm_up_frames`
        // before frame 25 give frame 25 onwards bit for bit the same statistics.
        let frames: Vec<[f32; 2]> = (0..40).map(|i| [0.01 * i as f32, (0.013 * i as f32).sin()]).collect();
        // The (mean, variance) used for each frame of a run over `frames` from `from` on.
        let run = |frames: &[[f32; 2]], from: usize| {
            let mut s = StatisticsSmoother::new(w);
            frames[from..]
                .iter()
                .map(|f| {
                    let (m, v) = stats(f);
                    let (m, v) = s.smooth(0, &m, &v).unwrap();
                    (Vec::<f32>::try_from(m.view([-1])).unwrap(), Vec::<f32>::try_from(v.view([-1])).unwrap())
                })
                .collect::<Vec<_>>()
        };
        let warm_up = StatisticsSmoother::new(w).warm_up_frames(1);
        let whole = run(&frames, 0);
        let late = run(&frames, 25 - warm_up);
        assert_eq!(whole[25..], late[warm_up..]);
        // Starting one frame later is not exact.
        let too_late = run(&frames, 26 - warm_up);
        assert_ne!(whole[25], too_late[warm_up - 1]);
        // A cut inside the window: a frame far from the others restarts both runs alike.
        let mut jumpy = frames.clone();
        jumpy[20] = [9.0, 9.0];
        assert_eq!(run(&jumpy, 0)[25..], run(&jumpy, 25 - warm_up)[warm_up..]);
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
