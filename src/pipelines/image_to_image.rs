//! Image-to-image and inpainting for HiDream-I1: the text-to-image loop started part-way down
//! its schedule from a noised start image, with the semantics of diffusers' flow-matching
//! img2img and inpaint pipelines (`FluxImg2ImgPipeline.get_timesteps` and
//! `FlowMatchEulerDiscreteScheduler.scale_noise`, `FluxInpaintPipeline`'s per-step blend, in
//! https://github.com/huggingface/diffusers/blob/v0.42.1/src/diffusers/pipelines/flux/):
//!
//! - `strength` s in (0, 1] runs the last ⌊N·s⌋ of the N steps: the first step run is
//!   `t_start = int(N − min(N·s, N))`;
//! - the start latents are the image's, noised to that step's σ along the flow,
//!   `x = (1 − σ)·z + σ·ε`, with ε the seed's noise (the noise text-to-image starts from);
//! - a mask (white = repaint) keeps the rest of the image with the editor's method
//!   ([`crate::pipelines::edit::keep_outside`] after every step, the feathered composite at
//!   the end).
//!
//! At least one step runs for any s > 0 (the last, from the schedule's smallest σ), so as s
//! goes to 0 the result goes to the image's own latents through one small denoising step.
//!
//! One choice of ours where the I1 schedules differ from Flux's: the Full schedule's first σ
//! is 0.9999, not 1, so at strength 1 the job starts from the noise itself and is exactly
//! text-to-image with the same seed (diffusers would mix in 0.01 % of the image). The image is
//! encoded with the distribution's mean (diffusers samples it), so a seed reproduces the same
//! result.

use candle_core::{Device, Tensor};
use image::RgbImage;

use super::edit::{Fit, Mask, keep_outside, noised, read_rgb, to_tensor};
use crate::models::vae::AutoencoderKl;
use crate::schedulers::Schedule;
use crate::settings::InitImage;

/// The first step an image-to-image job of `steps` steps runs at `strength`, as
/// `get_timesteps` computes it (f64, truncated): below `steps` for any strength above 0.
pub(crate) fn first_step(steps: usize, strength: f64) -> usize {
    let n = steps as f64;
    let init_steps = (n * strength).min(n);
    ((n - init_steps).max(0.0) as usize).min(steps)
}

/// What the loop needs from the start image.
pub(super) struct Start {
    /// Index of the first step that runs in the full schedule.
    pub first_step: usize,
    /// The latents that step starts from, f32 [1, C, h, w].
    pub latents: Tensor,
    /// Set with a mask.
    keep: Option<Keep>,
    /// What the user should know (a mask of another size, transparent mask pixels).
    pub warning: Option<String>,
}

struct Keep {
    /// The feathered mask per latent pixel, f32 [1, 1, h, w].
    latent_mask: Tensor,
    /// The start image's latents, f32 [1, C, h, w].
    latents: Tensor,
    /// The job's initial noise, f32 [1, C, h, w].
    noise: Tensor,
    /// The mask and the start image at the job's size, for the final composite.
    mask: Mask,
    image: RgbImage,
}

impl Start {
    /// Reads the start image (and mask), brings them to the job's `size` with a plain resize
    /// (as diffusers' image processor does), encodes the image with `vae` (f32 latents) and
    /// noises it to the first step's σ with `noise`, the seed's initial noise.
    pub fn prepare(
        init: &InitImage,
        vae: &AutoencoderKl,
        size: (u32, u32),
        schedule: &Schedule,
        noise: &Tensor,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let image = read_rgb(&init.image)?;
        let fit = Fit {
            halvings: 0,
            resize: size,
            crop_origin: (0, 0),
            crop_size: size,
        };
        let working = fit.apply(&image)?;
        let mask = init
            .mask
            .as_deref()
            .map(|path| Mask::read(path, image.dimensions()))
            .transpose()?
            .map(|m| Mask {
                coverage: fit.apply_mask(&m.coverage),
                warning: m.warning,
            });
        let steps = schedule.steps();
        let first_step = first_step(steps, init.strength);
        let needs_latents = first_step > 0 || mask.is_some();
        let image_latents = if needs_latents {
            Some(vae.encode(&to_tensor(&working, device)?)?)
        } else {
            None
        };
        let latents = match &image_latents {
            Some(z) if first_step > 0 => noised(z, noise, f64::from(schedule.sigmas[first_step]))?,
            _ => noise.clone(),
        };
        let warning = mask.as_ref().and_then(|m| m.warning.clone());
        let keep = match (mask, image_latents) {
            (Some(mask), Some(latents)) => Some(Keep {
                // The mask is at the job's size already: the fit leaves it as it is.
                latent_mask: mask.latent(&fit, vae_scale(vae), device)?,
                latents,
                noise: noise.clone(),
                mask,
                image: working,
            }),
            _ => None,
        };
        Ok(Self {
            first_step,
            latents,
            keep,
            warning,
        })
    }

    /// After a step that ended at `sigma`: the area outside the mask back on the start image's
    /// path (nothing without a mask).
    pub fn after_step(&self, x: Tensor, sigma: f64) -> candle_core::Result<Tensor> {
        match &self.keep {
            Some(k) => keep_outside(&x, &k.latent_mask, &k.latents, &k.noise, sigma),
            None => Ok(x),
        }
    }

    /// The decoded result over the start image through the feathered mask (as it is without
    /// a mask).
    pub fn finish(&self, result: RgbImage) -> RgbImage {
        match &self.keep {
            Some(k) => k.mask.composite(&result, &k.image),
            None => result,
        }
    }
}

fn vae_scale(vae: &AutoencoderKl) -> u32 {
    vae.config().scale_factor() as u32
}

#[cfg(test)]
mod tests {
    use super::first_step;

    #[test]
    fn strength_selects_the_tail_of_the_schedule_as_get_timesteps() {
        assert_eq!(first_step(50, 1.0), 0);
        assert_eq!(first_step(50, 0.3), 35);
        assert_eq!(first_step(50, 0.75), 12);
        assert_eq!(first_step(28, 0.5), 14);
        // N·s = 4.9 steps: int(28 − 4.9) = 23, so five steps run.
        assert_eq!(first_step(28, 0.175), 23);
        // Less than a step still runs the last one: int(10 − 0.5) = 9.
        assert_eq!(first_step(10, 0.05), 9);
        assert_eq!(first_step(10, 1e-9), 9);
        assert_eq!(first_step(1, 1e-9), 0);
    }
}
