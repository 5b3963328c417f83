//! REPA-E's samplers (samplers.py @3ad8046) on the linear path: Euler for the probability-flow
//! ODE and Euler–Maruyama for the SDE, with classifier-free guidance inside a time interval.
//!
//! As in the reference the state is f64 and the model runs in f32 on the state cast down; every
//! f64 operation is done in the reference's order, so with the same velocities the results are
//! the same to the last bit. t = 1 is noise, t = 0 data.

use candle_core::{DType, Result, Tensor};

/// Which sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `euler_sampler`: t on linspace(1, 0, N + 1), x ← x + (t' − t)·v.
    Ode,
    /// `euler_maruyama_sampler`: t on linspace(1, 0.04, N) then 0; N − 1 stochastic steps and
    /// a last noise-free one from 0.04 to 0.
    Sde,
}

/// Where the SDE grid stops before its final noise-free step.
pub const SDE_LAST_T: f64 = 0.04;

/// Classifier-free guidance: `uncond + scale·(cond − uncond)` at steps whose start time t lies
/// in [low, high] (both ends included), when scale > 1.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Guidance {
    pub scale: f64,
    pub low: f64,
    pub high: f64,
}

impl Guidance {
    pub const NONE: Self = Self {
        scale: 1.0,
        low: 0.0,
        high: 1.0,
    };

    /// Whether the step starting at `t` is guided (REPA-E's test, in its order).
    pub fn applies_at(&self, t: f64) -> bool {
        self.scale > 1.0 && t <= self.high && t >= self.low
    }
}

/// What the sampler needs from a model: the velocity v at latents `x` [B, C, H, W], time `t`
/// [B] and labels `y` [B] (u32), all f32.
pub trait VelocityModel {
    fn velocity(&self, x: &Tensor, t: &Tensor, y: &Tensor) -> Result<Tensor>;
}

impl VelocityModel for super::sit::Sit {
    fn velocity(&self, x: &Tensor, t: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.forward(x, t, y)
    }
}

/// One sampling run's schedule and guidance.
#[derive(Debug, Clone)]
pub struct Sampler {
    mode: Mode,
    grid: Vec<f64>,
    guidance: Guidance,
}

