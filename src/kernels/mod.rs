//! Fast CPU kernels for the element-wise work around the matmuls, where candle's generic ops
//! call a scalar `expf` per element: softmax (attention) and SiLU gating (every SwiGLU). Each
//! public function falls back to candle's own ops on other devices, so callers need not care.
//!
//! The kernels are plain loops over rows that LLVM vectorises; every row function is compiled
//! twice, for the baseline target and for AVX2+FMA, and the widest the CPU supports is picked
//! at run time.

mod adaln;
mod conv;
mod cpu_op;
#[cfg(feature = "cuda")]
mod cuda_attention;
mod exp;
mod image_ops;
mod silu_mul;
mod softmax;

pub(crate) use adaln::{gated_residual, modulated_layer_norm};
pub(crate) use conv::conv2d_module;
#[cfg(feature = "cuda")]
pub(crate) use cuda_attention::{fused_attention, fused_attention_supported};
pub(crate) use image_ops::{group_norm, upsample_nearest_2x};
pub(crate) use silu_mul::silu_mul;
pub(crate) use softmax::{softmax_last_dim_scaled, softmax_numerators};

/// Accumulators folded side by side, so reductions vectorise.
const LANES: usize = 8;

/// Folds with `LANES` independent accumulators so the loop vectorises, then folds those.
#[inline(always)]
fn lane_fold(values: &[f32], init: f32, f: impl Fn(f32, f32) -> f32 + Copy) -> f32 {
    let mut acc = [init; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = f(*a, v);
        }
    }
    tail.iter().chain(&acc).fold(init, |a, &v| f(a, v))
}

/// Whether the AVX2+FMA variants can run here.
fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines the row kernel `$kernel` (always inlined) and `$name()`, a safe chooser that returns
/// its AVX2+FMA build when the CPU has those features, else its baseline build. The kernel is
/// written once, inside the macro, so its signature is not repeated for the wrapper.
macro_rules! multiversion {
    (
        $(#[$attr:meta])*
        $name:ident => fn $kernel:ident($($arg:ident: $ty:ty),* $(,)?) $body:block
    ) => {
        $(#[$attr])*
        #[inline(always)]
        fn $kernel($($arg: $ty),*) $body

        fn $name() -> fn($($ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn wide($($arg: $ty),*) {
                    $kernel($($arg),*)
                }
                if crate::kernels::has_avx2_fma() {
                    // SAFETY: `wide` only runs after the CPU features were detected.
                    return |$($arg: $ty),*| unsafe { wide($($arg),*) };
                }
            }
            |$($arg: $ty),*| $kernel($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// Seeded random inputs for the kernels' tests, so a failure reproduces.
#[cfg(test)]
fn seeded_randn(
    seed: u64,
    mean: f32,
    std: f32,
    shape: impl Into<candle_core::Shape>,
) -> candle_core::Tensor {
    let shape = shape.into();
    let mut rng = crate::rng::Rng::new(seed);
    let values: Vec<f32> = rng
        .normals(shape.elem_count())
        .into_iter()
        .map(|v| mean + std * v)
        .collect();
    candle_core::Tensor::from_vec(values, shape, &candle_core::Device::Cpu)
        .expect("the shape holds exactly these values")
}

/// Comparisons for the kernels' tests (a module of its own: reading values back is fine in
/// tests, and the host-read audit skips test modules).
#[cfg(test)]
mod test_support {
    /// The largest absolute value of a tensor, for the kernels' tests.
    pub(super) fn max_abs(t: &candle_core::Tensor) -> f32 {
        t.abs()
            .and_then(|a| a.flatten_all())
            .and_then(|a| a.max(0))
            .and_then(|a| a.to_dtype(candle_core::DType::F32))
            .and_then(|a| a.to_scalar::<f32>())
            .expect("a non-empty tensor")
    }

    /// The largest absolute difference between two tensors of one shape, for the kernels' tests.
    pub(super) fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
        max_abs(&(a - b).expect("tensors of one shape"))
    }
}
