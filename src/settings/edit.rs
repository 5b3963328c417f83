//! What an edit job asks for, the editing forms' defaults, and the pure step that resolves a
//! request against the loaded model into the settings the edit runs with.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::checks;
use super::error::{Field, JobWarning, SettingsError};
use super::layers::UserValues;
use crate::pipelines::edit::{EditForm, Fit, RefineModel};
use crate::pipelines::{ComputeDType, DeviceChoice};
use crate::settings::PlacementChoice;

/// The marker the pipeline splits the E1-Full prompt at for the refine stage.
pub(crate) const TARGET_MARKER: &str = "Target Image Description:";

/// The official scripts' steps for every form.
pub(crate) const DEFAULT_STEPS: usize = 28;

/// An editing request. `None` fields take the model form's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditSettings {
    /// Flattened, so a record's JSON keeps the one level it has always had.
    #[serde(flatten)]
    pub models: EditModelChoice,
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
    pub steps: Option<usize>,
    pub shift: Option<f64>,
    pub base_resolution: Option<u32>,
    pub seed: u64,
}

/// The part of [`EditSettings`] that decides which models are loaded: consecutive edits with
/// equal choices reuse them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditModelChoice {
    /// The `--model` path as given (E1.1 folder, E1-Full folder or LoRA file).
    pub model: PathBuf,
    pub base_model: Option<PathBuf>,
    /// Overrides recognising the form from the files.
    pub form: Option<EditForm>,
    pub llama: PathBuf,
    pub dtype: ComputeDType,
    pub device: DeviceChoice,
    pub refine_model: RefineModel,
    /// Weights for the editing transformer instead of its folder's (a GGUF file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformer: Option<PathBuf>,
    /// What the placement planner may use.
    #[serde(default, skip_serializing_if = "PlacementChoice::is_default")]
    pub placement: PlacementChoice,
}

