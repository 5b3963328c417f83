//! Reading model folders from disk: diffusers snapshots, transformers model folders, sharded and
//! memory-mapped safetensors, and the Hugging Face cache.

mod audit;
mod error;
mod hf_cache;
mod json;
mod locate;
mod manifest;
mod random;
mod safetensors_file;
mod snapshot;
mod tensor_store;

pub use audit::{check_tensors, requested_tensors};
pub use error::{Result, WeightsError};
pub use hf_cache::{CachedModel, HubCache, is_repo_dir, resolve_repo_dir};
pub use json::read_json;
pub use locate::resolve_model_path;
pub use manifest::{ManifestDefaults, StudioManifest, bundled_model, bundled_models_dir};
pub use random::random_var_builder;
pub use safetensors_file::{SafetensorsFile, TensorEntry, dtype_name, float_dtype};
pub use snapshot::{ComponentSpec, MODEL_INDEX, ModelIndex, Snapshot};
pub use tensor_store::TensorStore;
