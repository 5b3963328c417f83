//! Seeded random weights for benchmarks of configurations no checkpoint exists for.

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::rng::Rng;

/// Hands out N(0, 1/fan_in) matrices and N(1, 0.1²) / N(0, 0.1²) vectors (norm weights and
/// biases), generated on the CPU from a seed mixed with the tensor name, so the same name always
/// gets the same values whatever the construction order.
struct RandomWeights {
    seed: u64,
}

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let dims = shape.dims();
        let mut rng = Rng::new(self.seed ^ fnv1a(name));
        let n = shape.elem_count();
        let (mean, std) = match dims {
            [_] if name.contains("norm") => (1.0, 0.1),
            [_] => (0.0, 0.1),
            _ => (0.0, (1.0 / (n / dims[0]).max(1) as f64).sqrt()),
        };
        let values: Vec<f32> = (0..n).map(|_| (mean + std * rng.normal()) as f32).collect();
        Tensor::from_vec(values, shape, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("random weights need a shape for `{name}`")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// A VarBuilder over seeded random weights.
pub fn random_var_builder(seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(RandomWeights { seed }), dtype, device.clone())
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
