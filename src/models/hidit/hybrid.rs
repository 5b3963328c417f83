//! The hand-off from the latent to the pixel stream (tools/train-hidit/sampling.py, `hybrid`):
//! REPA-E's grid and update formulas (see [`Sampler`]) with our pixel branch joined in at low
//! noise.
//!
//! * t ≥ τ: latent-only steps, exactly REPA-E's (the SiT alone).
//! * At the first t < τ, before that step's model call: ẑ0 = z_prev − t_prev·v_prev (the
//!   previous step's guided velocity), x̃ = clamp(VAE.decode(ẑ0), −1, 1), and the pixel stream
//!   starts at p = (1 − t)·x̃ + t·ε with fresh noise ε [B, 3, H, W] (f64). The decoding is the
//!   caller's ([`Hybrid::data_estimate`], then [`Hybrid::start_pixels`]).
//! * t < τ: one gated call gives v_z and x̂; v_p = (p − x̂)/t, and both streams take the same
//!   guided Euler–Maruyama or Euler update, each with its own noise. The image is p at t = 0.
//!
//! Draw order (the reference's, which the seeded generator follows too): the latent step noise,
//! then at the hand-off the pixel start noise, then the pixel step noise.

use candle_core::{DType, Result, Tensor};

use super::pixel::PixelBranch;
use super::sampler::Sampler;
use super::sit::Sit;

/// One hybrid run: the schedule, the two halves of the model and the gate threshold.
pub struct Hybrid<'a> {
    sampler: &'a Sampler,
    sit: &'a Sit,
    branch: &'a PixelBranch,
    tau: f64,
}

/// The run's state: the latent stream (f64), the pixel stream once handed off (f64), and what
/// the hand-off estimates ẑ0 from (the last step's start state, time and guided velocity).
pub struct HybridState {
    pub latents: Tensor,
    pub pixels: Option<Tensor>,
    previous: Option<(Tensor, f64, Tensor)>,
}

impl HybridState {
    /// The initial latents (any float dtype; kept in f64).
    pub fn new(latents: &Tensor) -> Result<Self> {
        Ok(Self {
            latents: latents.to_dtype(DType::F64)?,
            pixels: None,
            previous: None,
        })
    }
}

impl<'a> Hybrid<'a> {
    pub fn new(sampler: &'a Sampler, sit: &'a Sit, branch: &'a PixelBranch, tau: f64) -> Self {
        Self {
            sampler,
            sit,
            branch,
            tau,
        }
    }

    pub fn tau(&self) -> f64 {
        self.tau
    }

    /// Whether step `i` runs the gated model: its start time is below τ, compared in f32 as the
    /// model's own gate compares its f32 times (`PixelBranch::forward`). Compared in f64, a grid
    /// time just under τ that rounds up to f32 τ (0.19999999999999998 for τ = 0.2 at 19 SDE
    /// steps) made the sampler hand off while the model kept the pixel tokens out.
    pub fn gated_at(&self, i: usize) -> bool {
        gates(self.sampler.grid()[i], self.tau)
    }

    /// The hand-off step: the first gated one (`None`: no step is gated, the image is the VAE's
    /// decode of the final latents, as the reference falls back).
    pub fn hand_off_step(&self) -> Option<usize> {
        (0..self.sampler.steps()).find(|&i| self.gated_at(i))
    }

    /// Fresh pixel-stream noises the run draws: one per gated step that draws noise.
    pub fn pixel_step_draws(&self) -> usize {
        (0..self.sampler.steps())
            .filter(|&i| self.gated_at(i) && self.sampler.draws_noise_at(i))
            .count()
    }

    /// Whether step `i` must first hand off (gated, and no pixel stream yet).
    pub fn hands_off_at(&self, state: &HybridState, i: usize) -> bool {
        self.gated_at(i) && state.pixels.is_none()
    }

