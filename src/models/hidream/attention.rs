//! HiDream attention: Q/K RMS-normalised over the whole width before the head split, interleaved
//! RoPE, plain softmax attention. Dual-stream blocks project image and text with separate
//! weights and attend jointly; single-stream blocks project everything with one set.
//!
//! Every token is a key and a value, but callers may ask for the outputs of only a prefix of
//! the tokens: the reference computes outputs for the per-block Llama tokens (and, in the last
//! block, for all text) and then discards them. Skipping those queries changes no kept value.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};

use super::embeddings::RopeTable;
use crate::kernels;

/// RMSNorm epsilon of the Q/K norms (the reference's `HiDreamAttention(eps=1e-5)`).
const QK_NORM_EPS: f32 = 1e-5;
/// Attention scores computed at once (elements), so the [B, H, S, S] matrix of a 1024² image
/// never exists in memory at once (4 MB blocks measured fastest on the medium benchmark).
const SCORE_BLOCK_ELEMENTS: usize = 1 << 20;

/// The projections of one token stream.
#[derive(Debug, Clone)]
struct StreamProjections {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    q_norm: Tensor,
    k_norm: Tensor,
}

impl StreamProjections {
    fn new(dim: usize, suffix: &str, vb: &VarBuilder) -> Result<Self> {
        Ok(Self {
            to_q: linear(dim, dim, vb.pp(format!("to_q{suffix}")))?,
            to_k: linear(dim, dim, vb.pp(format!("to_k{suffix}")))?,
            to_v: linear(dim, dim, vb.pp(format!("to_v{suffix}")))?,
            to_out: linear(dim, dim, vb.pp(format!("to_out{suffix}")))?,
            q_norm: vb.get(dim, &format!("q_rms_norm{suffix}.weight"))?,
            k_norm: vb.get(dim, &format!("k_rms_norm{suffix}.weight"))?,
        })
    }

    /// Queries of the first `queries` tokens of `x` [B, S, D], keys and values of all, each
    /// [B, ·, H, Dh].
    fn qkv(&self, x: &Tensor, queries: usize, heads: usize) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, s, _) = x.dims3()?;
        let xq = if queries == s {
            x.clone()
        } else {
            x.narrow(1, 0, queries)?.contiguous()?
        };
        let q = candle_nn::ops::rms_norm(&self.to_q.forward(&xq)?, &self.q_norm, QK_NORM_EPS)?;
        let k = candle_nn::ops::rms_norm(&self.to_k.forward(x)?, &self.k_norm, QK_NORM_EPS)?;
        let v = self.to_v.forward(x)?;
        Ok((
            q.reshape((b, queries, heads, ()))?,
            k.reshape((b, s, heads, ()))?,
            v.reshape((b, s, heads, ()))?,
        ))
    }
}

#[derive(Debug, Clone)]
pub struct Attention {
    image: StreamProjections,
    /// Dual-stream blocks only.
    text: Option<StreamProjections>,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    pub fn new(dim: usize, heads: usize, joint: bool, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            image: StreamProjections::new(dim, "", &vb)?,
            text: if joint {
                Some(StreamProjections::new(dim, "_t", &vb)?)
            } else {
                None
            },
            heads,
            head_dim: dim / heads,
        })
    }

    /// Single-stream attention over `x`: [B, S, D], returning the outputs of its first
    /// `queries` tokens [B, queries, D]. `key_mask` ([1, S, 1, 1], 0 for padding slots) zeroes
    /// the keys of padding; they keep logit 0 and still contribute their values, exactly as the
    /// reference.
    pub fn forward(
        &self,
        x: &Tensor,
        queries: usize,
        key_mask: Option<&Tensor>,
        rope: &RopeTable,
    ) -> Result<Tensor> {
        let (q, k, v) = self.image.qkv(x, queries, self.heads)?;
        let k = mask_keys(k, key_mask)?;
        let out = self.attend(&q, &k, &v, rope)?;
        self.image.to_out.forward(&out)
    }

    /// Joint attention of image `x` [B, Si, D] and text `y` [B, St, D]; the mask covers the image
    /// tokens. Returns the image outputs and those of the first `text_queries` text tokens.
    pub fn forward_joint(
        &self,
        x: &Tensor,
        key_mask: Option<&Tensor>,
        y: &Tensor,
        text_queries: usize,
        rope: &RopeTable,
    ) -> Result<(Tensor, Tensor)> {
        let Some(text) = &self.text else {
            candle_core::bail!("joint attention needs the text projections of a dual-stream block")
        };
        let image_len = x.dim(1)?;
        let (qi, ki, vi) = self.image.qkv(x, image_len, self.heads)?;
        let ki = mask_keys(ki, key_mask)?;
        let (qt, kt, vt) = text.qkv(y, text_queries, self.heads)?;
        let q = Tensor::cat(&[qi, qt], 1)?;
        let k = Tensor::cat(&[ki, kt], 1)?;
        let v = Tensor::cat(&[vi, vt], 1)?;
        let out = self.attend(&q, &k, &v, rope)?;
        let out_i = self
            .image
            .to_out
            .forward(&out.narrow(1, 0, image_len)?.contiguous()?)?;
        let out_t = text
            .to_out
            .forward(&out.narrow(1, image_len, text_queries)?.contiguous()?)?;
        Ok((out_i, out_t))
    }

    /// softmax(q·kᵀ/√Dh)·v with RoPE on q and k, queries being a prefix of the key positions.
    /// q: [B, Sq, H, Dh], k, v: [B, Sk, H, Dh] → [B, Sq, H·Dh].
    ///
    /// Scores, softmax and the weighted sum are computed in f32 whatever the model dtype, as
    /// PyTorch's fused attention does: rounding scores to bf16 before the softmax alone
    /// quadruples the error of a bf16 forward.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, rope: &RopeTable) -> Result<Tensor> {
        let (b, sq, h, dh) = q.dims4()?;
        let sk = k.dim(1)?;
        let dtype = q.dtype();
        let to_heads = |t: &Tensor| t.transpose(1, 2)?.contiguous();
        let q = rope.apply(&to_heads(q)?)?;
        let k = rope.apply(&to_heads(k)?)?;
        let v = to_heads(v)?.to_dtype(DType::F32)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let bh = b * h;
        let (q, k, v) = (
            q.reshape((bh, sq, dh))?,
            k.reshape((bh, sk, dh))?,
            v.reshape((bh, sk, dh))?,
        );
        let kt = k.t()?;
        let rows = (SCORE_BLOCK_ELEMENTS / (bh * sk)).clamp(8, sq);
        let mut outs = Vec::with_capacity(sq.div_ceil(rows));
        for start in (0..sq).step_by(rows) {
            let n = rows.min(sq - start);
            let scores = q.narrow(1, start, n)?.matmul(&kt)?;
            // exp(scale·(s − max)) and its row sums; dividing the [n, Dh] result instead of the
            // [n, Sk] probabilities saves a pass over the scores.
            let (weights, sums) = kernels::softmax_numerators(&scores, scale)?;
            outs.push(weights.matmul(&v)?.broadcast_div(&sums)?);
        }
        Tensor::cat(&outs, 1)?
            .reshape((b, h, sq, dh))?
            .transpose(1, 2)?
            .reshape((b, sq, h * dh))?
            .to_dtype(dtype)
    }
}

fn mask_keys(k: Tensor, key_mask: Option<&Tensor>) -> Result<Tensor> {
    match key_mask {
        Some(mask) => k.broadcast_mul(mask),
        None => Ok(k),
    }
}
