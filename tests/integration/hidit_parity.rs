//! Hi-DiT's latent stage against REPA-E's own code (tests/fixtures/hidit, made by
//! tools/fixtures/make_hidit_fixtures.py): a tiny random SiT and f16 autoencoder in REPA-E's
//! on-disk layout, REPA-E's ODE and SDE samplers with and without guidance and interval, and
//! generate.py's decode and 8-bit conversion. Everything on the CPU in f32 (f64 sampler state).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use hidream_studio::models::hidit::files::HiditExperiment;
use hidream_studio::models::hidit::sampler::time_grid;
use hidream_studio::models::hidit::{Mode, Sit};
use hidream_studio::pipelines::hidit::{load_sit, sit_config};

use crate::common::{fixtures, psnr, rel_err, succeed};

pub const CASES: [&str; 5] = [
    "ode",
    "ode-cfg-interval",
    "sde",
    "sde-cfg",
    "sde-cfg-interval",
];

pub fn hidit() -> PathBuf {
    fixtures().join("hidit")
}

pub fn experiment() -> PathBuf {
    hidit().join("model")
}

/// The autoencoder the fixture's cases decode with (tests/integration/hidit_files.rs's), its
/// latent statistics beside it.
pub fn vae() -> PathBuf {
    hidit().join("files/vae/tiny-vae.pt")
}

