//! SwiGLU feed-forwards and the mixture of experts of the image stream.

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::models::device_copy::ToDevice;
use crate::models::linear::{Linear, linear_no_bias};

use super::config::swiglu_hidden;
use crate::{host_reads, kernels};

/// `w2(SiLU(w1·x) ⊙ w3·x)`, no biases.
#[derive(Debug, Clone)]
pub(crate) struct SwiGlu {
    w1: Linear,
    w2: Linear,
    w3: Linear,
}

impl ToDevice for SwiGlu {
    fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            w1: self.w1.to_device(device)?,
            w2: self.w2.to_device(device)?,
            w3: self.w3.to_device(device)?,
        })
    }
}

impl SwiGlu {
    pub(crate) fn linears<'a>(&'a self, out: &mut Vec<&'a Linear>) {
        out.extend([&self.w1, &self.w2, &self.w3]);
    }

    /// (w1, w3, w2) weights, [H, D], [H, D], [D, H] (quantised ones dequantised).
    #[cfg(feature = "cuda")]
    fn weights(&self) -> Result<(Tensor, Tensor, Tensor)> {
        Ok((self.w1.weight()?, self.w3.weight()?, self.w2.weight()?))
    }

    /// Whether any of the three weights stays quantised.
    #[cfg(feature = "cuda")]
    fn is_quantized(&self) -> bool {
        self.w1.is_quantized() || self.w2.is_quantized() || self.w3.is_quantized()
    }

    /// From (w1, w3, w2), [H, D], [H, D], [D, H].
    #[cfg(feature = "cuda")]
    fn from_weights(w1: Tensor, w3: Tensor, w2: Tensor) -> Self {
        Self {
            w1: Linear::new(w1, None),
            w2: Linear::new(w2, None),
            w3: Linear::new(w3, None),
        }
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

/// How the routed experts find their tokens. Every variant computes the same sum; they differ
/// in where the routing table lives and so in what a GPU must wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpertRouting {
    /// The routing table is read on the host and each expert runs on its own tokens only: on
    /// the CPU that read is free and the experts do no wasted work. On a GPU the read would
    /// stall every block until the device caught up.
    HostGather,
    /// Every expert runs on every token and the outputs are weighted by a dense [N, E] routing
    /// matrix that is zero outside each token's top-k, so nothing leaves the device; the
    /// experts do E/k times the work. The f32 (checking) path on GPUs, where candle has no
    /// grouped GEMM.
    DeviceDense,
    /// candle's grouped GEMM over a routing table sorted on the device (CUDA, bf16 and f16):
    /// nothing leaves the device and no work is wasted.
    #[cfg(feature = "cuda")]
    DeviceGrouped,
}

impl ExpertRouting {
    /// The fastest routing that keeps the device busy: host gathering on the CPU, grouped
    /// GEMMs on CUDA in bf16/f16, dense weighting elsewhere.
    pub fn for_device(device: &Device, dtype: DType) -> Self {
        if device.is_cpu() {
            return Self::HostGather;
        }
        #[cfg(feature = "cuda")]
        if super::moe_cuda::supported(device, dtype) {
            return Self::DeviceGrouped;
        }
        let _ = dtype;
        Self::DeviceDense
    }
}

/// Routed SwiGLU experts with a softmax gate and top-k selection **without** renormalising the
/// selected weights, plus an always-on shared expert.
#[derive(Debug, Clone)]
pub(crate) struct MixtureOfExperts {
    /// [experts, dim]
    gate: Tensor,
    experts: Vec<SwiGlu>,
    /// The experts' weights stacked for the grouped GEMM (only with
    /// [`ExpertRouting::DeviceGrouped`]).
    #[cfg(feature = "cuda")]
    stacked: Option<super::moe_cuda::StackedExperts>,
    shared: SwiGlu,
    top_k: usize,
    routing: ExpertRouting,
}

impl ToDevice for MixtureOfExperts {
    /// The copy routes as the original did (grouped routing stacks the copied experts again on
    /// the new device), except in host memory, where only host gathering runs: a streamed
    /// block is given its device's routing when it is copied back in.
    fn to_device(&self, device: &Device) -> Result<Self> {
        let mut moe = Self {
            gate: self.gate.to_device(device)?,
            experts: self
                .experts
                .iter()
                .map(|e| e.to_device(device))
                .collect::<Result<_>>()?,
            #[cfg(feature = "cuda")]
            stacked: None,
            shared: self.shared.to_device(device)?,
            top_k: self.top_k,
            routing: ExpertRouting::HostGather,
        };
        if !device.is_cpu() {
            moe.set_routing(self.routing)?;
        }
        Ok(moe)
    }
}

impl MixtureOfExperts {
    pub fn new(
        dim: usize,
        hidden: usize,
        experts: usize,
        top_k: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let gate = vb.get((experts, dim), "gate.weight")?;
        let routing = ExpertRouting::for_device(gate.device(), gate.dtype());
        let mut moe = Self {
            gate,
            experts: (0..experts)
                .map(|e| SwiGlu::new(dim, hidden, vb.pp(format!("experts.{e}"))))
                .collect::<Result<_>>()?,
            #[cfg(feature = "cuda")]
            stacked: None,
            shared: SwiGlu::new(dim, hidden / 2, vb.pp("shared_experts"))?,
            top_k,
            routing: ExpertRouting::HostGather,
        };
        moe.set_routing(routing)?;
        Ok(moe)
    }

