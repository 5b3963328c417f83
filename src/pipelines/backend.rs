//! The engine backend that runs HiDream jobs: text-to-image and instruction edits.

use std::time::Instant;

use super::edit::{Edit, EditModelChoice, EditModels, EditSettings, edit};
use super::models::{EncoderMemory, HiDreamModels};
use super::noise::NoiseInput;
use super::text_to_image::{Generation, generate};
use crate::engine::{Backend, JobContext, JobError};
use crate::settings::{DeviceChoice, GenerateSettings, ModelSelection};

/// A text-to-image job: settings, and noise to replay instead of the seed's.
#[derive(Debug, Clone)]
pub struct GenerateJob {
    pub settings: GenerateSettings,
    pub noise: Option<NoiseInput>,
}

/// An instruction edit: settings, and noise to replay instead of the seed's.
#[derive(Debug, Clone)]
pub struct EditJob {
    pub settings: EditSettings,
    pub noise: Option<NoiseInput>,
}

/// Anything the engine can be asked to do.
#[derive(Debug, Clone)]
pub enum Job {
    Generate(GenerateJob),
    Edit(EditJob),
}

impl From<GenerateJob> for Job {
    fn from(job: GenerateJob) -> Self {
        Self::Generate(job)
    }
}

impl From<EditJob> for Job {
    fn from(job: EditJob) -> Self {
        Self::Edit(job)
    }
}

/// What a job produced.
pub enum JobOutput {
    Generation(Box<Generation>),
    Edit(Box<Edit>),
}

impl JobOutput {
    /// The finished image at its output size.
    pub fn image(&self) -> &image::RgbImage {
        match self {
            Self::Generation(g) => &g.image,
            Self::Edit(e) => &e.image,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ModelKey {
    Generate(ModelSelection),
    Edit(EditModelChoice),
}

/// Loads HiDream models for the engine and runs jobs on them.
#[derive(Debug, Clone, Default)]
pub struct HiDreamBackend {
    /// Overrides the per-device default of [`EncoderMemory`].
    pub encoder_memory: Option<EncoderMemory>,
}

enum Models {
    Generate(Box<HiDreamModels>),
    Edit(Box<EditModels>),
}

pub struct LoadedModels {
    models: Models,
    /// Load time, reported by the first job that uses these models.
    unreported_load_ms: Option<f64>,
}

impl HiDreamBackend {
    fn memory(&self, device: DeviceChoice) -> EncoderMemory {
        self.encoder_memory
            .unwrap_or_else(|| EncoderMemory::default_for(device))
    }
}

impl Backend for HiDreamBackend {
    type Request = Job;
    type Output = JobOutput;
    type ModelKey = ModelKey;
    type Models = LoadedModels;

    fn model_key(&self, request: &Job) -> ModelKey {
        match request {
            Job::Generate(job) => ModelKey::Generate(job.settings.models.clone()),
            Job::Edit(job) => ModelKey::Edit(job.settings.models.clone()),
        }
    }

    fn describe(&self, key: &ModelKey) -> String {
        match key {
            ModelKey::Generate(key) => format!(
                "HiDream-I1 from {} with Llama from {} ({} on {})",
                key.model.display(),
                key.llama.display(),
                key.dtype.name(),
                key.device.name()
            ),
            ModelKey::Edit(key) => format!(
                "the editing model from {} with Llama from {} ({} on {})",
                key.model.display(),
                key.llama.display(),
                key.dtype.name(),
                key.device.name()
            ),
        }
    }

    fn load(&mut self, key: &ModelKey) -> anyhow::Result<LoadedModels> {
        let started = Instant::now();
        let models = match key {
            ModelKey::Generate(selection) => {
                let memory = self.memory(selection.device);
                Models::Generate(Box::new(HiDreamModels::load(selection, memory)?))
            }
            ModelKey::Edit(choice) => {
                let memory = self.memory(choice.device);
                Models::Edit(Box::new(EditModels::load(choice, memory)?))
            }
        };
        Ok(LoadedModels {
            models,
            unreported_load_ms: Some(started.elapsed().as_secs_f64() * 1e3),
        })
    }

    fn run(
        &mut self,
        loaded: &mut LoadedModels,
        job: &Job,
        ctx: &mut JobContext<'_, JobOutput>,
    ) -> Result<JobOutput, JobError> {
        let mut output = match (&mut loaded.models, job) {
            (Models::Generate(models), Job::Generate(job)) => JobOutput::Generation(Box::new(
                generate(models, &job.settings, job.noise.as_ref(), ctx)?,
            )),
            (Models::Edit(models), Job::Edit(job)) => JobOutput::Edit(Box::new(edit(
                models,
                &job.settings,
                job.noise.as_ref(),
                ctx,
            )?)),
            _ => {
                return Err(JobError::Failed(anyhow::anyhow!(
                    "internal error: the loaded models do not match the job"
                )));
            }
        };
        if let Some(load_ms) = loaded.unreported_load_ms.take() {
            let t = match &mut output {
                JobOutput::Generation(g) => &mut g.record.timings,
                JobOutput::Edit(e) => &mut e.record.timings,
            };
            t.load_ms = load_ms;
            t.total_ms += load_ms;
        }
        Ok(output)
    }
}
