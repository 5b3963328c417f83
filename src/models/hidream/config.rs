use std::path::Path;

use serde::Deserialize;

use crate::weights::{self, WeightsError};

/// `transformer/config.json` of a HiDream-I1 snapshot (`HiDreamImageTransformer2DModel`).
/// Every size of the model comes from here.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Config {
    pub patch_size: usize,
    pub in_channels: usize,
    #[serde(default)]
    pub out_channels: Option<usize>,
    /// Dual-stream blocks.
    pub num_layers: usize,
    /// Single-stream blocks.
    pub num_single_layers: usize,
    pub attention_head_dim: usize,
    pub num_attention_heads: usize,
    /// `[T5 width, Llama width]`.
    pub caption_channels: Vec<usize>,
    /// Width of the pooled CLIP embedding (CLIP-L + CLIP-G projections).
    pub text_emb_dim: usize,
    #[serde(default = "default_routed_experts")]
    pub num_routed_experts: usize,
    #[serde(default = "default_activated_experts")]
    pub num_activated_experts: usize,
    pub axes_dims_rope: Vec<usize>,
    pub max_resolution: Vec<usize>,
    /// For block `b`, which Llama hidden state (0-based, after the embedding) it reads.
    pub llama_layers: Vec<usize>,
}

fn default_routed_experts() -> usize {
    4
}

fn default_activated_experts() -> usize {
    2
}

/// RoPE base; the reference hard-codes it.
pub(crate) const ROPE_THETA: f64 = 10_000.0;

impl Config {
    /// Reads and checks a `config.json`.
    pub fn from_file(path: &Path) -> weights::Result<Self> {
        let config: Self = weights::read_json(path, "HiDream transformer config")?;
        config
            .validate()
            .map_err(|problem| WeightsError::JsonField {
                path: path.to_path_buf(),
                field: problem.0,
                problem: problem.1,
            })?;
        Ok(config)
    }

    /// Checks the relations between fields that the reference silently assumes.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |field: &str, problem: String| Err((field.to_string(), problem));
        if self.patch_size == 0 || self.in_channels == 0 {
            return bad("patch_size", "and in_channels must be positive".into());
        }
        if self.num_attention_heads == 0 || self.attention_head_dim == 0 {
            return bad(
                "num_attention_heads",
                "and attention_head_dim must be positive".into(),
            );
        }
        if self.caption_channels.len() != 2 {
            return bad(
                "caption_channels",
                format!(
                    "must hold [T5 width, Llama width], found {:?}",
                    self.caption_channels
                ),
            );
        }
        let rope: usize = self.axes_dims_rope.iter().sum();
        if self.axes_dims_rope.len() != 3 || self.axes_dims_rope.iter().any(|d| d % 2 != 0) {
            return bad(
                "axes_dims_rope",
                format!("must be three even sizes, found {:?}", self.axes_dims_rope),
            );
        }
        if rope != self.attention_head_dim && 2 * rope != self.attention_head_dim {
            return bad(
                "axes_dims_rope",
                format!(
                    "sums to {rope}, but must cover the head ({}) or its first half",
                    self.attention_head_dim
                ),
            );
        }
        if self.max_resolution.len() != 2 || self.max_seq() == 0 {
            return bad(
                "max_resolution",
                format!(
                    "must be [height, width] in latent pixels, found {:?}",
                    self.max_resolution
                ),
            );
        }
        let blocks = self.num_blocks();
        if self.llama_layers.len() != blocks {
            return bad(
                "llama_layers",
                format!(
                    "has {} entries but the model has {blocks} blocks ({} dual-stream + {} \
                     single-stream); there must be one per block",
                    self.llama_layers.len(),
                    self.num_layers,
                    self.num_single_layers
                ),
            );
        }
        if blocks == 0 {
            return bad("num_layers", "and num_single_layers are both 0".into());
        }
        if self.num_routed_experts > 0
            && (self.num_activated_experts == 0
                || self.num_activated_experts > self.num_routed_experts)
        {
            return bad(
                "num_activated_experts",
                format!(
                    "is {}, but must be between 1 and num_routed_experts ({})",
                    self.num_activated_experts, self.num_routed_experts
                ),
            );
        }
        Ok(())
    }

    /// The model width: heads × head size.
    pub(crate) fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Image tokens every non-square input is padded to.
    pub fn max_seq(&self) -> usize {
        self.max_resolution.iter().product::<usize>() / (self.patch_size * self.patch_size)
    }

    pub(crate) fn num_blocks(&self) -> usize {
        self.num_layers + self.num_single_layers
    }

    /// Features of one patch: patch × patch × channels.
    pub(crate) fn patch_features(&self) -> usize {
        self.patch_size * self.patch_size * self.in_channels
    }

    /// The smallest Llama stack the model can read (one more than the largest layer index).
    pub fn llama_layers_needed(&self) -> usize {
        self.llama_layers.iter().max().map_or(0, |m| m + 1)
    }
}

/// The hidden width of a SwiGLU feed-forward asked for with `hidden`: two thirds of it, rounded
/// up to a multiple of 256 (so 4·2560 gives 6912 and 2·2560 gives 3584).
pub(crate) fn swiglu_hidden(hidden: usize) -> usize {
    const MULTIPLE_OF: usize = 256;
    (2 * hidden / 3).div_ceil(MULTIPLE_OF) * MULTIPLE_OF
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The configuration of the released HiDream-I1 checkpoints (transformer/config.json of
    /// https://huggingface.co/HiDream-ai/HiDream-I1-Full).
    pub fn real() -> Config {
        let mut llama_layers: Vec<usize> = (0..32).collect();
        llama_layers.extend(std::iter::repeat_n(31, 16));
        Config {
            patch_size: 2,
            in_channels: 16,
            out_channels: Some(16),
            num_layers: 16,
            num_single_layers: 32,
            attention_head_dim: 128,
            num_attention_heads: 20,
            caption_channels: vec![4096, 4096],
            text_emb_dim: 2048,
            num_routed_experts: 4,
            num_activated_experts: 2,
            axes_dims_rope: vec![64, 32, 32],
            max_resolution: vec![128, 128],
            llama_layers,
        }
    }

    #[test]
    fn derived_sizes_of_the_real_model() {
        let c = real();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.inner_dim(), 2560);
        assert_eq!(c.max_seq(), 4096);
        assert_eq!(swiglu_hidden(4 * 2560), 6912);
        assert_eq!(swiglu_hidden(2 * 2560), 3584);
        // The tiny fixtures: 2/3 of 128 rounds up to a whole 256.
        assert_eq!(swiglu_hidden(4 * 32), 256);
    }

    #[test]
    fn inconsistent_configs_are_rejected() {
        let mut c = real();
        c.llama_layers.pop();
        assert_eq!(c.validate().unwrap_err().0, "llama_layers");
        let mut c = real();
        c.axes_dims_rope = vec![64, 32, 30];
        assert_eq!(c.validate().unwrap_err().0, "axes_dims_rope");
        let mut c = real();
        c.num_activated_experts = 5;
        assert_eq!(c.validate().unwrap_err().0, "num_activated_experts");
    }
}
