//! Instruction editing with HiDream-E1-Full and E1.1, step for step as the official
//! `HiDreamImageEditingPipeline` (shared/reference/hidream-e1.md), plus brushed masks.
//!
//! The model edits in context: the noisy target latent and the clean source latent sit side by
//! side on one h × 2w canvas, the transformer predicts over all of it and the left half is
//! kept. Guidance is three-way (instruction and image); an optional refine stage finishes the
//! last steps as plain text-to-image on the target description.

mod form;
mod guidance;
mod mask;
mod source;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

pub use form::{EditForm, EditModelPaths, FormError, RefineModel, recognise};
pub use mask::{Mask, MaskError, feather, feather_sigma};
pub use source::{Fit, MAX_SIDE, SourceError, read_rgb, to_source_size};

use super::decode::decode;
use super::gpu_memory::{GpuMemoryRecord, StageMemory};
use super::models::{EncoderMemory, HiDreamModels};
use super::noise::{NoiseInput, NoiseSource};
use super::progress::Progress;
use super::settings::ModelSelection;
use super::text_to_image::Timings;
use crate::models::hidream::{LoraWeights, PromptEmbeds};
use crate::models::text::PromptEncoding;
use crate::models::vae::to_rgb8;
use crate::schedulers::{Scheduler, diffusers_flow_unipc};

/// The marker the pipeline splits the E1-Full prompt at for the refine stage.
pub const TARGET_MARKER: &str = "Target Image Description:";

/// An editing request. `None` fields take the model form's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditSettings {
    /// The `--model` path as given (E1.1 folder, E1-Full folder or LoRA file).
    pub model: PathBuf,
    pub base_model: Option<PathBuf>,
    /// Overrides recognising the form from the files.
    pub form: Option<EditForm>,
    pub llama: PathBuf,
    pub dtype: super::ComputeDType,
    pub device: super::DeviceChoice,
    pub image: PathBuf,
    pub instruction: String,
    /// E1-Full's "Target Image Description" (default: the instruction).
    pub description: Option<String>,
    /// `Some("")` is an empty negative prompt, distinct from the form's default (`None`).
    pub negative_prompt: Option<String>,
    pub mask: Option<PathBuf>,
    pub guidance: Option<f64>,
    pub image_guidance: Option<f64>,
    pub clip_cfg_norm: bool,
    pub refine_strength: Option<f64>,
    pub refine_model: RefineModel,
    pub steps: Option<usize>,
    pub shift: Option<f64>,
    pub base_resolution: Option<u32>,
    pub seed: u64,
}

/// The part of [`EditSettings`] that decides which models are loaded: consecutive edits with
/// equal choices reuse them.
#[derive(Debug, Clone, PartialEq)]
pub struct EditModelChoice {
    pub model: PathBuf,
    pub base_model: Option<PathBuf>,
    pub form: Option<EditForm>,
    pub llama: PathBuf,
    pub dtype: super::ComputeDType,
    pub device: super::DeviceChoice,
    pub refine_model: RefineModel,
}

impl EditSettings {
    pub fn model_choice(&self) -> EditModelChoice {
        EditModelChoice {
            model: self.model.clone(),
            base_model: self.base_model.clone(),
            form: self.form,
            llama: self.llama.clone(),
            dtype: self.dtype,
            device: self.device,
            refine_model: self.refine_model,
        }
    }
}

/// The settings an edit actually ran with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditResolved {
    pub form: EditForm,
    pub prompt: String,
    pub target_prompt: String,
    pub negative_prompt: String,
    pub guidance: f64,
    pub image_guidance: f64,
    pub steps: usize,
    pub shift: f64,
    pub refine_strength: f64,
    /// The step the refine stage starts at (`steps` when there is none).
    pub refine_from_step: usize,
    pub base_resolution: u32,
    /// Source size and working size.
    pub source_width: u32,
    pub source_height: u32,
    pub width: u32,
    pub height: u32,
    pub max_seq: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditRecord {
    pub settings: EditSettings,
    pub resolved: EditResolved,
    pub noise: String,
    pub prompt_truncated: bool,
    pub warnings: Vec<String>,
    pub timings: Timings,
    /// Peak GPU memory per stage; absent on the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory: Option<GpuMemoryRecord>,
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
}

/// Per-form defaults of the official scripts (§2.2, §6).
struct FormDefaults {
    guidance: f64,
    image_guidance: f64,
    negative: &'static str,
    base_resolution: u32,
    refine_strength: f64,
}

