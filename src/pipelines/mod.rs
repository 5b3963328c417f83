//! The pipelines that turn requests into images, and the engine backend that runs them.

mod agent_job;
mod agent_turn;
mod backend;
mod decode;
pub mod edit;
mod finite;
mod gpu_memory;
pub mod hidit;
mod llama;
mod models;
mod noise;
mod placement;
mod presets;
mod progress;
pub mod resample;
mod resolution;
mod text_to_image;

pub use crate::settings::{ComputeDType, DeviceChoice, GenerateSettings, ModelSelection, Resolved};
pub use agent_job::{AgentJob, AgentModelKey, AgentUpdate, AttachedPicture, TurnEnd};
pub use agent_turn::job_title;
pub use backend::{
    EditJob, GenerateJob, HiDreamBackend, HiditJob, HiditModelKey, Job, JobOutput, ModelKey,
};

pub use gpu_memory::GpuMemoryRecord;

pub use llama::find_llama;

pub(crate) use models::PROMPT_CACHE_SIZE;
pub use models::{EncoderMemory, HiDreamModels};
pub use noise::NoiseInput;
pub use presets::Preset;
pub use presets::PresetDefaults;
pub use progress::{Progress, Silent};
pub use resolution::NamedResolution;
pub(crate) use resolution::effective_size;
pub use resolution::{OFFICIAL_RESOLUTIONS, parse_size};
pub use text_to_image::{Generation, GenerationRecord, Timings, generate};
