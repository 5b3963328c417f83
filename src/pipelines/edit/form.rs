//! Which HiDream-E1 release a `--model` path holds, and loading its transformers.
//!
//! The three forms (how https://github.com/HiDream-ai/HiDream-E1/blob/f6f0631e9b621fa113f74d3b2e2cf2bc5314ef10/inference.py
//! and inference_e1_1.py load them):
//! * **E1.1**: a fine-tuned transformer with exactly I1's tensors. A folder with `transformer/`;
//!   the other components come from the folder when it is a full snapshot, else from
//!   `--base-model` (the official script reads only the transformer from the E1-1 folder).
//! * **E1-Full, LoRA**: `HiDream-E1-Full.safetensors` (a PEFT LoRA plus a few plain tensors) on
//!   top of HiDream-I1-Full given as `--base-model`; the file, or a folder holding it.
//! * **E1-Full, merged**: a full pipeline folder whose transformer config has the edit canvas's
//!   `max_resolution` (twice as wide as high: [96, 192]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use crate::models::LoadError;
use crate::models::hidream::{Config, HiDreamTransformer, LoraUse, LoraWeights};
use crate::weights::MODEL_INDEX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EditForm {
    /// HiDream-E1.1: direct instructions at about 1 megapixel.
    #[value(name = "e1.1")]
    #[serde(rename = "e1.1")]
    E1_1,
    /// HiDream-E1-Full as the LoRA file on HiDream-I1-Full.
    E1FullLora,
    /// HiDream-E1-Full as a merged pipeline folder.
    E1FullMerged,
}

impl EditForm {
    pub(crate) fn is_e1_full(self) -> bool {
        !matches!(self, Self::E1_1)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::E1_1 => "HiDream-E1.1",
            Self::E1FullLora => "HiDream-E1-Full (LoRA on HiDream-I1-Full)",
            Self::E1FullMerged => "HiDream-E1-Full (merged)",
        }
    }
}

/// What the refine stage runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RefineModel {
    /// What the official scripts really do: E1.1 refines with itself, E1-Full (LoRA) with the
    /// base minus the LoRA but with E1's plain tensors, merged E1-Full does not refine.
    Reference,
    /// What the E1 README describes: refine with HiDream-I1-Full (`--base-model`).
    Base,
}

/// The files of one editing model, recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditModelPaths {
    pub form: EditForm,
    /// Snapshot the encoders, VAE and scheduler come from.
    pub components: PathBuf,
    /// The editing transformer's folder (the base's for the LoRA form).
    pub transformer: PathBuf,
    pub lora: Option<PathBuf>,
    /// HiDream-I1-Full's transformer folder, when a base model was given.
    pub base_transformer: Option<PathBuf>,
    /// Weights to load the editing transformer from instead of its folder's (a GGUF file);
    /// its config stays the folder's.
    pub transformer_weights: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FormError {
    #[error("{path}: does not exist")]
    Missing { path: PathBuf },
    #[error(
        "{path}: is a safetensors file but not a LoRA; --model takes an E1.1 folder, an E1-Full \
         pipeline folder, or the E1-Full LoRA file (HiDream-E1-Full.safetensors)"
    )]
    NotLora { path: PathBuf },
    #[error(
        "{path}: the E1-Full LoRA applies on top of HiDream-I1-Full; pass its folder with \
         --base-model"
    )]
    NeedsBase { path: PathBuf },
    #[error(
        "{path}: holds only a transformer (as the official HiDream-E1-1 download does); pass \
         HiDream-I1-Full with --base-model for the text encoders, VAE and scheduler"
    )]
    NeedsComponents { path: PathBuf },
    #[error(
        "{path}: is not a HiDream-E1 model: no {MODEL_INDEX}, no transformer/ folder and no LoRA file"
    )]
    Unknown { path: PathBuf },
    #[error("{path}: --base-model is not a HiDream-I1 snapshot: {detail}")]
    BadBase { path: PathBuf, detail: String },
    #[error("--refine-model base refines with HiDream-I1-Full: pass its folder with --base-model")]
    RefineNeedsBase,
    #[error(
        "{path}: --transformer replaces the transformer of an E1.1 or merged E1-Full model; the \
         E1-Full LoRA is merged into HiDream-I1-Full's own weights, so it takes no \
         --transformer"
    )]
    TransformerWithLora { path: PathBuf },
}

