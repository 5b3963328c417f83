//! The SiT of a REPA-E experiment folder ([`HiditExperiment`]): its configuration from
//! args.json (our `arch` object, else REPA-E's `model` name on the autoencoder's latent, with
//! train_ldm_only.py's defaults for absent fields) and its weights, checked before loading.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::classes::ClassNames;
use super::error::HiditError;
use crate::models::hidit::config::MODEL_NAMES;
use crate::models::hidit::files::HiditExperiment;
use crate::models::hidit::{
    ArchSpec, Conditioning, PixelBranch, PixelBranchConfig, Sit, SitConfig,
};
use crate::weights::{check_tensor_map, requested_tensors};

/// The checkpoint entry sampling reads (generate.py loads `state_dict['ema']`).
pub const SAMPLING_ENTRY: &str = "ema";
/// Checkpoint tensors the SiT does not read: BatchNorm's step counter.
const SIT_IGNORED: [&str; 1] = ["bn.num_batches_tracked"];

/// train_ldm_only.py's defaults for fields an args.json may lack.
const DEFAULT_MODEL: &str = "SiT-XL/1";
const DEFAULT_NUM_CLASSES: usize = 1000;
const DEFAULT_ENCODER_DEPTH: usize = 8;
const DEFAULT_RESOLUTION: usize = 256;
const DEFAULT_CFG_PROB: f64 = 0.1;

fn field(exp: &HiditExperiment, field: &'static str, problem: impl Into<String>) -> HiditError {
    HiditError::Field {
        path: exp.args_path.clone(),
        field,
        problem: problem.into(),
    }
}

/// The classes and label dropout args.json states, with train_ldm_only.py's defaults: what
/// the window's class picker needs without reading the checkpoint.
pub fn conditioning(exp: &HiditExperiment) -> Conditioning {
    let args = &exp.args;
    Conditioning {
        num_classes: args.num_classes.unwrap_or(DEFAULT_NUM_CLASSES),
        null_class: args.cfg_prob.unwrap_or(DEFAULT_CFG_PROB) > 0.0,
        encoder_depth: args.encoder_depth.unwrap_or(DEFAULT_ENCODER_DEPTH),
    }
}

/// The SiT's configuration. The projector widths of a named model are read off `state_dict`
/// (REPA-E takes them from the encoders it aligns with, which sampling does not load).
pub fn sit_config<S: std::hash::BuildHasher>(
    exp: &HiditExperiment,
    state_dict: &HashMap<String, Tensor, S>,
) -> Result<SitConfig, HiditError> {
    let args = &exp.args;
    if args.qk_norm == Some(true) {
        return Err(field(
            exp,
            "qk_norm",
            "is true: models with query/key normalisation are not supported (REPA-E's published \
             models have none)",
        ));
    }
    let conditioning = conditioning(exp);
    let cfg = if let Some(arch) = &args.arch {
        let arch: ArchSpec = serde_json::from_value(arch.clone())
            .map_err(|e| field(exp, "arch", format!("is not a SiT architecture: {e}")))?;
        SitConfig::from_arch(&arch, conditioning)
    } else {
        let vae = exp.vae_arch()?;
        let name = args.model.as_deref().unwrap_or(DEFAULT_MODEL);
        let input_size = args.resolution.unwrap_or(DEFAULT_RESOLUTION) / vae.downsampling();
        SitConfig::from_name(
            name,
            input_size,
            vae.embed_dim,
            conditioning,
            projector_widths(state_dict),
        )
        .ok_or_else(|| {
            field(
                exp,
                "model",
                format!(
                    "is `{name}`, not one of REPA-E's SiT names ({MODEL_NAMES}); a model of \
                     another shape states it in an `arch` object"
                ),
            )
        })?
    };
    let which = if args.arch.is_some() { "arch" } else { "model" };
    cfg.validate()
        .map_err(|problem| field(exp, which, problem))?;
    Ok(cfg)
}

/// What states the SiT's architecture, for messages.
fn arch_source(exp: &HiditExperiment) -> String {
    match (&exp.args.arch, &exp.args.model) {
        (Some(_), _) => "args.json's `arch`".into(),
        (None, Some(name)) => format!("args.json's `model` ({name})"),
        (None, None) => format!("args.json's default `model` ({DEFAULT_MODEL})"),
    }
}

