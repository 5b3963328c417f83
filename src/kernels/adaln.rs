//! The adaLN element-wise steps of every transformer block, each in one pass on the CPU:
//! `LN(x)·(1 + scale) + shift` and `x + gate·f`, where candle needs five to eight.

use candle_core::{CpuStorage, CustomOp3, D, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{LANES, contiguous_f32, lane_fold, multiversion};

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
        return x.apply_op3_no_bwd(&scale, &shift, &ModulatedLayerNorm { eps: eps as f32 });
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
        return x.apply_op3_no_bwd(&f, &gate, &GatedResidual);
    }
    x + f.broadcast_mul(gate)?
}

fn is_cpu_f32(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// Checks the [B, S, D] / [B, 1, D] shapes and returns (batch, rows per batch, D).
fn row_shapes(l1: &Layout, l2: &Layout, l3: &Layout) -> Result<(usize, usize, usize)> {
    let (b, s, d) = l1.shape().dims3()?;
    for l in [l2, l3] {
        if l.shape().dims3()? != (b, 1, d) {
            candle_core::bail!("adaLN vectors must be [{b}, 1, {d}], found {:?}", l.shape())
        }
    }
    Ok((b, s, d))
}

struct ModulatedLayerNorm {
    eps: f32,
}

impl CustomOp3 for ModulatedLayerNorm {
    fn name(&self) -> &'static str {
        "modulated-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, s, d) = row_shapes(l1, l2, l3)?;
        let (x, scale, shift) = (
            contiguous_f32(self.name(), s1, l1)?,
            contiguous_f32(self.name(), s2, l2)?,
            contiguous_f32(self.name(), s3, l3)?,
        );
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
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[inline(always)]
fn norm_row(x: &[f32], scale: &[f32], shift: &[f32], out: &mut [f32], eps: f32) {
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

multiversion!(
    pick_norm_row,
    norm_row,
    fn(x: &[f32], scale: &[f32], shift: &[f32], out: &mut [f32], eps: f32)
);

struct GatedResidual;

impl CustomOp3 for GatedResidual {
    fn name(&self) -> &'static str {
        "gated-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, s, d) = row_shapes(l1, l3, l3)?;
        if l2.shape() != l1.shape() {
            candle_core::bail!(
                "gated-residual: {:?} and {:?} differ",
                l1.shape(),
                l2.shape()
            )
        }
        let (x, f, gate) = (
            contiguous_f32(self.name(), s1, l1)?,
            contiguous_f32(self.name(), s2, l2)?,
            contiguous_f32(self.name(), s3, l3)?,
        );
        let mut out = vec![0f32; x.len()];
        let row = pick_gated_row();
        out.par_chunks_mut(d)
            .zip(x.par_chunks(d).zip(f.par_chunks(d)))
            .enumerate()
            .for_each(|(i, (o, (x, f)))| row(x, f, &gate[(i / s) * d..][..d], o));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[inline(always)]
fn gated_row(x: &[f32], f: &[f32], gate: &[f32], out: &mut [f32]) {
    for (((o, &x), &f), &g) in out.iter_mut().zip(x).zip(f).zip(gate) {
        *o = x + f * g;
    }
}

multiversion!(
    pick_gated_row,
    gated_row,
    fn(x: &[f32], f: &[f32], gate: &[f32], out: &mut [f32])
);

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
