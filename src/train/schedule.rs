//! Learning-rate schedules: the factor each step's rates are multiplied by.

use serde::{Deserialize, Serialize};

/// How the learning rates change over the main (after pre-training) steps of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The configured rates throughout (the original).
    #[default]
    Constant,
    /// Half a cosine from the configured rates at the first main step down toward zero at the
    /// run's last (Loshchilov & Hutter 2017, without restarts): late steps are small, so the
    /// weights settle instead of ending wherever the last noisy update left them.
    Cosine,
}

/// The factor on the configured learning rates at main step `step` (1-based) of `steps`:
/// the schedule's value times a linear warm-up over the first `warmup` steps (a fresh Adam's
/// first updates move every weight by the full rate, whatever its gradient's size).
/// Depends on nothing but its arguments, so a resumed run gets the same rates.
pub fn lr_factor(schedule: LrSchedule, warmup: u64, step: u64, steps: u64) -> f64 {
    let warm = if warmup > 0 && step < warmup { step as f64 / warmup as f64 } else { 1.0 };
    let shape = match schedule {
        LrSchedule::Constant => 1.0,
        LrSchedule::Cosine => {
            let done = step.saturating_sub(1) as f64 / steps.max(1) as f64;
            0.5 * (1.0 + (std::f64::consts::PI * done.min(1.0)).cos())
        }
    };
    warm * shape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_is_one_after_the_warm_up() {
        assert_eq!(lr_factor(LrSchedule::Constant, 0, 1, 300), 1.0);
        assert_eq!(lr_factor(LrSchedule::Constant, 0, 300, 300), 1.0);
        assert_eq!(lr_factor(LrSchedule::Constant, 4, 1, 300), 0.25);
        assert_eq!(lr_factor(LrSchedule::Constant, 4, 3, 300), 0.75);
        assert_eq!(lr_factor(LrSchedule::Constant, 4, 4, 300), 1.0);
        assert_eq!(lr_factor(LrSchedule::Constant, 4, 200, 300), 1.0);
    }

    #[test]
    fn cosine_falls_from_one_to_near_zero_through_a_half() {
        let f = |s| lr_factor(LrSchedule::Cosine, 0, s, 600);
        assert_eq!(f(1), 1.0);
        assert!((f(301) - 0.5).abs() < 1e-12, "{}", f(301));
        assert!(f(600) > 0.0 && f(600) < 1e-4, "{}", f(600));
        assert!((1..600).all(|s| f(s + 1) < f(s)));
        // The warm-up multiplies the schedule.
        let w = lr_factor(LrSchedule::Cosine, 10, 5, 600);
        assert!((w - 0.5 * f(5)).abs() < 1e-12);
    }
}
