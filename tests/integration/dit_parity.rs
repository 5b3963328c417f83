//! The transformer against the official implementation's outputs in every fixture.

use crate::common::{CASES, fixture_model, reference, rel_err};
use candle_core::{DType, Device, Tensor};
use hidream_studio::models::hidream::HiDreamTransformer;

/// f32 parity bound (relative L2 error), per DEVELOPERS.md.
const F32_TOLERANCE: f64 = 1e-4;

/// The latents the transformer saw at `step`: the initial noise, then the latents after the
/// previous step, duplicated for the [negative, positive] batch under CFG.
fn step_input(r: &std::collections::HashMap<String, Tensor>, step: usize, batch: usize) -> Tensor {
    let x = if step == 0 {
        r["latents.init"].clone()
    } else {
        r["latents.steps"].get(step - 1).unwrap()
    };
    Tensor::cat(&vec![x; batch], 0).unwrap()
}

fn timestep(r: &std::collections::HashMap<String, Tensor>, step: usize, batch: usize) -> Tensor {
    let t = r["dit.timestep"]
        .get(step)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    t.unsqueeze(0).unwrap().repeat(batch).unwrap()
}

#[test]
fn first_step_matches_the_reference_in_f32() {
    for case in CASES {
        let r = reference(case);
        let model = HiDreamTransformer::load(
            &fixture_model(case).join("transformer"),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        let batch = r["dit.step0.pooled"].dim(0).unwrap();
        let prompt = model
            .encode_prompt(
                &r["dit.step0.t5"],
                &r["dit.step0.llama"],
                &r["dit.step0.pooled"],
            )
            .unwrap();
        let out = model
            .forward(&step_input(&r, 0, batch), &timestep(&r, 0, batch), &prompt)
            .unwrap();
        let expected = r["dit.out"].get(0).unwrap();
        let err = rel_err(&out, &expected);
        println!("{case}: step 0 relative error {err:.3e}");
        assert!(err < F32_TOLERANCE, "{case}: relative error {err:.3e}");
    }
}

#[test]
fn every_step_matches_the_reference_in_f32() {
    for case in CASES {
        let r = reference(case);
        let model = HiDreamTransformer::load(
            &fixture_model(case).join("transformer"),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        let batch = r["dit.step0.pooled"].dim(0).unwrap();
        let prompt = model
            .encode_prompt(
                &r["dit.step0.t5"],
                &r["dit.step0.llama"],
                &r["dit.step0.pooled"],
            )
            .unwrap();
        let steps = r["dit.out"].dim(0).unwrap();
        let mut worst: f64 = 0.0;
        for step in 0..steps {
            let out = model
                .forward(
                    &step_input(&r, step, batch),
                    &timestep(&r, step, batch),
                    &prompt,
                )
                .unwrap();
            let err = rel_err(&out, &r["dit.out"].get(step).unwrap());
            worst = worst.max(err);
            assert!(
                err < F32_TOLERANCE,
                "{case} step {step}: relative error {err:.3e}"
            );
        }
        println!("{case}: worst of {steps} steps {worst:.3e}");
    }
}

/// In bf16 and f16 no port can match f32 to 1e-4: every matmul rounds to 8 (bf16) or 11 (f16)
/// mantissa bits. The fixtures hold the reference implementation's own result in each dtype,
/// so the bound is relative to what PyTorch achieves: our error against the f32 reference may
/// be at most twice the reference's own error in that dtype. Measured across the fixtures: the
/// reference is off by 1.1–2.6 % in bf16 and 0.13–0.18 % in f16; we are at 0.57–1.29 times
/// that.
fn low_precision_matches(dtype: DType, key: &str) {
    for case in CASES {
        let r = reference(case);
        let model = HiDreamTransformer::load(
            &fixture_model(case).join("transformer"),
            dtype,
            &Device::Cpu,
        )
        .unwrap();
        let batch = r["dit.step0.pooled"].dim(0).unwrap();
        let prompt = model
            .encode_prompt(
                &r["dit.step0.t5"],
                &r["dit.step0.llama"],
                &r["dit.step0.pooled"],
            )
            .unwrap();
        let out = model
            .forward(&step_input(&r, 0, batch), &timestep(&r, 0, batch), &prompt)
            .unwrap();
        assert_eq!(out.dtype(), dtype);
        let exact = r["dit.out"].get(0).unwrap();
        let ours = rel_err(&out.to_dtype(DType::F32).unwrap(), &exact);
        let theirs = rel_err(&r[key], &exact);
        println!("{case} {dtype:?}: ours {ours:.3e}, reference {theirs:.3e}");
        assert!(
            ours < 2.0 * theirs,
            "{case} {dtype:?}: error {ours:.3e} vs the reference's own {theirs:.3e}"
        );
    }
}

#[test]
fn bf16_is_as_close_as_the_reference_in_bf16() {
    low_precision_matches(DType::BF16, "dit.step0.out_bf16");
}

#[test]
fn f16_is_as_close_as_the_reference_in_f16() {
    low_precision_matches(DType::F16, "dit.step0.out_f16");
}
