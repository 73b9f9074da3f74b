//! Per-channel statistics of one layer of one frame, gathered part by part (tile by tile, or
//! band by band of an activation kept in a file) and combined exactly: what the exact tiled
//! path normalises with, so tiles give the whole frame's result.

use tch::{Kind, TchError, Tensor};

/// Running moments of one layer of one frame (count, mean, sum of squared deviations), in f64.
pub(crate) struct Moments {
    n: f64,
    mean: Tensor,
    m2: Tensor,
}

impl Moments {
    /// Adds a part's moments (`n` values, their `mean` and sum of squared deviations `m2`)
    /// to `slot`, which holds none before the first part.
    pub(crate) fn add_to(slot: &mut Option<Moments>, n: f64, mean: Tensor, m2: Tensor) -> Result<(), TchError> {
        match slot {
            Some(m) => m.add(n, &mean, &m2),
            None => {
                *slot = Some(Moments { n, mean, m2 });
                Ok(())
            }
        }
    }

    /// Mean and biased variance, f32.
    pub(crate) fn mean_var(&self) -> Result<(Tensor, Tensor), TchError> {
        Ok((self.mean.f_to_kind(Kind::Float)?, self.m2.f_div_scalar(self.n)?.f_to_kind(Kind::Float)?))
    }

    /// Chan et al.'s parallel combination.
    fn add(&mut self, n: f64, mean: &Tensor, m2: &Tensor) -> Result<(), TchError> {
        let total = self.n + n;
        let delta = mean.f_sub(&self.mean)?;
        self.mean = self.mean.f_add(&delta.f_mul_scalar(n / total)?)?;
        self.m2 = self.m2.f_add(m2)?.f_add(&delta.f_square()?.f_mul_scalar(self.n * n / total)?)?;
        self.n = total;
        Ok(())
    }
}
