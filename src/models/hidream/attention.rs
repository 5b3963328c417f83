//! HiDream attention: Q/K RMS-normalised over the whole width before the head split, interleaved
//! RoPE, plain softmax attention. Dual-stream blocks project image and text with separate
//! weights and attend jointly; single-stream blocks project everything with one set.
//!
//! Every token is a key and a value, but callers may ask for the outputs of only a prefix of
//! the tokens: the reference computes outputs for the per-block Llama tokens (and, in the last
//! block, for all text) and then discards them. Skipping those queries changes no kept value.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::models::device_copy::ToDevice;
use crate::models::linear::{Linear, linear};

use super::embeddings::RopeTable;
use crate::kernels;

/// RMSNorm epsilon of the Q/K norms (the reference's `HiDreamAttention(eps=1e-5)`).
const QK_NORM_EPS: f32 = 1e-5;
/// Attention scores computed at once (elements) on the CPU, so the [B, H, S, S] matrix of a
/// 1024² image never exists in memory at once (4 MB blocks measured fastest on the medium
/// benchmark).
const CPU_SCORE_BLOCK_ELEMENTS: usize = 1 << 20;
/// The same on a GPU, where each block is a kernel launch and small blocks starve the device:
/// 256 MiB of f32 scores, a fifth of one CFG row's [20, 4224, 4224] at 1024².
const GPU_SCORE_BLOCK_ELEMENTS: usize = 1 << 26;

/// Which attention runs on CUDA: the fused kernel (scores never leave on-chip memory) or the
/// blocked path every device has. A process-wide knob, so benchmarks and the GPU check can
/// compare the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CudaAttention {
    Fused,
    Blocked,
}

static CUDA_ATTENTION_BLOCKED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Chooses the attention for CUDA devices (fused by default).
pub fn set_cuda_attention(kind: CudaAttention) {
    CUDA_ATTENTION_BLOCKED.store(
        kind == CudaAttention::Blocked,
        std::sync::atomic::Ordering::Relaxed,
    );
}

#[cfg(feature = "cuda")]
fn cuda_attention() -> CudaAttention {
    if CUDA_ATTENTION_BLOCKED.load(std::sync::atomic::Ordering::Relaxed) {
        CudaAttention::Blocked
    } else {
        CudaAttention::Fused
    }
}

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

impl ToDevice for StreamProjections {
    fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            to_q: self.to_q.to_device(device)?,
            to_k: self.to_k.to_device(device)?,
            to_v: self.to_v.to_device(device)?,
            to_out: self.to_out.to_device(device)?,
            q_norm: self.q_norm.to_device(device)?,
            k_norm: self.k_norm.to_device(device)?,
        })
    }
}

impl StreamProjections {
    fn linears<'a>(&'a self, out: &mut Vec<&'a Linear>) {
        out.extend([&self.to_q, &self.to_k, &self.to_v, &self.to_out]);
    }

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
pub(crate) struct Attention {
    image: StreamProjections,
    /// Dual-stream blocks only.
    text: Option<StreamProjections>,
    heads: usize,
    head_dim: usize,
}

impl ToDevice for Attention {
    fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            image: self.image.to_device(device)?,
            text: self
                .text
                .as_ref()
                .map(|t| t.to_device(device))
                .transpose()?,
            heads: self.heads,
            head_dim: self.head_dim,
        })
    }
}

impl Attention {
    pub(crate) fn linears<'a>(&'a self, out: &mut Vec<&'a Linear>) {
        self.image.linears(out);
        if let Some(text) = &self.text {
            text.linears(out);
        }
    }

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
    pub(crate) fn forward_joint(
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
    /// Scores, softmax and the weighted sum are accumulated in f32 whatever the model dtype, as
    /// PyTorch's fused attention does: rounding scores to bf16 before the softmax alone
    /// quadruples the error of a bf16 forward.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, rope: &RopeTable) -> Result<Tensor> {
        let (b, sq, h, dh) = q.dims4()?;
        let sk = k.dim(1)?;
        let dtype = q.dtype();
        let to_heads = |t: &Tensor| t.transpose(1, 2)?.contiguous();
        // RoPE rotates in f32.
        let q = rope.apply(&to_heads(q)?)?.reshape((b * h, sq, dh))?;
        let k = rope.apply(&to_heads(k)?)?.reshape((b * h, sk, dh))?;
        let v = to_heads(v)?.reshape((b * h, sk, dh))?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let out = match fused(&q, &k, &v, dtype, scale)? {
            Some(out) => out,
            None => blocked(&q, &k, &v.to_dtype(DType::F32)?, scale)?,
        };
        out.reshape((b, h, sq, dh))?
            .transpose(1, 2)?
            .reshape((b, sq, h * dh))?
            .to_dtype(dtype)
    }
}

/// The fused CUDA kernel, where it applies: q and k go back to the model dtype after RoPE and v
/// stays in it, as the reference hands them to PyTorch's attention on a GPU; the kernel
/// accumulates in f32. `None` elsewhere.
#[cfg(feature = "cuda")]
fn fused(q: &Tensor, k: &Tensor, v: &Tensor, dtype: DType, scale: f64) -> Result<Option<Tensor>> {
    if !q.device().is_cuda() || cuda_attention() != CudaAttention::Fused {
        return Ok(None);
    }
    let q = q.to_dtype(dtype)?;
    if !kernels::fused_attention_supported(&q) {
        return Ok(None);
    }
    let out = kernels::fused_attention(&q, &k.to_dtype(dtype)?, &v.to_dtype(dtype)?, scale as f32)?;
    Ok(Some(out))
}

#[cfg(not(feature = "cuda"))]
#[allow(clippy::unnecessary_wraps)] // the signature of the CUDA build's version, which can fail
fn fused(_: &Tensor, _: &Tensor, _: &Tensor, _: DType, _: f64) -> Result<Option<Tensor>> {
    Ok(None)
}

/// Attention in blocks of query rows, all f32: q [BH, Sq, Dh], k and v [BH, Sk, Dh] →
/// [BH, Sq, Dh]. Only one block of scores exists at a time.
fn blocked(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let (bh, sq, _) = q.dims3()?;
    let sk = k.dim(1)?;
    let block = if q.device().is_cpu() {
        CPU_SCORE_BLOCK_ELEMENTS
    } else {
        GPU_SCORE_BLOCK_ELEMENTS
    };
    let kt = k.t()?;
    let rows = (block / (bh * sk)).clamp(8, sq.max(8));
    let mut outs = Vec::with_capacity(sq.div_ceil(rows));
    for start in (0..sq).step_by(rows) {
        let n = rows.min(sq - start);
        let scores = q.narrow(1, start, n)?.matmul(&kt)?;
        // exp(scale·(s − max)) and its row sums; dividing the [n, Dh] result instead of the
        // [n, Sk] probabilities saves a pass over the scores.
        let (weights, sums) = kernels::softmax_numerators(&scores, scale)?;
        outs.push(weights.matmul(v)?.broadcast_div(&sums)?);
    }
    Tensor::cat(&outs, 1)
}

fn mask_keys(k: Tensor, key_mask: Option<&Tensor>) -> Result<Tensor> {
    match key_mask {
        Some(mask) => k.broadcast_mul(mask),
        None => Ok(k),
    }
}