    /// ẑ0 = z_prev − t_prev·v_prev, the previous step's data estimate (normalised latents, f64).
    pub fn data_estimate(&self, state: &HybridState) -> Result<Tensor> {
        let Some((z, t, v)) = &state.previous else {
            candle_core::bail!(
                "tau {} gates the first step: there is no latent step to hand off from (use a \
                 tau of at most 1)",
                self.tau
            )
        };
        z - v.affine(*t, 0.0)?
    }

    /// Starts the pixel stream at step `i` from the decoded estimate `decoded` (f32 [B, 3, H,
    /// W], clamped here to [−1, 1]) and fresh noise `eps` of the same shape:
    /// p = (1 − t)·x̃ + t·ε in f64.
    pub fn start_pixels(
        &self,
        state: &mut HybridState,
        decoded: &Tensor,
        i: usize,
        eps: &Tensor,
    ) -> Result<()> {
        let t = self.sampler.grid()[i];
        let start = decoded.clamp(-1f32, 1f32)?.to_dtype(DType::F64)?;
        let eps = eps.to_dtype(DType::F64)?;
        state.pixels = Some((start.affine(1.0 - t, 0.0)? + eps.affine(t, 0.0)?)?);
        Ok(())
    }

    /// Step `i` of both streams. `latent_noise` / `pixel_noise`: the step's fresh noise where
    /// the SDE draws it (the pixel one only on gated steps).
    pub fn step(
        &self,
        state: &mut HybridState,
        labels: (&Tensor, u32),
        i: usize,
        (latent_noise, pixel_noise): (Option<&Tensor>, Option<&Tensor>),
    ) -> Result<()> {
        let sampler = self.sampler;
        let x = &state.latents;
        let (input, labels, t) = sampler.model_inputs(x, labels, i)?;
        let z_in = input.to_dtype(DType::F32)?;
        let v = if self.gated_at(i) {
            let Some(pixels) = &state.pixels else {
                candle_core::bail!("step {i} is gated but the pixel stream was not started")
            };
            let p_in = if sampler.guided_at(i) {
                Tensor::cat(&[pixels, pixels], 0)?
            } else {
                pixels.clone()
            };
            let p32 = p_in.to_dtype(DType::F32)?;
            let (v, x_hat) = self
                .branch
                .forward(self.sit, (&z_in, &p32), &t, &labels, self.tau)?;
            let v_p = PixelBranch::velocity(&p_in, &x_hat, sampler.grid()[i])?;
            state.pixels = Some(sampler.advance(pixels, &p_in, &v_p, i, pixel_noise)?);
            v
        } else {
            self.sit.forward(&z_in, &t, &labels)?
        };
        let v = v.to_dtype(DType::F64)?;
        let guided_v = sampler.guide(&v, i)?;
        let next = sampler.advance(x, &input, &v, i, latent_noise)?;
        state.previous = Some((state.latents.clone(), sampler.grid()[i], guided_v));
        state.latents = next;
        Ok(())
    }
}

/// The gate's decision for a step starting at `t` (see `HybridSampler::gated_at`).
fn gates(t: f64, tau: f64) -> bool {
    (t as f32) < tau as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The sampler hands off exactly where the model's f32 gate lets the pixel tokens in, on
    /// grids whose f64 times sit just under τ.
    #[test]
    fn sampler_gate_agrees_with_the_models_f32_gate() -> Result<()> {
        use crate::models::hidit::sampler::{Guidance, Mode};
        let sde_19 = Sampler::new(Mode::Sde, 19, Guidance::NONE);
        let mut under_in_f64 = 0;
        for &(tau, grid) in &[(0.2, sde_19.grid()), (0.3, sde_19.grid())] {
            for &t in grid {
                let model = Tensor::new(&[t as f32], &Device::Cpu)?
                    .lt(tau as f32)?
                    .to_vec1::<u8>()?[0]
                    == 1;
                assert_eq!(gates(t, tau), model, "t = {t:?}, tau = {tau}");
                under_in_f64 += usize::from(t < tau && !model);
            }
        }
        // The grid does hold a time the f64 comparison got wrong, so the test can fail.
        assert!(under_in_f64 > 0);
        Ok(())
    }
}
