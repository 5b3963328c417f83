//! `CLIPTextModelWithProjection`: the pooled, projected text embedding of CLIP-L and CLIP-G.

use candle_core::{DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::{
    Embedding, LayerNorm, Linear, VarBuilder, embedding, layer_norm, linear, linear_no_bias,
};
use serde::Deserialize;

use super::activation::Activation;

/// `text_encoder/config.json` / `text_encoder_2/config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClipConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub projection_dim: usize,
    /// `quick_gelu` for CLIP-L, `gelu` for CLIP-G.
    pub hidden_act: Activation,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Pooling reads the hidden state at the first occurrence of this id (the legacy value 2
    /// means "the largest id", as transformers does).
    #[serde(default = "default_eos")]
    pub eos_token_id: u32,
}

fn default_eps() -> f64 {
    1e-5
}

fn default_eos() -> u32 {
    2
}

#[derive(Debug, Clone)]
struct ClipLayer {
    layer_norm1: LayerNorm,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    layer_norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl ClipLayer {
    fn new(cfg: &ClipConfig, vb: VarBuilder) -> Result<Self> {
        let (d, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let attn = vb.pp("self_attn");
        Ok(Self {
            layer_norm1: layer_norm(d, eps, vb.pp("layer_norm1"))?,
            q_proj: linear(d, d, attn.pp("q_proj"))?,
            k_proj: linear(d, d, attn.pp("k_proj"))?,
            v_proj: linear(d, d, attn.pp("v_proj"))?,
            out_proj: linear(d, d, attn.pp("out_proj"))?,
            layer_norm2: layer_norm(d, eps, vb.pp("layer_norm2"))?,
            fc1: linear(d, cfg.intermediate_size, vb.pp("mlp.fc1"))?,
            fc2: linear(cfg.intermediate_size, d, vb.pp("mlp.fc2"))?,
        })
    }

    /// Pre-LN block with causal self-attention. `x`: [B, S, D]; `causal`: [S, S] additive.
    fn forward(
        &self,
        x: &Tensor,
        causal: &Tensor,
        heads: usize,
        act: Activation,
    ) -> Result<Tensor> {
        let (b, s, d) = x.dims3()?;
        let h = self.layer_norm1.forward(x)?;
        let split = |t: Tensor| {
            t.reshape((b, s, heads, d / heads))?
                .transpose(1, 2)?
                .contiguous()
        };
        let scale = 1.0 / ((d / heads) as f64).sqrt();
        let q = split((self.q_proj.forward(&h)? * scale)?)?;
        let k = split(self.k_proj.forward(&h)?)?;
        let v = split(self.v_proj.forward(&h)?)?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(causal)?;
        let probs =
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(x.dtype())?;
        let attn = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, s, d))?;
        let x = (x + self.out_proj.forward(&attn)?)?;
        let h = act.forward(&self.fc1.forward(&self.layer_norm2.forward(&x)?)?)?;
        x + self.fc2.forward(&h)?
    }
}

#[derive(Debug, Clone)]
pub struct ClipTextEncoder {
    cfg: ClipConfig,
    token_embedding: Embedding,
    position_embedding: Tensor,
    layers: Vec<ClipLayer>,
    final_layer_norm: LayerNorm,
    text_projection: Linear,
}

impl ClipTextEncoder {
    pub fn new(cfg: &ClipConfig, vb: VarBuilder) -> Result<Self> {
        let tm = vb.pp("text_model");
        let d = cfg.hidden_size;
        Ok(Self {
            cfg: cfg.clone(),
            token_embedding: embedding(cfg.vocab_size, d, tm.pp("embeddings.token_embedding"))?,
            position_embedding: tm.get(
                (cfg.max_position_embeddings, d),
                "embeddings.position_embedding.weight",
            )?,
            layers: (0..cfg.num_hidden_layers)
                .map(|i| ClipLayer::new(cfg, tm.pp(format!("encoder.layers.{i}"))))
                .collect::<Result<_>>()?,
            final_layer_norm: layer_norm(d, cfg.layer_norm_eps, tm.pp("final_layer_norm"))?,
            text_projection: linear_no_bias(d, cfg.projection_dim, vb.pp("text_projection"))?,
        })
    }

    pub fn config(&self) -> &ClipConfig {
        &self.cfg
    }

    /// The position the pooled output is read from: the first end token.
    pub(crate) fn pooling_index(&self, ids: &[u32]) -> usize {
        if self.cfg.eos_token_id == 2 {
            // transformers' legacy rule for configs written before the end id was stored.
            ids.iter()
                .enumerate()
                .max_by_key(|&(i, id)| (id, std::cmp::Reverse(i)))
                .map_or(0, |(i, _)| i)
        } else {
            ids.iter()
                .position(|&id| id == self.cfg.eos_token_id)
                .unwrap_or(ids.len().saturating_sub(1))
        }
    }

    /// `text_embeds` for one padded id sequence: [1, projection_dim].
    ///
    /// The attention is causal, so tokens after the pooled one cannot change it: only the
    /// prefix up to the first end token is run (a 12-token prompt costs 12 positions, not 128).
    pub fn encode(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        if ids.len() > self.cfg.max_position_embeddings {
            candle_core::bail!(
                "{} tokens exceed this CLIP's {} positions",
                ids.len(),
                self.cfg.max_position_embeddings
            );
        }
        let len = self.pooling_index(ids) + 1;
        let ids = Tensor::new(&ids[..len], device)?.unsqueeze(0)?;
        let dtype = self.position_embedding.dtype();
        let mut x = self
            .token_embedding
            .forward(&ids)?
            .broadcast_add(&self.position_embedding.narrow(0, 0, len)?)?;
        let causal = causal_mask(len, dtype, device)?;
        for layer in &self.layers {
            x = layer.forward(
                &x,
                &causal,
                self.cfg.num_attention_heads,
                self.cfg.hidden_act,
            )?;
        }
        let pooled = self
            .final_layer_norm
            .forward(&x.i((.., len - 1..len, ..))?)?
            .squeeze(1)?;
        self.text_projection.forward(&pooled)
    }
}

/// [S, S]: 0 on and below the diagonal, −∞ above.
pub(crate) fn causal_mask(len: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let values: Vec<f32> = (0..len)
        .flat_map(|i| (0..len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(values, (len, len), device)?.to_dtype(dtype)
}
