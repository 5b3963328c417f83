use candle_core::{CpuStorage, CustomOp1, D, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::exp::exp_f32;
use super::{contiguous_f32, lane_fold, multiversion};

/// `softmax(scale · x)` over the last dim (scale > 0). Rows are independent; on the CPU in f32
/// this is one fused pass per row instead of candle's scale, max, exp, sum and divide.
pub(crate) fn softmax_last_dim_scaled(x: &Tensor, scale: f64) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return x.apply_op1_no_bwd(&ScaledSoftmax {
            scale: scale as f32,
        });
    }
    candle_nn::ops::softmax_last_dim(&(x * scale)?)
}

/// The numerators `exp(scale · (x − rowmax))` of `softmax(scale · x)` over the last dim and their
/// row sums `[..., 1]`, so a caller can divide after a matmul that shrinks the rows (attention:
/// `softmax(s)·v = (exp(s)·v) / Σexp(s)`), saving a pass over the large matrix.
pub(crate) fn softmax_numerators(x: &Tensor, scale: f64) -> Result<(Tensor, Tensor)> {
    let cols = x.dim(D::Minus1)?;
    let with_sums = if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1_no_bwd(&Numerators {
            scale: scale as f32,
        })?
    } else {
        let scaled = (x * scale)?;
        let e = scaled
            .broadcast_sub(&scaled.max_keepdim(D::Minus1)?)?
            .exp()?;
        let sums = e.sum_keepdim(D::Minus1)?;
        Tensor::cat(&[e, sums], D::Minus1)?
    };
    Ok((
        with_sums.narrow(D::Minus1, 0, cols)?,
        with_sums.narrow(D::Minus1, cols, 1)?,
    ))
}

/// Writes each row's numerators followed by their sum: [..., cols] → [..., cols + 1].
struct Numerators {
    scale: f32,
}

impl CustomOp1 for Numerators {
    fn name(&self) -> &'static str {
        "softmax-numerators"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(self.name(), storage, layout)?;
        let mut dims = layout.dims().to_vec();
        let Some(cols) = dims.last_mut() else {
            candle_core::bail!("softmax-numerators needs at least one dim")
        };
        let width = *cols;
        *cols += 1;
        let mut dst = vec![0f32; src.len() / width.max(1) * (width + 1)];
        let row = pick_numerators_row();
        let scale = self.scale;
        dst.par_chunks_mut(width + 1)
            .zip(src.par_chunks(width.max(1)))
            .for_each(|(d, s)| row(s, d, scale));
        Ok((CpuStorage::F32(dst), Shape::from(dims)))
    }
}

#[inline(always)]
fn numerators_row(src: &[f32], dst: &mut [f32], scale: f32) {
    let (values, sum) = dst.split_at_mut(src.len());
    sum[0] = exp_row(src, values, scale);
}

multiversion!(
    pick_numerators_row,
    numerators_row,
    fn(src: &[f32], dst: &mut [f32], scale: f32)
);

struct ScaledSoftmax {
    scale: f32,
}

impl CustomOp1 for ScaledSoftmax {
    fn name(&self) -> &'static str {
        "scaled-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(self.name(), storage, layout)?;
        let cols = layout.dims().last().copied().unwrap_or(1).max(1);
        let mut dst = vec![0f32; src.len()];
        let row = pick_row();
        let scale = self.scale;
        dst.par_chunks_mut(cols)
            .zip(src.par_chunks(cols))
            .for_each(|(d, s)| row(s, d, scale));
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// Writes `exp(scale · (src − max))` to `dst` and returns the sum. Three simple loops (max,
/// exp, sum) vectorise where one fused loop with a reduction does not; the row is in L1 for the
/// last one.
#[inline(always)]
fn exp_row(src: &[f32], dst: &mut [f32], scale: f32) -> f32 {
    let max = lane_fold(src, f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = exp_f32((s - max) * scale);
    }
    lane_fold(dst, 0.0, |a, v| a + v)
}

#[inline(always)]
fn softmax_row(src: &[f32], dst: &mut [f32], scale: f32) {
    let inv = 1.0 / exp_row(src, dst, scale);
    for d in dst.iter_mut() {
        *d *= inv;
    }
}

multiversion!(
    pick_row,
    softmax_row,
    fn(src: &[f32], dst: &mut [f32], scale: f32)
);

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn equals_candle_softmax() {
        let x = crate::kernels::seeded_randn(1, 0.0, 3.0, (3, 5, 37));
        let ours = softmax_last_dim_scaled(&x, 0.125).unwrap();
        let theirs = candle_nn::ops::softmax_last_dim(&(&x * 0.125).unwrap()).unwrap();
        let diff = crate::kernels::test_support::max_abs_diff(&ours, &theirs);
        assert!(diff < 1e-6, "{diff}");

        let (numerators, sums) = softmax_numerators(&x, 0.125).unwrap();
        let ours = numerators.broadcast_div(&sums).unwrap();
        let diff = crate::kernels::test_support::max_abs_diff(&ours, &theirs);
        assert!(diff < 1e-6, "{diff}");
    }
}
