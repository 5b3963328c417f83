//! Llama-3.1 (grouped-query attention, llama3 RoPE scaling): its config, and the one decoder
//! stack ([`decoder`]) that serves both HiDream's fourth text encoder (every decoder layer's
//! output, the last after the final norm, with the padding mask; the LM head never loaded) and
//! the chat model ([`LlamaForCausalLM`]: LM head, KV cache).

mod cache;
mod causal_lm;
mod decoder;

use candle_core::{Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

pub use cache::KvCache;
pub use causal_lm::LlamaForCausalLM;
pub(crate) use decoder::Decoder;

/// Llama's `config.json`. Both spellings of the RoPE settings are read: `rope_theta` +
/// `rope_scaling` (the released checkpoints) and `rope_parameters` (transformers 5).
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<RopeParameters>,
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    /// The LM head is the token embedding (no `lm_head.weight` in the checkpoint).
    #[serde(default)]
    pub tie_word_embeddings: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RopeParameters {
    #[serde(default, alias = "type")]
    pub rope_type: Option<String>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub factor: Option<f64>,
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
}

impl LlamaConfig {
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    fn rope(&self) -> Option<&RopeParameters> {
        self.rope_parameters.as_ref().or(self.rope_scaling.as_ref())
    }

    fn theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|r| r.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10_000.0)
    }

    /// The inverse frequencies, computed in f32 as transformers does, with llama3 scaling when
    /// the config asks for it.
    pub(crate) fn inv_freq(&self) -> Result<Vec<f32>> {
        let dim = self.head_dim();
        let theta = self.theta() as f32;
        let base: Vec<f32> = (0..dim / 2)
            .map(|i| 1.0 / theta.powf((2 * i) as f32 / dim as f32))
            .collect();
        let Some(rope) = self.rope() else {
            return Ok(base);
        };
        match rope.rope_type.as_deref() {
            None | Some("default") => Ok(base),
            Some("llama3") => {
                let get = |v: Option<f64>, name: &str| {
                    v.ok_or_else(|| {
                        candle_core::Error::Msg(format!("llama3 RoPE scaling needs `{name}`"))
                    })
                };
                let factor = get(rope.factor, "factor")? as f32;
                let low = get(rope.low_freq_factor, "low_freq_factor")? as f32;
                let high = get(rope.high_freq_factor, "high_freq_factor")? as f32;
                let old = rope.original_max_position_embeddings.ok_or_else(|| {
                    candle_core::Error::Msg(
                        "llama3 RoPE scaling needs `original_max_position_embeddings`".into(),
                    )
                })? as f32;
                let (low_wavelen, high_wavelen) = (old / low, old / high);
                Ok(base
                    .into_iter()
                    .map(|f| {
                        let wavelen = 2.0 * std::f32::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low) / (high - low);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect())
            }
            Some(other) => candle_core::bail!("unsupported Llama RoPE type `{other}`"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LlamaEncoder {
    decoder: Decoder,
}

impl LlamaEncoder {
    /// `vb` at the checkpoint root (`model.*` names).
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            decoder: Decoder::new(cfg, vb.pp("model"))?,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        self.decoder.config()
    }

    /// The decoder stack, to share with a causal LM over the same weights.
    pub(crate) fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// Every layer's output for one padded sequence, stacked: [layers, 1, S, hidden]. Entry j is
    /// the output of decoder layer j; the last is after the final RMSNorm. `mask`: 1 for real
    /// tokens, 0 for padding (masked as keys; padded queries still get values).
    pub fn encode(&self, ids: &[u32], mask: &[u32], device: &Device) -> Result<Tensor> {
        let x = self.decoder.embed(ids, device)?;
        let mask = attention_mask(mask, device)?;
        let mut states = self.decoder.layer_outputs(x, &mask)?;
        if let Some(last) = states.last_mut() {
            *last = self.decoder.final_norm(last)?;
        }
        Tensor::stack(&states, 0)
    }
}

/// [1, 1, S, S] f32 additive: a query sees earlier (and its own) positions whose mask is 1.
fn attention_mask(mask: &[u32], device: &Device) -> Result<Tensor> {
    let s = mask.len();
    let values: Vec<f32> = (0..s)
        .flat_map(|q| (0..s).map(move |k| (q, k)))
        .map(|(q, k)| {
            if k <= q && mask[k] != 0 {
                0.0
            } else {
                f32::MIN
            }
        })
        .collect();
    Tensor::from_vec(values, (1, 1, s, s), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_scaling_keeps_high_frequencies_and_divides_low_ones() {
        let cfg: LlamaConfig = serde_json::from_value(serde_json::json!({
            "vocab_size": 10, "hidden_size": 4096, "intermediate_size": 1, "num_hidden_layers": 1,
            "num_attention_heads": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
        }))
        .unwrap();
        let f = cfg.inv_freq().unwrap();
        assert_eq!(f.len(), 64);
        assert_eq!(f[0], 1.0);
        let unscaled = 1.0 / 500000f32.powf(126.0 / 128.0);
        assert!((f[63] - unscaled / 8.0).abs() < 1e-12);
    }
}
