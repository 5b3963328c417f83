//! The adaLN element-wise steps of every transformer block, each in one pass on the CPU:
//! `LN(x)·(1 + scale) + shift` and `x + gate·f`, where candle needs five to eight.

use candle_core::{D, DType, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu_op::{CpuOp, F32Inputs, F32Kernel, is_cpu_f32};
use super::{LANES, lane_fold, multiversion};

/// `LayerNorm(x)·(1 + scale) + shift` over the last dim, LayerNorm without affine parameters
/// and with a two-pass variance in f32 (as PyTorch computes it). `x`: [B, S, D]; `scale`,
/// `shift`: [B, 1, D]. Returns `x`'s dtype.
pub(crate) fn modulated_layer_norm(
    x: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    if is_cpu_f32(&[x, scale, shift]) {
        let (x, scale, shift) = (x.contiguous()?, scale.contiguous()?, shift.contiguous()?);
        let op = CpuOp(ModulatedLayerNorm { eps: eps as f32 });
        return x.apply_op3_no_bwd(&scale, &shift, &op);
    }
    let dtype = x.dtype();
    let x32 = x.to_dtype(DType::F32)?;
    let centred = x32.broadcast_sub(&x32.mean_keepdim(D::Minus1)?)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .to_dtype(dtype)?
        .broadcast_mul(&(scale + 1.0)?)?
        .broadcast_add(shift)
}

/// `x + gate·f`. `x`, `f`: [B, S, D]; `gate`: [B, 1, D].
pub(crate) fn gated_residual(x: &Tensor, f: &Tensor, gate: &Tensor) -> Result<Tensor> {
    if is_cpu_f32(&[x, f, gate]) && x.shape() == f.shape() {
        let (x, f, gate) = (x.contiguous()?, f.contiguous()?, gate.contiguous()?);
        return x.apply_op3_no_bwd(&f, &gate, &CpuOp(GatedResidual));
    }
    x + f.broadcast_mul(gate)?
}

/// Checks the [B, S, D] / [B, 1, D] shapes and returns (batch, rows per batch, D).
fn row_shapes(rows: &Shape, vectors: [&Shape; 2]) -> Result<(usize, usize, usize)> {
    let (b, s, d) = rows.dims3()?;
    for shape in vectors {
        if shape.dims3()? != (b, 1, d) {
            candle_core::bail!("adaLN vectors must be [{b}, 1, {d}], found {shape:?}")
        }
    }
    Ok((b, s, d))
}

struct ModulatedLayerNorm {
    eps: f32,
}

impl F32Kernel<3> for ModulatedLayerNorm {
    const NAME: &'static str = "modulated-layer-norm";

    fn forward(&self, inputs: &F32Inputs<'_, 3>) -> Result<(Vec<f32>, Shape)> {
        let [x_shape, scale_shape, shift_shape] = inputs.shapes;
        let (_, s, d) = row_shapes(x_shape, [scale_shape, shift_shape])?;
        let [x, scale, shift] = inputs.data;
        let mut out = vec![0f32; x.len()];
        let row = pick_norm_row();
        let eps = self.eps;
        out.par_chunks_mut(d)
            .zip(x.par_chunks(d))
            .enumerate()
            .for_each(|(i, (o, x))| {
                let batch = i / s;
                let (scale, shift) = (&scale[batch * d..][..d], &shift[batch * d..][..d]);
                row(x, scale, shift, o, eps);
            });
        Ok((out, x_shape.clone()))
    }
}

multiversion! {
    pick_norm_row => fn norm_row(
        x: &[f32],
        scale: &[f32],
        shift: &[f32],
        out: &mut [f32],
        eps: f32,
    ) {
        let n = x.len() as f32;
        let mean = lane_fold(x, 0.0, |a, v| a + v) / n;
        let mut centred = [0f32; LANES];
        for chunk in x.chunks(LANES) {
            for (c, &v) in centred.iter_mut().zip(chunk) {
                *c += (v - mean) * (v - mean);
            }
        }
        let var = centred.iter().sum::<f32>() / n;
        let inv_std = 1.0 / (var + eps).sqrt();
        for (((o, &x), &scale), &shift) in out.iter_mut().zip(x).zip(scale).zip(shift) {
            *o = (x - mean) * inv_std * (1.0 + scale) + shift;
        }
    }
}

struct GatedResidual;

impl F32Kernel<3> for GatedResidual {
    const NAME: &'static str = "gated-residual";

    fn forward(&self, inputs: &F32Inputs<'_, 3>) -> Result<(Vec<f32>, Shape)> {
        let [x_shape, f_shape, gate_shape] = inputs.shapes;
        let (_, s, d) = row_shapes(x_shape, [gate_shape, gate_shape])?;
        if f_shape != x_shape {
            candle_core::bail!("{}: {x_shape:?} and {f_shape:?} differ", Self::NAME)
        }
        let [x, f, gate] = inputs.data;
        let mut out = vec![0f32; x.len()];
        let row = pick_gated_row();
        out.par_chunks_mut(d)
            .zip(x.par_chunks(d).zip(f.par_chunks(d)))
            .enumerate()
            .for_each(|(i, (o, (x, f)))| row(x, f, &gate[(i / s) * d..][..d], o));
        Ok((out, x_shape.clone()))
    }
}

multiversion! {
    pick_gated_row => fn gated_row(x: &[f32], f: &[f32], gate: &[f32], out: &mut [f32]) {
        for (((o, &x), &f), &g) in out.iter_mut().zip(x).zip(f).zip(gate) {
            *o = x + f * g;
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn fused_steps_equal_the_composite_ones() {
        // An offset mean makes a one-pass variance visibly wrong.
        let x = (crate::kernels::seeded_randn(1, 0.0, 1.0, (2, 5, 48)) + 30.0).unwrap();
        let scale = crate::kernels::seeded_randn(2, 0.0, 0.5, (2, 1, 48));
        let shift = crate::kernels::seeded_randn(3, 0.0, 0.5, (2, 1, 48));
        let fused = modulated_layer_norm(&x, &scale, &shift, 1e-6).unwrap();
        // The exact result, computed in f64.
        let (x64, scale64, shift64) = [&x, &scale, &shift]
            .map(|t| t.to_dtype(DType::F64).unwrap())
            .into();
        let centred = x64
            .broadcast_sub(&x64.mean_keepdim(D::Minus1).unwrap())
            .unwrap();
        let var = centred.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let composite = centred
            .broadcast_div(&(var + 1e-6).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&(&scale64 + 1.0).unwrap())
            .unwrap()
            .broadcast_add(&shift64)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        // The fused kernel takes the mean in f32, so its error is a few ulps of the offset 30
        // (2^-19 each), carried through the normalisation and multiplied by (1 + scale). Over
        // 300 seeds the worst case was 3.6 such units; 8 leaves room without hiding a wrong
        // variance (the offset makes a one-pass variance wrong by orders of magnitude more).
        let ulp_of_offset = 30f32.next_up() - 30.0;
        let gain = crate::kernels::test_support::max_abs(&(&scale + 1.0).unwrap());
        let bound = 8.0 * ulp_of_offset * gain;
        let error = crate::kernels::test_support::max_abs_diff(&fused, &composite);
        assert!(error < bound, "max error {error:e}, bound {bound:e}");

        let f = crate::kernels::seeded_randn(4, 0.0, 1.0, (2, 5, 48));
        let fused = gated_residual(&x, &f, &scale).unwrap();
        let composite = (&x + f.broadcast_mul(&scale).unwrap()).unwrap();
        assert!(crate::kernels::test_support::max_abs_diff(&fused, &composite) < 1e-5);
    }
}