fn reference(case: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        hidit().join(case).join("reference.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

fn case_json(case: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(hidit().join(case).join("case.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `hidream-studio hidit` on experiment folder `model` with the fixture's autoencoder; the
/// caller adds the rest.
pub fn hidit_command(model: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hidream-studio"));
    command
        .arg("hidit")
        .arg("--model")
        .arg(model)
        .arg("--vae")
        .arg(vae());
    command
}

/// A case's settings (case.json `c`) with the noise of `case_dir`'s reference.safetensors,
/// writing out.png and dump.safetensors in `dir`, with `--json`.
pub fn case_arguments(command: &mut Command, c: &serde_json::Value, case_dir: &Path, dir: &Path) {
    command
        .args(["--class", &c["class"].to_string()])
        .args(["--steps", &c["steps"].to_string()])
        .args(["--mode", c["mode"].as_str().unwrap()])
        .args(["--cfg-scale", &c["cfg_scale"].to_string()])
        .args(["--guidance-low", &c["guidance_low"].to_string()])
        .args(["--guidance-high", &c["guidance_high"].to_string()])
        .arg("--noise")
        .arg(case_dir.join("reference.safetensors"))
        .arg("--out")
        .arg(dir.join("out.png"))
        .arg("--dump")
        .arg(dir.join("dump.safetensors"))
        .arg("--json");
}

/// Runs a case's settings with the reference's noise, writing out.png and dump.safetensors in
/// `dir`.
fn run_case(case: &str, dir: &Path) {
    let mut command = hidit_command(&experiment());
    case_arguments(&mut command, &case_json(case), &hidit().join(case), dir);
    succeed(&mut command);
}

#[test]
fn every_case_reproduces_repa_e() {
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        run_case(case, dir.path());
        let dump =
            candle_core::safetensors::load(dir.path().join("dump.safetensors"), &Device::Cpu)
                .unwrap();
        let r = reference(case);
        let samples = rel_err(&dump["samples"], &r["samples"]);
        let ours = image::open(dir.path().join("out.png")).unwrap().to_rgb8();
        let theirs = image::open(hidit().join(case).join("reference.png"))
            .unwrap()
            .to_rgb8();
        let db = psnr(&ours, &theirs);
        let image = r.get("image").map(|i| rel_err(&dump["image"], i));
        let image_text = image.map_or_else(|| "not stored".into(), |e| format!("{e:.2e}"));
        eprintln!(
            "{case}: samples rel err {samples:.2e}, image rel err {image_text}, PNG {db:.1} dB"
        );
        assert!(samples <= 1e-5, "{case}: samples rel err {samples:e}");
        if let Some(image) = image {
            assert!(image <= 1e-4, "{case}: image rel err {image:e}");
        }
        assert!(db >= 60.0, "{case}: PNG PSNR {db:.1} dB");
    }
}

#[test]
fn time_grids_are_torch_linspace_bit_for_bit() {
    for case in CASES {
        let c = case_json(case);
        let mode = match c["mode"].as_str().unwrap() {
            "ode" => Mode::Ode,
            _ => Mode::Sde,
        };
        let ours = time_grid(mode, c["steps"].as_u64().unwrap() as usize);
        let theirs = reference(case)["t_steps"].to_vec1::<f64>().unwrap();
        assert_eq!(ours, theirs, "{case}");
    }
    // ode-cfg-interval's t[9] is 0.5499999999999999 in torch, just below --guidance-low 0.55:
    // a grid computed without the fused multiply-add would guide that step too.
    let c = case_json("ode-cfg-interval");
    let guided: Vec<u64> = c["cfg_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(guided, [2, 3, 4, 5, 6, 7, 8]);
}

/// The fixture's SiT from its checkpoint entry `entry` (`ema` or `model`).
fn sit_from(entry: &str) -> Sit {
    let exp = HiditExperiment::open(&experiment(), None).unwrap();
    load_sit(&exp, entry, &Device::Cpu).unwrap()
}

#[test]
fn one_forward_matches_repa_e_inference() {
    let r =
        candle_core::safetensors::load(hidit().join("forward/reference.safetensors"), &Device::Cpu)
            .unwrap();
    let y = r["y"].to_dtype(DType::U32).unwrap();
    // Labels include the null class (index num_classes = 10).
    assert_eq!(y.to_vec1::<u32>().unwrap(), [3, 10, 9]);
    // The sampler's choice: the checkpoint's `ema`.
    let out = sit_from("ema").forward(&r["x"], &r["t"], &y).unwrap();
    let err = rel_err(&out, &r["out"]);
    eprintln!("forward (ema): rel err {err:.2e}");
    assert!(err < 1e-5, "ema forward rel err {err:e}");
    // `model` holds other weights, which REPA-E's `inference` turns into `out_model`.
    let model = sit_from("model").forward(&r["x"], &r["t"], &y).unwrap();
    let err_model = rel_err(&model, &r["out_model"]);
    assert!(err_model < 1e-5, "model forward rel err {err_model:e}");
    assert!(
        rel_err(&out, &r["out_model"]) > 0.1,
        "ema and model gave the same output"
    );
}

#[test]
fn patch_2_forward_matches_repa_e() {
    // REPA-E's /2 layout: the ema weights with the patch embedding, final linear and pos_embed
    // of a patch-2 model.
    let r =
        candle_core::safetensors::load(hidit().join("forward/reference.safetensors"), &Device::Cpu)
            .unwrap();
    let exp = HiditExperiment::open(&experiment(), None).unwrap();
    let mut weights = exp.load_ema().unwrap();
    let mut cfg = sit_config(&exp, &weights).unwrap();
    cfg.patch_size = 2;
    for (name, t) in &r {
        if let Some(name) = name.strip_prefix("patch2.").filter(|n| *n != "out") {
            weights.insert(name.to_string(), t.clone());
        }
    }
    let sit = Sit::new(
        &cfg,
        candle_nn::VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let y = r["y"].to_dtype(DType::U32).unwrap();
    let out = sit.forward(&r["x"], &r["t"], &y).unwrap();
    let err = rel_err(&out, &r["patch2.out"]);
    eprintln!("forward (patch 2): rel err {err:.2e}");
    assert!(err < 1e-5, "patch-2 forward rel err {err:e}");
}

#[test]
fn first_guided_call_pairs_the_class_with_the_null_class() {
    // sde-cfg's first model call: batch [x, x] at t = 1 with labels [class, null].
    let r = reference("sde-cfg");
    let sit = sit_from("ema");
    let x = r["latents"].clone();
    let input = Tensor::cat(&[&x, &x], 0).unwrap();
    let class = case_json("sde-cfg")["class"].as_u64().unwrap() as u32;
    let labels = Tensor::new(&[class, 10], &Device::Cpu).unwrap();
    let t = Tensor::new(&[1f32, 1.0], &Device::Cpu).unwrap();
    let out = sit.forward(&input, &t, &labels).unwrap();
    let err = rel_err(&out, &r["step0.out"]);
    assert!(err < 1e-5, "first guided call rel err {err:e}");
}

#[test]
fn seeds_are_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let run = |seed: &str, name: &str| {
        succeed(
            hidit_command(&experiment())
                .args([
                    "--class",
                    "2",
                    "--steps",
                    "4",
                    "--mode",
                    "sde",
                    "--cfg-scale",
                    "2",
                ])
                .args(["--seed", seed])
                .arg("--out")
                .arg(dir.path().join(name)),
        );
        image::open(dir.path().join(name)).unwrap().to_rgb8()
    };
    let a = run("7", "a.png");
    assert_eq!(a, run("7", "b.png"));
    assert_ne!(a, run("8", "c.png"));
}