fn defaults(form: EditForm) -> FormDefaults {
    match form {
        EditForm::E1_1 => FormDefaults {
            guidance: 3.0,
            image_guidance: 1.5,
            negative: "low quality, blurry, distorted",
            base_resolution: 1024,
            refine_strength: 0.3,
        },
        EditForm::E1FullLora | EditForm::E1FullMerged => FormDefaults {
            guidance: 5.0,
            image_guidance: 4.0,
            negative: "low resolution, blur",
            base_resolution: 768,
            // inference.py refines only with the LoRA form.
            refine_strength: if form == EditForm::E1FullLora {
                0.3
            } else {
                0.0
            },
        },
    }
}

const DEFAULT_STEPS: usize = 28;

/// E1-Full's prompt: the instruction as given when it already has the two-part form, else
/// "Editing Instruction: {instruction}. Target Image Description: {description}" as the
/// official refiner builds it (the description defaults to the instruction).
pub fn e1_full_prompt(instruction: &str, description: Option<&str>) -> String {
    if instruction.contains(TARGET_MARKER) {
        return instruction.to_string();
    }
    let trimmed = instruction.trim().trim_matches('.').trim();
    let description = description.map_or(trimmed, str::trim);
    format!("Editing Instruction: {trimmed}. {TARGET_MARKER} {description}")
}

/// What the refine stage is prompted with: the text after the marker, else the whole prompt.
pub fn target_prompt(prompt: &str) -> String {
    match prompt.split_once(TARGET_MARKER) {
        Some((_, after)) => after
            .split(TARGET_MARKER)
            .next()
            .unwrap_or(after)
            .trim()
            .to_string(),
        None => prompt.to_string(),
    }
}

