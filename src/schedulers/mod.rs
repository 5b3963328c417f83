//! The samplers of the HiDream-I1 variants, with the exact schedules of the official code
//! (https://github.com/HiDream-ai/HiDream-I1/blob/9b42dd606fecf8f78b974adb7e4d10331c91371a/hi_diffusers/schedulers/).
//! Latents are kept in f32 between steps whatever the model dtype: the official pipeline's
//! scheduler arithmetic in bf16 drifts visibly from the same steps in f32.

mod flash_euler;
mod flow_unipc;
mod schedule;

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

pub use flash_euler::FlashEuler;
pub use flow_unipc::FlowUniPc;
pub use schedule::Schedule;
pub(crate) use schedule::{calculate_shift, diffusers_flow_unipc};

pub use schedule::{flash, flow_unipc};

/// Which sampler a preset uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerKind {
    /// Full: FlowUniPC, deterministic.
    FlowUnipc,
    /// Dev and Fast: Euler steps that re-noise x0 with fresh noise.
    Flash,
}

/// How the FlowUniPC schedule is shifted a second time, at `set_timesteps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ShiftMode {
    /// As the official pipeline: by e^mu, mu from the transformer's `max_seq` (3.158 for the
    /// released models).
    Dynamic,
    /// By the same fixed shift as the training grid.
    Fixed,
}

/// A sampler ready to run `steps` steps.
#[derive(Debug, Clone)]
pub enum Scheduler {
    FlowUniPc(FlowUniPc),
    Flash(FlashEuler),
}

impl Scheduler {
    /// `shift` is the scheduler's (init) shift; `max_seq` feeds mu for [`ShiftMode::Dynamic`].
    pub fn new(
        kind: SchedulerKind,
        steps: usize,
        shift: f64,
        mode: ShiftMode,
        max_seq: usize,
    ) -> Self {
        match kind {
            SchedulerKind::FlowUnipc => {
                let set_shift = match mode {
                    ShiftMode::Dynamic => calculate_shift(max_seq).exp(),
                    ShiftMode::Fixed => shift,
                };
                Self::FlowUniPc(FlowUniPc::new(flow_unipc(shift, set_shift, steps)))
            }
            SchedulerKind::Flash => Self::Flash(FlashEuler::new(flash(shift, steps))),
        }
    }

    /// UniPC (order 2, bh2, predict-x0) over an explicit schedule.
    pub(crate) fn unipc(schedule: Schedule) -> Self {
        Self::FlowUniPc(FlowUniPc::new(schedule))
    }

    /// The same sampler over the schedule's tail from step `first` on, fresh (no history):
    /// image-to-image starts there, as diffusers' img2img pipelines slice `timesteps[t_start:]`
    /// and begin the scheduler at that index. UniPC's order warm-up and its lower order at the
    /// end depend only on the steps taken and left, so the tail runs as the full schedule's
    /// last steps would from a fresh start.
    pub(crate) fn starting_at(&self, first: usize) -> Self {
        let s = self.schedule();
        let first = first.min(s.steps());
        let tail = Schedule {
            sigmas: s.sigmas[first..].to_vec(),
            timesteps: s.timesteps[first..].to_vec(),
        };
        match self {
            Self::FlowUniPc(_) => Self::FlowUniPc(FlowUniPc::new(tail)),
            Self::Flash(_) => Self::Flash(FlashEuler::new(tail)),
        }
    }

    pub fn schedule(&self) -> &Schedule {
        match self {
            Self::FlowUniPc(s) => s.schedule(),
            Self::Flash(s) => s.schedule(),
        }
    }

    /// How many steps need a model evaluation; the remaining ones (Flash's last) ignore it.
    pub(crate) fn model_steps(&self) -> usize {
        match self {
            Self::FlowUniPc(s) => s.schedule().steps(),
            Self::Flash(s) => s.model_steps(),
        }
    }

    /// Whether the next step needs fresh noise.
    pub(crate) fn needs_noise(&self) -> bool {
        match self {
            Self::FlowUniPc(_) => false,
            Self::Flash(s) => s.needs_noise(),
        }
    }

