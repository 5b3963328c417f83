//! Reading model folders from disk: diffusers snapshots, transformers model folders, sharded and
//! memory-mapped safetensors, and the Hugging Face cache.

mod audit;
mod backend;
mod error;
pub mod gguf;
mod hf_cache;
mod json;
mod locate;
mod manifest;
mod mapped_file;
mod random;
mod random_quantized;
mod safetensors_file;
mod snapshot;
mod tensor_store;
pub mod torch_pt;
mod weights_file;

pub use audit::requested_tensors;

pub(crate) use audit::{check_held, check_tensor_map, check_tensors};
pub(crate) use backend::{Request, TensorSource, var_builder_over};
pub use error::{Result, WeightsError};
pub use hf_cache::CachedModel;
pub use hf_cache::HubCache;

pub use json::read_json;
pub use locate::resolve_model_path;
pub use manifest::ManifestDefaults;

pub use manifest::{
    StudioManifest, bundled_chat_model, bundled_experiment, bundled_folder, bundled_model,
};
pub use random::random_var_builder;
pub use random_quantized::RandomQuantized;
pub use safetensors_file::{StoredDtype, TensorEntry};

pub use snapshot::ComponentSpec;
pub(crate) use snapshot::MODEL_INDEX;
pub use snapshot::ModelIndex;
pub use snapshot::Snapshot;
pub use tensor_store::TensorStore;
