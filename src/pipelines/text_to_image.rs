//! HiDream-I1 text-to-image, step for step as the official `HiDreamImagePipeline`
//! (https://github.com/HiDream-ai/HiDream-I1/blob/9b42dd606fecf8f78b974adb7e4d10331c91371a/hi_diffusers/pipelines/hidream_image/pipeline_hidream_image.py):
//! encode the prompt (and the negative one under CFG),
//! denoise with the preset's scheduler, decode with the VAE.

use std::time::Instant;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::decode::decode;
use super::finite::FiniteWatch;
use super::gpu_memory::{GpuMemoryRecord, StageMemory};
use super::image_to_image::Start;
use super::models::HiDreamModels;
use super::noise::{NoiseInput, NoiseSource};
use super::progress::Progress;
use crate::models::hidream::Config;
use crate::models::text::PromptEncoding;
use crate::models::vae::to_rgb8;
use crate::schedulers::Scheduler;
use crate::settings::{Field, GenerateSettings, Resolved, SettingsError};

/// Where the time went, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Loading models for this job (0 when the previous job's were reused).
    pub load_ms: f64,
    pub encode_ms: f64,
    /// One entry per denoising step (0 for steps that need no model evaluation).
    pub step_ms: Vec<f64>,
    pub decode_ms: f64,
    pub total_ms: f64,
}

/// Everything needed to understand and reproduce an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRecord {
    pub settings: GenerateSettings,
    pub resolved: Resolved,
    /// `seed`, or `file` when the noise came from `--noise`.
    pub noise: String,
    /// Whether a prompt was longer than the encoders' 128 tokens and lost its end.
    pub prompt_truncated: bool,
    pub timings: Timings,
    /// Peak GPU memory per stage; absent on the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory: Option<GpuMemoryRecord>,
    /// Where the planner put the models (`crate::placement::Placement` as JSON: the record
    /// keeps what was decided even as the planner's types change); absent when it did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<serde_json::Value>,
    pub app: String,
}

pub struct Generation {
    pub image: image::RgbImage,
    /// The decoder output, f32 [1, 3, H, W], about [−1, 1] (not clamped).
    pub decoded: Tensor,
    /// f32 [1, 16, h, w].
    pub final_latents: Tensor,
    pub record: GenerationRecord,
}

/// Runs one text-to-image job on loaded models.
pub fn generate(
    models: &mut HiDreamModels,
    settings: &GenerateSettings,
    noise: Option<&NoiseInput>,
    progress: &mut dyn Progress,
) -> anyhow::Result<Generation> {
    let started = Instant::now();
    let resolved = settings.resolve(models.vae.config().scale_factor())?;
    check_fits(&resolved, models.transformer.config())?;
    let device = models.device().clone();
    let latent_shape = [
        1,
        models.transformer.config().in_channels,
        resolved.latent_height,
        resolved.latent_width,
    ];

    let mut memory = StageMemory::new(&device);
    progress.stage("encoding the prompt")?;
    let t = Instant::now();
    let cfg = resolved.uses_cfg();
    let negative = settings.negative_prompt.clone().unwrap_or_default();
    let prompts: Vec<&str> = if cfg {
        vec![&negative, &settings.prompt]
    } else {
        vec![&settings.prompt]
    };
    let encoded = models.encode_prompts(&prompts)?;
    let encoding = PromptEncoding::batch(&encoded.iter().map(|e| &e.encoding).collect::<Vec<_>>())?;
    let prompt =
        models
            .transformer
            .encode_prompt(&encoding.t5, &encoding.llama, &encoding.pooled)?;
    device.synchronize()?;
    let encode_ms = ms(t);
    memory.encoded();

    let mut scheduler = Scheduler::new(
        resolved.scheduler,
        resolved.steps,
        resolved.shift,
        settings.shift_mode,
        models.transformer.config().max_seq(),
    );
    let mut source = NoiseSource::new(settings.seed, noise, latent_shape, resolved.steps, &device)?;
    let mut x = source.initial()?;
    let schedule = scheduler.schedule().clone();
    // Image-to-image: the schedule's tail from the noised start image.
    let start = settings
        .init
        .as_ref()
        .map(|init| {
            progress.stage("encoding the start image")?;
            let size = (resolved.width, resolved.height);
            Start::prepare(init, &models.vae, size, &schedule, &x, &device)
        })
        .transpose()?;
    if let Some(warning) = start.as_ref().and_then(|s| s.warning.as_deref()) {
        tracing::warn!("{warning}");
    }
    let first = start.as_ref().map_or(0, |s| s.first_step);
    if let Some(start) = &start {
        x = start.latents.clone();
        scheduler = scheduler.starting_at(first);
    }
    let batch = if cfg { 2 } else { 1 };
    let mut step_ms = Vec::with_capacity(resolved.steps);
    let mut finite = FiniteWatch::default();
    for i in first..first + scheduler.model_steps() {
        let t = Instant::now();
        let x_in = if cfg {
            Tensor::cat(&[&x, &x], 0)?
        } else {
            x.clone()
        };
        let timestep = Tensor::full(schedule.timesteps[i], batch, &device)?;
        let out = models
            .transformer
            .forward(&x_in, &timestep, &prompt)?
            .to_dtype(DType::F32)?;
        // The model predicts x0 − ε; the samplers take v = ε − x0.
        let v = out.neg()?;
        let v = if cfg {
            let (uncond, cond) = (v.narrow(0, 0, 1)?, v.narrow(0, 1, 1)?);
            (&uncond + ((cond - &uncond)? * resolved.guidance)?)?
        } else {
            v
        };
        let x0 = (&x - (&v * f64::from(schedule.sigmas[i]))?)?;
        let step_noise = if scheduler.needs_noise() {
            Some(source.step_noise(i)?)
        } else {
            None
        };
        x = scheduler.step(&v, &x, step_noise.as_ref())?;
        if let Some(start) = &start {
            x = start.after_step(x, f64::from(schedule.sigmas[i + 1]))?;
        }
        finite.record(&x)?;
        // A GPU runs the step's kernels after the host has queued them: wait for it at the
        // step's end (not inside it) so the step time is the device's.
        device.synchronize()?;
        step_ms.push(ms(t));
        memory.sample();
        progress.step(i + 1, resolved.steps, Some(x0))?;
    }
    // Steps whose model output the scheduler ignores (Flash's last keeps its input): the
    // latents are final, so they are their own clean-image estimate.
    for i in first + scheduler.model_steps()..resolved.steps {
        step_ms.push(0.0);
        progress.step(i + 1, resolved.steps, Some(x.clone()))?;
    }

    memory.denoised();
    progress.stage("decoding")?;
    finite.check(resolved.steps)?;
    let t = Instant::now();
    let (decoded, decode_mode) = decode(&models.vae, &x)?;
    let image = to_rgb8(&decoded)?;
    let image = match &start {
        Some(start) => start.finish(image),
        None => image,
    };
    let decode_ms = ms(t);
    memory.decoded(decode_mode);
    Ok(Generation {
        image,
        decoded,
        final_latents: x,
        record: GenerationRecord {
            settings: settings.clone(),
            resolved,
            noise: if noise.is_some() { "file" } else { "seed" }.into(),
            prompt_truncated: encoded.iter().any(|e| e.truncated),
            timings: Timings {
                load_ms: 0.0,
                encode_ms,
                step_ms,
                decode_ms,
                total_ms: ms(started),
            },
            gpu_memory: memory.into_record(),
            placement: models.placement().map(serde_json::to_value).transpose()?,
            app: format!("hidream-studio {}", env!("CARGO_PKG_VERSION")),
        },
    })
}

