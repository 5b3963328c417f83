//! What a text-to-image job asks for, and the fully resolved settings it ran with.

use std::path::PathBuf;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use super::presets::Preset;
use super::resolution::effective_size;
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
}

fn dynamic() -> ShiftMode {
    ShiftMode::Dynamic
}

fn default_base() -> u32 {
    1024
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
    pub fn uses_cfg(&self) -> bool {
        self.guidance > 1.0
    }
}

impl GenerateSettings {
    /// Fills in the preset's values and the output size; every invalid value is an error that
    /// says which option to change. `vae_scale` is 8 for the FLUX autoencoder.
    pub fn resolve(&self, vae_scale: usize) -> Result<Resolved, String> {
        let d = self.preset.defaults();
        let steps = self.steps.unwrap_or(d.steps);
        let guidance = self.guidance.unwrap_or(d.guidance);
        let shift = self.shift.unwrap_or(d.shift);
        if steps == 0 {
            return Err("--steps must be at least 1".into());
        }
        if steps > 1000 {
            return Err(format!(
                "--steps {steps} is more than the 1000 training timesteps"
            ));
        }
        if !guidance.is_finite() || guidance < 0.0 {
            return Err(format!(
                "--guidance must be 0 or more (got {guidance}); 0 and 1 turn guidance off"
            ));
        }
        if !shift.is_finite() || shift <= 0.0 {
            return Err(format!("--shift must be positive (got {shift})"));
        }
        if self.base_resolution < 16 || !self.base_resolution.is_multiple_of(16) {
            return Err(format!(
                "--base-resolution must be a multiple of 16, at least 16 (got {})",
                self.base_resolution
            ));
        }
        let multiple = (vae_scale * 2) as u32;
        let (width, height) = effective_size(
            self.width,
            self.height,
            self.base_resolution,
            multiple,
        )
        .ok_or_else(|| {
            format!(
                "a {}×{} image cannot be made: rescaled to about {}² pixels its shorter side would \
                 be under {multiple} pixels; use a less extreme aspect ratio",
                self.width, self.height, self.base_resolution
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
