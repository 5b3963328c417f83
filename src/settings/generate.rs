//! What a text-to-image job asks for, and the fully resolved settings it ran with.

use std::path::PathBuf;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use super::checks;
use super::error::{Field, SettingsError};
use crate::pipelines::{Preset, effective_size};
use crate::placement::EncoderDevice;
use crate::schedulers::{SchedulerKind, ShiftMode};

/// The dtype the models compute in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ComputeDType {
    F32,
    Bf16,
    F16,
}

impl ComputeDType {
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    Cpu,
    Cuda,
}

impl DeviceChoice {
    pub fn device(self) -> anyhow::Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda if !cfg!(feature = "cuda") => anyhow::bail!(
                "this build of hidream-studio has no CUDA support: rebuild it with \
                 `cargo build --release --features cuda`, or use --device cpu"
            ),
            Self::Cuda => Device::new_cuda(0)
                .map_err(|e| anyhow::anyhow!("could not open CUDA device 0: {e}")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        }
    }
}

/// Which model folders a job runs on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelSelection {
    /// A HiDream-I1 snapshot folder.
    pub model: PathBuf,
    /// The Llama-3.1-8B-Instruct folder.
    pub llama: PathBuf,
    pub dtype: ComputeDType,
    pub device: DeviceChoice,
    /// Transformer weights to use instead of the snapshot's own: a GGUF file (quantised) or
    /// a safetensors file or folder. Its config is still the snapshot's
    /// `transformer/config.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformer: Option<PathBuf>,
    /// What the placement planner may use; the default plans for the GPU's free memory.
    #[serde(default, skip_serializing_if = "PlacementChoice::is_default")]
    pub placement: PlacementChoice,
}

/// The user's say in where the models go (see [`crate::placement`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlacementChoice {
    /// GPU memory the models may use, in bytes; default: the GPU's free memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vram_budget: Option<u64>,
    /// Where the text encoders run; default: the GPU where they fit, else the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder_device: Option<EncoderDevice>,
}

impl PlacementChoice {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A text-to-image request. `None` fields take the preset's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateSettings {
    pub models: ModelSelection,
    pub prompt: String,
    /// Used with guidance only; the reference's default is the empty prompt.
    #[serde(default)]
    pub negative_prompt: Option<String>,
    pub preset: Preset,
    #[serde(default)]
    pub steps: Option<usize>,
    #[serde(default)]
    pub guidance: Option<f64>,
    #[serde(default)]
    pub shift: Option<f64>,
    #[serde(default = "dynamic")]
    pub shift_mode: ShiftMode,
    /// Requested size; rescaled to `base_resolution²` pixels.
    pub width: u32,
    pub height: u32,
    #[serde(default = "default_base")]
    pub base_resolution: u32,
    pub seed: u64,
    /// Image-to-image: start from this image instead of pure noise (absent for text-to-image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitImage>,
}

/// The start image of an image-to-image job, and what of it may change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitImage {
    /// Any image the studio reads; brought to the job's size with a plain resize.
    pub image: PathBuf,
    /// In (0, 1]: the share of the schedule that runs, so how far the image may move; 1 is
    /// text-to-image (the image's latents are not used unless a mask keeps part of them).
    pub strength: f64,
    /// White = repaint, black = keep the start image (the editor's brushed-mask method).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<PathBuf>,
}

impl InitImage {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !self.strength.is_finite() || self.strength <= 0.0 || self.strength > 1.0 {
            return Err(SettingsError::new(
                Field::Strength,
                format!(
                    "must be above 0 and at most 1 (got {}): 1 repaints everything, values \
                     near 0 keep the start image",
                    self.strength
                ),
            ));
        }
        Ok(())
    }
}

fn dynamic() -> ShiftMode {
    ShiftMode::Dynamic
}

fn default_base() -> u32 {
    super::DEFAULT_BASE_RESOLUTION
}