/// Validates the numbers of a request before anything is loaded.
pub fn check_settings(s: &EditSettings) -> Result<(), String> {
    if s.instruction.trim().is_empty() {
        return Err("--instruction is empty; say what to change".into());
    }
    if s.steps == Some(0) {
        return Err("--steps must be at least 1".into());
    }
    if s.steps.is_some_and(|n| n > 1000) {
        return Err("--steps must be at most 1000".into());
    }
    for (name, v) in [
        ("--guidance", s.guidance),
        ("--image-guidance", s.image_guidance),
    ] {
        if let Some(v) = v
            && (!v.is_finite() || v < 0.0)
        {
            return Err(format!("{name} must be 0 or more (got {v})"));
        }
    }
    if let Some(r) = s.refine_strength
        && !(0.0..=1.0).contains(&r)
    {
        return Err(format!(
            "--refine-strength must be between 0 and 1 (got {r})"
        ));
    }
    if let Some(shift) = s.shift
        && (!shift.is_finite() || shift <= 0.0)
    {
        return Err(format!("--shift must be positive (got {shift})"));
    }
    if let Some(b) = s.base_resolution
        && (b < 16 || !b.is_multiple_of(16))
    {
        return Err(format!(
            "--base-resolution must be a multiple of 16, at least 16 (got {b})"
        ));
    }
    Ok(())
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
        let paths = recognise(&choice.model, choice.base_model.as_deref(), choice.form)?;
        if choice.refine_model == RefineModel::Base && paths.base_transformer.is_none() {
            return Err(FormError::RefineNeedsBase.into());
        }
        let selection = ModelSelection {
            model: paths.components.clone(),
            llama: choice.llama.clone(),
            dtype: choice.dtype,
            device: choice.device,
        };
        let device = selection.device.device()?;
        let lora = paths
            .lora
            .as_deref()
            .map(LoraWeights::read)
            .transpose()?
            .map(Arc::new);
        let transformer =
            form::load_edit_transformer(&paths, lora.as_ref(), selection.dtype.dtype(), &device)?;
        let models = HiDreamModels::with_transformer(&selection, memory, transformer)?;
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
    check_settings(settings).map_err(anyhow::Error::msg)?;
    let form = loaded.paths.form;
    let d = defaults(form);
    let mut warnings = Vec::new();

    progress.stage("reading the image")?;
    let source = read_rgb(&settings.image)?;
    let mask = settings
        .mask
        .as_deref()
        .map(|m| Mask::read(m, source.dimensions()))
        .transpose()?;
    if let Some(w) = mask.as_ref().and_then(|m| m.warning.clone()) {
        warnings.push(w);
    }
    let base_resolution = settings.base_resolution.unwrap_or(d.base_resolution);
    let fit = if form.is_e1_full() {
        Fit::square(base_resolution)
    } else {
        Fit::e1_1(source.width(), source.height(), base_resolution)
    };
    let working = fit.apply(&source)?;
    let (width, height) = working.dimensions();

    if loaded.edit_transformer_replaced {
        progress.stage("loading the editing model")?;
        let device = loaded.models.device().clone();
        loaded.models.transformer = form::load_edit_transformer(
            &loaded.paths,
            loaded.lora.as_ref(),
            loaded.models.dtype(),
            &device,
        )?;
        loaded.edit_transformer_replaced = false;
    }
    let models = &mut loaded.models;
    let device = models.device().clone();
    let scale = models.vae.config().scale_factor() as u32;
    let (h, w) = ((height / scale) as usize, (width / scale) as usize);
    let canvas_tokens = (h / 2) * w;
    let base_max_seq = models.transformer.config().max_seq();
    let max_seq = match form {
        // inference_e1_1.py: twice the I1 model's 4096.
        EditForm::E1_1 => 2 * base_max_seq,
        // inference.py: the 768² canvas's 4608 on the I1 base.
        EditForm::E1FullLora => base_max_seq.max(canvas_tokens),
        EditForm::E1FullMerged => base_max_seq,
    };
    if canvas_tokens > max_seq {
        anyhow::bail!(
            "a {width}×{height} working size gives an edit canvas of {canvas_tokens} patches, more \
             than the {max_seq} this model takes; lower --base-resolution"
        );
    }
    models.transformer.set_max_seq(max_seq);

    let guidance = settings.guidance.unwrap_or(d.guidance);
    let image_guidance = settings.image_guidance.unwrap_or(d.image_guidance);
    let steps = settings.steps.unwrap_or(DEFAULT_STEPS);
    let shift = settings.shift.unwrap_or(loaded.shift);
    let mut refine_strength = settings.refine_strength.unwrap_or(d.refine_strength);
    if form == EditForm::E1FullMerged
        && settings.refine_model == RefineModel::Reference
        && refine_strength > 0.0
    {
        warnings.push(format!(
            "the official pipeline ignores refine_strength with a merged E1-Full model; \
             --refine-strength {refine_strength} has no effect (pass --refine-model base \
             --base-model DIR to refine with HiDream-I1-Full)"
        ));
        refine_strength = 0.0;
    }
    // Python's int(steps · (1 − r)) in f64; r = 0 never switches.
    let refine_from_step = if refine_strength > 0.0 {
        (steps as f64 * (1.0 - refine_strength)) as usize
    } else {
        steps
    };
    let prompt = if form.is_e1_full() {
        e1_full_prompt(&settings.instruction, settings.description.as_deref())
    } else {
        settings.instruction.clone()
    };
    let target = target_prompt(&prompt);
    let negative = settings
        .negative_prompt
        .clone()
        .unwrap_or_else(|| d.negative.to_string());
    let cfg = guidance > 1.0;

    let mut memory = StageMemory::new(&device);
    progress.stage("encoding the prompt")?;
    let t = Instant::now();
    let mut texts: Vec<&str> = vec![&prompt, &target];
    if cfg {
        texts.push(&negative);
    }
    let encoded = models.encode_prompts(&texts)?;
    let (pos, tgt) = (&encoded[0].encoding, &encoded[1].encoding);
    let neg = encoded.get(2).map(|e| &e.encoding);
    let edit_rows: Vec<&PromptEncoding> = match (cfg, neg) {
        (true, Some(neg)) if settings.clip_cfg_norm => vec![pos, neg, pos],
        (true, Some(neg)) => vec![neg, neg, pos],
        _ => vec![pos],
    };
    let refine_rows: Vec<&PromptEncoding> = match (cfg, neg) {
        (true, Some(neg)) => vec![neg, tgt],
        _ => vec![tgt],
    };
    let edit_encoding = PromptEncoding::batch(&edit_rows)?;
    let refine_encoding = PromptEncoding::batch(&refine_rows)?;
    let project =
        |models: &HiDreamModels, e: &PromptEncoding| -> candle_core::Result<PromptEmbeds> {
            models.transformer.encode_prompt(&e.t5, &e.llama, &e.pooled)
        };
    let mut prompt_embeds = project(models, &edit_encoding)?;

    progress.stage("encoding the image")?;
    let pixels = source::to_tensor(&working, &device)?;
    let src = models.vae.encode(&pixels)?;
    device.synchronize()?;
    let encode_ms = ms(t);
    memory.encoded();

    let latent_shape = [1, models.transformer.config().in_channels, h, w];
    let mut noise_source = NoiseSource::new(settings.seed, noise, latent_shape, steps, &device)?;
    let mut x = noise_source.initial()?;
    let initial_noise = x.clone();
    let latent_mask = mask
        .as_ref()
        .map(|m| m.latent(&fit, scale, &device))
        .transpose()?;

    let schedule = diffusers_flow_unipc(shift, steps);
    let mut scheduler = Scheduler::unipc(schedule.clone());
    let image_rows = if cfg {
        Tensor::cat(&[&src.zeros_like()?, &src, &src], 0)?
    } else {
        src.clone()
    };
    let rows = image_rows.dim(0)?;
    let mut refining = false;
    let mut step_ms = Vec::with_capacity(steps);
    for i in 0..steps {
        let t = Instant::now();
        if i == refine_from_step && !refining {
            refining = true;
            progress.stage("refining")?;
            let refine = form::load_refine_transformer(
                &loaded.paths,
                settings.refine_model,
                loaded.lora.as_ref(),
                models.dtype(),
                &device,
            )?;
            if let Some(mut refine) = refine {
                // The reference swaps weights inside the same module: its max_seq carries over.
                refine.set_max_seq(max_seq);
                models.transformer = refine;
                loaded.edit_transformer_replaced = true;
            }
            prompt_embeds = project(models, &refine_encoding)?;
        }
        let timestep_value = schedule.timesteps[i];
        let v = if refining {
            let batch = if cfg { 2 } else { 1 };
            let x_in = Tensor::cat(&vec![&x; batch], 0)?;
            let out = models.transformer.forward(
                &x_in,
                &Tensor::full(timestep_value, batch, &device)?,
                &prompt_embeds,
            )?;
            let v = out.to_dtype(DType::F32)?.neg()?;
            if cfg {
                guidance::two_way(&v, guidance)?
            } else {
                v
            }
        } else {
            let x_rows = Tensor::cat(&vec![&x; rows], 0)?;
            let canvas = Tensor::cat(&[&x_rows, &image_rows], 3)?;
            let out = models.transformer.forward(
                &canvas,
                &Tensor::full(timestep_value, rows, &device)?,
                &prompt_embeds,
            )?;
            let v = out.to_dtype(DType::F32)?.narrow(3, 0, w)?.neg()?;
            if !cfg {
                v
            } else if settings.clip_cfg_norm {
                guidance::clip_cfg_norm(&v, guidance, image_guidance)?
            } else {
                guidance::instruct_pix2pix(&v, guidance, image_guidance)?
            }
        };
        let x0 = (&x - (&v * f64::from(schedule.sigmas[i]))?)?;
        x = scheduler.step(&v, &x, None)?;
        if let Some(m) = &latent_mask {
            let sigma = f64::from(schedule.sigmas[i + 1]);
            let kept = ((&src * (1.0 - sigma))? + (&initial_noise * sigma)?)?;
            x = (m.broadcast_mul(&x)? + m.affine(-1.0, 1.0)?.broadcast_mul(&kept)?)?;
        }
        // Wait for the device at the step's end (not inside it) so the step time is its own.
        device.synchronize()?;
        step_ms.push(ms(t));
        memory.sample();
        progress.step(i + 1, steps, Some(x0))?;
    }

    memory.denoised();
    progress.stage("decoding")?;
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
            settings: settings.clone(),
            resolved: EditResolved {
                form,
                prompt,
                target_prompt: target,
                negative_prompt: negative,
                guidance,
                image_guidance,
                steps,
                shift,
                refine_strength,
                refine_from_step,
                base_resolution,
                source_width: source.width(),
                source_height: source.height(),
                width,
                height,
                max_seq,
            },
            noise: if noise.is_some() { "file" } else { "seed" }.into(),
            prompt_truncated: encoded.iter().any(|e| e.truncated),
            warnings,
            timings: Timings {
                load_ms: 0.0,
                encode_ms,
                step_ms,
                decode_ms,
                total_ms: ms(started),
            },
            gpu_memory: memory.into_record(),
            app: format!("hidream-studio {}", env!("CARGO_PKG_VERSION")),
        },
    })
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_forms() {
        assert_eq!(
            e1_full_prompt("make it red.", Some("a red car")),
            "Editing Instruction: make it red. Target Image Description: a red car"
        );
        let built = "Editing Instruction: x. Target Image Description: y";
        assert_eq!(e1_full_prompt(built, None), built);
        assert_eq!(target_prompt(built), "y");
        assert_eq!(target_prompt("plain"), "plain");
    }
}