impl Sampler {
    /// `steps` model evaluations (each doubled where guided). `steps` ≥ 1 for the ODE, ≥ 2 for
    /// the SDE (its grid needs two points before the final 0).
    pub fn new(mode: Mode, steps: usize, guidance: Guidance) -> Self {
        Self {
            mode,
            grid: time_grid(mode, steps),
            guidance,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The times, from 1 to 0: `steps + 1` values.
    pub fn grid(&self) -> &[f64] {
        &self.grid
    }

    pub fn steps(&self) -> usize {
        self.grid.len() - 1
    }

    /// Fresh noise tensors the run draws: one per stochastic step (SDE: steps − 1; ODE: none).
    pub fn noise_draws(&self) -> usize {
        match self.mode {
            Mode::Ode => 0,
            Mode::Sde => self.steps().saturating_sub(1),
        }
    }

    /// Whether step `i` needs fresh noise.
    pub fn draws_noise_at(&self, i: usize) -> bool {
        i < self.noise_draws()
    }

    /// Whether step `i` is guided (and so evaluates the model on a doubled batch).
    pub fn guided_at(&self, i: usize) -> bool {
        self.guidance.applies_at(self.grid[i])
    }

    /// Step `i`, from `grid[i]` to `grid[i + 1]`. `x`: the state [B, C, H, W] in f64; `y`: the
    /// labels [B] (u32); `null`: the null class, needed where the step is guided; `noise`: the
    /// step's fresh N(0, 1) noise [B, C, H, W] where [`Self::draws_noise_at`]. Returns the new
    /// state in f64.
    pub fn step(
        &self,
        model: &impl VelocityModel,
        x: &Tensor,
        labels: (&Tensor, u32),
        i: usize,
        noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (input, labels, t) = self.model_inputs(x, labels, i)?;
        let v = model
            .velocity(&input.to_dtype(DType::F32)?, &t, &labels)?
            .to_dtype(DType::F64)?;
        self.advance(x, &input, &v, i, noise)
    }

    /// Step `i`'s model inputs: the state, doubled as [x, x] where guided (f64), the labels
    /// ([y, null] where guided) and the time, f32 [batch] (the reference hands the model the f64
    /// time cast to the latents' dtype).
    pub fn model_inputs(
        &self,
        x: &Tensor,
        (y, null): (&Tensor, u32),
        i: usize,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (input, labels) = if self.guided_at(i) {
            let nulls = Tensor::full(null, y.dims(), y.device())?;
            (Tensor::cat(&[x, x], 0)?, Tensor::cat(&[y, &nulls], 0)?)
        } else {
            (x.clone(), y.clone())
        };
        let t = Tensor::full(self.grid[i] as f32, input.dim(0)?, x.device())?;
        Ok((input, labels, t))
    }

    /// Classifier-free guidance on `d` [batch, …] (f64): `uncond + scale·(cond − uncond)` over
    /// the two halves where step `i` is guided, else `d` itself.
    pub fn guide(&self, d: &Tensor, i: usize) -> Result<Tensor> {
        if !self.guided_at(i) {
            return Ok(d.clone());
        }
        let half = d.dim(0)? / 2;
        let (cond, uncond) = (d.narrow(0, 0, half)?, d.narrow(0, half, half)?);
        &uncond + (cond - &uncond)?.affine(self.guidance.scale, 0.0)?
    }

    /// The update of step `i` from the model's velocity `v` (f64) at `input` (the state, doubled
    /// where guided): the drift (SDE) or `v` (ODE), guided, then x + d·dt (+ noise). Any stream
    /// on the same path steps this way: the latents, and the pixel stream of the hand-off.
    pub fn advance(
        &self,
        x: &Tensor,
        input: &Tensor,
        v: &Tensor,
        i: usize,
        noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (t_cur, t_next) = (self.grid[i], self.grid[i + 1]);
        let d = match self.mode {
            Mode::Ode => v.clone(),
            Mode::Sde => sde_drift(v, input, t_cur)?,
        };
        let d = self.guide(&d, i)?;
        let dt = t_next - t_cur;
        match (self.mode, noise) {
            (Mode::Sde, Some(eps)) if self.draws_noise_at(i) => {
                // x + d·dt + sqrt(2t)·(ε·sqrt|dt|), rounded in this order as the reference.
                let deps = eps.to_dtype(DType::F64)?.affine(dt.abs().sqrt(), 0.0)?;
                (x + d.affine(dt, 0.0)?)? + deps.affine((2.0 * t_cur).sqrt(), 0.0)?
            }
            (Mode::Sde, None) if self.draws_noise_at(i) => {
                candle_core::bail!("SDE step {i} needs fresh noise and none was given")
            }
            _ => x + d.affine(dt, 0.0)?,
        }
    }
}

/// The SDE drift v − ½·w(t)·s with w(t) = 2t and the score of the linear path
/// s = (−(1 − t)·v − x) / (t² + (1 − t)·t), each operation as samplers.py rounds it.
fn sde_drift(v: &Tensor, x: &Tensor, t: f64) -> Result<Tensor> {
    // alpha / d_alpha with alpha = 1 − t, d_alpha = −1; var = sigma² − ratio·d_sigma·sigma.
    let ratio = (1.0 - t) / -1.0;
    let var = t * t - ratio * t;
    let var = Tensor::new(var, x.device())?;
    let score = (v.affine(ratio, 0.0)? - x)?.broadcast_div(&var)?;
    // 0.5 · diffusion = 0.5 · (2t) = t exactly.
    v - score.affine(0.5 * (2.0 * t), 0.0)?
}

/// The time grid: ODE linspace(1, 0, steps + 1); SDE linspace(1, 0.04, steps) then 0.
pub fn time_grid(mode: Mode, steps: usize) -> Vec<f64> {
    match mode {
        Mode::Ode => torch_linspace(1.0, 0.0, steps + 1),
        Mode::Sde => {
            let mut grid = torch_linspace(1.0, SDE_LAST_T, steps);
            grid.push(0.0);
            grid
        }
    }
}

/// `torch.linspace(start, end, n, dtype=float64)` on the CPU, bit for bit: the first half is
/// start + i·step and the second end − (n − 1 − i)·step, each a fused multiply-add as PyTorch's
/// vectorised fill computes it (checked against torch 2.15 for every n up to 400; a plain
/// multiply-then-add differs in the last bit for about 1 value in 8, which matters where a
/// time sits on a guidance interval's end).
fn torch_linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f64;
    let halfway = n / 2;
    (0..n)
        .map(|i| {
            if i < halfway {
                (i as f64).mul_add(step, start)
            } else {
                (-((n - 1 - i) as f64)).mul_add(step, end)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn grids_match_torch_linspace() {
        // torch.linspace(1, 0.04, 50, dtype=torch.float64)[i] for the values where the fused
        // and plain formulas differ (found with torch 2.15).
        let sde = time_grid(Mode::Sde, 50);
        assert_eq!(sde.len(), 51);
        assert_eq!(sde[0], 1.0);
        assert_eq!(sde[11], 0.7844897959183673);
        assert_eq!(sde[21], 0.5885714285714286);
        assert_eq!(sde[26], 0.4906122448979592);
        assert_eq!(sde[49], 0.04);
        assert_eq!(sde[50], 0.0);
        let ode = time_grid(Mode::Ode, 50);
        assert_eq!(ode[9], 0.82);
        assert_eq!(ode[17], 0.66);
        assert_eq!(ode[21], 0.58);
        assert_eq!(ode[50], 0.0);
        // 14 of Hi-DiT's 50 SDE evaluations are below 0.3, the first at 0.29469…
        assert_eq!(sde[..50].iter().filter(|&&t| t < 0.3).count(), 14);
        assert!((sde[36] - 0.294_693_877_551_020_4).abs() < 1e-15);
    }

    #[test]
    fn guidance_interval_includes_both_ends() {
        let g = Guidance {
            scale: 2.4,
            low: 0.0,
            high: 0.73,
        };
        assert!(g.applies_at(0.73) && g.applies_at(0.0) && !g.applies_at(0.7300001));
        assert!(!Guidance { scale: 1.0, ..g }.applies_at(0.5));
    }

    /// v = ε − x for data x = 0: the velocity is the noise direction x_t / t, and the ODE carries
    /// any x_1 exactly to 0; under guidance with cond = uncond nothing changes.
    struct Straight;

    impl VelocityModel for Straight {
        fn velocity(&self, x: &Tensor, t: &Tensor, _: &Tensor) -> Result<Tensor> {
            x.broadcast_div(&t.reshape((t.dim(0)?, 1, 1, 1))?)
        }
    }

    #[test]
    fn the_ode_follows_a_straight_path_to_the_data() {
        let dev = Device::Cpu;
        let x1 = Tensor::new(&[[[[1.5f64, -2.0]]]], &dev).unwrap();
        let y = Tensor::new(&[0u32], &dev).unwrap();
        for guidance in [
            Guidance::NONE,
            Guidance {
                scale: 3.0,
                low: 0.0,
                high: 1.0,
            },
        ] {
            let sampler = Sampler::new(Mode::Ode, 4, guidance);
            let mut x = x1.clone();
            for i in 0..3 {
                x = sampler.step(&Straight, &x, (&y, 7), i, None).unwrap();
                let t = sampler.grid()[i + 1];
                let expected = (&x1 * t).unwrap();
                let err = (x.clone() - expected)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap();
                assert!(err < 1e-7, "step {i}: {err}");
            }
        }
    }

    #[test]
    fn sde_steps_need_noise_but_the_last() {
        let dev = Device::Cpu;
        let sampler = Sampler::new(Mode::Sde, 3, Guidance::NONE);
        assert_eq!(sampler.noise_draws(), 2);
        let x = Tensor::new(&[[[[0.5f64]]]], &dev).unwrap();
        let y = Tensor::new(&[0u32], &dev).unwrap();
        assert!(sampler.step(&Straight, &x, (&y, 1), 0, None).is_err());
        assert!(sampler.step(&Straight, &x, (&y, 1), 2, None).is_ok());
    }
}
