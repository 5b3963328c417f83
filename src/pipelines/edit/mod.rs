//! Instruction editing with HiDream-E1-Full and E1.1, step for step as the official
//! `HiDreamImageEditingPipeline`
//! (https://github.com/HiDream-ai/HiDream-E1/blob/f6f0631e9b621fa113f74d3b2e2cf2bc5314ef10/pipeline_hidream_image_editing.py),
//! plus brushed masks.
//!
//! The model edits in context: the noisy target latent and the clean source latent sit side by
//! side on one h × 2w canvas, the transformer predicts over all of it and the left half is
//! kept. Guidance is three-way (instruction and image); an optional refine stage finishes the
//! last steps as plain text-to-image on the target description.

mod denoise;
mod form;
mod guidance;
mod mask;
mod source;

use std::sync::Arc;
use std::time::Instant;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

pub use crate::settings::EditModelChoice;
pub use crate::settings::EditResolved;
pub use crate::settings::EditSettings;

pub use form::EditModelPaths;
pub use form::{EditForm, RefineModel};
pub(crate) use form::{FormError, recognise};
pub use mask::feather;
pub(crate) use mask::{Mask, keep_outside, noised};

pub use source::SourceError;
pub(crate) use source::to_tensor;
pub use source::{Fit, read_rgb, to_source_size};

use super::decode::decode;
use super::gpu_memory::{GpuMemoryRecord, StageMemory};
use super::models::{EncoderMemory, HiDreamModels};
use super::noise::{NoiseInput, NoiseSource};
use super::placement::{load_placed, plan_placement};
use super::progress::Progress;
use super::text_to_image::Timings;
use crate::models::hidream::LoraWeights;
use crate::models::text::PromptEncoding;
use crate::models::vae::to_rgb8;
use crate::placement::PlanModel;
use crate::settings::{EditModelFacts, JobWarning, ModelSelection};
use denoise::{DenoiseInputs, denoise};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditRecord {
    pub settings: EditSettings,
    pub resolved: EditResolved,
    pub noise: String,
    pub prompt_truncated: bool,
    /// What the user was told, in neither place's words (`Edit::warnings` has each place's).
    pub warnings: Vec<String>,
    pub timings: Timings,
    /// Peak GPU memory per stage; absent on the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory: Option<GpuMemoryRecord>,
    /// Where the planner put the models (see `GenerationRecord::placement`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<serde_json::Value>,
    pub app: String,
}

pub struct Edit {
    /// At the source's size, mask composited.
    pub image: image::RgbImage,
    /// Decoder output at the working size, f32 [1, 3, H, W].
    pub decoded: Tensor,
    /// f32 [1, 16, h, w].
    pub final_latents: Tensor,
    pub record: EditRecord,
    /// What the user should know, for each place to word (the record keeps them as text).
    pub warnings: Vec<JobWarning>,
}

/// Loads the models an edit needs.
pub struct EditModels {
    pub paths: EditModelPaths,
    pub models: HiDreamModels,
    lora: Option<Arc<LoraWeights>>,
    shift: f64,
    /// The last job's refine stage replaced the editing transformer (only one is kept in
    /// memory: each is 34 GB in bf16); the next job loads it again.
    edit_transformer_replaced: bool,
}