impl EditModelChoice {
    /// `model` on its own, its form recognised from its files, refining as the official
    /// scripts do (on the editing model itself).
    pub fn new(model: PathBuf, llama: PathBuf, dtype: ComputeDType, device: DeviceChoice) -> Self {
        Self {
            model,
            base_model: None,
            form: None,
            llama,
            dtype,
            device,
            refine_model: RefineModel::Reference,
            transformer: None,
            placement: PlacementChoice::default(),
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

impl EditResolved {
    /// Three-way guidance runs when the instruction guidance exceeds 1.
    pub(crate) fn uses_cfg(&self) -> bool {
        self.guidance > 1.0
    }
}

/// Per-form defaults of the official scripts: inference_e1_1.py and inference.py at
/// https://github.com/HiDream-ai/HiDream-E1/tree/f6f0631.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FormDefaults {
    pub guidance: f64,
    pub image_guidance: f64,
    pub negative: &'static str,
    pub base_resolution: u32,
    pub refine_strength: f64,
}

impl FormDefaults {
    pub fn of(form: EditForm) -> Self {
        match form {
            EditForm::E1_1 => Self {
                guidance: 3.0,
                image_guidance: 1.5,
                negative: "low quality, blurry, distorted",
                base_resolution: 1024,
                refine_strength: 0.3,
            },
            EditForm::E1FullLora | EditForm::E1FullMerged => Self {
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
}

/// What the loaded editing model adds to a request's resolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EditModelFacts {
    pub form: EditForm,
    /// `flow_shift` of the snapshot's scheduler config.
    pub scheduler_shift: f64,
    /// The autoencoder's downscale (8).
    pub vae_scale: u32,
    /// The transformer config's `max_seq` (4096 for HiDream-I1).
    pub base_max_seq: usize,
}

/// A resolved edit: its settings, how the source is brought to the working size, and what
/// the user should know about values that were changed.
#[derive(Debug, Clone, PartialEq)]
pub struct EditPlan {
    pub resolved: EditResolved,
    pub fit: Fit,
    pub warnings: Vec<JobWarning>,
}

impl EditSettings {
    /// An edit of `image` by `instruction` with the numbers in `values` (unset ones take the
    /// form's defaults when resolved): no description, negative prompt or mask of its own, and
    /// the current pipeline's CLIP CFG norm guidance.
    pub fn new(
        models: EditModelChoice,
        image: PathBuf,
        instruction: String,
        values: &UserValues,
        seed: u64,
    ) -> Self {
        Self {
            models,
            image,
            instruction,
            description: None,
            negative_prompt: None,
            mask: None,
            guidance: values.guidance,
            image_guidance: values.image_guidance,
            clip_cfg_norm: true,
            refine_strength: values.refine_strength,
            steps: values.steps,
            shift: values.shift,
            base_resolution: values.base_resolution,
            seed,
        }
    }

    /// Checks what the user set, before anything is loaded (the form's defaults are valid).
    pub fn validate(&self) -> Result<(), SettingsError> {
        checks::not_blank(Field::Instruction, &self.instruction, "say what to change")?;
        self.steps.map(checks::steps).transpose()?;
        self.guidance
            .map(|g| checks::guidance(Field::InstructionGuidance, g))
            .transpose()?;
        self.image_guidance
            .map(|g| checks::guidance(Field::ImageGuidance, g))
            .transpose()?;
        self.refine_strength
            .map(checks::refine_strength)
            .transpose()?;
        self.shift.map(checks::shift).transpose()?;
        self.base_resolution
            .map(checks::base_resolution)
            .transpose()?;
        checks::dtype_on_device(self.models.dtype, self.models.device)
    }

    /// Fills every unset value from the form's defaults and the model, and works out the
    /// working size of a `source_width × source_height` image. Pure: no file is read.
    pub fn resolve(
        &self,
        model: &EditModelFacts,
        (source_width, source_height): (u32, u32),
    ) -> Result<EditPlan, SettingsError> {
        self.validate()?;
        let form = model.form;
        let d = FormDefaults::of(form);
        let mut warnings = Vec::new();
        let base_resolution = self.base_resolution.unwrap_or(d.base_resolution);
        let fit = if form.is_e1_full() {
            Fit::square(base_resolution)
        } else {
            Fit::e1_1(source_width, source_height, base_resolution)
        };
        let (width, height) = fit.crop_size;
        let max_seq = canvas_max_seq(model, width, height)?;
        let steps = self.steps.unwrap_or(DEFAULT_STEPS);
        let shift = checks::shift(self.shift.unwrap_or(model.scheduler_shift))?;
        let mut refine_strength = self.refine_strength.unwrap_or(d.refine_strength);
        if form == EditForm::E1FullMerged
            && self.models.refine_model == RefineModel::Reference
            && refine_strength > 0.0
        {
            warnings.push(JobWarning::Setting {
                setting: SettingsError::new(
                    Field::RefineStrength,
                    format!(
                        "{refine_strength} has no effect with a merged E1-Full model: its \
                         official pipeline does not refine, so the edit ran without a refine \
                         stage"
                    ),
                ),
                cli_hint: Some(
                    "pass --refine-model base --base-model DIR to refine with HiDream-I1-Full",
                ),
            });
            refine_strength = 0.0;
        }
        // Python's int(steps · (1 − r)) in f64; r = 0 never switches.
        let refine_from_step = if refine_strength > 0.0 {
            (steps as f64 * (1.0 - refine_strength)) as usize
        } else {
            steps
        };
        let prompt = if form.is_e1_full() {
            e1_full_prompt(&self.instruction, self.description.as_deref())
        } else {
            self.instruction.clone()
        };
        let resolved = EditResolved {
            form,
            target_prompt: target_prompt(&prompt),
            prompt,
            negative_prompt: self
                .negative_prompt
                .clone()
                .unwrap_or_else(|| d.negative.to_string()),
            guidance: self.guidance.unwrap_or(d.guidance),
            image_guidance: self.image_guidance.unwrap_or(d.image_guidance),
            steps,
            shift,
            refine_strength,
            refine_from_step,
            base_resolution,
            source_width,
            source_height,
            width,
            height,
            max_seq,
        };
        Ok(EditPlan {
            resolved,
            fit,
            warnings,
        })
    }
}

/// The transformer's sequence limit for an edit canvas (the noisy target and the clean source
/// side by side, h × 2w latents) of a `width × height` working size; a canvas over it is
/// refused.
fn canvas_max_seq(model: &EditModelFacts, width: u32, height: u32) -> Result<usize, SettingsError> {
    let (h, w) = (
        (height / model.vae_scale) as usize,
        (width / model.vae_scale) as usize,
    );
    let canvas_tokens = (h / 2) * w;
    let max_seq = match model.form {
        // inference_e1_1.py: twice the I1 model's 4096.
        EditForm::E1_1 => 2 * model.base_max_seq,
        // inference.py: the 768² canvas's 4608 on the I1 base.
        EditForm::E1FullLora => model.base_max_seq.max(canvas_tokens),
        EditForm::E1FullMerged => model.base_max_seq,
    };
    if canvas_tokens > max_seq {
        return Err(SettingsError::new(
            Field::BaseResolution,
            format!(
                "is too large for this model: a {width}×{height} working size gives an edit \
                 canvas of {canvas_tokens} patches, more than the {max_seq} it takes; lower it"
            ),
        ));
    }
    Ok(max_seq)
}

/// E1-Full's prompt: the instruction as given when it already has the two-part form, else
/// "Editing Instruction: {instruction}. Target Image Description: {description}" as the
/// official refiner builds it (the description defaults to the instruction).
pub(crate) fn e1_full_prompt(instruction: &str, description: Option<&str>) -> String {
    if instruction.contains(TARGET_MARKER) {
        return instruction.to_string();
    }
    let trimmed = instruction.trim().trim_matches('.').trim();
    let description = description.map_or(trimmed, str::trim);
    format!("Editing Instruction: {trimmed}. {TARGET_MARKER} {description}")
}

/// What the refine stage is prompted with: the text after the marker, else the whole prompt.
pub(crate) fn target_prompt(prompt: &str) -> String {
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

#[cfg(test)]
#[path = "edit_tests.rs"]
mod tests;
