//! The engine backend that runs HiDream jobs.

use std::time::Instant;

use super::models::{EncoderMemory, HiDreamModels};
use super::noise::NoiseInput;
use super::settings::{GenerateSettings, ModelSelection};
use super::text_to_image::{Generation, generate};
use crate::engine::{Backend, JobContext, JobError};

/// A text-to-image job: settings, and noise to replay instead of the seed's.
#[derive(Debug, Clone)]
pub struct GenerateJob {
    pub settings: GenerateSettings,
    pub noise: Option<NoiseInput>,
}

/// Loads HiDream models for the engine and runs jobs on them.
#[derive(Debug, Clone, Default)]
pub struct HiDreamBackend {
    /// Overrides the per-device default of [`EncoderMemory`].
    pub encoder_memory: Option<EncoderMemory>,
}

pub struct LoadedModels {
    models: HiDreamModels,
    /// Load time, reported by the first job that uses these models.
    unreported_load_ms: Option<f64>,
}

impl Backend for HiDreamBackend {
    type Request = GenerateJob;
    type Output = Generation;
    type ModelKey = ModelSelection;
    type Models = LoadedModels;

    fn model_key(&self, request: &GenerateJob) -> ModelSelection {
        request.settings.models.clone()
    }

    fn describe(&self, key: &ModelSelection) -> String {
        format!(
            "HiDream-I1 from {} with Llama from {} ({} on {})",
            key.model.display(),
            key.llama.display(),
            key.dtype.name(),
            key.device.name()
        )
    }

    fn load(&mut self, key: &ModelSelection) -> anyhow::Result<LoadedModels> {
        let started = Instant::now();
        let memory = self
            .encoder_memory
            .unwrap_or_else(|| EncoderMemory::default_for(key.device));
        let models = HiDreamModels::load(key, memory)?;
        Ok(LoadedModels {
            models,
            unreported_load_ms: Some(started.elapsed().as_secs_f64() * 1e3),
        })
    }

    fn run(
        &mut self,
        loaded: &mut LoadedModels,
        job: &GenerateJob,
        ctx: &mut JobContext<'_, Generation>,
    ) -> Result<Generation, JobError> {
        let mut out = generate(&mut loaded.models, &job.settings, job.noise.as_ref(), ctx)?;
        if let Some(load_ms) = loaded.unreported_load_ms.take() {
            out.record.timings.load_ms = load_ms;
            out.record.timings.total_ms += load_ms;
        }
        Ok(out)
    }
}
