//! HiDream attention: Q/K RMS-normalised over the whole width before the head split, interleaved
//! RoPE, plain softmax attention. Dual-stream blocks project image and text with separate
//! weights and attend jointly; single-stream blocks project everything with one set.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};

use super::embeddings::RopeTable;

/// RMSNorm epsilon of the Q/K norms (the reference's `HiDreamAttention(eps=1e-5)`).
const QK_NORM_EPS: f32 = 1e-5;
/// Upper bound on one chunk of attention scores (elements), so the [B, H, S, S] matrix of a
/// 1024² image never has to exist at once.
const MAX_SCORE_ELEMENTS: usize = 1 << 26;

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

    /// [B, S, D] → q, k, v as [B, S, H, Dh].
    fn qkv(&self, x: &Tensor, heads: usize) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, s, _) = x.dims3()?;
        let q = candle_nn::ops::rms_norm(&self.to_q.forward(x)?, &self.q_norm, QK_NORM_EPS)?;
        let k = candle_nn::ops::rms_norm(&self.to_k.forward(x)?, &self.k_norm, QK_NORM_EPS)?;
        let v = self.to_v.forward(x)?;
        let split = |t: Tensor| t.reshape((b, s, heads, ()));
        Ok((split(q)?, split(k)?, split(v)?))
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

    /// Single-stream attention over `x`: [B, S, D]. `key_mask` ([1, S, 1, 1], 1 for real tokens,
    /// 0 for padding) zeroes the keys of padding slots; they keep logit 0 and still contribute
    /// their values, exactly as the reference.
    pub fn forward(
        &self,
        x: &Tensor,
        key_mask: Option<&Tensor>,
        rope: &RopeTable,
    ) -> Result<Tensor> {
        let (q, k, v) = self.image.qkv(x, self.heads)?;
        let k = mask_keys(k, key_mask)?;
        let out = self.attend(&q, &k, &v, rope)?;
        self.image.to_out.forward(&out)
    }

    /// Joint attention of image `x` [B, Si, D] and text `y` [B, St, D]; the mask covers the image
    /// tokens. Returns the image and text outputs.
    pub fn forward_joint(
        &self,
        x: &Tensor,
        key_mask: Option<&Tensor>,
        y: &Tensor,
        rope: &RopeTable,
    ) -> Result<(Tensor, Tensor)> {
        let Some(text) = &self.text else {
            candle_core::bail!("joint attention needs the text projections of a dual-stream block")
        };
        let image_len = x.dim(1)?;
        let (qi, ki, vi) = self.image.qkv(x, self.heads)?;
        let ki = mask_keys(ki, key_mask)?;
        let (qt, kt, vt) = text.qkv(y, self.heads)?;
        let q = Tensor::cat(&[qi, qt], 1)?;
        let k = Tensor::cat(&[ki, kt], 1)?;
        let v = Tensor::cat(&[vi, vt], 1)?;
        let out = self.attend(&q, &k, &v, rope)?;
        let text_len = out.dim(1)? - image_len;
        let out_i = self
            .image
            .to_out
            .forward(&out.narrow(1, 0, image_len)?.contiguous()?)?;
        let out_t = text
            .to_out
            .forward(&out.narrow(1, image_len, text_len)?.contiguous()?)?;
        Ok((out_i, out_t))
    }

    /// softmax(q·kᵀ/√Dh)·v with RoPE on q and k. q, k, v: [B, S, H, Dh] → [B, S, H·Dh].
    ///
    /// Scores, softmax and the weighted sum are computed in f32 whatever the model dtype, as
    /// PyTorch's fused attention does: rounding scores to bf16 before the softmax alone
    /// quadruples the error of a bf16 forward.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, rope: &RopeTable) -> Result<Tensor> {
        let (b, s, h, dh) = q.dims4()?;
        let dtype = q.dtype();
        let to_heads = |t: &Tensor| t.transpose(1, 2)?.contiguous();
        let q = rope.apply(&to_heads(q)?)?;
        let k = rope.apply(&to_heads(k)?)?;
        let v = to_heads(v)?.to_dtype(DType::F32)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        // Fold batch and heads together and attend in chunks that bound the score matrix.
        let (q, k, v) = (
            q.reshape((b * h, s, dh))?,
            k.reshape((b * h, s, dh))?,
            v.reshape((b * h, s, dh))?,
        );
        let chunk = (MAX_SCORE_ELEMENTS / (s * s)).clamp(1, b * h);
        let mut outs = Vec::with_capacity((b * h).div_ceil(chunk));
        for start in (0..b * h).step_by(chunk) {
            let n = chunk.min(b * h - start);
            let q = (q.narrow(0, start, n)? * scale)?;
            let k = k.narrow(0, start, n)?;
            let v = v.narrow(0, start, n)?;
            let scores = q.matmul(&k.t()?)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            outs.push(probs.matmul(&v)?);
        }
        Tensor::cat(&outs, 0)?
            .reshape((b, h, s, dh))?
            .transpose(1, 2)?
            .reshape((b, s, h * dh))?
            .to_dtype(dtype)
    }
}

fn mask_keys(k: Tensor, key_mask: Option<&Tensor>) -> Result<Tensor> {
    match key_mask {
        Some(mask) => k.broadcast_mul(mask),
        None => Ok(k),
    }
}