    pub fn step(&mut self, v: &Tensor, x: &Tensor, noise: Option<&Tensor>) -> Result<Tensor> {
        match self {
            Self::FlowUniPc(s) => s.step(v, x),
            Self::Flash(s) => s.step(v, x, noise),
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use super::*;

    /// A toy problem whose trajectories were computed with the official scheduler classes:
    /// v(x, σ) = 0.8·x − 0.3·σ + 0.05 from x = [0.5, −1, 0.25, 2].
    fn run(
        mut s: Scheduler,
        dtype: DType,
        noise: Option<[f32; 4]>,
        stop_after: Option<usize>,
    ) -> Vec<f64> {
        let dev = Device::Cpu;
        let mut x = Tensor::new(&[0.5f32, -1.0, 0.25, 2.0], &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let noise = noise.map(|n| Tensor::new(&n, &dev).unwrap().to_dtype(dtype).unwrap());
        let steps = s.schedule().steps();
        for i in 0..stop_after.map_or(steps, |k| k + 1) {
            let sigma = f64::from(s.schedule().sigmas[i]);
            let v = ((&x * 0.8).unwrap() + (0.05 - 0.3 * sigma)).unwrap();
            x = s.step(&v, &x, noise.as_ref()).unwrap();
        }
        x.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
    }

    fn close(actual: &[f64], expected: &[f64], tol: f64) {
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < tol, "{actual:?} vs {expected:?}");
        }
    }

    fn full() -> Scheduler {
        Scheduler::new(SchedulerKind::FlowUnipc, 50, 3.0, ShiftMode::Dynamic, 4096)
    }

    #[test]
    fn flow_unipc_follows_the_reference_vectors() {
        close(
            &run(full(), DType::F64, None, Some(0)),
            &[0.499036618, -0.993257895, 0.250320866, 1.991331131],
            1e-6,
        );
        close(
            &run(full(), DType::F64, None, Some(2)),
            &[0.496993767, -0.979410739, 0.250926349, 1.973398272],
            1e-6,
        );
        close(
            &run(full(), DType::F64, None, Some(24)),
            &[0.459029952, -0.778429439, 0.252786720, 1.696489344],
            1e-6,
        );
        close(
            &run(full(), DType::F64, None, None),
            &[0.279845684, -0.394405846, 0.167470429, 0.954097214],
            1e-6,
        );
        close(
            &run(full(), DType::F32, None, None),
            &[0.2798458, -0.3944055, 0.1674705, 0.9540974],
            2e-6,
        );
    }

    #[test]
    fn flash_follows_the_reference_vectors() {
        let eps = Some([0.1f32, -0.2, 0.3, -0.4]);
        let dev = || Scheduler::new(SchedulerKind::Flash, 28, 6.0, ShiftMode::Dynamic, 4096);
        close(
            &run(dev(), DType::F32, eps, Some(0)),
            &[0.1015825, -0.1984175, 0.3000000, -0.3933533],
            1e-6,
        );
        close(
            &run(dev(), DType::F32, eps, None),
            &[0.0834375, -0.0644624, 0.1820374, -0.1630623],
            1e-6,
        );
        let fast = Scheduler::new(SchedulerKind::Flash, 16, 3.0, ShiftMode::Dynamic, 4096);
        close(
            &run(fast, DType::F32, eps, None),
            &[0.0822205, -0.0619459, 0.1783314, -0.1580568],
            1e-6,
        );
        // The last step keeps the sample (the official code discards its x0).
        let a = run(dev(), DType::F32, eps, Some(26));
        assert_eq!(run(dev(), DType::F32, eps, None), a);
        assert_eq!(dev().model_steps(), 27);
    }

    /// Image-to-image's tail: the official FlowUniPC (HiDream-I1 @9b42dd6, shift 3, 50 steps,
    /// second shift e^1.15) with `set_begin_index(t_start)`, stepped over `timesteps[t_start:]`
    /// on the toy problem in f64 (`tools/fixtures/i2i_scheduler_tail.py`); t_start 0 is the
    /// full run above.
    #[test]
    fn the_tail_of_a_schedule_runs_as_the_reference_from_its_begin_index() {
        for (first, expected) in [
            (35, [0.329292517, -0.617916165, 0.171424403, 1.276501199]),
            (49, [0.473860287, -0.953502619, 0.235966469, 1.901223192]),
            (0, [0.279845684, -0.394405846, 0.167470429, 0.954097214]),
        ] {
            let tail = full().starting_at(first);
            assert_eq!(tail.schedule().steps(), 50 - first);
            assert_eq!(tail.schedule().sigmas[0], full().schedule().sigmas[first]);
            close(&run(tail, DType::F64, None, None), &expected, 1e-6);
        }
    }

    #[test]
    fn fixed_shift_shifts_twice_by_the_same_amount() {
        let s = Scheduler::new(SchedulerKind::FlowUnipc, 50, 3.0, ShiftMode::Fixed, 4096);
        let expected = flow_unipc(3.0, 3.0, 50);
        assert_eq!(s.schedule(), &expected);
        assert_ne!(s.schedule(), full().schedule());
    }

    #[test]
    fn flash_without_noise_is_an_error_and_no_step_past_the_end() {
        let mut s = Scheduler::new(SchedulerKind::Flash, 2, 3.0, ShiftMode::Dynamic, 4096);
        let x = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
        assert!(s.step(&x, &x, None).is_err());
        let mut s = Scheduler::new(SchedulerKind::FlowUnipc, 1, 3.0, ShiftMode::Dynamic, 4096);
        s.step(&x, &x, None).unwrap();
        assert!(s.step(&x, &x, None).is_err());
    }
}
