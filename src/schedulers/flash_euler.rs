//! The Flash scheduler of HiDream-I1-Dev and -Fast (`FlashFlowMatchEulerDiscreteScheduler`):
//! at every step predict x0, then re-noise it to the next σ with fresh Gaussian noise (an
//! LCM-style step, not an ODE step).
//!
//! The official code's last step returns the sample it was given: it computes x0 and then
//! discards it (`step` in
//! https://github.com/HiDream-ai/HiDream-I1/blob/9b42dd606fecf8f78b974adb7e4d10331c91371a/hi_diffusers/schedulers/flash_flow_match.py#L329-L345;
//! ending at x_N = x0, as the scheduler is usually described, is not what runs, and the
//! fixtures come from the code). So the last model evaluation changes nothing, and
//! [`FlashEuler::model_steps`] lets the pipeline skip it.

use candle_core::{Result, Tensor};

use super::schedule::Schedule;

#[derive(Debug, Clone)]
pub struct FlashEuler {
    schedule: Schedule,
    step: usize,
}

impl FlashEuler {
    pub fn new(schedule: Schedule) -> Self {
        Self { schedule, step: 0 }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Whether the current step draws noise (all but the last).
    pub(crate) fn needs_noise(&self) -> bool {
        self.step + 1 < self.schedule.steps()
    }

    /// Steps whose model output matters: all but the last.
    pub(crate) fn model_steps(&self) -> usize {
        self.schedule.steps().saturating_sub(1)
    }

    /// One step; `noise` (same shape as `x`) is required unless this is the last step.
    pub fn step(&mut self, v: &Tensor, x: &Tensor, noise: Option<&Tensor>) -> Result<Tensor> {
        let i = self.step;
        let n = self.schedule.steps();
        if i >= n {
            candle_core::bail!("the scheduler has already taken all {n} steps");
        }
        let next = if i + 1 < n {
            let Some(noise) = noise else {
                candle_core::bail!("the Flash scheduler needs fresh noise at step {}", i + 1)
            };
            let x0 = (x - (v * f64::from(self.schedule.sigmas[i]))?)?;
            let sigma = f64::from(self.schedule.sigmas[i + 1]);
            ((noise * sigma)? + (x0 * (1.0 - sigma))?)?
        } else {
            x.clone()
        };
        self.step += 1;
        Ok(next)
    }
}
