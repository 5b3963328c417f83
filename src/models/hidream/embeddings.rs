//! Timestep, pooled-text and patch embeddings, and the RoPE tables.

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::models::device_copy::ToDevice;
use crate::models::linear::{Linear, linear};

use super::config::ROPE_THETA;

/// Width of the timestep sinusoid.
pub(crate) const TIMESTEP_FEATURES: usize = 256;

/// The diffusers `Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)` sinusoid, in f32
/// whatever the model dtype: `[cos(t·f_k) ‖ sin(t·f_k)]` with `f_k = 10000^(−k/128)`.
///
/// `t`: [B] (HiDream: on the 0..1000 scale; REPA-E's SiT feeds t in [0, 1] to the same
/// features, its `TimestepEmbedder.positional_embedding` rounding them alike). Returns [B, 256]
/// f32.
pub(crate) fn timestep_sinusoid(t: &Tensor) -> Result<Tensor> {
    let half = TIMESTEP_FEATURES / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|k| (-(10_000f32.ln()) * k as f32 / half as f32).exp())
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), t.device())?;
    let args = t
        .to_dtype(DType::F32)?
        .unsqueeze(1)?
        .broadcast_mul(&freqs)?;
    Tensor::cat(&[args.cos()?, args.sin()?], D::Minus1)
}

/// diffusers `TimestepEmbedding`: linear → SiLU → linear.
#[derive(Debug, Clone)]
pub(crate) struct MlpEmbedder {
    linear_1: Linear,
    linear_2: Linear,
}

impl ToDevice for MlpEmbedder {
    fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            linear_1: self.linear_1.to_device(device)?,
            linear_2: self.linear_2.to_device(device)?,
        })
    }
}

impl MlpEmbedder {
    pub(crate) fn linears<'a>(&'a self, out: &mut Vec<&'a Linear>) {
        out.extend([&self.linear_1, &self.linear_2]);
    }

    pub fn new(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            linear_1: linear(in_dim, out_dim, vb.pp("linear_1"))?,
            linear_2: linear(out_dim, out_dim, vb.pp("linear_2"))?,
        })
    }
}

impl Module for MlpEmbedder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear_2
            .forward(&candle_nn::ops::silu(&self.linear_1.forward(x)?)?)
    }
}

/// Per-token rotation angles for the interleaved three-axis RoPE, as f32 cos/sin tables of
/// [tokens, rope_dim / 2]. Position ids are (0, row, col) for image tokens; text tokens and
/// padding slots have ids (0, 0, 0), i.e. no rotation, so their rows are cos 1, sin 0.
#[derive(Debug, Clone)]
pub(crate) struct RopeTable {
    pub cos: Tensor,
    pub sin: Tensor,
}

impl RopeTable {
    /// `image_grid`: the (rows, cols) of real image tokens, which come first; `total` tokens in
    /// all (the rest unrotated). Angles are computed in f64 and rounded to f32 as the reference
    /// does.
    pub fn new(
        axes: &[usize],
        image_grid: (usize, usize),
        total: usize,
        device: &Device,
    ) -> Result<Self> {
        let pairs: usize = axes.iter().sum::<usize>() / 2;
        let mut cos = vec![1f32; total * pairs];
        let mut sin = vec![0f32; total * pairs];
        // ω for every pair, tagged with the id axis it reads.
        let omegas: Vec<(usize, f64)> = axes
            .iter()
            .enumerate()
            .flat_map(|(axis, &dim)| {
                (0..dim / 2)
                    .map(move |k| (axis, 1.0 / ROPE_THETA.powf(2.0 * k as f64 / dim as f64)))
            })
            .collect();
        let (rows, cols) = image_grid;
        for r in 0..rows {
            for c in 0..cols {
                let token = r * cols + c;
                if token >= total {
                    break;
                }
                let ids = [0.0, r as f64, c as f64];
                for (p, &(axis, omega)) in omegas.iter().enumerate() {
                    let angle = ids[axis] * omega;
                    cos[token * pairs + p] = angle.cos() as f32;
                    sin[token * pairs + p] = angle.sin() as f32;
                }
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (total, pairs), device)?,
            sin: Tensor::from_vec(sin, (total, pairs), device)?,
        })
    }

    /// Rotates the first `2 · pairs` features of every head of `x`: [B, H, S, Dh] → same, in
    /// f32 (the reference rotates in f32), returned in f32 for the attention that follows.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let rope_dim = 2 * self.cos.dim(1)?;
        let head_dim = x.dim(D::Minus1)?;
        let x32 = x.to_dtype(DType::F32)?;
        let rotated = if rope_dim == head_dim {
            candle_nn::rotary_emb::rope_i(&x32.contiguous()?, &self.cos, &self.sin)?
        } else {
            let head = x32.narrow(D::Minus1, 0, rope_dim)?.contiguous()?;
            let tail = x32.narrow(D::Minus1, rope_dim, head_dim - rope_dim)?;
            let head = candle_nn::rotary_emb::rope_i(&head, &self.cos, &self.sin)?;
            Tensor::cat(&[head, tail], D::Minus1)?
        };
        Ok(rotated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinusoid_puts_cos_first() {
        let t = Tensor::new(&[0f32, 500.0], &Device::Cpu).unwrap();
        let e = timestep_sinusoid(&t).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(e[0].len(), 256);
        assert!(e[0][..128].iter().all(|&v| v == 1.0));
        assert!(e[0][128..].iter().all(|&v| v == 0.0));
        // f_0 = 1: cos(500), sin(500).
        assert!((e[1][0] - 500f32.cos()).abs() < 1e-6);
        assert!((e[1][128] - 500f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn rope_rotates_only_image_rows_and_cols() {
        let table = RopeTable::new(&[4, 2, 2], (2, 3), 8, &Device::Cpu).unwrap();
        let cos = table.cos.to_vec2::<f32>().unwrap();
        let sin = table.sin.to_vec2::<f32>().unwrap();
        // Token (row 1, col 2) = index 5: axis-0 pairs unrotated, row pair angle 1, col pair 2.
        assert_eq!(&cos[5][..2], &[1.0, 1.0]);
        assert!((sin[5][2] - 1f32.sin()).abs() < 1e-7);
        assert!((sin[5][3] - 2f32.sin()).abs() < 1e-7);
        // Text tokens (6, 7) are never rotated.
        assert!(cos[6].iter().chain(&cos[7]).all(|&c| c == 1.0));
        assert!(sin[6].iter().chain(&sin[7]).all(|&s| s == 0.0));
    }
}
