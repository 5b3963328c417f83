//! The fused kernels against plain `softmax(scale · q kᵀ) v` computed in f32 on the CPU. They need
//! a CUDA device and skip (with a message) without one.

use candle_core::{DType, Device, Result, Tensor};

use super::{FUSED_ATTENTION_HEAD_DIMS, fused_attention, fused_attention_supported};
use crate::kernels::seeded_randn;

fn cuda_device() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(device) => Some(device),
        Err(err) => {
            eprintln!("skipping the fused attention test: no CUDA device ({err})");
            None
        }
    }
}

/// The materialised reference in f32 on the CPU, from the (already rounded) device inputs.
fn reference(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<Tensor> {
    let f32_cpu = |t: &Tensor| t.to_device(&Device::Cpu)?.to_dtype(DType::F32);
    let (q, k, v) = (f32_cpu(q)?, f32_cpu(k)?, f32_cpu(v)?);
    let scores = (q.matmul(&k.t()?.contiguous()?)? * f64::from(scale))?;
    candle_nn::ops::softmax_last_dim(&scores)?.matmul(&v)
}

/// `max |a − b| / max |b|`: relative to the output's scale, so near-zero outputs do not dominate.
fn relative_error(actual: &Tensor, expected: &Tensor) -> Result<f32> {
    let actual = actual.to_device(&Device::Cpu)?;
    let diff = (actual - expected)?.abs()?.flatten_all()?.max(0)?;
    let scale = expected.abs()?.flatten_all()?.max(0)?;
    Ok(diff.to_scalar::<f32>()? / scale.to_scalar::<f32>()?)
}

/// Random q, k, v `[bh, s, d]` in `dtype` on `device`; the last `padded` keys are zero, like the
/// caller's padding, and must still take part with logit 0.
fn inputs(
    seed: u64,
    (bh, sq, sk, d): (usize, usize, usize, usize),
    padded: usize,
    dtype: DType,
    device: &Device,
) -> Result<(Tensor, Tensor, Tensor)> {
    let on_device = |t: Tensor| t.to_dtype(dtype)?.to_device(device);
    // A wider spread for q makes the softmax peaked, exercising the running-max rescale.
    let q = seeded_randn(seed, 0.0, 2.0, (bh, sq, d));
    let pad = |t: Tensor| -> Result<Tensor> {
        if padded == 0 {
            return Ok(t);
        }
        let real = t.narrow(1, 0, sk - padded)?;
        Tensor::cat(
            &[
                real,
                Tensor::zeros((bh, padded, d), DType::F32, &Device::Cpu)?,
            ],
            1,
        )
    };
    let k = pad(seeded_randn(seed + 1, 0.0, 1.0, (bh, sk, d)))?;
    let v = pad(seeded_randn(seed + 2, 0.5, 1.0, (bh, sk, d)))?;
    Ok((on_device(q)?, on_device(k)?, on_device(v)?))
}

#[test]
fn fused_attention_matches_the_materialised_path() -> Result<()> {
    let Some(device) = cuda_device() else {
        return Ok(());
    };
    // Sizes that are not multiples of the 64-row / 64-key (tensor cores) or 16-row / 32-key (f32)
    // tiles, a single partial tile, and Sq < Sk (queries are a prefix of the keys).
    let shapes = [(3, 100, 150, 10), (2, 130, 130, 0), (1, 5, 7, 2)];
    for (dtype, tolerance) in [(DType::F32, 1e-5), (DType::BF16, 1e-2), (DType::F16, 1e-2)] {
        for d in FUSED_ATTENTION_HEAD_DIMS {
            for (i, &(bh, sq, sk, padded)) in shapes.iter().enumerate() {
                let (q, k, v) = inputs(7 + i as u64, (bh, sq, sk, d), padded, dtype, &device)?;
                assert!(
                    fused_attention_supported(&q),
                    "{dtype:?} d{d} should be supported"
                );
                let scale = 1.0 / (d as f32).sqrt();
                let out = fused_attention(&q, &k, &v, scale)?;
                assert_eq!(out.dims(), &[bh, sq, d]);
                assert_eq!(out.dtype(), DType::F32);
                let err = relative_error(&out, &reference(&q, &k, &v, scale)?)?;
                assert!(
                    err < tolerance,
                    "{dtype:?} d{d} {bh}×{sq}×{sk}: relative error {err:e} ≥ {tolerance:e}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn fused_attention_accepts_views_at_any_offset() -> Result<()> {
    let Some(device) = cuda_device() else {
        return Ok(());
    };
    // q viewed from its second element: contiguous, but 2 bytes past a 16-byte boundary, which
    // the 16-byte vector loads cannot take; the wrapper must copy rather than misread.
    let (q, k, v) = inputs(3, (1, 12, 5, 128), 0, DType::BF16, &device)?;
    let q = q
        .flatten_all()?
        .narrow(0, 1, 11 * 128)?
        .reshape((1, 11, 128))?;
    assert_eq!(q.layout().start_offset(), 1);
    let out = fused_attention(&q, &k, &v, 0.1)?;
    let err = relative_error(&out, &reference(&q, &k, &v, 0.1)?)?;
    assert!(err < 1e-2, "relative error {err:e}");
    Ok(())
}

#[test]
fn unsupported_inputs_are_errors() -> Result<()> {
    let cpu = Tensor::zeros((1, 4, 64), DType::F32, &Device::Cpu)?;
    assert!(!fused_attention_supported(&cpu));
    assert!(fused_attention(&cpu, &cpu, &cpu, 1.0).is_err());
    let Some(device) = cuda_device() else {
        return Ok(());
    };
    let odd_dim = Tensor::zeros((1, 4, 48), DType::BF16, &device)?;
    assert!(!fused_attention_supported(&odd_dim));
    assert!(fused_attention(&odd_dim, &odd_dim, &odd_dim, 1.0).is_err());
    let f64_input = Tensor::zeros((1, 4, 64), DType::F64, &device)?;
    assert!(fused_attention(&f64_input, &f64_input, &f64_input, 1.0).is_err());
    let q = Tensor::zeros((1, 4, 64), DType::BF16, &device)?;
    let k = Tensor::zeros((2, 4, 64), DType::BF16, &device)?;
    assert!(fused_attention(&q, &k, &k, 1.0).is_err());
    Ok(())
}
