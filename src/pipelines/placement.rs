//! The placement planner (`crate::placement`) applied to the models a job loads: the budget
//! (`--vram-budget`, else the GPU's free memory), the snapshot's own configs, the transformer's
//! format (its GGUF's quantisation, else the compute dtype) and the encoders' (Q8_0 where a
//! GGUF stands in for T5 or Llama); and loading a transformer where the placement puts it.

use std::collections::BTreeMap;

use candle_core::Device;

use crate::device_memory::memory_info;
use crate::models::ComponentKind;
use crate::models::hidream::HiDreamTransformer;
use crate::placement::{
    EncoderFormat, ModelConfigs, Placement, PlanModel, PlanRequest, Planner, TransformerPlacement,
};
use crate::quantize::QuantTarget;
use crate::settings::{ComputeDType, ModelSelection};
use crate::weights::{Snapshot, TensorStore};

/// The placement for `selection`'s models, or `None` when there is nothing to plan: the CPU
/// without `--vram-budget`, or f32 on a GPU without one (the checking path, sized by hand).
pub(crate) fn plan_placement(
    selection: &ModelSelection,
    snapshot: &Snapshot,
    device: &Device,
    model: PlanModel,
) -> anyhow::Result<Option<Placement>> {
    let asked = selection.placement.vram_budget;
    if selection.dtype == ComputeDType::F32 {
        if asked.is_some() {
            anyhow::bail!(
                "--vram-budget: the placement planner sizes bf16, f16 and GGUF models; add \
                 --dtype bf16 (or f16), or leave --vram-budget out to run in f32 without a plan"
            );
        }
        return Ok(None);
    }
    let Some(budget) = asked.or_else(|| memory_info(device).map(|m| m.free)) else {
        return Ok(None);
    };
    let planner = Planner::for_configs(ModelConfigs::read(snapshot, &selection.llama)?)?;
    let request = PlanRequest {
        budget,
        model,
        transformer: transformer_format(selection, snapshot)?,
        encoders: encoder_format(selection, snapshot)?,
        encoder_device: selection.placement.encoder_device,
    };
    Ok(Some(planner.plan(&request)?))
}

/// The transformer's format: the quantisation most of its GGUF's tensors have, else the
/// compute dtype.
fn transformer_format(
    selection: &ModelSelection,
    snapshot: &Snapshot,
) -> anyhow::Result<QuantTarget> {
    let dense = match selection.dtype {
        ComputeDType::F16 => QuantTarget::F16,
        _ => QuantTarget::Bf16,
    };
    let gguf = match &selection.transformer {
        Some(file) => Some(file.clone()).filter(|f| f.is_file()),
        None => ComponentKind::Transformer
            .gguf_standing_in(&snapshot.component_dir("transformer")?)
            .map(|(file, _)| file),
    };
    let Some(gguf) = gguf else {
        return Ok(dense);
    };
    let counts = TensorStore::open_gguf_any(&gguf)?.dtype_counts();
    Ok(dominant_quantisation(&counts).unwrap_or(dense))
}

/// The quantised ggml type most tensors have, as the quantiser's target of that name (the
/// K-quant "medium" mixes for Q4_K and Q5_K, which is how the community files are made).
fn dominant_quantisation(counts: &BTreeMap<&'static str, usize>) -> Option<QuantTarget> {
    let (name, _) = counts
        .iter()
        .filter(|(name, _)| !matches!(**name, "F32" | "F16" | "BF16"))
        .max_by_key(|(_, n)| **n)?;
    Some(match *name {
        "Q8_0" => QuantTarget::Q8_0,
        "Q6_K" => QuantTarget::Q6K,
        "Q5_K" => QuantTarget::Q5KM,
        "Q5_1" => QuantTarget::Q5_1,
        "Q5_0" => QuantTarget::Q5_0,
        "Q4_K" => QuantTarget::Q4KM,
        "Q4_1" => QuantTarget::Q4_1,
        "Q4_0" => QuantTarget::Q4_0,
        "Q3_K" => QuantTarget::Q3K,
        "Q2_K" => QuantTarget::Q2K,
        _ => return None,
    })
}

/// Q8_0 when a GGUF stands in for T5 or Llama (the planner sizes both in Q8_0 then), else
/// bf16 as released.
fn encoder_format(
    selection: &ModelSelection,
    snapshot: &Snapshot,
) -> anyhow::Result<EncoderFormat> {
    let t5 = ComponentKind::T5.gguf_standing_in(&snapshot.component_dir("text_encoder_3")?);
    let llama = ComponentKind::Llama.gguf_standing_in(&selection.llama);
    Ok(if t5.is_some() || llama.is_some() {
        EncoderFormat::Q8_0
    } else {
        EncoderFormat::Bf16
    })
}

/// Where a transformer loads for `placement`: `device`, or host memory when its blocks are
/// streamed (streamed blocks never touch the GPU; [`placed`] moves the resident part over).
pub(crate) fn loading_device(placement: Option<&Placement>, device: &Device) -> Device {
    match placement.map(|p| p.transformer) {
        Some(TransformerPlacement::Streamed { .. }) => Device::Cpu,
        _ => device.clone(),
    }
}

/// A transformer loaded on [`loading_device`], placed as `placement` says.
pub(crate) fn placed(
    transformer: HiDreamTransformer,
    placement: Option<&Placement>,
    device: &Device,
) -> candle_core::Result<HiDreamTransformer> {
    match placement.map(|p| p.transformer) {
        Some(TransformerPlacement::Streamed {
            resident_blocks, ..
        }) => transformer.place(device, resident_blocks),
        _ => Ok(transformer),
    }
}

/// A transformer loaded and placed where `placement` puts it.
pub(crate) fn load_placed<E>(
    placement: Option<&Placement>,
    device: &Device,
    load: impl FnOnce(&Device) -> Result<HiDreamTransformer, E>,
) -> anyhow::Result<HiDreamTransformer>
where
    anyhow::Error: From<E>,
{
    let loaded = load(&loading_device(placement, device))?;
    Ok(placed(loaded, placement, device)?)
}
