//! HiDream-I1's sparse diffusion transformer (`HiDreamImageTransformer2DModel` in
//! https://github.com/HiDream-ai/HiDream-I1/blob/9b42dd606fecf8f78b974adb7e4d10331c91371a/hi_diffusers/models/transformers/transformer_hidream_image.py
//! and `moe.py` beside it). One module per concept: config,
//! embeddings (timestep, pooled text, patches, RoPE), attention, mixture of experts, blocks, and
//! the model that strings them together.

mod attention;
mod blocks;
mod config;
mod embeddings;
mod lora;
mod moe;
#[cfg(feature = "cuda")]
mod moe_cuda;
mod streaming;
mod transformer;

pub use attention::{CudaAttention, set_cuda_attention};
pub use config::Config;
pub(crate) use config::swiglu_hidden;
pub(crate) use embeddings::timestep_sinusoid;

pub use lora::LoraError;
pub(crate) use lora::{LoraUse, LoraWeights};
pub use moe::ExpertRouting;
pub use transformer::PromptEmbeds;
pub use transformer::{GGUF_ARCHITECTURE, HiDreamTransformer, LinearMemory};