/// Non-square latents are padded to the transformer's `max_seq` patches; larger ones do not
/// fit. Refused as the base resolution, which the command line and the window each name in
/// their own words.
fn check_fits(resolved: &Resolved, cfg: &Config) -> Result<(), SettingsError> {
    let patches =
        (resolved.latent_height / cfg.patch_size) * (resolved.latent_width / cfg.patch_size);
    if resolved.latent_height != resolved.latent_width && patches > cfg.max_seq() {
        return Err(SettingsError::new(
            Field::BaseResolution,
            format!(
                "is too large for this model: a {}×{} image has {patches} patches, more than \
                 the {} it takes (max_resolution {:?}); lower it",
                resolved.width,
                resolved.height,
                cfg.max_seq(),
                cfg.max_resolution
            ),
        ));
    }
    Ok(())
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedulers::SchedulerKind;

    #[test]
    fn a_size_over_the_model_limit_is_refused_as_the_base_resolution_in_each_place_words() {
        // The fixtures' transformer: max_resolution 8×8 latents in 2×2 patches, 16 in all.
        let cfg: Config = serde_json::from_str(
            r#"{"patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": 2,
                "num_single_layers": 2, "attention_head_dim": 16, "num_attention_heads": 2,
                "caption_channels": [32, 48], "text_emb_dim": 64, "num_routed_experts": 4,
                "num_activated_experts": 2, "axes_dims_rope": [8, 4, 4],
                "max_resolution": [8, 8], "llama_layers": [0, 1, 2, 3]}"#,
        )
        .unwrap();
        let resolved = |width: u32, height: u32| Resolved {
            steps: 1,
            guidance: 0.0,
            shift: 3.0,
            scheduler: SchedulerKind::FlowUnipc,
            width,
            height,
            latent_height: height as usize / 8,
            latent_width: width as usize / 8,
        };
        assert_eq!(check_fits(&resolved(64, 64), &cfg), Ok(()));
        assert_eq!(check_fits(&resolved(80, 48), &cfg), Ok(()));
        let e = check_fits(&resolved(112, 64), &cfg).unwrap_err();
        assert_eq!(e.field, Field::BaseResolution);
        assert!(
            e.for_cli()
                .starts_with("--base-resolution is too large for this model: a 112×64 image"),
            "{}",
            e.for_cli()
        );
        assert!(e.for_cli().ends_with("; lower it"), "{}", e.for_cli());
        assert!(
            e.for_window()
                .starts_with("Base resolution is too large for this model"),
            "{}",
            e.for_window()
        );
        assert!(!e.for_window().contains("--"), "{}", e.for_window());
    }
}
