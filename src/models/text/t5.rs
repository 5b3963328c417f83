//! The T5 v1.1 encoder (`T5EncoderModel`) with its attention mask: relative position bias from
//! the first block shared by all, gated-GELU feed-forward, RMS layer norm with the variance in
//! f32.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear_no_bias};
use serde::Deserialize;

use super::activation::Activation;

/// `text_encoder_3/config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    pub layer_norm_epsilon: f64,
    /// `gated-gelu` for T5 v1.1 (HiDream), `relu` for the original T5.
    pub feed_forward_proj: String,
    #[serde(default)]
    pub dense_act_fn: Option<Activation>,
}

fn default_max_distance() -> usize {
    128
}

impl T5Config {
    fn is_gated(&self) -> bool {
        self.feed_forward_proj.starts_with("gated-")
    }

    fn activation(&self) -> Result<Activation> {
        if let Some(act) = self.dense_act_fn {
            return Ok(act);
        }
        match self.feed_forward_proj.trim_start_matches("gated-") {
            // transformers maps "gated-gelu" to gelu_new.
            "gelu" => Ok(if self.is_gated() {
                Activation::GeluTanh
            } else {
                Activation::Gelu
            }),
            "relu" => Ok(Activation::Relu),
            other => candle_core::bail!("unsupported T5 feed_forward_proj `{other}`"),
        }
    }
}

#[derive(Debug, Clone)]
struct T5Block {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ff_norm: Tensor,
    wi_0: Linear,
    wi_1: Option<Linear>,
    wo: Linear,
}

impl T5Block {
    fn new(cfg: &T5Config, vb: VarBuilder) -> Result<Self> {
        let inner = cfg.num_heads * cfg.d_kv;
        let attn = vb.pp("layer.0.SelfAttention");
        let ff = vb.pp("layer.1.DenseReluDense");
        let (wi_0, wi_1) = if cfg.is_gated() {
            (
                linear_no_bias(cfg.d_model, cfg.d_ff, ff.pp("wi_0"))?,
                Some(linear_no_bias(cfg.d_model, cfg.d_ff, ff.pp("wi_1"))?),
            )
        } else {
            (linear_no_bias(cfg.d_model, cfg.d_ff, ff.pp("wi"))?, None)
        };
        Ok(Self {
            attn_norm: vb.get(cfg.d_model, "layer.0.layer_norm.weight")?,
            q: linear_no_bias(cfg.d_model, inner, attn.pp("q"))?,
            k: linear_no_bias(cfg.d_model, inner, attn.pp("k"))?,
            v: linear_no_bias(cfg.d_model, inner, attn.pp("v"))?,
            o: linear_no_bias(inner, cfg.d_model, attn.pp("o"))?,
            ff_norm: vb.get(cfg.d_model, "layer.1.layer_norm.weight")?,
            wi_0,
            wi_1,
            wo: linear_no_bias(cfg.d_ff, cfg.d_model, ff.pp("wo"))?,
        })
    }

    /// `bias`: [1, H, S, S], the position bias plus the key mask.
    fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        cfg: &T5Config,
        act: Activation,
    ) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        let eps = cfg.layer_norm_epsilon as f32;
        let h = candle_nn::ops::rms_norm(x, &self.attn_norm, eps)?;
        let split = |t: Tensor| {
            t.reshape((b, s, cfg.num_heads, cfg.d_kv))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.q.forward(&h)?)?;
        let k = split(self.k.forward(&h)?)?;
        let v = split(self.v.forward(&h)?)?;
        // T5 does not scale the scores by 1/√d.
        let scores = q
            .matmul(&k.t()?)?
            .to_dtype(DType::F32)?
            .broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(x.dtype())?;
        let attn = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, s, ()))?;
        let x = clamp_f16((x + self.o.forward(&attn)?)?)?;

        let h = candle_nn::ops::rms_norm(&x, &self.ff_norm, eps)?;
        let mut hidden = act.forward(&self.wi_0.forward(&h)?)?;
        if let Some(wi_1) = &self.wi_1 {
            hidden = (hidden * wi_1.forward(&h)?)?;
        }
        clamp_f16((x + self.wo.forward(&hidden)?)?)
    }
}

/// transformers clamps f16 activations just below the f16 range after every residual add.
fn clamp_f16(x: Tensor) -> Result<Tensor> {
    if x.dtype() == DType::F16 {
        let limit = f64::from(half::f16::MAX) - 1000.0;
        x.clamp(-limit, limit)
    } else {
        Ok(x)
    }
}