impl EditModels {
    pub fn load(choice: &EditModelChoice, memory: EncoderMemory) -> anyhow::Result<Self> {
        let mut paths = recognise(&choice.model, choice.base_model.as_deref(), choice.form)?;
        if let Some(weights) = &choice.transformer {
            if paths.lora.is_some() {
                return Err(FormError::TransformerWithLora {
                    path: weights.clone(),
                }
                .into());
            }
            paths.transformer_weights = Some(weights.clone());
        }
        if choice.refine_model == RefineModel::Base && paths.base_transformer.is_none() {
            return Err(FormError::RefineNeedsBase.into());
        }
        let selection = ModelSelection {
            model: paths.components.clone(),
            llama: choice.llama.clone(),
            dtype: choice.dtype,
            device: choice.device,
            transformer: paths.transformer_weights.clone(),
            placement: choice.placement,
        };
        let device = selection.device.device()?;
        let snapshot = crate::weights::Snapshot::open(&selection.model)?;
        let placement = plan_placement(&selection, &snapshot, &device, PlanModel::E1_1)?;
        let lora = paths
            .lora
            .as_deref()
            .map(LoraWeights::read)
            .transpose()?
            .map(Arc::new);
        let dtype = selection.dtype.dtype();
        let transformer = load_placed(placement.as_ref(), &device, |device| {
            form::load_edit_transformer(&paths, lora.as_ref(), dtype, device)
        })?;
        // The editing transformer came from `paths`; the selection's other models from the
        // components snapshot.
        let selection = ModelSelection {
            transformer: None,
            ..selection
        };
        let mut models = HiDreamModels::with_transformer(&selection, memory, transformer)?;
        models.apply(placement);
        let shift = scheduler_shift(&models)?;
        Ok(Self {
            paths,
            models,
            lora,
            shift,
            edit_transformer_replaced: false,
        })
    }
}

/// `flow_shift` of the snapshot's UniPC scheduler config (3.0 for HiDream-I1-Full).
fn scheduler_shift(models: &HiDreamModels) -> anyhow::Result<f64> {
    let path = models
        .snapshot()
        .component_dir("scheduler")?
        .join("scheduler_config.json");
    let value: serde_json::Value = crate::weights::read_json(&path, "scheduler config")?;
    Ok(value
        .get("flow_shift")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(3.0))
}

/// Runs one edit on loaded models.
pub fn edit(
    loaded: &mut EditModels,
    settings: &EditSettings,
    noise: Option<&NoiseInput>,
    progress: &mut dyn Progress,
) -> anyhow::Result<Edit> {
    let started = Instant::now();
    settings.validate()?;

    progress.stage("reading the image")?;
    let source = read_rgb(&settings.image)?;
    let mask = settings
        .mask
        .as_deref()
        .map(|m| Mask::read(m, source.dimensions()))
        .transpose()?;
    // Before reading its config: the refine stage's transformer may have another size.
    if loaded.edit_transformer_replaced {
        progress.stage("loading the editing model")?;
        let device = loaded.models.device().clone();
        let dtype = loaded.models.dtype();
        let (paths, lora) = (&loaded.paths, loaded.lora.as_ref());
        loaded.models.transformer = load_placed(loaded.models.placement(), &device, |device| {
            form::load_edit_transformer(paths, lora, dtype, device)
        })?;
        loaded.edit_transformer_replaced = false;
    }
    let scale = loaded.models.vae.config().scale_factor() as u32;
    let facts = EditModelFacts {
        form: loaded.paths.form,
        scheduler_shift: loaded.shift,
        vae_scale: scale,
        base_max_seq: loaded.models.transformer.config().max_seq(),
    };
    let plan = settings.resolve(&facts, source.dimensions())?;
    let resolved = plan.resolved;
    let mut warnings = plan.warnings;
    if let Some(w) = mask.as_ref().and_then(|m| m.warning.clone()) {
        warnings.insert(0, JobWarning::Note(w));
    }
    let fit = plan.fit;
    let working = fit.apply(&source)?;
    let (width, height) = working.dimensions();
    if (width, height) != (resolved.width, resolved.height) {
        anyhow::bail!(
            "internal error: the source was brought to {width}×{height}, not the planned {}×{}",
            resolved.width,
            resolved.height
        );
    }

    let device = loaded.models.device().clone();
    let (h, w) = ((height / scale) as usize, (width / scale) as usize);
    loaded.models.transformer.set_max_seq(resolved.max_seq);

    let mut memory = StageMemory::new(&device);
    progress.stage("encoding the prompt")?;
    let t = Instant::now();
    let prompts = encode_prompts(&mut loaded.models, &resolved, settings.clip_cfg_norm)?;
    let models = &loaded.models;
    let edit_prompt = models.transformer.encode_prompt(
        &prompts.edit.t5,
        &prompts.edit.llama,
        &prompts.edit.pooled,
    )?;

    progress.stage("encoding the image")?;
    let pixels = source::to_tensor(&working, &device)?;
    let src = models.vae.encode(&pixels)?;
    device.synchronize()?;
    let encode_ms = ms(t);
    memory.encoded();

    let latent_shape = [1, models.transformer.config().in_channels, h, w];
    let mut noise_source =
        NoiseSource::new(settings.seed, noise, latent_shape, resolved.steps, &device)?;
    let initial_noise = noise_source.initial()?;
    let latent_mask = mask
        .as_ref()
        .map(|m| m.latent(&fit, scale, &device))
        .transpose()?;
    let denoised = denoise(
        loaded,
        DenoiseInputs {
            resolved: &resolved,
            clip_cfg_norm: settings.clip_cfg_norm,
            refine_model: settings.models.refine_model,
            source: &src,
            noise: initial_noise,
            mask: latent_mask.as_ref(),
            edit_prompt,
            refine_encoding: &prompts.refine,
        },
        &mut memory,
        progress,
    )?;
    let x = denoised.latents;
    let models = &loaded.models;

    memory.denoised();
    progress.stage("decoding")?;
    denoised.finite.check(resolved.steps)?;
    let t = Instant::now();
    let (decoded, decode_mode) = decode(&models.vae, &x)?;
    memory.decoded(decode_mode);
    let result = to_rgb8(&decoded)?;
    let result = to_source_size(&result, source.dimensions())?;
    let image = match &mask {
        Some(m) => m.composite(&result, &source),
        None => result,
    };
    let decode_ms = ms(t);

    Ok(Edit {
        image,
        decoded,
        final_latents: x,
        record: EditRecord {
            warnings: warnings.iter().map(ToString::to_string).collect(),
            settings: settings.clone(),
            resolved,
            noise: if noise.is_some() { "file" } else { "seed" }.into(),
            prompt_truncated: prompts.truncated,
            timings: Timings {
                load_ms: 0.0,
                encode_ms,
                step_ms: denoised.step_ms,
                decode_ms,
                total_ms: ms(started),
            },
            gpu_memory: memory.into_record(),
            placement: loaded
                .models
                .placement()
                .map(serde_json::to_value)
                .transpose()?,
            app: format!("hidream-studio {}", env!("CARGO_PKG_VERSION")),
        },
        warnings,
    })
}