    /// Switches the routing; grouped routing stacks the experts' weights (once).
    #[allow(clippy::unnecessary_wraps)] // stacking can fail in the CUDA build
    pub(crate) fn set_routing(&mut self, routing: ExpertRouting) -> Result<()> {
        // Stacking dequantises every expert at once, which is the memory a quantised model is
        // there to save: quantised experts are weighted densely instead, one at a time.
        #[cfg(feature = "cuda")]
        let routing = if routing == ExpertRouting::DeviceGrouped
            && self.experts.iter().any(SwiGlu::is_quantized)
        {
            ExpertRouting::DeviceDense
        } else {
            routing
        };
        #[cfg(feature = "cuda")]
        if routing == ExpertRouting::DeviceGrouped && self.stacked.is_none() {
            if !super::moe_cuda::supported(self.gate.device(), self.gate.dtype()) {
                candle_core::bail!(
                    "grouped expert routing needs a CUDA device and bf16 or f16 weights, not {:?} \
                     on {:?}",
                    self.gate.dtype(),
                    self.gate.device()
                );
            }
            let owned: Vec<_> = self
                .experts
                .iter()
                .map(SwiGlu::weights)
                .collect::<Result<_>>()?;
            let weights: Vec<_> = owned.iter().map(|(w1, w3, w2)| (w1, w3, w2)).collect();
            let stacked = super::moe_cuda::StackedExperts::new(&weights)?;
            // The experts become views into the stacked weights, so the model holds its
            // expert weights once (they are most of its 17B parameters) and can still switch
            // to another routing.
            self.experts = (0..self.experts.len())
                .map(|e| {
                    let (w1, w3, w2) = stacked.expert(e)?;
                    Ok(SwiGlu::from_weights(w1, w3, w2))
                })
                .collect::<Result<_>>()?;
            self.stacked = Some(stacked);
        }
        self.routing = routing;
        Ok(())
    }

    /// Which experts each token goes to and with what weight: ([N, k] u32, [N, k]) in
    /// `softmax_dtype`, softmax over all experts, the top k kept unrenormalised.
    fn route(&self, x: &Tensor, softmax_dtype: DType) -> Result<(Tensor, Tensor)> {
        let logits = x.matmul(&self.gate.t()?)?.to_dtype(softmax_dtype)?;
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
    fn routed_host_gather(&self, x: &Tensor) -> Result<Tensor> {
        let (tokens, dim) = x.dims2()?;
        let (chosen, weights) = self.route(x, self.gate.dtype())?;
        let chosen = host_reads::to_vec2::<u32>(&chosen)?;
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

    /// Every expert on every token, weighted by the dense routing matrix. The sum runs in
    /// expert-index order from zero, like [`Self::routed_host_gather`]: an unchosen expert
    /// adds an exact zero, so both give the same values.
    fn routed_device_dense(&self, x: &Tensor) -> Result<Tensor> {
        let (tokens, dim) = x.dims2()?;
        let (chosen, weights) = self.route(x, self.gate.dtype())?;
        let dense = Tensor::zeros((tokens, self.experts.len()), weights.dtype(), x.device())?
            .scatter(&chosen, &weights, 1)?;
        let mut sum = Tensor::zeros((tokens, dim), x.dtype(), x.device())?;
        for (e, expert) in self.experts.iter().enumerate() {
            let weighted = expert.forward(x)?.broadcast_mul(&dense.narrow(1, e, 1)?)?;
            sum = (sum + weighted)?;
        }
        Ok(sum)
    }

    fn routed(&self, x: &Tensor) -> Result<Tensor> {
        match self.routing {
            ExpertRouting::HostGather => self.routed_host_gather(x),
            ExpertRouting::DeviceDense => self.routed_device_dense(x),
            #[cfg(feature = "cuda")]
            ExpertRouting::DeviceGrouped => match &self.stacked {
                // bf16/f16 weights: the softmax runs in f32 so near-tied experts keep their order.
                Some(stacked) => {
                    let (chosen, weights) = self.route(x, DType::F32)?;
                    stacked.forward(x, &chosen, weights)
                }
                None => candle_core::bail!("grouped expert routing without stacked experts"),
            },
        }
    }
}

impl Module for MixtureOfExperts {
    /// [..., D] → [..., D]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let shape = x.shape().clone();
        let flat = x.reshape(((), shape.dims()[shape.rank() - 1]))?;
        let routed = self.routed(&flat)?;
        (routed + self.shared.forward(&flat)?)?.reshape(shape)
    }
}

/// The image feed-forward of a block: a mixture of experts, or a dense SwiGLU when the
/// config has no routed experts.
#[derive(Debug, Clone)]
pub(crate) enum ImageFeedForward {
    Moe(MixtureOfExperts),
    Dense(SwiGlu),
}

impl ToDevice for ImageFeedForward {
    fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(match self {
            Self::Moe(moe) => Self::Moe(moe.to_device(device)?),
            Self::Dense(ff) => Self::Dense(ff.to_device(device)?),
        })
    }
}

impl ImageFeedForward {
    pub(crate) fn linears<'a>(&'a self, out: &mut Vec<&'a Linear>) {
        match self {
            Self::Moe(moe) => {
                for expert in &moe.experts {
                    expert.linears(out);
                }
                moe.shared.linears(out);
            }
            Self::Dense(ff) => ff.linears(out),
        }
    }

    pub(crate) fn set_routing(&mut self, routing: ExpertRouting) -> Result<()> {
        match self {
            Self::Moe(moe) => moe.set_routing(routing),
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
