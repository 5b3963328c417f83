//! SwiGLU feed-forwards and the mixture of experts of the image stream.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear_no_bias};

use super::config::swiglu_hidden;
use crate::kernels;

/// `w2(SiLU(w1·x) ⊙ w3·x)`, no biases.
#[derive(Debug, Clone)]
pub struct SwiGlu {
    w1: Linear,
    w2: Linear,
    w3: Linear,
}

impl SwiGlu {
    /// (w1, w3, w2) weights, [H, D], [H, D], [D, H].
    #[cfg(feature = "cuda")]
    pub fn weights(&self) -> (&Tensor, &Tensor, &Tensor) {
        (self.w1.weight(), self.w3.weight(), self.w2.weight())
    }

    /// `hidden` is the nominal width; the real one is [`swiglu_hidden`] of it.
    pub fn new(dim: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        let hidden = swiglu_hidden(hidden);
        Ok(Self {
            w1: linear_no_bias(dim, hidden, vb.pp("w1"))?,
            w2: linear_no_bias(hidden, dim, vb.pp("w2"))?,
            w3: linear_no_bias(dim, hidden, vb.pp("w3"))?,
        })
    }
}

impl Module for SwiGlu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.w2.forward(&kernels::silu_mul(
            &self.w1.forward(x)?,
            &self.w3.forward(x)?,
        )?)
    }
}

/// Routed SwiGLU experts with a softmax gate and top-k selection **without** renormalising the
/// selected weights, plus an always-on shared expert.
#[derive(Debug, Clone)]
pub struct MixtureOfExperts {
    /// [experts, dim]
    gate: Tensor,
    experts: Vec<SwiGlu>,
    /// The experts' weights stacked for the grouped GEMM on CUDA (replaces `experts`).
    #[cfg(feature = "cuda")]
    stacked: Option<super::moe_cuda::StackedExperts>,
    shared: SwiGlu,
    top_k: usize,
}

impl MixtureOfExperts {
    pub fn new(
        dim: usize,
        hidden: usize,
        experts: usize,
        top_k: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            gate: vb.get((experts, dim), "gate.weight")?,
            experts: (0..experts)
                .map(|e| SwiGlu::new(dim, hidden, vb.pp(format!("experts.{e}"))))
                .collect::<Result<_>>()?,
            #[cfg(feature = "cuda")]
            stacked: None,
            shared: SwiGlu::new(dim, hidden / 2, vb.pp("shared_experts"))?,
            top_k,
        })
    }

    /// On CUDA in bf16/f16, replaces the per-expert weights by stacked ones so routing, expert
    /// matmuls and the weighted sum all stay on the device (no host sync per block).
    pub fn prepare_for_device(&mut self) -> Result<()> {
        #[cfg(feature = "cuda")]
        {
            if super::moe_cuda::supported(&self.gate) && self.stacked.is_none() {
                self.stacked = Some(super::moe_cuda::StackedExperts::new(&self.experts)?);
                self.experts.clear();
            }
        }
        Ok(())
    }

    /// Which experts each token goes to and with what weight: ([N, k] u32, [N, k]).
    fn route(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let logits = x.matmul(&self.gate.t()?)?;
        let probs = candle_nn::ops::softmax_last_dim(&logits)?;
        let chosen = probs
            .arg_sort_last_dim(false)?
            .narrow(D::Minus1, 0, self.top_k)?
            .contiguous()?;
        let weights = probs.gather(&chosen, D::Minus1)?;
        Ok((chosen, weights))
    }

    /// Each expert runs only on the tokens routed to it: tokens are gathered expert by expert,
    /// each expert runs once on its contiguous slice, and the weighted outputs are added back
    /// in expert-index order (lower index first), then the shared expert, as the reference
    /// accumulates.
    fn routed(&self, x: &Tensor) -> Result<Tensor> {
        let (tokens, dim) = x.dims2()?;
        let (chosen, weights) = self.route(x)?;
        // The routing table is tiny (tokens × k); reading it on the host costs nothing on the
        // CPU and one small copy per block on a GPU.
        let chosen = chosen.to_vec2::<u32>()?;
        let mut by_expert: Vec<Vec<u32>> = vec![Vec::new(); self.experts.len()];
        for (token, slots) in chosen.iter().enumerate() {
            for (slot, &expert) in slots.iter().enumerate() {
                by_expert[expert as usize].push((token * self.top_k + slot) as u32);
            }
        }
        let order: Vec<u32> = by_expert.iter().flatten().copied().collect();
        let token_of: Vec<u32> = order.iter().map(|&flat| flat / self.top_k as u32).collect();
        let device = x.device();
        let order = Tensor::from_vec(order, token_of.len(), device)?;
        let token_of = Tensor::from_vec(token_of, order.dim(0)?, device)?;

        let gathered = x.index_select(&token_of, 0)?;
        let mut outputs = Vec::with_capacity(self.experts.len());
        let mut offset = 0;
        for (expert, members) in self.experts.iter().zip(&by_expert) {
            if members.is_empty() {
                continue;
            }
            outputs.push(expert.forward(&gathered.narrow(0, offset, members.len())?)?);
            offset += members.len();
        }
        let expert_out = Tensor::cat(&outputs, 0)?;
        let slot_weights = weights
            .flatten_all()?
            .index_select(&order, 0)?
            .unsqueeze(1)?;
        let weighted = expert_out.broadcast_mul(&slot_weights)?;
        Tensor::zeros((tokens, dim), x.dtype(), device)?.index_add(&token_of, &weighted, 0)
    }
}

impl Module for MixtureOfExperts {
    /// [..., D] → [..., D]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let shape = x.shape().clone();
        let flat = x.reshape(((), shape.dims()[shape.rank() - 1]))?;
        #[cfg(feature = "cuda")]
        let routed = match &self.stacked {
            Some(stacked) => stacked.forward(&flat, &self.gate, self.top_k)?,
            None => self.routed(&flat)?,
        };
        #[cfg(not(feature = "cuda"))]
        let routed = self.routed(&flat)?;
        (routed + self.shared.forward(&flat)?)?.reshape(shape)
    }
}

/// The image feed-forward of a block: a mixture of experts, or a dense SwiGLU when the
/// config has no routed experts.
#[derive(Debug, Clone)]
pub enum ImageFeedForward {
    Moe(MixtureOfExperts),
    Dense(SwiGlu),
}

impl ImageFeedForward {
    pub fn prepare_for_device(&mut self) -> Result<()> {
        match self {
            Self::Moe(moe) => moe.prepare_for_device(),
            Self::Dense(_) => Ok(()),
        }
    }

    pub fn new(dim: usize, experts: usize, top_k: usize, vb: VarBuilder) -> Result<Self> {
        Ok(if experts > 0 {
            Self::Moe(MixtureOfExperts::new(dim, 4 * dim, experts, top_k, vb)?)
        } else {
            Self::Dense(SwiGlu::new(dim, 4 * dim, vb)?)
        })
    }
}

impl Module for ImageFeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Moe(moe) => moe.forward(x),
            Self::Dense(ff) => ff.forward(x),
        }
    }
}
