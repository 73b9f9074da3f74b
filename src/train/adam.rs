//! Adam with its moments in plain tensors, so a checkpoint holds the whole optimiser state
//! and a resumed run continues exactly.

use std::collections::BTreeMap;

use tch::{TchError, Tensor};

/// Adam over a fixed set of named parameters.
pub struct Adam {
    params: BTreeMap<String, Tensor>,
    first: BTreeMap<String, Tensor>,
    second: BTreeMap<String, Tensor>,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// Updates done so far (for bias correction).
    pub steps: i64,
}

impl Adam {
    /// An optimiser for `params` (trainable tensors, by name).
    pub fn new(params: impl IntoIterator<Item = (String, Tensor)>, lr: f64, beta1: f64, beta2: f64) -> Self {
        let params: BTreeMap<String, Tensor> = params.into_iter().collect();
        let zeros = |t: &Tensor| t.zeros_like();
        let first = params.iter().map(|(k, t)| (k.clone(), zeros(t))).collect();
        let second = params.iter().map(|(k, t)| (k.clone(), zeros(t))).collect();
        Self { params, first, second, lr, beta1, beta2, eps: 1e-8, steps: 0 }
    }

    /// Sets the learning rate of the next updates (a schedule's value for the step).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// Zeroes the gradients.
    pub fn zero_grad(&mut self) {
        for p in self.params.values_mut() {
            p.zero_grad();
        }
    }

    /// Back-propagates `loss` and applies one update.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<(), TchError> {
        self.zero_grad();
        loss.f_backward()?;
        self.steps += 1;
        let t = self.steps as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let step_size = self.lr / (1.0 - b1.powi(t));
        let correction2 = (1.0 - b2.powi(t)).sqrt();
        tch::no_grad(|| -> Result<(), TchError> {
            for (name, p) in &self.params {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let m = self.first.get_mut(name).expect("moments for every parameter");
                let _ = m.f_mul_scalar_(b1)?.f_add_(&g.f_mul_scalar(1.0 - b1)?)?;
                let v = self.second.get_mut(name).expect("moments for every parameter");
                let _ = v.f_mul_scalar_(b2)?.f_add_(&g.f_mul(&g)?.f_mul_scalar(1.0 - b2)?)?;
                let denom = v.f_sqrt()?.f_div_scalar(correction2)?.f_add_scalar(self.eps)?;
                let mut p = p.shallow_clone();
                let _ = p.f_sub_(&m.f_div(&denom)?.f_mul_scalar(step_size)?)?;
            }
            Ok(())
        })
    }

    /// The state tensors by name (`m.NAME`, `v.NAME`), for checkpoints.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let m = self.first.iter().map(|(k, t)| (format!("m.{k}"), t.shallow_clone()));
        let v = self.second.iter().map(|(k, t)| (format!("v.{k}"), t.shallow_clone()));
        m.chain(v).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn first_step_moves_each_weight_by_lr() {
        // With bias correction, Adam's first step is lr · sign(g) (up to eps).
        let p = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let mut adam = Adam::new([("p".to_string(), p.shallow_clone())], 0.1, 0.5, 0.999);
        let loss = (&p * Tensor::from_slice(&[3.0f32, -0.5])).sum(Kind::Float);
        adam.backward_step(&loss).unwrap();
        let after: Vec<f32> = Vec::try_from(p.detach()).unwrap();
        assert!((after[0] - 0.9).abs() < 1e-5 && (after[1] + 1.9).abs() < 1e-5, "{after:?}");
        let _ = Device::Cpu;
    }
}
