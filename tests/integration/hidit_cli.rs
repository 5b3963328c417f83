//! `hidream-studio hidit` and the experiment loader on altered copies of the fixture: which
//! checkpoint and which entry are used, class names, and what broken or mismatched files say.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use hidream_studio::models::hidit::files::{HiditExperiment, HiditFilesError};
use hidream_studio::pipelines::hidit::load_sit;
use hidream_studio::weights::torch_pt;

use super::hidit_parity::{experiment, hidit, hidit_command, vae};
use crate::common::{copy_dir, succeed};

/// A writable copy of the fixture's experiment folder.
fn scratch() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp");
    copy_dir(&experiment(), &exp);
    (dir, exp)
}

fn checkpoint_100(exp: &Path) -> std::path::PathBuf {
    exp.join("checkpoints").join("0000100.pt")
}

/// Runs `hidit` on `exp` with ODE settings that take milliseconds, `extra` replacing any of
/// them (and the fixture's --vae); returns (success, stderr).
fn run(exp: &Path, out: &Path, extra: &[&str]) -> (bool, String) {
    let vae = vae().display().to_string();
    let defaults = [
        ("--vae", vae.as_str()),
        ("--class", "1"),
        ("--steps", "2"),
        ("--mode", "ode"),
        ("--seed", "3"),
    ];
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hidream-studio"));
    command
        .arg("hidit")
        .arg("--model")
        .arg(exp)
        .arg("--out")
        .arg(out);
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            command.args([flag, value]);
        }
    }
    let output = command.args(extra).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_only_checkpoint_or_the_named_one() {
    let (dir, exp) = scratch();
    let only = HiditExperiment::open(&exp, None).unwrap();
    assert_eq!(only.checkpoint, checkpoint_100(&exp));
    // A second checkpoint: the choice is the user's, and the message lists the steps.
    std::fs::copy(checkpoint_100(&exp), exp.join("checkpoints/0000200.pt")).unwrap();
    let e = HiditExperiment::open(&exp, None).unwrap_err();
    assert!(
        matches!(e, HiditFilesError::SeveralCheckpoints { .. }),
        "{e}"
    );
    let message = e.to_string();
    assert!(
        message.contains("0000100.pt, 0000200.pt") && message.contains("--checkpoint"),
        "{message}"
    );
    for step in ["100", "0000100"] {
        let chosen = HiditExperiment::open(&exp, Some(step)).unwrap();
        assert_eq!(chosen.checkpoint, checkpoint_100(&exp), "{step}");
    }
    let by_file = checkpoint_100(&exp).display().to_string();
    assert_eq!(
        HiditExperiment::open(&exp, Some(&by_file))
            .unwrap()
            .checkpoint,
        checkpoint_100(&exp)
    );
    assert_eq!(
        HiditExperiment::open(&exp, Some("checkpoints/0000200.pt"))
            .unwrap()
            .checkpoint,
        exp.join("checkpoints/0000200.pt")
    );
    let missing = HiditExperiment::open(&exp, Some("300"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("0000100.pt, 0000200.pt"), "{missing}");
    // The command line: refused without --checkpoint, runs with it.
    let out = dir.path().join("out.png");
    let (ok, stderr) = run(&exp, &out, &[]);
    assert!(!ok && stderr.contains("several checkpoints"), "{stderr}");
    let (ok, stderr) = run(&exp, &out, &["--checkpoint", "200"]);
    assert!(ok, "{stderr}");
}

#[test]
fn the_checkpoint_is_read_through_its_ema_entry() {
    // The sampled image changes when `ema` is replaced: write a safetensors conversion holding
    // the `model` weights and point --checkpoint at it.
    let (dir, exp) = scratch();
    let model = torch_pt::read_state_dict(&checkpoint_100(&exp), Some("model")).unwrap();
    let ema = torch_pt::read_state_dict(&checkpoint_100(&exp), Some("ema")).unwrap();
    let conversion = |name: &str, weights: &HashMap<String, Tensor>| {
        let path = exp.join("checkpoints").join(name);
        let floats: HashMap<&String, Tensor> = weights
            .iter()
            .filter(|(_, t)| t.dtype().is_float())
            .map(|(k, t)| (k, t.clone()))
            .collect();
        candle_core::safetensors::save(&floats, &path).unwrap();
        path
    };
    let as_model = conversion("model.safetensors", &model);
    let as_ema = conversion("ema.safetensors", &ema);
    let image = |name: &str, checkpoint: &Path| {
        let out = dir.path().join(name);
        let (ok, stderr) = run(
            &exp,
            &out,
            &["--checkpoint", &checkpoint.display().to_string()],
        );
        assert!(ok, "{stderr}");
        image::open(out).unwrap().to_rgb8()
    };
    let pt = image("pt.png", &checkpoint_100(&exp));
    assert_eq!(
        pt,
        image("ema.png", &as_ema),
        "the .pt's ema and its conversion differ"
    );
    assert_ne!(
        pt,
        image("model.png", &as_model),
        "the .pt was sampled with `model`"
    );
}

#[test]
fn broken_and_mismatched_files_are_named() {
    let (dir, exp) = scratch();
    let out = dir.path().join("out.png");
    // A checkpoint cut short.
    let bytes = std::fs::read(checkpoint_100(&exp)).unwrap();
    std::fs::write(checkpoint_100(&exp), &bytes[..bytes.len() / 2]).unwrap();
    let (ok, stderr) = run(&exp, &out, &[]);
    assert!(
        !ok && stderr.contains("0000100.pt") && stderr.contains("truncated"),
        "{stderr}"
    );
    std::fs::write(checkpoint_100(&exp), &bytes).unwrap();

    // A conversion missing one tensor, and one with a tensor of another shape.
    let mut ema = torch_pt::read_state_dict(&checkpoint_100(&exp), Some("ema")).unwrap();
    ema.remove("blocks.1.attn.qkv.bias");
    ema.insert(
        "final_layer.linear.bias".into(),
        Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    ema.retain(|_, t| t.dtype().is_float());
    let broken = exp.join("checkpoints/0000100.safetensors");
    candle_core::safetensors::save(&ema, &broken).unwrap();
    let chosen = HiditExperiment::open(&exp, Some(&broken.display().to_string())).unwrap();
    let e = load_sit(&chosen, "ema", &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    for needle in [
        "0000100.safetensors",
        "blocks.1.attn.qkv.bias",
        "missing",
        "final_layer.linear.bias: checkpoint [3], config [8]",
        "`arch`",
    ] {
        assert!(e.contains(needle), "`{needle}` not in: {e}");
    }

    // No args.json: not an experiment folder.
    let e = HiditExperiment::open(&hidit(), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("args.json"), "{e}");

    // A VAE that is not the one args.json describes.
    let (ok, stderr) = run(
        &exp,
        &out,
        &["--vae", &checkpoint_100(&exp).display().to_string()],
    );
    assert!(!ok && stderr.contains("0000100.pt"), "{stderr}");
}

#[test]
fn classes_by_number_or_by_the_models_names() {
    let (dir, exp) = scratch();
    let out = dir.path().join("out.png");
    let (ok, stderr) = run(&exp, &out, &["--class", "cat"]);
    assert!(!ok && stderr.contains("0 to 9"), "{stderr}");
    let (ok, stderr) = run(&exp, &out, &["--class", "10"]);
    assert!(!ok && stderr.contains("10 classes"), "{stderr}");
    // Our own models can name their classes in args.json.
    let args_path = exp.join("args.json");
    let mut args: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&args_path).unwrap()).unwrap();
    let names: Vec<String> = (0..10).map(|i| format!("shape {i}, synonym {i}")).collect();
    args["class_names"] = serde_json::json!(names);
    std::fs::write(&args_path, args.to_string()).unwrap();
    let output = succeed(
        hidit_command(&exp)
            .args(["--class", "Synonym 4", "--steps", "2", "--json"])
            .arg("--out")
            .arg(&out),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["class"], 4);
    assert_eq!(summary["class_name"], "shape 4");
}

/// Without `--vae`, the autoencoder args.json's `vae_ckpt` names is read where it is found (the
/// fixture's lies beside the experiment folder), as generate.py reads it; a copy whose
/// `vae_ckpt` is not found asks for `--vae` and says where it looked.
#[test]
fn the_vae_defaults_to_args_json_vae_ckpt() {
    let dir = tempfile::tempdir().unwrap();
    let png = |name: &str, with_vae: bool| {
        let out = dir.path().join(name);
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hidream-studio"));
        command.arg("hidit").arg("--model").arg(experiment());
        if with_vae {
            command.arg("--vae").arg(vae());
        }
        command.args([
            "--class", "1", "--steps", "2", "--mode", "ode", "--seed", "3",
        ]);
        succeed(command.arg("--out").arg(&out));
        // The PNG's metadata holds timings: compare the pixels, and the file its record names.
        let bytes = std::fs::read(&out).unwrap();
        let named = String::from_utf8_lossy(&bytes).contains("files/vae/tiny-vae.pt");
        (image::open(&out).unwrap().to_rgb8().into_raw(), named)
    };
    let (default, default_named) = png("default.png", false);
    let (given, _) = png("given.png", true);
    assert!(
        default == given,
        "the default VAE decoded differently from --vae"
    );
    assert!(default_named, "the record does not name the VAE it read");

    let (_copy, exp) = scratch();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hidream-studio"));
    let out = command
        .arg("hidit")
        .arg("--model")
        .arg(&exp)
        .args(["--class", "1", "--steps", "2", "--mode", "ode"])
        .arg("--out")
        .arg(dir.path().join("none.png"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for part in ["--vae", "vae_ckpt", "files/vae/tiny-vae.pt", "not found"] {
        assert!(stderr.contains(part), "{part:?} missing from: {stderr}");
    }
}
