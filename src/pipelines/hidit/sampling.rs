//! The sampling loops of one image: REPA-E's latent sampler, or the hybrid run that hands off
//! to the pixel stream (models::hidit::hybrid), drawing the noise in the reference's order.

use std::time::Instant;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::noise::NoiseSource;
use super::{HiditError, HiditModels};
use crate::models::hidit::{Hybrid, HybridState, Sampler};
use crate::pipelines::Progress;

/// How the pixel stream made an image (for the record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelStream {
    /// The gate threshold used.
    pub tau: f64,
    /// The step that handed off and its time t (the first below τ).
    pub hand_off_step: usize,
    pub hand_off_t: f64,
}

/// A sampling loop's result: the final latents (f64, normalised) and, from a hybrid run, the
/// pixel stream's image (f64 [1, 3, H, W]).
pub(super) struct Sampled {
    pub latents: Tensor,
    pub pixels: Option<Tensor>,
    pub pixel_stream: Option<PixelStream>,
    pub step_ms: Vec<f64>,
}

pub(super) struct Run<'a> {
    pub models: &'a HiditModels,
    pub sampler: &'a Sampler,
    /// The label [1] (u32) and the null class.
    pub labels: (&'a Tensor, u32),
}

impl Run<'_> {
    /// The step's latent noise where the SDE draws it, on the models' device.
    fn latent_noise(
        &self,
        source: &mut NoiseSource,
        i: usize,
    ) -> candle_core::Result<Option<Tensor>> {
        if !self.sampler.draws_noise_at(i) {
            return Ok(None);
        }
        Some(source.step(i)?.to_device(&self.models.device)).transpose()
    }

    /// REPA-E's sampler on the latents alone.
    pub fn latent(
        &self,
        source: &mut NoiseSource,
        progress: &mut dyn Progress,
    ) -> Result<Sampled, HiditError> {
        let device = &self.models.device;
        let mut x = source.latents()?.to_dtype(DType::F64)?.to_device(device)?;
        let mut step_ms = Vec::with_capacity(self.sampler.steps());
        for i in 0..self.sampler.steps() {
            let step_start = Instant::now();
            let eps = self.latent_noise(source, i)?;
            x = self
                .sampler
                .step(&self.models.sit, &x, self.labels, i, eps.as_ref())?;
            step_ms.push(step_start.elapsed().as_secs_f64() * 1e3);
            progress.step(i + 1, self.sampler.steps(), None)?;
        }
        Ok(Sampled {
            latents: x,
            pixels: None,
            pixel_stream: None,
            step_ms,
        })
    }

    /// The hybrid run: latent steps until the first t < τ, the hand-off (the previous step's
    /// data estimate decoded by the VAE, clamped, re-noised), then both streams together.
    pub fn hybrid(
        &self,
        hybrid: &Hybrid,
        source: &mut NoiseSource,
        progress: &mut dyn Progress,
    ) -> Result<Sampled, HiditError> {
        let models = self.models;
        let device = &models.device;
        let image = models.image_shape();
        if hybrid.hand_off_step() == Some(0) {
            return Err(HiditError::Setting {
                flag: "--tau",
                problem: format!(
                    "{} gates the first step (t = 1): the pixel stream starts from the latent \
                     stream's estimate, so at least one latent step must come first",
                    hybrid.tau()
                ),
            });
        }
        if hybrid.hand_off_step().is_some() {
            source.check_pixels(image, hybrid.pixel_step_draws())?;
        }
        let mut state = HybridState::new(&source.latents()?.to_device(device)?)?;
        let mut step_ms = Vec::with_capacity(self.sampler.steps());
        let mut pixel_draws = 0;
        for i in 0..self.sampler.steps() {
            let step_start = Instant::now();
            let eps = self.latent_noise(source, i)?;
            if hybrid.hands_off_at(&state, i) {
                let z0 = hybrid.data_estimate(&state)?.to_dtype(DType::F32)?;
                let decoded = models.vae.decode(&models.stats.denormalise(&z0)?)?;
                let start_noise = source.pixel_start(image)?.to_device(device)?;
                hybrid.start_pixels(&mut state, &decoded, i, &start_noise)?;
            }
            let eps_p = if hybrid.gated_at(i) && self.sampler.draws_noise_at(i) {
                pixel_draws += 1;
                Some(
                    source
                        .pixel_step(pixel_draws - 1, image)?
                        .to_device(device)?,
                )
            } else {
                None
            };
            hybrid.step(&mut state, self.labels, i, (eps.as_ref(), eps_p.as_ref()))?;
            step_ms.push(step_start.elapsed().as_secs_f64() * 1e3);
            progress.step(i + 1, self.sampler.steps(), None)?;
        }
        let pixel_stream = hybrid.hand_off_step().map(|i| PixelStream {
            tau: hybrid.tau(),
            hand_off_step: i,
            hand_off_t: self.sampler.grid()[i],
        });
        Ok(Sampled {
            latents: state.latents,
            pixels: state.pixels,
            pixel_stream,
            step_ms,
        })
    }
}