/// The text encoders' output for both stages, batched in the rows the transformer sees.
struct EditPrompts {
    /// Three-way guidance: [positive, negative, positive] with CLIP CFG norm, else
    /// [negative, negative, positive]; without guidance [positive].
    edit: PromptEncoding,
    /// [negative, target] with guidance, else [target].
    refine: PromptEncoding,
    /// Whether a prompt was longer than the encoders take and lost its end.
    truncated: bool,
}

fn encode_prompts(
    models: &mut HiDreamModels,
    resolved: &EditResolved,
    clip_cfg_norm: bool,
) -> anyhow::Result<EditPrompts> {
    let cfg = resolved.uses_cfg();
    let mut texts: Vec<&str> = vec![&resolved.prompt, &resolved.target_prompt];
    if cfg {
        texts.push(&resolved.negative_prompt);
    }
    let encoded = models.encode_prompts(&texts)?;
    let (pos, tgt) = (&encoded[0].encoding, &encoded[1].encoding);
    let neg = encoded.get(2).map(|e| &e.encoding);
    let edit_rows: Vec<&PromptEncoding> = match (cfg, neg) {
        (true, Some(neg)) if clip_cfg_norm => vec![pos, neg, pos],
        (true, Some(neg)) => vec![neg, neg, pos],
        _ => vec![pos],
    };
    let refine_rows: Vec<&PromptEncoding> = match (cfg, neg) {
        (true, Some(neg)) => vec![neg, tgt],
        _ => vec![tgt],
    };
    Ok(EditPrompts {
        edit: PromptEncoding::batch(&edit_rows)?,
        refine: PromptEncoding::batch(&refine_rows)?,
        truncated: encoded.iter().any(|e| e.truncated),
    })
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
