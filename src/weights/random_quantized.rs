//! Seeded random block-quantised weights, for benchmarks of GGUF transformers at sizes no file
//! exists for here (the real 17B model on a lent GPU): the blocks are random bytes with their
//! scale fields set so that the weights are about N(0, 1/fan_in)-sized, as
//! [`super::random_var_builder`]'s dense ones are. Quantising 17B random floats would take
//! minutes; random blocks take seconds, and the kernels' cost does not depend on the values.
//!
//! Block layouts as ggml's `block_q8_0`, `block_q4_K`, `block_q5_K` and `block_q6_K`
//! (ggml/src/ggml-common.h): where each type keeps its f16 super-block scales.

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Result};
use half::f16;

use super::gguf::GgmlType;
use super::random::fnv1a;
use crate::models::QuantizedSource;
use crate::quantize::{QuantTarget, tensor_type};
use crate::rng::Rng;

/// Offsets of the f16 scale fields in one block, and the block's largest |integer weight|
/// product (what one unit of the scale multiplies), for the types random blocks are made for.
fn layout(dtype: GgmlDType) -> Option<(&'static [usize], f32)> {
    Some(match dtype {
        // d; q ∈ [−128, 127]
        GgmlDType::Q8_0 => (&[0], 128.0),
        // d, dmin; 6-bit sub-block scales × 4-bit q
        GgmlDType::Q4K => (&[0, 2], 63.0 * 15.0),
        // d, dmin; 6-bit scales × 5-bit q
        GgmlDType::Q5K => (&[0, 2], 63.0 * 31.0),
        // d is the last field; i8 scales × (6-bit q − 32)
        GgmlDType::Q6K => (&[208], 128.0 * 32.0),
        _ => return None,
    })
}

/// Hands out random quantised weights where the community recipe for `target` quantises a
/// tensor, and nothing (the dense random weights serve) elsewhere.
pub struct RandomQuantized {
    pub seed: u64,
    pub target: QuantTarget,
}

impl RandomQuantized {
    fn blocks(
        &self,
        name: &str,
        ty: GgmlType,
        shape: &[usize],
        device: &Device,
    ) -> Result<QTensor> {
        let Some((scales, max_product)) = layout(ty.candle) else {
            candle_core::bail!(
                "random weights come in Q8_0, Q4_K, Q5_K and Q6_K blocks, not {} (`{name}`)",
                ty.name
            );
        };
        let elements: usize = shape.iter().product();
        let (block_elements, block_bytes) = (ty.candle.block_size(), ty.candle.type_size());
        let blocks = elements / block_elements;
        let fan_in = shape.last().copied().unwrap_or(1).max(1);
        // Uniform integers reach about ±max_product with a std near max_product / 2.
        let scale = f16::from_f32(2.0 / (max_product * (fan_in as f32).sqrt()));
        let mut rng = Rng::new(self.seed ^ fnv1a(name));
        let mut data = vec![0u8; blocks * block_bytes];
        for chunk in data.chunks_mut(8) {
            let bytes = rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        for block in data.chunks_mut(block_bytes) {
            for &at in scales {
                block[at..at + 2].copy_from_slice(&scale.to_le_bytes());
            }
        }
        let storage = QStorage::from_data(std::borrow::Cow::Owned(data), device, ty.candle)?;
        QTensor::new(storage, shape)
    }
}

impl QuantizedSource for RandomQuantized {
    fn quantized(&self, name: &str, shape: &[usize], device: &Device) -> Option<Result<QTensor>> {
        let ty = tensor_type(name, shape, DType::BF16, self.target);
        ty.is_quantized()
            .then(|| self.blocks(name, ty, shape, device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each block type dequantises to finite weights of about the dense random weights' size,
    /// N(0, 1/fan_in): within a factor of a few, so activations neither vanish nor blow up
    /// through 48 blocks.
    #[test]
    fn random_blocks_dequantise_to_weights_of_the_dense_size() {
        let fan_in = 512;
        let dense_std = 1.0 / (fan_in as f32).sqrt();
        for name in ["Q8_0", "Q4_K", "Q5_K", "Q6_K"] {
            let ty = GgmlType::from_name(name).unwrap();
            let source = RandomQuantized {
                seed: 1,
                target: QuantTarget::Q8_0,
            };
            let q = source.blocks("w", ty, &[64, fan_in], &Device::Cpu).unwrap();
            let values: Vec<f32> = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(values.iter().all(|v| v.is_finite()), "{name}");
            let mean = values.iter().sum::<f32>() / values.len() as f32;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / values.len() as f32;
            let ratio = var.sqrt() / dense_std;
            assert!(
                (0.1..10.0).contains(&ratio),
                "{name}: std {ratio}× the dense one"
            );
        }
    }
}
