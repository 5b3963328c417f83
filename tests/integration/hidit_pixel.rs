//! Hi-DiT's pixel branch against the trainer's own model and sampler (tests/fixtures/hidit/pixel,
//! made by tools/fixtures/make_hidit_pixel_fixtures.py): a tiny random Hi-DiT with every
//! parameter random, saved as the trainer exports it, its gated forward, and `sampling.hybrid`
//! (the hand-off from the latent to the pixel stream) for an SDE case with guidance and an ODE
//! case, replayed with the reference's recorded noise. CPU, f32 model, f64 sampler state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use hidream_studio::models::hidit::files::HiditExperiment;
use hidream_studio::pipelines::hidit::load_hidit;

use crate::common::succeed;
use crate::common::{psnr, rel_err};
use crate::hidit_parity::{case_arguments, experiment, hidit, hidit_command};

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

fn case_json(case: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(pixel().join(case).join("case.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `hidream-studio hidit` on the pixel fixture's folder with a case's settings and noise;
/// writes out.png and dump.safetensors into `dir` and returns the `--json` line.
fn run_case(case: &str, dir: &Path) -> serde_json::Value {
    let c = case_json(case);
    let mut command = hidit_command(&pixel().join("exp"));
    case_arguments(&mut command, &c, &pixel().join(case), dir);
    if let Some(tau) = c["tau"].as_f64() {
        command.args(["--tau", &tau.to_string()]);
    }
    let out = succeed(&mut command);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn hybrid_sampling_reproduces_the_trainer() {
    for case in ["sde-cfg", "ode"] {
        let dir = tempfile::tempdir().unwrap();
        let summary = run_case(case, dir.path());
        let dump = load(dir.path().join("dump.safetensors"));
        let r = load(pixel().join(case).join("reference.safetensors"));
        let image = rel_err(&dump["image"], &r["image"]);
        let samples = rel_err(&dump["samples"], &r["samples"]);
        let ours = image::open(dir.path().join("out.png")).unwrap().to_rgb8();
        let theirs = image::open(pixel().join(case).join("reference.png"))
            .unwrap()
            .to_rgb8();
        let db = psnr(&ours, &theirs);
        eprintln!(
            "{case}: image rel err {image:.2e}, latents rel err {samples:.2e}, PNG {}",
            if ours == theirs {
                "identical".to_string()
            } else {
                format!("{db:.1} dB")
            }
        );
        assert!(image <= 1e-5, "{case}: image rel err {image:e}");
        assert!(samples <= 1e-5, "{case}: latents rel err {samples:e}");
        assert!(ours == theirs || db >= 60.0, "{case}: PNG PSNR {db:.1} dB");
        // The record says the pixel stream made it, and where it joined.
        let stream = &summary["pixel_stream"];
        let tau = case_json(case)["tau"].as_f64().unwrap_or(0.3);
        assert_eq!(stream["tau"].as_f64(), Some(tau), "{case}: {summary}");
        assert!(stream["hand_off_t"].as_f64().unwrap() < tau);
    }
}

#[test]
fn latent_only_decodes_the_latents_as_tau_zero_does() {
    // --latent-only on a pixel folder is stage 1's path: the same as a τ that gates nothing.
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let mut command = hidit_command(&pixel().join("exp"));
        command
            .args([
                "--class", "2", "--steps", "6", "--mode", "sde", "--seed", "5",
            ])
            .arg("--out")
            .arg(dir.path().join(name))
            .arg("--json")
            .args(extra);
        let out = succeed(&mut command);
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            image::open(dir.path().join(name)).unwrap().to_rgb8(),
            summary,
        )
    };
    let (latent_only, summary) = run("latent.png", &["--latent-only"]);
    assert!(summary.get("pixel_stream").is_none(), "{summary}");
    let (tau_zero, _) = run("tau0.png", &["--tau", "0"]);
    assert_eq!(latent_only, tau_zero);
    let (hybrid, summary) = run("hybrid.png", &[]);
    assert!(summary["pixel_stream"].is_object(), "{summary}");
    assert_ne!(hybrid, latent_only);
    assert_eq!(hybrid, run("again.png", &[]).0, "a seed is reproducible");
}

#[test]
fn latent_only_folders_run_unchanged_and_refuse_tau() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = hidit_command(&experiment());
    command
        .args(["--class", "3", "--steps", "3", "--seed", "1", "--json"])
        .arg("--out")
        .arg(dir.path().join("a.png"));
    let out = succeed(&mut command);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary.get("pixel_stream").is_none(), "{summary}");
    let out = hidit_command(&experiment())
        .args(["--class", "3", "--steps", "3", "--tau", "0.5"])
        .arg("--out")
        .arg(dir.path().join("b.png"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tau") && err.contains("pixel_branch"),
        "{err}"
    );
}

#[test]
fn a_tau_outside_0_to_1_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // τ = 1 gates nothing at t = 1 (t < τ is false): allowed. Above 1 is refused by range.
    succeed(
        hidit_command(&pixel().join("exp"))
            .args(["--class", "1", "--steps", "4", "--tau", "1"])
            .arg("--out")
            .arg(dir.path().join("a.png")),
    );
    let out = hidit_command(&pixel().join("exp"))
        .args(["--class", "1", "--steps", "4", "--tau", "1.5"])
        .arg("--out")
        .arg(dir.path().join("b.png"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tau"));
}

#[test]
fn info_says_whether_a_folder_has_a_pixel_branch() {
    let info = |dir: &Path| {
        let out = succeed(
            std::process::Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
                .arg("info")
                .arg(dir),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let stage2 = info(&pixel().join("exp"));
    assert!(
        stage2.contains("pixel branch") && stage2.contains("t < 0.3"),
        "{stage2}"
    );
    assert!(info(&experiment()).contains("latent-only"));
}
