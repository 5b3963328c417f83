//! The mixture of experts on CUDA without a host round trip: routing is sorted on the device
//! and candle's grouped GEMM (`candle_nn::moe::moe_gemm`) reads the per-expert token counts
//! from device memory. Only bf16 and f16 have kernels; other dtypes keep the gather/scatter path.
//!
//! Differences from the CPU path, all within bf16 rounding: the gate softmax runs in f32 (the
//! caller routes, see `MixtureOfExperts::route`), and each token's expert outputs are added in
//! order of routing weight rather than expert index.

use candle_core::{D, DType, Device, Result, Tensor};

use crate::kernels;

/// Whether candle has grouped-GEMM kernels for this device and dtype.
pub(crate) fn supported(device: &Device, dtype: DType) -> bool {
    device.is_cuda() && matches!(dtype, DType::BF16 | DType::F16)
}

#[derive(Debug, Clone)]
pub(crate) struct StackedExperts {
    /// [E, 2H, D]: w1 then w3 of each expert.
    gate_up: Tensor,
    /// [E, D, H]
    down: Tensor,
    hidden: usize,
}

impl StackedExperts {
    /// `experts`: each expert's (w1, w3, w2), [H, D], [H, D], [D, H].
    pub fn new(experts: &[(&Tensor, &Tensor, &Tensor)]) -> Result<Self> {
        let mut gate_up = Vec::with_capacity(experts.len());
        let mut down = Vec::with_capacity(experts.len());
        for (w1, w3, w2) in experts {
            gate_up.push(Tensor::cat(&[*w1, *w3], 0)?);
            down.push((*w2).clone());
        }
        let hidden = experts
            .first()
            .map(|(w1, _, _)| w1.dim(0))
            .transpose()?
            .unwrap_or(0);
        Ok(Self {
            gate_up: Tensor::stack(&gate_up, 0)?,
            down: Tensor::stack(&down, 0)?,
            hidden,
        })
    }

    /// Expert `e`'s (w1, w3, w2) as views into the stacked weights (no copy).
    pub fn expert(&self, e: usize) -> Result<(Tensor, Tensor, Tensor)> {
        let h = self.hidden;
        let gate_up = self.gate_up.get(e)?;
        Ok((
            gate_up.narrow(0, 0, h)?,
            gate_up.narrow(0, h, h)?,
            self.down.get(e)?,
        ))
    }

    /// `x`: [N, D] → Σ over each token's chosen experts of weight · expert(x), [N, D].
    /// `chosen` ([N, k] u32) and `weights` ([N, k]) are the gate's routing; the kernel reads
    /// the weights as f32.
    pub fn forward(&self, x: &Tensor, chosen: &Tensor, weights: Tensor) -> Result<Tensor> {
        let (tokens, dim) = x.dims2()?;
        let top_k = chosen.dim(1)?;
        let (expert_ids, sorted_slots) = chosen.flatten_all()?.sort_last_dim(true)?;
        let h = self.hidden;
        let gate_up = candle_nn::moe::moe_gemm(
            x,
            &self.gate_up,
            &None,
            &sorted_slots,
            &expert_ids,
            top_k,
            true,
        )?;
        let act = kernels::silu_mul(
            &gate_up.narrow(D::Minus1, 0, h)?,
            &gate_up.narrow(D::Minus1, h, h)?,
        )?;
        candle_nn::moe::moe_gemm(
            &act.reshape(((), h))?,
            &self.down,
            &Some(weights.to_dtype(DType::F32)?),
            &sorted_slots,
            &expert_ids,
            top_k,
            true,
        )?
        .reshape((tokens, top_k, dim))?
        .sum(1)
    }
}
