use candle_core::{Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu_op::{CpuOp, F32Inputs, F32Kernel, is_cpu_f32};
use super::exp::exp_f32;
use super::multiversion;

/// `SiLU(a) ⊙ b`, the gating of a SwiGLU, in one pass on the CPU in f32.
pub(crate) fn silu_mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if is_cpu_f32(&[a, b]) && a.shape() == b.shape() {
        return a
            .contiguous()?
            .apply_op2_no_bwd(&b.contiguous()?, &CpuOp(SiluMul));
    }
    candle_nn::ops::silu(a)? * b
}

struct SiluMul;

/// Elements per parallel task: large enough to amortise scheduling.
const CHUNK: usize = 1 << 14;

impl F32Kernel<2> for SiluMul {
    const NAME: &'static str = "silu-mul";

    fn forward(&self, inputs: &F32Inputs<'_, 2>) -> Result<(Vec<f32>, Shape)> {
        let [a, b] = inputs.data;
        let mut out = vec![0f32; a.len()];
        let kernel = pick_kernel();
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(o, (a, b))| kernel(a, b, o));
        Ok((out, inputs.shapes[0].clone()))
    }
}

multiversion! {
    pick_kernel => fn silu_mul_kernel(a: &[f32], b: &[f32], out: &mut [f32]) {
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            *o = a / (1.0 + exp_f32(-a)) * b;
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn equals_candle_silu_times_b() {
        let a = crate::kernels::seeded_randn(1, 0.0, 4.0, (7, 33));
        let b = crate::kernels::seeded_randn(2, 0.0, 1.0, (7, 33));
        let ours = silu_mul(&a, &b).unwrap();
        let theirs = (candle_nn::ops::silu(&a).unwrap() * &b).unwrap();
        let diff = crate::kernels::test_support::max_abs_diff(&ours, &theirs);
        assert!(diff < 1e-5, "{diff}");
        // Strided views are made contiguous first.
        let at = a.t().unwrap();
        let bt = b.t().unwrap();
        let ours = silu_mul(&at, &bt).unwrap();
        let theirs = (candle_nn::ops::silu(&at).unwrap() * &bt).unwrap();
        let diff = crate::kernels::test_support::max_abs_diff(&ours, &theirs);
        assert!(diff < 1e-5, "{diff}");
    }
}
