//! The official `FlowUniPCMultistepScheduler` of HiDream-I1-Full: UniPC of order 2 with the bh2
//! B(h), predicting x0, a UniC corrector at every step after the first, and first order at the
//! start and at the last step. Driven by a step counter (the reference's timestep lookup would
//! break on repeated truncated timesteps).

use candle_core::{Result, Tensor};

use super::schedule::Schedule;

#[derive(Debug, Clone)]
pub struct FlowUniPc {
    schedule: Schedule,
    step: usize,
    /// x0 predictions of the last two steps, oldest first.
    outputs: Vec<Tensor>,
    last_sample: Option<Tensor>,
    /// The predictor order used at the previous step (the corrector's order now).
    last_order: usize,
    lower_order_nums: usize,
}

const ORDER: usize = 2;

impl FlowUniPc {
    pub fn new(schedule: Schedule) -> Self {
        Self {
            schedule,
            step: 0,
            outputs: Vec::with_capacity(ORDER),
            last_sample: None,
            last_order: 0,
            lower_order_nums: 0,
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn sigma(&self, i: usize) -> f64 {
        f64::from(self.schedule.sigmas[i])
    }

    /// λ = ln α − ln σ with α = 1 − σ (+∞ at σ = 0).
    fn lambda(&self, i: usize) -> f64 {
        let s = self.sigma(i);
        (1.0 - s).ln() - s.ln()
    }

    /// One step from `x` at step i with velocity `v` (the negated model output, ≈ ε − x0).
    pub fn step(&mut self, v: &Tensor, x: &Tensor) -> Result<Tensor> {
        let i = self.step;
        let n = self.schedule.steps();
        if i >= n {
            candle_core::bail!("the scheduler has already taken all {n} steps");
        }
        let m = (x - (v * self.sigma(i))?)?;
        let x = match (&self.last_sample, i > 0) {
            (Some(last), true) => self.correct(&m, last)?,
            _ => x.clone(),
        };
        if self.outputs.len() == ORDER {
            self.outputs.remove(0);
        }
        self.outputs.push(m);
        let order = ORDER.min(n - i).min(self.lower_order_nums + 1);
        self.last_sample = Some(x.clone());
        let next = self.predict(&x, order)?;
        self.last_order = order;
        self.lower_order_nums = (self.lower_order_nums + 1).min(ORDER);
        self.step += 1;
        Ok(next)
    }

    /// UniP from step i to i+1 (bh2, x0 form); ρ is fixed at ½ for order 2.
    fn predict(&self, x: &Tensor, order: usize) -> Result<Tensor> {
        let i = self.step;
        let (sigma_t, sigma_s0) = (self.sigma(i + 1), self.sigma(i));
        let alpha_t = 1.0 - sigma_t;
        let h = self.lambda(i + 1) - self.lambda(i);
        let phi = (-h).exp_m1();
        let b_h = phi;
        let m0 = &self.outputs[self.outputs.len() - 1];
        // σ_N = 0 gives h = ∞ and φ = −1, so the last step returns m0 exactly.
        let base = ((x * (sigma_t / sigma_s0))? - (m0 * (alpha_t * phi))?)?;
        if order == 1 {
            return Ok(base);
        }
        let m1 = &self.outputs[self.outputs.len() - 2];
        let r = (self.lambda(i - 1) - self.lambda(i)) / h;
        let d1 = ((m1 - m0)? / r)?;
        base - (d1 * (alpha_t * b_h * 0.5))?
    }

    /// UniC at step i: corrects the current sample using this step's x0 prediction `m` and the
    /// sample before the last predictor.
    fn correct(&self, m: &Tensor, last_sample: &Tensor) -> Result<Tensor> {
        let i = self.step;
        let order = self.last_order;
        let (sigma_t, sigma_s0) = (self.sigma(i), self.sigma(i - 1));
        let alpha_t = 1.0 - sigma_t;
        let h = self.lambda(i) - self.lambda(i - 1);
        let hh = -h;
        let phi = hh.exp_m1();
        let b_h = phi;
        let m0 = &self.outputs[self.outputs.len() - 1];
        let base = ((last_sample * (sigma_t / sigma_s0))? - (m0 * (alpha_t * phi))?)?;
        let d1_t = (m - m0)?;
        let correction = if order == 1 {
            (d1_t * 0.5)?
        } else {
            let m1 = &self.outputs[self.outputs.len() - 2];
            let r = (self.lambda(i - 2) - self.lambda(i - 1)) / h;
            let d1 = ((m1 - m0)? / r)?;
            // Solve [[1, 1], [r, 1]]·ρ = [k1/B, 2·k2/B] with k1 = φ/hh − 1, k2 = k1/hh − ½.
            let k1 = phi / hh - 1.0;
            let k2 = k1 / hh - 0.5;
            let (b0, b1) = (k1 / b_h, 2.0 * k2 / b_h);
            let det = 1.0 - r;
            let rho0 = (b0 - b1) / det;
            let rho1 = (b1 - r * b0) / det;
            ((d1 * rho0)? + (d1_t * rho1)?)?
        };
        base - (correction * (alpha_t * b_h))?
    }
}
