//! The released models' configurations, built in, so the planner (and `bench pipeline`) can
//! size the real HiDream models without a download.
//!
//! Sources:
//! - transformer: `transformer/config.json` of https://huggingface.co/HiDream-ai/HiDream-I1-Full
//!   (the same file as tools/gpu/hidream-i1-transformer.json, which is included here). Dev, Fast
//!   and E1.1 (https://huggingface.co/HiDream-ai/HiDream-E1-1) have the same shapes; E1.1 only
//!   raises `max_seq` to 8192 at run time (its inference_e1_1.py, mirrored by
//!   `settings::edit`), which the planner's workload models, not the weights.
//! - CLIP-L and CLIP-G: `text_encoder/` and `text_encoder_2/config.json` of HiDream-I1-Full
//!   (Long-CLIP's 248 positions; with OpenAI CLIP's 77 the two position tables would be 0.26 MB
//!   and 0.44 MB smaller in bf16, below the planner's 0.1 GB resolution).
//! - T5-XXL: `text_encoder_3/config.json` (google/t5-v1_1-xxl's encoder).
//! - Llama: meta-llama/Llama-3.1-8B-Instruct's config.json (the LM head is never loaded).
//! - autoencoder: `vae/config.json` of HiDream-I1-Full (FLUX.1's).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::PlacementError;
use crate::models::hidream::Config as TransformerConfig;
use crate::models::text::{ClipConfig, LlamaConfig, T5Config};
use crate::models::vae::VaeConfig;
use crate::weights::{Snapshot, read_json};

const TRANSFORMER: &str = include_str!("../../tools/gpu/hidream-i1-transformer.json");
const CLIP_L: &str = r#"{"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
  "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 248,
  "projection_dim": 768, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05}"#;
const CLIP_G: &str = r#"{"vocab_size": 49408, "hidden_size": 1280, "intermediate_size": 5120,
  "num_hidden_layers": 32, "num_attention_heads": 20, "max_position_embeddings": 248,
  "projection_dim": 1280, "hidden_act": "gelu", "layer_norm_eps": 1e-05}"#;
const T5_XXL: &str = r#"{"vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240,
  "num_layers": 24, "num_heads": 64, "relative_attention_num_buckets": 32,
  "relative_attention_max_distance": 128, "layer_norm_epsilon": 1e-06,
  "feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu_new"}"#;
const LLAMA_3_1_8B: &str = r#"{"vocab_size": 128256, "hidden_size": 4096,
  "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
  "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}"#;
const FLUX_VAE: &str = r#"{"in_channels": 3, "out_channels": 3, "latent_channels": 16,
  "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "norm_num_groups": 32,
  "scaling_factor": 0.3611, "shift_factor": 0.1159, "use_quant_conv": false,
  "use_post_quant_conv": false, "mid_block_add_attention": true}"#;

/// The six models of a HiDream pipeline, each in our own config type.
#[derive(Debug, Clone)]
pub struct ModelConfigs {
    pub transformer: TransformerConfig,
    pub vae: VaeConfig,
    pub clip_l: ClipConfig,
    pub clip_g: ClipConfig,
    pub t5: T5Config,
    pub llama: LlamaConfig,
}

impl ModelConfigs {
    /// The configs of a snapshot's models and of a Llama folder, read as loading reads them.
    pub fn read(snapshot: &Snapshot, llama_dir: &Path) -> anyhow::Result<Self> {
        let config = |component: &str| -> anyhow::Result<PathBuf> {
            Ok(snapshot.component_dir(component)?.join("config.json"))
        };
        Ok(Self {
            transformer: TransformerConfig::from_file(&config("transformer")?)?,
            vae: read_json(&config("vae")?, "autoencoder config")?,
            clip_l: read_json(&config("text_encoder")?, "CLIP text encoder config")?,
            clip_g: read_json(&config("text_encoder_2")?, "CLIP text encoder config")?,
            t5: read_json(&config("text_encoder_3")?, "T5 encoder config")?,
            llama: read_json(&llama_dir.join("config.json"), "Llama config")?,
        })
    }

    /// The released models' configurations, parsed and checked as a downloaded config.json
    /// would be.
    pub fn released() -> Result<Self, PlacementError> {
        let transformer: TransformerConfig = parse("transformer", TRANSFORMER)?;
        transformer
            .validate()
            .map_err(|(field, problem)| PlacementError::BuiltInConfig {
                what: "transformer",
                detail: format!("{field} {problem}"),
            })?;
        let vae: VaeConfig = parse("autoencoder", FLUX_VAE)?;
        vae.validate()
            .map_err(|detail| PlacementError::BuiltInConfig {
                what: "autoencoder",
                detail,
            })?;
        Ok(Self {
            transformer,
            vae,
            clip_l: parse("CLIP-L", CLIP_L)?,
            clip_g: parse("CLIP-G", CLIP_G)?,
            t5: parse("T5-XXL", T5_XXL)?,
            llama: parse("Llama-3.1-8B", LLAMA_3_1_8B)?,
        })
    }
}

fn parse<T: DeserializeOwned>(what: &'static str, text: &str) -> Result<T, PlacementError> {
    serde_json::from_str(text).map_err(|e| PlacementError::BuiltInConfig {
        what,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::hidream::HiDreamTransformer;
    use crate::models::text::{ClipTextEncoder, LlamaEncoder, T5Encoder};
    use crate::weights::requested_tensors;

    fn parameters(tensors: &[(String, Vec<usize>)]) -> usize {
        tensors
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// The built-in configurations build models of the released checkpoints' sizes
    /// (their published config.json files).
    #[test]
    fn the_built_in_configs_are_the_released_models() {
        let c = ModelConfigs::released().unwrap();
        let transformer = requested_tensors(|vb| HiDreamTransformer::new(&c.transformer, vb));
        let transformer = transformer.unwrap();
        assert_eq!(transformer.len(), 1615);
        assert_eq!(parameters(&transformer), 17_105_733_184);
        let t5 = requested_tensors(|vb| T5Encoder::new(&c.t5, vb)).unwrap();
        // 4.762 B in the checkpoint, which also holds the shared embedding once more.
        assert_eq!(parameters(&t5) / 1_000_000, 4_762);
        let llama = requested_tensors(|vb| LlamaEncoder::new(&c.llama, vb)).unwrap();
        // 8.03 B less the 0.525 B LM head, which the encoder never reads.
        assert_eq!(parameters(&llama) / 10_000_000, 750);
        let clip_g = requested_tensors(|vb| ClipTextEncoder::new(&c.clip_g, vb)).unwrap();
        assert_eq!(parameters(&clip_g) / 10_000_000, 69);
        assert_eq!(c.vae.scale_factor(), 8);
        assert_eq!(c.transformer.max_seq(), 4096);
    }
}