/// Recognises the form of `model` (unless `forced`); see the module documentation.
pub(crate) fn recognise(
    model: &Path,
    base: Option<&Path>,
    forced: Option<EditForm>,
) -> Result<EditModelPaths, FormError> {
    if !model.exists() {
        return Err(FormError::Missing {
            path: model.to_path_buf(),
        });
    }
    let base_transformer = base
        .map(|b| {
            let dir = b.join("transformer");
            if b.join(MODEL_INDEX).is_file() && dir.join("config.json").is_file() {
                Ok(dir)
            } else {
                Err(FormError::BadBase {
                    path: b.to_path_buf(),
                    detail: format!("expected {MODEL_INDEX} and transformer/config.json"),
                })
            }
        })
        .transpose()?;
    let lora_form = |lora: PathBuf| -> Result<EditModelPaths, FormError> {
        let (Some(base), Some(base_transformer)) = (base, base_transformer.clone()) else {
            return Err(FormError::NeedsBase { path: lora });
        };
        Ok(EditModelPaths {
            form: EditForm::E1FullLora,
            components: base.to_path_buf(),
            transformer: base_transformer.clone(),
            lora: Some(lora),
            base_transformer: Some(base_transformer),
            transformer_weights: None,
        })
    };
    if model.is_file() {
        if !LoraWeights::is_lora_file(model) {
            return Err(FormError::NotLora {
                path: model.to_path_buf(),
            });
        }
        return lora_form(model.to_path_buf());
    }
    let lora_inside = lora_file_in(model);
    let has_index = model.join(MODEL_INDEX).is_file();
    let transformer = model.join("transformer");
    let has_transformer = transformer.join("config.json").is_file();
    let wants_lora = forced == Some(EditForm::E1FullLora)
        || (forced.is_none() && base.is_some() && lora_inside.is_some());
    if wants_lora {
        return match lora_inside {
            Some(lora) => lora_form(lora),
            None => Err(FormError::Unknown {
                path: model.to_path_buf(),
            }),
        };
    }
    if !has_transformer {
        return match lora_inside {
            Some(lora) => lora_form(lora),
            None => Err(FormError::Unknown {
                path: model.to_path_buf(),
            }),
        };
    }
    let canvas_shaped = Config::from_file(&transformer.join("config.json")).is_ok_and(|c| {
        c.max_resolution.len() == 2 && c.max_resolution[1] == 2 * c.max_resolution[0]
    });
    let form = forced.unwrap_or(if has_index && canvas_shaped {
        EditForm::E1FullMerged
    } else {
        EditForm::E1_1
    });
    let components = if has_index {
        model.to_path_buf()
    } else {
        base.map(Path::to_path_buf)
            .ok_or_else(|| FormError::NeedsComponents {
                path: model.to_path_buf(),
            })?
    };
    Ok(EditModelPaths {
        form,
        components,
        transformer,
        lora: None,
        base_transformer,
        transformer_weights: None,
    })
}

/// A top-level safetensors file holding LoRA tensors (`HiDream-E1-Full.safetensors`).
fn lora_file_in(dir: &Path) -> Option<PathBuf> {
    let preferred = dir.join("HiDream-E1-Full.safetensors");
    if preferred.is_file() {
        return Some(preferred);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors") && p.is_file())
        .filter(|p| LoraWeights::is_lora_file(p))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Loads the editing transformer.
pub(crate) fn load_edit_transformer(
    paths: &EditModelPaths,
    lora: Option<&Arc<LoraWeights>>,
    dtype: DType,
    device: &Device,
) -> Result<HiDreamTransformer, LoadError> {
    match lora {
        Some(lora) => HiDreamTransformer::load_with_lora(
            &paths.transformer,
            lora.clone(),
            LoraUse::Full,
            dtype,
            device,
        ),
        None => match &paths.transformer_weights {
            Some(weights) => {
                HiDreamTransformer::load_weights(&paths.transformer, weights, dtype, device)
            }
            None => HiDreamTransformer::load(&paths.transformer, dtype, device),
        },
    }
}

/// The transformer of the refine stage, or `None` when the editing one carries on.
pub(crate) fn load_refine_transformer(
    paths: &EditModelPaths,
    refine: RefineModel,
    lora: Option<&Arc<LoraWeights>>,
    dtype: DType,
    device: &Device,
) -> anyhow::Result<Option<HiDreamTransformer>> {
    match (refine, paths.form) {
        (RefineModel::Reference, EditForm::E1_1 | EditForm::E1FullMerged) => Ok(None),
        (RefineModel::Reference, EditForm::E1FullLora) => {
            let lora = lora.ok_or_else(|| anyhow::anyhow!("the LoRA form lost its LoRA file"))?;
            Ok(Some(HiDreamTransformer::load_with_lora(
                &paths.transformer,
                lora.clone(),
                LoraUse::PlainOnly,
                dtype,
                device,
            )?))
        }
        (RefineModel::Base, _) => {
            let dir = paths
                .base_transformer
                .as_ref()
                .ok_or(FormError::RefineNeedsBase)?;
            Ok(Some(HiDreamTransformer::load(dir, dtype, device)?))
        }
    }
}