#[derive(Debug, Clone)]
pub struct T5Encoder {
    cfg: T5Config,
    shared: Tensor,
    /// [buckets, heads], from block 0.
    relative_attention_bias: Tensor,
    blocks: Vec<T5Block>,
    final_layer_norm: Tensor,
    act: Activation,
}

impl T5Encoder {
    pub fn new(cfg: &T5Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            cfg: cfg.clone(),
            shared: vb.get((cfg.vocab_size, cfg.d_model), "shared.weight")?,
            relative_attention_bias: vb.get(
                (cfg.relative_attention_num_buckets, cfg.num_heads),
                "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            )?,
            blocks: (0..cfg.num_layers)
                .map(|i| T5Block::new(cfg, vb.pp(format!("encoder.block.{i}"))))
                .collect::<Result<_>>()?,
            final_layer_norm: vb.get(cfg.d_model, "encoder.final_layer_norm.weight")?,
            act: cfg.activation()?,
        })
    }

    /// `last_hidden_state` for one padded sequence: [1, S, d_model]. `mask` has 1 for real
    /// tokens and 0 for padding; padded positions are still computed (HiDream uses them).
    pub fn encode(&self, ids: &[u32], mask: &[u32], device: &Device) -> Result<Tensor> {
        let s = ids.len();
        let ids = Tensor::new(ids, device)?;
        let mut x = self.shared.index_select(&ids, 0)?.unsqueeze(0)?;
        let bias = self.position_bias(s, device)?;
        let key_mask: Vec<f32> = mask
            .iter()
            .map(|&m| if m == 0 { f32::MIN } else { 0.0 })
            .collect();
        let key_mask = Tensor::from_vec(key_mask, (1, 1, 1, s), device)?;
        let bias = bias.broadcast_add(&key_mask)?;
        for block in &self.blocks {
            x = block.forward(&x, &bias, &self.cfg, self.act)?;
        }
        candle_nn::ops::rms_norm(
            &x,
            &self.final_layer_norm,
            self.cfg.layer_norm_epsilon as f32,
        )
    }

    /// [1, H, S, S] f32: the learned bias of each (query, key) distance bucket.
    fn position_bias(&self, s: usize, device: &Device) -> Result<Tensor> {
        let buckets: Vec<u32> = (0..s)
            .flat_map(|q| (0..s).map(move |k| (q, k)))
            .map(|(q, k)| {
                relative_bucket(
                    k as i64 - q as i64,
                    self.cfg.relative_attention_num_buckets,
                    self.cfg.relative_attention_max_distance,
                ) as u32
            })
            .collect();
        let buckets = Tensor::from_vec(buckets, s * s, device)?;
        self.relative_attention_bias
            .index_select(&buckets, 0)?
            .to_dtype(DType::F32)?
            .reshape((s, s, ()))?
            .permute((2, 0, 1))?
            .unsqueeze(0)
    }
}

/// T5's bidirectional bucketing of `key − query`: half the buckets per direction, exact below
/// `buckets/4`, logarithmic up to `max_distance`. The logarithm is taken in f32, as the
/// reference does, so boundary distances land in the same bucket.
pub(crate) fn relative_bucket(relative: i64, buckets: usize, max_distance: usize) -> usize {
    let half = buckets / 2;
    let offset = if relative > 0 { half } else { 0 };
    let n = relative.unsigned_abs() as usize;
    let max_exact = half / 2;
    if n < max_exact {
        return offset + n;
    }
    let scaled = (n as f32 / max_exact as f32).ln() / (max_distance as f32 / max_exact as f32).ln()
        * (half - max_exact) as f32;
    offset + (max_exact + scaled as usize).min(half - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_the_reference_table() {
        // From transformers' T5Attention._relative_position_bucket(bidirectional, 32, 128).
        let expected = [
            (-200, 15),
            (-128, 15),
            (-127, 15),
            (-64, 14),
            (-20, 10),
            (-12, 9),
            (-8, 8),
            (-7, 7),
            (-1, 1),
            (0, 0),
            (1, 17),
            (7, 23),
            (8, 24),
            (12, 25),
            (20, 26),
            (64, 30),
            (127, 31),
        ];
        for (rel, bucket) in expected {
            assert_eq!(
                relative_bucket(rel, 32, 128),
                bucket,
                "relative position {rel}"
            );
        }
    }
}
