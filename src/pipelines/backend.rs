//! The engine backend that runs the studio's jobs: text-to-image, instruction edits and
//! Hi-DiT class-conditional images.

use std::time::Instant;

use super::agent_job::{AgentJob, AgentModelKey, AgentModels, AgentUpdate};
use super::edit::{Edit, EditModelChoice, EditModels, EditSettings, edit};
use super::hidit::{HiditError, HiditFiles, HiditGeneration, HiditModels, HiditSettings};
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

/// One Hi-DiT image of a class: the model's files, the sampler settings, the device.
#[derive(Debug, Clone)]
pub struct HiditJob {
    pub files: HiditFiles,
    pub settings: HiditSettings,
    pub device: DeviceChoice,
}

/// The models a Hi-DiT job needs: consecutive jobs on the same files and device reuse them.
#[derive(Debug, Clone, PartialEq)]
pub struct HiditModelKey {
    pub files: HiditFiles,
    pub device: DeviceChoice,
}

/// Anything the engine can be asked to do.
#[derive(Debug, Clone)]
pub enum Job {
    Generate(GenerateJob),
    Edit(EditJob),
    Hidit(HiditJob),
    /// A turn of a conversation with the agent, whose plan makes pictures.
    Agent(Box<AgentJob>),
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

impl From<HiditJob> for Job {
    fn from(job: HiditJob) -> Self {
        Self::Hidit(job)
    }
}

/// What a job produced.
pub enum JobOutput {
    Generation(Box<Generation>),
    Edit(Box<Edit>),
    Hidit(Box<HiditGeneration>),
    /// An agent turn's news: partial while the turn runs, [`AgentUpdate::Done`] at its end.
    Agent(AgentUpdate),
}

impl JobOutput {
    /// The finished image at its output size; an agent turn's pictures are in the history.
    pub fn image(&self) -> Option<&image::RgbImage> {
        match self {
            Self::Generation(g) => Some(&g.image),
            Self::Edit(e) => Some(&e.image),
            Self::Hidit(h) => Some(&h.image),
            Self::Agent(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ModelKey {
    Generate(ModelSelection),
    Edit(EditModelChoice),
    Hidit(HiditModelKey),
    Agent(AgentModelKey),
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
    Hidit(Box<HiditModels>),
    Agent(Box<AgentModels>),
}

pub struct LoadedModels {
    models: Models,
    /// Load time, reported by the first job that uses these models.
    unreported_load_ms: Option<f64>,
}

impl LoadedModels {
    /// Text-to-image models loaded elsewhere (the agent's, sharing their Llama), kept as the
    /// engine keeps its own; their load time is the agent's.
    pub(super) fn from_generate(models: HiDreamModels) -> Self {
        Self {
            models: Models::Generate(Box::new(models)),
            unreported_load_ms: None,
        }
    }
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
            Job::Hidit(job) => ModelKey::Hidit(HiditModelKey {
                files: job.files.clone(),
                device: job.device,
            }),
            Job::Agent(job) => ModelKey::Agent(AgentModelKey {
                model: job.model.clone(),
                device: job.device,
                shared_llama: job.shares_llama(),
            }),
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
            ModelKey::Hidit(key) => format!(
                "the Hi-DiT model {} (f32 on {})",
                key.files.model.display(),
                key.device.name()
            ),
            ModelKey::Agent(key) => match &key.shared_llama {
                Some(selection) => format!(
                    "HiDream-I1 from {} with Llama from {}, and the agent on that Llama ({} on {})",
                    selection.model.display(),
                    selection.llama.display(),
                    selection.dtype.name(),
                    selection.device.name()
                ),
                None => format!(
                    "the agent model from {} (f32 on {})",
                    key.model.display(),
                    key.device.name()
                ),
            },
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
            ModelKey::Hidit(key) => {
                let device = key.device.device()?;
                Models::Hidit(Box::new(HiditModels::load(&key.files, &device)?))
            }
            ModelKey::Agent(key) => {
                let memory = key
                    .shared_llama
                    .as_ref()
                    .map(|selection| self.memory(selection.device));
                Models::Agent(Box::new(AgentModels::load(key, memory)?))
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
            (Models::Hidit(models), Job::Hidit(job)) => JobOutput::Hidit(Box::new(
                super::hidit::generate(models, &job.settings, None, ctx).map_err(hidit_error)?,
            )),
            (Models::Agent(models), Job::Agent(job)) => {
                return super::agent_turn::run_turn(self, models, job, ctx)
                    .map(|end| JobOutput::Agent(AgentUpdate::Done(Box::new(end))));
            }
            _ => {
                return Err(JobError::Failed(anyhow::anyhow!(
                    "internal error: the loaded models do not match the job"
                )));
            }
        };
        let unreported = loaded.unreported_load_ms.take();
        let t = match &mut output {
            JobOutput::Generation(g) => &mut g.record.timings,
            JobOutput::Edit(e) => &mut e.record.timings,
            JobOutput::Hidit(h) => {
                // The pipeline counts its models' load in every image; a cached model cost
                // this job nothing.
                let t = &mut h.record.timings;
                t.total_ms -= t.load_ms;
                t.load_ms = 0.0;
                t
            }
            JobOutput::Agent(_) => return Ok(output),
        };
        if let Some(load_ms) = unreported {
            t.load_ms = load_ms;
            t.total_ms += load_ms;
        }
        Ok(output)
    }
}

/// A cancelled Hi-DiT run is a cancellation; anything else a failure with the pipeline's words.
fn hidit_error(error: HiditError) -> JobError {
    match error {
        HiditError::Cancelled(_) => JobError::Cancelled,
        other => JobError::Failed(other.into()),
    }
}