/// The SiT from the checkpoint's `entry` (`ema` for sampling; a safetensors conversion holds
/// it alone), every tensor checked against the configuration first, computing in f32 on
/// `device`. A folder with a pixel branch gives its SiT alone (the stage-1 path).
pub fn load_sit(exp: &HiditExperiment, entry: &str, device: &Device) -> Result<Sit, HiditError> {
    Ok(load_hidit(exp, entry, device)?.0)
}

/// args.json's `pixel_branch`, if the folder has one (absent or null: latent-only).
pub fn pixel_branch_config(exp: &HiditExperiment) -> Result<Option<PixelBranchConfig>, HiditError> {
    let Some(value) = exp.args.rest.get("pixel_branch").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let cfg: PixelBranchConfig = serde_json::from_value(value.clone())
        .map_err(|e| field(exp, "pixel_branch", format!("is not a pixel branch: {e}")))?;
    cfg.validate()
        .map_err(|problem| field(exp, "pixel_branch", problem))?;
    Ok(Some(cfg))
}

/// The SiT and, where args.json has `pixel_branch`, its pixel branch, from the checkpoint's
/// `entry`: every tensor of both checked against the configuration first (a stage-1
/// checkpoint in a folder that claims a pixel branch names the missing `pix_*` tensors).
pub fn load_hidit(
    exp: &HiditExperiment,
    entry: &str,
    device: &Device,
) -> Result<(Sit, Option<PixelBranch>), HiditError> {
    let state_dict = exp.load_entry(entry)?;
    let cfg = sit_config(exp, &state_dict)?;
    let pixel = pixel_branch_config(exp)?;
    let build_error = |cause| HiditError::Build {
        path: exp.checkpoint.clone(),
        what: "SiT",
        cause,
    };
    let build = |vb: VarBuilder| -> candle_core::Result<_> {
        let sit = Sit::new(&cfg, vb.clone())?;
        let branch = pixel
            .as_ref()
            .map(|p| PixelBranch::new(p, cfg.hidden_size, vb))
            .transpose()?;
        Ok((sit, branch))
    };
    let requested = requested_tensors(build).map_err(build_error)?;
    if pixel.is_none() && state_dict.keys().any(|k| is_pixel_tensor(k)) {
        return Err(field(
            exp,
            "pixel_branch",
            format!(
                "is missing, yet {} holds pixel-branch tensors (pix_embedder.*, pix_head.*): \
                 add the `pixel_branch` object the trainer wrote",
                exp.checkpoint.display()
            ),
        ));
    }
    check_tensor_map(
        &exp.checkpoint,
        &arch_source(exp),
        &state_dict,
        &requested,
        &SIT_IGNORED,
    )?;
    build(VarBuilder::from_tensors(state_dict, DType::F32, device)).map_err(build_error)
}

fn is_pixel_tensor(name: &str) -> bool {
    name.starts_with("pix_embedder.") || name.starts_with("pix_head.")
}

/// The model's class names: args.json's `class_names` (ours), else ImageNet's for a
/// 1000-class model, else none.
pub fn class_names(
    exp: &HiditExperiment,
    num_classes: usize,
) -> Result<Option<ClassNames>, HiditError> {
    let Some(listed) = exp.args.rest.get("class_names") else {
        return Ok((num_classes == 1000).then(ClassNames::imagenet));
    };
    let names: Vec<String> = serde_json::from_value(listed.clone())
        .map_err(|e| field(exp, "class_names", format!("is not a list of names: {e}")))?;
    if names.len() != num_classes {
        return Err(field(
            exp,
            "class_names",
            format!("lists {} names for {num_classes} classes", names.len()),
        ));
    }
    Ok(Some(ClassNames::from_lines(
        names.iter().map(String::as_str),
    )))
}

/// (z_dims, projector_dim) of the projectors `projectors.{i}.{0,4}.weight` in a state dict.
fn projector_widths<S: std::hash::BuildHasher>(
    state_dict: &HashMap<String, Tensor, S>,
) -> (Vec<usize>, usize) {
    let dim0 = |name: String| {
        state_dict
            .get(&name)
            .and_then(|t| t.dims().first().copied())
    };
    let z_dims: Vec<usize> = (0..)
        .map_while(|i| dim0(format!("projectors.{i}.4.weight")))
        .collect();
    let projector_dim = dim0("projectors.0.0.weight".into()).unwrap_or(2048);
    (z_dims, projector_dim)
}
