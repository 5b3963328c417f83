//! Hi-DiT's pixel branch against the trainer's own model and sampler (tests/fixtures/hidit/pixel,
//! made by tools/fixtures/make_hidit_pixel_fixtures.py): a tiny random Hi-DiT with every
//! parameter random, saved as the trainer exports it, its gated forward, and `sampling.hybrid`
//! (the hand-off from the latent to the pixel stream) for an SDE case with guidance and an ODE
//! case, replayed with the reference's recorded noise. CPU, f32 model, f64 sampler state.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use hidream_studio::models::hidit::files::HiditExperiment;
use hidream_studio::pipelines::hidit::load_hidit;

use crate::common::rel_err;
use crate::hidit_parity::hidit;

fn pixel() -> PathBuf {
    hidit().join("pixel")
}

fn load(path: PathBuf) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn model(
    entry: &str,
) -> (
    hidream_studio::models::hidit::Sit,
    hidream_studio::models::hidit::PixelBranch,
) {
    let exp = HiditExperiment::open(&pixel().join("exp"), None).unwrap();
    let (sit, branch) = load_hidit(&exp, entry, &Device::Cpu).unwrap();
    (sit, branch.expect("the fixture folder has a pixel branch"))
}

#[test]
fn one_hybrid_forward_matches_the_trainer() {
    let r = load(pixel().join("forward.safetensors"));
    let y = r["y"].to_dtype(DType::U32).unwrap();
    let p = r["p"].to_dtype(DType::F32).unwrap();
    let (sit, branch) = model("ema");
    let tau = branch.config().tau;
    let (v_z, x_hat) = branch
        .forward(&sit, (&r["z"], &p), &r["t"], &y, tau)
        .unwrap();
    let (ev, ex) = (rel_err(&v_z, &r["v_z"]), rel_err(&x_hat, &r["x_hat"]));
    eprintln!("hybrid forward (ema): v_z rel err {ev:.2e}, x_hat rel err {ex:.2e}");
    assert!(ev < 1e-5, "v_z rel err {ev:e}");
    assert!(ex < 1e-5, "x_hat rel err {ex:e}");
    let (sit_m, branch_m) = model("model");
    let (v_model, _) = branch_m
        .forward(&sit_m, (&r["z"], &p), &r["t"], &y, tau)
        .unwrap();
    assert!(rel_err(&v_model, &r["v_z_model"]) < 1e-5);
    assert!(rel_err(&v_z, &r["v_z_model"]) > 0.1, "ema and model agree");
}

#[test]
fn gate_off_is_the_stage_1_output_bit_for_bit() {
    let r = load(pixel().join("forward.safetensors"));
    let y = r["y"].to_dtype(DType::U32).unwrap();
    let p = r["p"].to_dtype(DType::F32).unwrap();
    let (sit, branch) = model("ema");
    // τ = 0 gates nothing: the latent velocity is the SiT's alone, whatever the pixels.
    let (v_z, _) = branch
        .forward(&sit, (&r["z"], &p), &r["t"], &y, 0.0)
        .unwrap();
    let stage1 = sit.forward(&r["z"], &r["t"], &y).unwrap();
    let a = v_z.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = stage1.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a, b);
    // At the folder's τ (0.3) sample 0 (t = 0.7) is ungated and stays stage 1's; sample 1
    // (t = 0.25) sees its pixels.
    let (gated, _) = branch
        .forward(&sit, (&r["z"], &p), &r["t"], &y, branch.config().tau)
        .unwrap();
    let first = |t: &Tensor| {
        t.get(0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(first(&gated), first(&stage1));
    assert!(rel_err(&gated.get(1).unwrap(), &stage1.get(1).unwrap()) > 1e-3);
}
