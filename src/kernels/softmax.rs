use candle_core::{D, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu_op::{CpuOp, F32Inputs, F32Kernel, is_cpu_f32};
use super::exp::exp_f32;
use super::{lane_fold, multiversion};

/// `softmax(scale · x)` over the last dim (scale > 0). Rows are independent; on the CPU in f32
/// this is one fused pass per row instead of candle's scale, max, exp, sum and divide.
pub(crate) fn softmax_last_dim_scaled(x: &Tensor, scale: f64) -> Result<Tensor> {
    if is_cpu_f32(&[x]) {
        return x.apply_op1_no_bwd(&CpuOp(ScaledSoftmax {
            scale: scale as f32,
        }));
    }
    candle_nn::ops::softmax_last_dim(&(x * scale)?)
}

/// The numerators `exp(scale · (x − rowmax))` of `softmax(scale · x)` over the last dim and their
/// row sums `[..., 1]`, so a caller can divide after a matmul that shrinks the rows (attention:
/// `softmax(s)·v = (exp(s)·v) / Σexp(s)`), saving a pass over the large matrix.
pub(crate) fn softmax_numerators(x: &Tensor, scale: f64) -> Result<(Tensor, Tensor)> {
    let cols = x.dim(D::Minus1)?;
    let with_sums = if is_cpu_f32(&[x]) {
        x.contiguous()?.apply_op1_no_bwd(&CpuOp(Numerators {
            scale: scale as f32,
        }))?
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

impl F32Kernel<1> for Numerators {
    const NAME: &'static str = "softmax-numerators";

    fn forward(&self, inputs: &F32Inputs<'_, 1>) -> Result<(Vec<f32>, Shape)> {
        let [src] = inputs.data;
        let mut dims = inputs.shapes[0].dims().to_vec();
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
        Ok((dst, Shape::from(dims)))
    }
}

multiversion! {
    pick_numerators_row => fn numerators_row(src: &[f32], dst: &mut [f32], scale: f32) {
        let (values, sum) = dst.split_at_mut(src.len());
        sum[0] = exp_row(src, values, scale);
    }
}

struct ScaledSoftmax {
    scale: f32,
}

impl F32Kernel<1> for ScaledSoftmax {
    const NAME: &'static str = "scaled-softmax";

    fn forward(&self, inputs: &F32Inputs<'_, 1>) -> Result<(Vec<f32>, Shape)> {
        let [src] = inputs.data;
        let cols = inputs.shapes[0].dims().last().copied().unwrap_or(1).max(1);
        let mut dst = vec![0f32; src.len()];
        let row = pick_row();
        let scale = self.scale;
        dst.par_chunks_mut(cols)
            .zip(src.par_chunks(cols))
            .for_each(|(d, s)| row(s, d, scale));
        Ok((dst, inputs.shapes[0].clone()))
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

multiversion! {
    pick_row => fn softmax_row(src: &[f32], dst: &mut [f32], scale: f32) {
        let inv = 1.0 / exp_row(src, dst, scale);
        for d in dst.iter_mut() {
            *d *= inv;
        }
    }
}

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
