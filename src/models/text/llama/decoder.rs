//! The Llama-3.1 decoder stack both uses share: token embedding, decoder layers (RMSNorm,
//! grouped-query attention with RoPE, SwiGLU MLP) and the final norm, at the checkpoint's
//! `model.*` names (transformers' `LlamaModel`). The text encoder runs it over a whole padded
//! sequence; the causal LM runs it incrementally through a [`KvCache`].

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder, embedding, linear_no_bias};

use super::LlamaConfig;
use super::cache::KvCache;

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

    /// x: [B, S, D] → [B, S, D]. `mask`: [1, 1, S, T] f32 additive over the T keys (the cached
    /// ones first), or `None` when every query sees every key (one new token). With `cache`
    /// this layer's rotated keys and values are appended to it and attention runs over all of
    /// them; without, over this call's S positions only.
    fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        rope: &(Tensor, Tensor),
        cfg: &LlamaConfig,
        cache: Option<&mut (Option<Tensor>, Option<Tensor>)>,
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
        // [B, kv_heads, T, hd]: the cached keys and values, then this call's.
        let (k, v) = match cache {
            None => (k, v),
            Some((ck, cv)) => {
                let k = append(ck, k)?;
                let v = append(cv, v)?;
                (k, v)
            }
        };
        // Grouped-query attention: each key/value head serves heads/kv_heads query heads.
        let repeat = |t: Tensor| -> Result<Tensor> {
            let groups = heads / kv_heads;
            if groups == 1 {
                return Ok(t);
            }
            let t_len = t.dim(2)?;
            t.unsqueeze(2)?
                .broadcast_as((b, kv_heads, groups, t_len, hd))?
                .reshape((b, heads, t_len, hd))
        };
        let (k, v) = (repeat(k)?, repeat(v)?);
        let scale = 1.0 / (hd as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.to_dtype(DType::F32)?;
        let scores = match mask {
            Some(mask) => scores.broadcast_add(mask)?,
            None => scores,
        };
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

/// `slot` ‖ `new` along the sequence axis, kept in `slot` for the next call.
fn append(slot: &mut Option<Tensor>, new: Tensor) -> Result<Tensor> {
    let all = match slot.take() {
        Some(old) => Tensor::cat(&[&old, &new], 2)?,
        None => new,
    };
    *slot = Some(all.clone());
    Ok(all)
}

/// `model.*` of a Llama checkpoint.
#[derive(Debug, Clone)]
pub(crate) struct Decoder {
    cfg: LlamaConfig,
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: Tensor,
    inv_freq: Vec<f32>,
}

impl Decoder {
    /// `vb` at `model`.
    pub(crate) fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            cfg: cfg.clone(),
            embed_tokens: embedding(cfg.vocab_size, cfg.hidden_size, vb.pp("embed_tokens"))?,
            layers: (0..cfg.num_hidden_layers)
                .map(|i| DecoderLayer::new(cfg, vb.pp(format!("layers.{i}"))))
                .collect::<Result<_>>()?,
            norm: vb.get(cfg.hidden_size, "norm.weight")?,
            inv_freq: cfg.inv_freq()?,
        })
    }

    pub(crate) fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The token embedding table: [vocab, D] (the LM head when the config ties them).
    pub(crate) fn embedding_weight(&self) -> &Tensor {
        self.embed_tokens.embeddings()
    }

    pub(crate) fn dtype(&self) -> DType {
        self.norm.dtype()
    }

    /// [1, S] ids → [1, S, D] embeddings.
    pub(crate) fn embed(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        self.embed_tokens
            .forward(&Tensor::new(ids, device)?.unsqueeze(0)?)
    }

    /// Every layer's output for a whole sequence, without a cache: [1, S, D] each, the last
    /// before the final norm. `mask`: [1, 1, S, S] f32 additive.
    pub(crate) fn layer_outputs(&self, x: Tensor, mask: &Tensor) -> Result<Vec<Tensor>> {
        let device = x.device().clone();
        let rope = self.rope_tables(0, x.dim(1)?, &device)?;
        let mut x = x;
        let mut states = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            x = layer.forward(&x, Some(mask), &rope, &self.cfg, None)?;
            states.push(x.clone());
        }
        Ok(states)
    }

    /// The final norm's output for `ids` placed after the cache's positions: [1, S, D]. The
    /// cache grows by S.
    pub(crate) fn forward_cached(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let device = self.norm.device().clone();
        let (s, offset) = (ids.len(), cache.len());
        let mut x = self.embed(ids, &device)?;
        let rope = self.rope_tables(offset, s, &device)?;
        // One new token sees every key; a longer chunk needs the causal triangle over itself.
        let mask = (s > 1)
            .then(|| causal_mask(s, offset, &device))
            .transpose()?;
        let slots = cache.layers_mut(self.layers.len());
        for (layer, slot) in self.layers.iter().zip(slots) {
            x = layer.forward(&x, mask.as_ref(), &rope, &self.cfg, Some(slot))?;
        }
        cache.advance(s);
        self.final_norm(&x)
    }

    pub(crate) fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::rms_norm(x, &self.norm, self.cfg.rms_norm_eps as f32)
    }

    /// cos/sin [S, head_dim/2] for positions offset..offset+S: the angle is rounded to f32
    /// like the reference's f32 product, then its cosine and sine are taken accurately.
    fn rope_tables(&self, offset: usize, s: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let dtype = self.dtype();
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(s * half);
        let mut sin = Vec::with_capacity(s * half);
        for pos in offset..offset + s {
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

/// [1, 1, S, offset + S] f32 additive: query i (at position offset + i) sees keys 0..=offset + i.
fn causal_mask(s: usize, offset: usize, device: &Device) -> Result<Tensor> {
    let t = offset + s;
    let values: Vec<f32> = (0..s)
        .flat_map(|q| (0..t).map(move |k| if k <= offset + q { 0.0 } else { f32::MIN }))
        .collect();
    Tensor::from_vec(values, (1, 1, s, t), device)
}
