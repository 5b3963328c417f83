//! The edit's denoising loop: UniPC over the in-context canvas (noisy target beside the clean
//! source), switching to plain text-to-image on the target description for the refine stage,
//! and keeping the unmasked area on the source's noising path.

use std::time::Instant;

use candle_core::{DType, Tensor};

use super::{EditModels, RefineModel, form, guidance};
use crate::models::hidream::PromptEmbeds;
use crate::models::text::PromptEncoding;
use crate::pipelines::finite::FiniteWatch;
use crate::pipelines::gpu_memory::StageMemory;
use crate::pipelines::placement::{loading_device, placed};
use crate::pipelines::progress::Progress;
use crate::schedulers::{Scheduler, diffusers_flow_unipc};
use crate::settings::EditResolved;

/// What the loop runs on besides the models.
pub(super) struct DenoiseInputs<'a> {
    pub resolved: &'a EditResolved,
    pub clip_cfg_norm: bool,
    pub refine_model: RefineModel,
    /// The source's clean latents, f32 [1, C, h, w].
    pub source: &'a Tensor,
    /// The starting noise, f32 [1, C, h, w].
    pub noise: Tensor,
    /// 1 where the image may change, f32 [1, 1, h, w]; `None` changes everything.
    pub mask: Option<&'a Tensor>,
    /// The edit stage's prompt rows, projected by the editing transformer.
    pub edit_prompt: PromptEmbeds,
    /// The refine stage's rows, projected when the stage starts (by its own transformer).
    pub refine_encoding: &'a PromptEncoding,
}

pub(super) struct Denoised {
    /// f32 [1, C, h, w].
    pub latents: Tensor,
    pub step_ms: Vec<f64>,
    /// Whether every step's latents stayed finite, read once before decoding.
    pub finite: FiniteWatch,
}

pub(super) fn denoise(
    loaded: &mut EditModels,
    inputs: DenoiseInputs<'_>,
    memory: &mut StageMemory,
    progress: &mut dyn Progress,
) -> anyhow::Result<Denoised> {
    let r = inputs.resolved;
    let cfg = r.uses_cfg();
    let device = loaded.models.device().clone();
    let schedule = diffusers_flow_unipc(r.shift, r.steps);
    let mut scheduler = Scheduler::unipc(schedule.clone());
    // Rows: unconditional image, then the source twice (three-way guidance), else once.
    let image_rows = if cfg {
        Tensor::cat(
            &[&inputs.source.zeros_like()?, inputs.source, inputs.source],
            0,
        )?
    } else {
        inputs.source.clone()
    };
    let mut prompt = inputs.edit_prompt;
    let mut x = inputs.noise.clone();
    let mut refining = false;
    let mut step_ms = Vec::with_capacity(r.steps);
    let mut finite = FiniteWatch::default();
    for i in 0..r.steps {
        let t = Instant::now();
        if i == r.refine_from_step && !refining {
            refining = true;
            progress.stage("refining")?;
            start_refine(loaded, inputs.refine_model, r.max_seq)?;
            let e = inputs.refine_encoding;
            prompt = loaded
                .models
                .transformer
                .encode_prompt(&e.t5, &e.llama, &e.pooled)?;
        }
        let timestep = schedule.timesteps[i];
        let v = if refining {
            refine_velocity(loaded, &x, timestep, &prompt, r)?
        } else {
            edit_velocity(
                loaded,
                &x,
                &image_rows,
                timestep,
                &prompt,
                r,
                inputs.clip_cfg_norm,
            )?
        };
        let x0 = (&x - (&v * f64::from(schedule.sigmas[i]))?)?;
        x = scheduler.step(&v, &x, None)?;
        if let Some(m) = inputs.mask {
            let sigma = f64::from(schedule.sigmas[i + 1]);
            x = super::mask::keep_outside(&x, m, inputs.source, &inputs.noise, sigma)?;
        }
        finite.record(&x)?;
        // Wait for the device at the step's end (not inside it) so the step time is its own.
        device.synchronize()?;
        step_ms.push(super::ms(t));
        memory.sample();
        progress.step(i + 1, r.steps, Some(x0))?;
    }
    Ok(Denoised {
        latents: x,
        step_ms,
        finite,
    })
}

/// Swaps in the refine stage's transformer, if it has its own.
fn start_refine(
    loaded: &mut EditModels,
    refine_model: RefineModel,
    max_seq: usize,
) -> anyhow::Result<()> {
    let device = loaded.models.device().clone();
    let placement = loaded.models.placement();
    let refine = form::load_refine_transformer(
        &loaded.paths,
        refine_model,
        loaded.lora.as_ref(),
        loaded.models.dtype(),
        &loading_device(placement, &device),
    )?;
    if let Some(refine) = refine {
        let mut refine = placed(refine, placement, &device)?;
        // The reference swaps weights inside the same module: its max_seq carries over.
        refine.set_max_seq(max_seq);
        loaded.models.transformer = refine;
        loaded.edit_transformer_replaced = true;
    }
    Ok(())
}

/// The edit stage's velocity, f32 [1, C, h, w]: the model sees the canvas [target | source]
/// and only the target half is kept.
fn edit_velocity(
    loaded: &EditModels,
    x: &Tensor,
    image_rows: &Tensor,
    timestep: f32,
    prompt: &PromptEmbeds,
    r: &EditResolved,
    clip_cfg_norm: bool,
) -> anyhow::Result<Tensor> {
    let rows = image_rows.dim(0)?;
    let w = x.dim(3)?;
    let x_rows = Tensor::cat(&vec![x; rows], 0)?;
    let canvas = Tensor::cat(&[&x_rows, image_rows], 3)?;
    let device = x.device();
    let out = loaded.models.transformer.forward(
        &canvas,
        &Tensor::full(timestep, rows, device)?,
        prompt,
    )?;
    // The model predicts x0 − ε; the scheduler takes v = ε − x0.
    let v = out.to_dtype(DType::F32)?.narrow(3, 0, w)?.neg()?;
    Ok(if !r.uses_cfg() {
        v
    } else if clip_cfg_norm {
        guidance::clip_cfg_norm(&v, r.guidance, r.image_guidance)?
    } else {
        guidance::instruct_pix2pix(&v, r.guidance, r.image_guidance)?
    })
}

/// The refine stage's velocity, f32 [1, C, h, w]: text-to-image on the target description.
fn refine_velocity(
    loaded: &EditModels,
    x: &Tensor,
    timestep: f32,
    prompt: &PromptEmbeds,
    r: &EditResolved,
) -> anyhow::Result<Tensor> {
    let batch = if r.uses_cfg() { 2 } else { 1 };
    let x_in = Tensor::cat(&vec![x; batch], 0)?;
    let out = loaded.models.transformer.forward(
        &x_in,
        &Tensor::full(timestep, batch, x.device())?,
        prompt,
    )?;
    let v = out.to_dtype(DType::F32)?.neg()?;
    Ok(if r.uses_cfg() {
        guidance::two_way(&v, r.guidance)?
    } else {
        v
    })
}
