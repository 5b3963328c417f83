//! Element-wise image ops of the autoencoder on the CPU: GroupNorm (optionally followed by
//! SiLU, as in every ResNet block) and 2× nearest-neighbour upsampling, each in one pass where
//! candle needs several.

use candle_core::{Module, Result, Shape, Tensor};
use candle_nn::GroupNorm;
use rayon::prelude::*;

use super::cpu_op::{CpuOp, F32Inputs, F32Kernel, is_cpu_f32};
use super::exp::exp_f32;
use super::{lane_fold, multiversion};

/// GroupNorm of `x` [B, C, …] with per-channel `weight` and `bias` [C], then SiLU when `silu`
/// is set. Statistics are computed in f32 with a two-pass variance.
pub(crate) fn group_norm(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    groups: usize,
    eps: f64,
    silu: bool,
) -> Result<Tensor> {
    if !is_cpu_f32(&[x, weight, bias]) {
        let channels = weight.dim(0)?;
        let y = GroupNorm::new(weight.clone(), bias.clone(), channels, groups, eps)?.forward(x)?;
        return if silu {
            candle_nn::ops::silu(&y)
        } else {
            Ok(y)
        };
    }
    x.contiguous()?.apply_op3_no_bwd(
        weight,
        bias,
        &CpuOp(FusedGroupNorm {
            groups,
            eps: eps as f32,
            silu,
        }),
    )
}

struct FusedGroupNorm {
    groups: usize,
    eps: f32,
    silu: bool,
}

impl F32Kernel<3> for FusedGroupNorm {
    const NAME: &'static str = "group-norm";

    fn forward(&self, inputs: &F32Inputs<'_, 3>) -> Result<(Vec<f32>, Shape)> {
        let [x, weight, bias] = inputs.data;
        let dims = inputs.shapes[0].dims();
        let channels = dims.get(1).copied().unwrap_or(1);
        if channels % self.groups != 0 {
            candle_core::bail!("group-norm: {channels} channels in {} groups", self.groups);
        }
        if weight.len() != channels || bias.len() != channels {
            candle_core::bail!(
                "group-norm: weight and bias need one value per channel ({channels})"
            );
        }
        let plane: usize = dims.iter().skip(2).product();
        let group_len = channels / self.groups * plane;
        let mut out = vec![0f32; x.len()];
        let row = pick_group();
        out.par_chunks_mut(group_len)
            .zip(x.par_chunks(group_len))
            .enumerate()
            .for_each(|(i, (o, x))| {
                let first_channel = (i % self.groups) * (channels / self.groups);
                row(
                    x,
                    o,
                    &weight[first_channel..],
                    &bias[first_channel..],
                    plane,
                    self.eps,
                    self.silu,
                );
            });
        Ok((out, inputs.shapes[0].clone()))
    }
}

multiversion! {
    /// One group: two-pass mean and variance over all its channels' pixels, then per-channel
    /// affine, then SiLU.
    pick_group => fn normalize_group(
        x: &[f32],
        out: &mut [f32],
        weight: &[f32],
        bias: &[f32],
        plane: usize,
        eps: f32,
        silu: bool,
    ) {
        let n = x.len() as f32;
        let mean = lane_fold(x, 0.0, |a, v| a + v) / n;
        let mut sq = [0f32; 8];
        for chunk in x.chunks(8) {
            for (s, &v) in sq.iter_mut().zip(chunk) {
                *s += (v - mean) * (v - mean);
            }
        }
        let inv_std = 1.0 / (sq.iter().sum::<f32>() / n + eps).sqrt();
        for ((o, x), (&w, &b)) in out
            .chunks_mut(plane)
            .zip(x.chunks(plane))
            .zip(weight.iter().zip(bias))
        {
            let (scale, shift) = (inv_std * w, b - mean * inv_std * w);
            for (o, &x) in o.iter_mut().zip(x) {
                *o = x * scale + shift;
            }
            if silu {
                for o in o.iter_mut() {
                    *o /= 1.0 + exp_f32(-*o);
                }
            }
        }
    }
}

/// 2× nearest-neighbour upsampling of [B, C, H, W].
pub(crate) fn upsample_nearest_2x(x: &Tensor) -> Result<Tensor> {
    if is_cpu_f32(&[x]) {
        return x.contiguous()?.apply_op1_no_bwd(&CpuOp(Upsample2x));
    }
    let (_, _, h, w) = x.dims4()?;
    x.upsample_nearest2d(2 * h, 2 * w)
}

struct Upsample2x;

impl F32Kernel<1> for Upsample2x {
    const NAME: &'static str = "upsample-nearest-2x";

    fn forward(&self, inputs: &F32Inputs<'_, 1>) -> Result<(Vec<f32>, Shape)> {
        let [src] = inputs.data;
        let (b, c, h, w) = inputs.shapes[0].dims4()?;
        let mut out = vec![0f32; src.len() * 4];
        // Each source row becomes two identical rows of doubled pixels.
        out.par_chunks_mut(4 * w)
            .zip(src.par_chunks(w))
            .for_each(|(dst, row)| {
                let (first, second) = dst.split_at_mut(2 * w);
                for (pair, &v) in first.chunks_mut(2).zip(row) {
                    pair[0] = v;
                    pair[1] = v;
                }
                second.copy_from_slice(first);
            });
        Ok((out, Shape::from((b, c, 2 * h, 2 * w))))
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn fused_group_norm_equals_candle() {
        let x = (crate::kernels::seeded_randn(1, 0.0, 2.0, (2, 8, 5, 3)) + 3.0).unwrap();
        let (w, b) = (
            crate::kernels::seeded_randn(2, 1.0, 0.2, 8),
            crate::kernels::seeded_randn(3, 0.0, 0.2, 8),
        );
        let plain = GroupNorm::new(w.clone(), b.clone(), 8, 4, 1e-6)
            .unwrap()
            .forward(&x)
            .unwrap();
        assert!(
            crate::kernels::test_support::max_abs_diff(
                &group_norm(&x, &w, &b, 4, 1e-6, false).unwrap(),
                &plain
            ) < 1e-5
        );
        let with_silu = candle_nn::ops::silu(&plain).unwrap();
        assert!(
            crate::kernels::test_support::max_abs_diff(
                &group_norm(&x, &w, &b, 4, 1e-6, true).unwrap(),
                &with_silu
            ) < 1e-5
        );
    }

    #[test]
    fn upsample_equals_candle() {
        let x = crate::kernels::seeded_randn(4, 0.0, 1.0, (2, 3, 4, 5));
        let ours = upsample_nearest_2x(&x).unwrap();
        assert_eq!(ours.dims(), &[2, 3, 8, 10]);
        assert_eq!(
            crate::kernels::test_support::max_abs_diff(
                &ours,
                &x.upsample_nearest2d(8, 10).unwrap()
            ),
            0.0
        );
    }
}