/// The settings a job actually ran with, every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolved {
    pub steps: usize,
    pub guidance: f64,
    pub shift: f64,
    pub scheduler: SchedulerKind,
    /// The output size after rescaling.
    pub width: u32,
    pub height: u32,
    /// Latent size [h, w] (÷8).
    pub latent_height: usize,
    pub latent_width: usize,
}

impl Resolved {
    /// Classifier-free guidance runs when guidance exceeds 1 (a negative prompt then matters).
    pub(crate) fn uses_cfg(&self) -> bool {
        self.guidance > 1.0
    }
}

impl GenerateSettings {
    /// Fills in the preset's values and the output size; every invalid value is an error
    /// naming its field. `vae_scale` is 8 for the FLUX autoencoder.
    pub fn resolve(&self, vae_scale: usize) -> Result<Resolved, SettingsError> {
        let d = self.preset.defaults();
        let steps = checks::steps(self.steps.unwrap_or(d.steps))?;
        let guidance = checks::guidance(Field::Guidance, self.guidance.unwrap_or(d.guidance))?;
        let shift = checks::shift(self.shift.unwrap_or(d.shift))?;
        let base_resolution = checks::base_resolution(self.base_resolution)?;
        checks::dtype_on_device(self.models.dtype, self.models.device)?;
        if let Some(init) = &self.init {
            init.validate()?;
        }
        let multiple = (vae_scale * 2) as u32;
        let (width, height) = effective_size(self.width, self.height, base_resolution, multiple)
            .ok_or_else(|| {
                SettingsError::new(
                    Field::Size,
                    format!(
                        "{}×{}: the image cannot be made: rescaled to about {base_resolution}² \
                         pixels its shorter side would be under {multiple} pixels; use a less \
                         extreme aspect ratio",
                        self.width, self.height
                    ),
                )
            })?;
        Ok(Resolved {
            steps,
            guidance,
            shift,
            scheduler: d.scheduler,
            width,
            height,
            latent_height: 2 * (height as usize / (vae_scale * 2)),
            latent_width: 2 * (width as usize / (vae_scale * 2)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> GenerateSettings {
        GenerateSettings {
            models: ModelSelection {
                model: "model".into(),
                llama: "llama".into(),
                dtype: ComputeDType::F32,
                device: DeviceChoice::Cpu,
                transformer: None,
                placement: PlacementChoice::default(),
            },
            prompt: "a red circle".into(),
            negative_prompt: None,
            preset: Preset::Dev,
            steps: None,
            guidance: None,
            shift: None,
            shift_mode: ShiftMode::Dynamic,
            width: 1024,
            height: 1024,
            base_resolution: 1024,
            seed: 1,
            init: None,
        }
    }

    #[test]
    fn the_preset_fills_what_is_unset() {
        let r = request().resolve(8).unwrap();
        assert_eq!((r.steps, r.guidance, r.shift), (28, 0.0, 6.0));
        assert_eq!((r.width, r.height, r.latent_height), (1024, 1024, 128));
    }

    #[test]
    fn unbounded_or_late_failures_are_refused_up_front() {
        let mut s = request();
        s.base_resolution = 100_000;
        assert_eq!(s.resolve(8).unwrap_err().field, Field::BaseResolution);
        let mut s = request();
        s.models.dtype = ComputeDType::Bf16;
        let e = s.resolve(8).unwrap_err();
        assert_eq!(e.field, Field::Dtype);
        assert!(e.for_window().starts_with("Precision bf16"), "{e:?}");
        let mut s = request();
        s.guidance = Some(f64::NAN);
        assert_eq!(s.resolve(8).unwrap_err().field, Field::Guidance);
        let mut s = request();
        s.shift = Some(1e9);
        assert_eq!(s.resolve(8).unwrap_err().field, Field::Shift);
        let mut s = request();
        (s.width, s.height) = (10_000, 1);
        let e = s.resolve(8).unwrap_err();
        assert_eq!(e.field, Field::Size);
        assert!(e.for_cli().contains("10000×1"), "{e:?}");
    }
}
