//! Seeded random weights for benchmarks of configurations no checkpoint exists for.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;

use super::backend::{Request, TensorSource, var_builder_over};
use crate::rng::Rng;

/// Hands out N(0, 1/fan_in) matrices and N(1, 0.1²) / N(0, 0.1²) vectors (norm weights and
/// biases).
///
/// On the CPU they come from [`Rng`] seeded with the seed mixed with the tensor name, so the
/// same name always gets the same values whatever the construction order (the CPU benchmarks
/// in BENCHMARKS.md rely on these exact values).
///
/// On CUDA they are drawn on the device (cuRAND, f32, then cast): the 17 B normals of the real
/// transformer take minutes on one CPU core and tens of GB of host copies, against seconds on
/// the GPU. The device generator is seeded once, with `seed`, at the first tensor, and the
/// tensors are drawn one after another — re-seeding per name would create a cuRAND generator
/// (and run its state set-up) thousands of times. So on CUDA a model built the same way always
/// gets the same weights, but the values depend on the construction order, differ from the
/// CPU's, and other users of the device generator (candle's `Tensor::randn` on that device)
/// shift them.
struct RandomWeights {
    seed: u64,
    device_seeded: AtomicBool,
}

impl RandomWeights {
    fn on_device(
        &self,
        shape: Shape,
        (mean, std): (f64, f64),
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        if !self.device_seeded.swap(true, Ordering::Relaxed) {
            device.set_seed(self.seed)?;
        }
        Tensor::randn(mean as f32, std as f32, shape, device)?.to_dtype(dtype)
    }
}

impl TensorSource for RandomWeights {
    fn tensor(&self, request: Request<'_>) -> candle_core::Result<Tensor> {
        let Request {
            name,
            shape,
            dtype,
            device,
        } = request;
        let Some(shape) = shape else {
            candle_core::bail!("random weights need a shape for `{name}`")
        };
        let dims = shape.dims();
        let n = shape.elem_count();
        let (mean, std) = match dims {
            [_] if name.contains("norm") => (1.0, 0.1),
            [_] => (0.0, 0.1),
            _ => (0.0, (1.0 / (n / dims[0]).max(1) as f64).sqrt()),
        };
        if device.is_cuda() {
            return self.on_device(shape, (mean, std), dtype, device);
        }
        let mut rng = Rng::new(self.seed ^ fnv1a(name));
        let values: Vec<f32> = (0..n).map(|_| (mean + std * rng.normal()) as f32).collect();
        Tensor::from_vec(values, shape, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)
    }

    fn holds(&self, _: &str) -> bool {
        true
    }
}

/// A VarBuilder over seeded random weights (see [`RandomWeights`] for what is drawn where).
pub fn random_var_builder(seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    let weights = RandomWeights {
        seed,
        device_seeded: AtomicBool::new(false),
    };
    var_builder_over(weights, dtype, device)
}

pub(super) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU values are pinned: BENCHMARKS.md's numbers were measured on exactly these.
    #[test]
    fn cpu_weights_are_the_pinned_values() {
        let vb = random_var_builder(0, DType::F32, &Device::Cpu);
        let w = vb
            .get((2, 3), "blocks.0.attn.to_q.weight")
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
            .unwrap();
        let norm = vb
            .get(3, "blocks.0.norm.weight")
            .and_then(|t| t.to_vec1::<f32>())
            .unwrap();
        assert_eq!(w, PINNED_MATRIX);
        assert_eq!(norm, PINNED_NORM);
        // The same name gives the same values, in any order and from any builder.
        let again = random_var_builder(0, DType::F32, &Device::Cpu)
            .get(3, "blocks.0.norm.weight")
            .and_then(|t| t.to_vec1::<f32>())
            .unwrap();
        assert_eq!(again, norm);
    }

    /// Checked against an independent Python implementation of `Rng` (xoshiro256++ through
    /// SplitMix64, Box–Muller) and of the name hash.
    const PINNED_MATRIX: [f32; 6] = [
        -0.21965937,
        0.5620806,
        -0.9419774,
        0.05759059,
        -0.2952336,
        -0.12138388,
    ];
    const PINNED_NORM: [f32; 3] = [1.0130892, 1.0689853, 0.9329907];
}
