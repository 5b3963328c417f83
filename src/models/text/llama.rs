//! Llama-3.1 as HiDream's fourth text encoder: every decoder layer's output (the last one after
//! the final norm), with the padding mask, grouped-query attention and llama3 RoPE scaling. The
//! LM head is never loaded.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder, embedding, linear_no_bias};
use serde::Deserialize;

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

    pub(crate) fn kv_heads(&self) -> usize {
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
struct DecoderLayer {
    input_layernorm: Tensor,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    post_attention_layernorm: Tensor,
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl DecoderLayer {
    fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let (d, hd) = (cfg.hidden_size, cfg.head_dim());
        let attn = vb.pp("self_attn");
        let mlp = vb.pp("mlp");
        Ok(Self {
            input_layernorm: vb.get(d, "input_layernorm.weight")?,
            q_proj: linear_no_bias(d, cfg.num_attention_heads * hd, attn.pp("q_proj"))?,
            k_proj: linear_no_bias(d, cfg.kv_heads() * hd, attn.pp("k_proj"))?,
            v_proj: linear_no_bias(d, cfg.kv_heads() * hd, attn.pp("v_proj"))?,
            o_proj: linear_no_bias(cfg.num_attention_heads * hd, d, attn.pp("o_proj"))?,
            post_attention_layernorm: vb.get(d, "post_attention_layernorm.weight")?,
            gate_proj: linear_no_bias(d, cfg.intermediate_size, mlp.pp("gate_proj"))?,
            up_proj: linear_no_bias(d, cfg.intermediate_size, mlp.pp("up_proj"))?,
            down_proj: linear_no_bias(cfg.intermediate_size, d, mlp.pp("down_proj"))?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        mask: &Tensor,
        rope: &(Tensor, Tensor),
        cfg: &LlamaConfig,
    ) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        let (heads, kv_heads, hd) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
        let eps = cfg.rms_norm_eps as f32;
        let h = candle_nn::ops::rms_norm(x, &self.input_layernorm, eps)?;
        let split = |t: Tensor, n: usize| t.reshape((b, s, n, hd))?.transpose(1, 2)?.contiguous();
        let q = split(self.q_proj.forward(&h)?, heads)?;
        let k = split(self.k_proj.forward(&h)?, kv_heads)?;
        let v = split(self.v_proj.forward(&h)?, kv_heads)?;
        let (cos, sin) = rope;
        let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        // Grouped-query attention: each key/value head serves heads/kv_heads query heads.
        let repeat = |t: Tensor| -> Result<Tensor> {
            let groups = heads / kv_heads;
            if groups == 1 {
                return Ok(t);
            }
            t.unsqueeze(2)?
                .broadcast_as((b, kv_heads, groups, s, hd))?
                .reshape((b, heads, s, hd))
        };
        let (k, v) = (repeat(k)?, repeat(v)?);
        let scale = 1.0 / (hd as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?
            .to_dtype(DType::F32)?
            .broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(x.dtype())?;
        let attn = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, s, heads * hd))?;
        let x = (x + self.o_proj.forward(&attn)?)?;
        let h = candle_nn::ops::rms_norm(&x, &self.post_attention_layernorm, eps)?;
        let mlp = self.down_proj.forward(
            &(candle_nn::ops::silu(&self.gate_proj.forward(&h)?)? * self.up_proj.forward(&h)?)?,
        )?;
        x + mlp
    }
}

#[derive(Debug, Clone)]
pub struct LlamaEncoder {
    cfg: LlamaConfig,
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: Tensor,
    inv_freq: Vec<f32>,
}

impl LlamaEncoder {
    /// `vb` at the checkpoint root (`model.*` names).
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let m = vb.pp("model");
        Ok(Self {
            cfg: cfg.clone(),
            embed_tokens: embedding(cfg.vocab_size, cfg.hidden_size, m.pp("embed_tokens"))?,
            layers: (0..cfg.num_hidden_layers)
                .map(|i| DecoderLayer::new(cfg, m.pp(format!("layers.{i}"))))
                .collect::<Result<_>>()?,
            norm: m.get(cfg.hidden_size, "norm.weight")?,
            inv_freq: cfg.inv_freq()?,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// Every layer's output for one padded sequence, stacked: [layers, 1, S, hidden]. Entry j is
    /// the output of decoder layer j; the last is after the final RMSNorm. `mask`: 1 for real
    /// tokens, 0 for padding (masked as keys; padded queries still get values).
    pub fn encode(&self, ids: &[u32], mask: &[u32], device: &Device) -> Result<Tensor> {
        let s = ids.len();
        let dtype = self.norm.dtype();
        let mut x = self
            .embed_tokens
            .forward(&Tensor::new(ids, device)?.unsqueeze(0)?)?;
        let rope = self.rope_tables(s, dtype, device)?;
        let mask = attention_mask(mask, device)?;
        let mut states = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            x = layer.forward(&x, &mask, &rope, &self.cfg)?;
            states.push(x.clone());
        }
        if let Some(last) = states.last_mut() {
            *last = candle_nn::ops::rms_norm(&x, &self.norm, self.cfg.rms_norm_eps as f32)?;
        }
        Tensor::stack(&states, 0)
    }

    /// cos/sin [S, head_dim/2] for positions 0..S: the angle is rounded to f32 like the
    /// reference's f32 product, then its cosine and sine are taken accurately.
    fn rope_tables(&self, s: usize, dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(s * half);
        let mut sin = Vec::with_capacity(s * half);
        for pos in 0..s {
            for &f in &self.inv_freq {
                let angle = f64::from(pos as f32 * f);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let cos = Tensor::from_vec(cos, (s, half), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (s, half), device)?.to_dtype(dtype)?;
        Ok((cos, sin))
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
