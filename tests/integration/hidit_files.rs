//! Hi-DiT's files: the torch `.pt` reader on REPA-E's layouts, the KL autoencoder against
//! REPA-E's own code, experiment folders, and `info` on them (tests/fixtures/hidit/files,
//! made by tools/fixtures/make_hidit_vae_fixtures.py).

use std::path::PathBuf;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use hidream_studio::models::hidit::autoencoder::{AutoencoderKl, VaeArch};
use hidream_studio::models::hidit::files::{
    HiditExperiment, HiditFilesError, LatentStats, load_vae,
};
use hidream_studio::weights::torch_pt::{self, PtError};

use crate::common::{copy_dir, fixtures, rel_err};

/// Asserts that `text` contains every one of `parts`.
fn says(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "no {part:?} in\n{text}");
    }
}

fn files() -> PathBuf {
    fixtures().join("hidit").join("files")
}

fn tiny_arch() -> VaeArch {
    let case: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(files().join("case.json")).unwrap()).unwrap();
    serde_json::from_value(case["vae_arch"].clone()).unwrap()
}

fn reference() -> std::collections::HashMap<String, candle_core::Tensor> {
    candle_core::safetensors::load(files().join("vae/reference.safetensors"), &Device::Cpu).unwrap()
}

fn tiny_vae() -> AutoencoderKl {
    let weights = torch_pt::read_state_dict(&files().join("vae/tiny-vae.pt"), None).unwrap();
    let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
    AutoencoderKl::new(&tiny_arch(), vb).unwrap()
}

#[test]
fn vae_decode_matches_repae() {
    let r = reference();
    let image = tiny_vae().decode(&r["z"]).unwrap();
    let err = rel_err(&image, &r["decoded"]);
    println!("decode relative error {err:.3e}");
    assert!(err < 1e-4, "decode relative error {err:.3e}");
}

#[test]
fn vae_encode_matches_repae() {
    let r = reference();
    let (mean, logvar) = tiny_vae().encode(&r["x"]).unwrap();
    let mean_err = rel_err(&mean, &r["mean"]);
    let logvar_err = rel_err(&logvar, &r["logvar"]);
    println!("encode relative error: mean {mean_err:.3e}, logvar {logvar_err:.3e}");
    assert!(mean_err < 1e-4, "mean relative error {mean_err:.3e}");
    assert!(logvar_err < 1e-4, "logvar relative error {logvar_err:.3e}");
}

#[test]
fn published_vae_names_have_their_architectures() {
    let f16 = VaeArch::from_name("f16d32").unwrap();
    assert_eq!((f16.embed_dim, f16.downsampling()), (32, 16));
    let f8 = VaeArch::from_name("f8d4").unwrap();
    assert_eq!((f8.embed_dim, f8.downsampling()), (4, 8));
    assert!(VaeArch::from_name("f32d64").is_none());
    for arch in [f16, f8, tiny_arch()] {
        arch.check().unwrap();
    }
}

#[test]
fn stats_file_reads_with_its_view() {
    let stats =
        torch_pt::read_state_dict(&files().join("vae/tiny-vae-latents-stats.pt"), None).unwrap();
    assert_eq!(stats["latents_scale"].dims(), &[1, 8, 1, 1]);
    assert_eq!(stats["latents_bias"].dims(), &[1, 8, 1, 1]);
    assert_eq!(stats["latents_scale"].dtype(), DType::F32);
    let converted = candle_core::safetensors::load(
        files().join("vae/tiny-vae-latents-stats.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    for key in ["latents_scale", "latents_bias"] {
        assert_eq!(rel_err(&stats[key], &converted[key]), 0.0, "{key}");
    }
}

#[test]
fn checkpoint_namespace_and_ema_are_read() {
    let path = files().join("exp/checkpoints/0000100.pt");
    let mut file = torch_pt::PtFile::open(&path).unwrap();
    assert_eq!(file.keys(), ["model", "ema", "opt", "args", "steps"]);
    assert_eq!(file.int("steps"), Some(100));
    let args = file.args_namespace().unwrap();
    assert_eq!(args["model"], "SiT-XL/1");
    assert_eq!(args["learning_rate"], 1e-4);
    assert_eq!(args["continue_train_exp_dir"], serde_json::Value::Null);
    assert_eq!(args["qk_norm"], false);
    let ema = file.state_dict(Some("ema")).unwrap();
    let model = file.state_dict(Some("model")).unwrap();
    assert_eq!(ema.len(), 6);
    assert_eq!(ema["bn.num_batches_tracked"].dtype(), DType::I64);
    let w = "x_embedder.proj.weight";
    assert!(rel_err(&ema[w], &model[w]) > 1e-3, "ema and model differ");
    let converted = candle_core::safetensors::load(
        files().join("exp-safetensors/checkpoints/0000100.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(rel_err(&ema[w], &converted[w]), 0.0);
}

#[test]
fn missing_key_lists_the_keys_present() {
    let path = files().join("exp/checkpoints/0000100.pt");
    let err = torch_pt::read_state_dict(&path, Some("vae")).unwrap_err();
    assert!(matches!(err, PtError::KeyMissing { .. }), "{err:?}");
    let msg = err.to_string();
    says(&msg, &["0000100.pt", "`vae`"]);
    says(&msg, &["model, ema, opt, args, steps"]);
    // A whole checkpoint read as a state dict says which entries to choose from.
    let msg = torch_pt::read_state_dict(&path, None)
        .unwrap_err()
        .to_string();
    says(&msg, &["checkpoint with entries model, ema"]);
    // A key that is not a state dict says what it is.
    let msg = torch_pt::read_state_dict(&path, Some("args"))
        .unwrap_err()
        .to_string();
    says(&msg, &["argparse.Namespace"]);
}

#[test]
fn truncated_file_is_reported_as_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(files().join("exp/checkpoints/0000100.pt")).unwrap();
    for keep in [bytes.len() / 2, bytes.len() - 10, 100] {
        let path = dir.path().join("cut.pt");
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let err = torch_pt::read_state_dict(&path, Some("ema")).unwrap_err();
        assert!(matches!(err, PtError::Truncated { .. }), "{keep}: {err:?}");
        let msg = err.to_string();
        says(&msg, &["cut.pt", "fetch it again"]);
    }
}

#[test]
fn foreign_files_are_named_for_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("image.pt");
    std::fs::copy(fixtures().join("full-square/reference.png"), &png).unwrap();
    let msg = torch_pt::read_state_dict(&png, None)
        .unwrap_err()
        .to_string();
    says(&msg, &["image.pt", "a PNG image"]);

    let st = files().join("vae/tiny-vae-latents-stats.safetensors");
    let msg = torch_pt::read_state_dict(&st, None)
        .unwrap_err()
        .to_string();
    says(&msg, &["a safetensors file"]);

    // Python 3's pickle of the legacy torch.save header.
    let legacy = dir.path().join("legacy.pt");
    std::fs::write(
        &legacy,
        [
            0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
            0x2e,
        ],
    )
    .unwrap();
    let err = torch_pt::read_state_dict(&legacy, None).unwrap_err();
    assert!(matches!(err, PtError::Legacy { .. }), "{err:?}");
}

/// A writable copy of the fixture experiment folder.
fn scratch_experiment(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join(name);
    copy_dir(&files().join("exp"), &exp);
    (dir, exp)
}

#[test]
fn experiment_with_one_checkpoint_reads_its_ema() {
    let exp = HiditExperiment::open(&files().join("exp"), None).unwrap();
    assert!(exp.checkpoint.ends_with("checkpoints/0000100.pt"));
    assert_eq!(exp.args.model.as_deref(), Some("SiT-XL/1"));
    assert_eq!(exp.args.vae.as_deref(), Some("f16d32"));
    // Our own `vae_arch` takes precedence over REPA-E's `vae` name.
    assert_eq!(exp.vae_arch().unwrap(), tiny_arch());
    assert_eq!(exp.args.rest["learning_rate"], 1e-4);
    assert!(!exp.checkpoint_has_vae().unwrap());

    let ema = exp.load_ema().unwrap();
    let model = exp.load_entry("model").unwrap();
    let direct = torch_pt::read_state_dict(&exp.checkpoint, Some("ema")).unwrap();
    let w = "x_embedder.proj.weight";
    assert_eq!(rel_err(&ema[w], &direct[w]), 0.0);
    assert!(rel_err(&ema[w], &model[w]) > 1e-3);

    // End-to-end checkpoints take their statistics from the EMA's BatchNorm, as generate.py.
    let stats =
        LatentStats::from_batchnorm(&ema["bn.running_mean"], &ema["bn.running_var"]).unwrap();
    let expected = ema["bn.running_var"]
        .sqrt()
        .unwrap()
        .recip()
        .unwrap()
        .reshape((1, 8, 1, 1))
        .unwrap();
    assert_eq!(stats.channels(), 8);
    assert_eq!(rel_err(&stats.scale, &expected), 0.0);

    // A checkpoint file given as the model opens its folder.
    let by_file = HiditExperiment::open(&exp.checkpoint, None).unwrap();
    assert_eq!(by_file.dir, exp.dir);
}

#[test]
fn safetensors_conversion_reads_as_the_ema() {
    let exp = HiditExperiment::open(&files().join("exp-safetensors"), None).unwrap();
    let ema = exp.load_ema().unwrap();
    let direct =
        torch_pt::read_state_dict(&files().join("exp/checkpoints/0000100.pt"), Some("ema"))
            .unwrap();
    for (name, t) in &ema {
        let diff = (t - &direct[name])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{name}");
    }
    // Integer buffers (num_batches_tracked) are not read from safetensors.
    assert_eq!(ema.len() + 1, direct.len());
    let err = exp.load_entry("model").unwrap_err().to_string();
    says(&err, &["`model`", "taken as `ema`"]);
}

#[test]
fn several_checkpoints_need_a_choice() {
    let (_tmp, exp) = scratch_experiment("run");
    let ckpts = exp.join("checkpoints");
    std::fs::copy(ckpts.join("0000100.pt"), ckpts.join("0000200.pt")).unwrap();

    let err = HiditExperiment::open(&exp, None).unwrap_err();
    assert!(
        matches!(err, HiditFilesError::SeveralCheckpoints { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    says(&msg, &["0000100.pt, 0000200.pt", "--checkpoint 200"]);

    for (given, expected) in [
        ("200", "0000200.pt"),
        ("0000100", "0000100.pt"),
        ("checkpoints/0000200.pt", "0000200.pt"),
    ] {
        let chosen = HiditExperiment::open(&exp, Some(given)).unwrap();
        assert!(chosen.checkpoint.ends_with(expected), "{given}");
    }
    let absolute = ckpts.join("0000100.pt");
    let chosen = HiditExperiment::open(&exp, absolute.to_str()).unwrap();
    assert_eq!(chosen.checkpoint, absolute);

    let msg = HiditExperiment::open(&exp, Some("300"))
        .unwrap_err()
        .to_string();
    says(&msg, &["`300`", "0000100.pt, 0000200.pt"]);
}

#[test]
fn folders_that_are_not_experiments_say_why() {
    let empty = tempfile::tempdir().unwrap();
    let msg = HiditExperiment::open(empty.path(), None)
        .unwrap_err()
        .to_string();
    says(&msg, &["no args.json"]);

    let (_tmp, exp) = scratch_experiment("bare");
    std::fs::remove_dir_all(exp.join("checkpoints")).unwrap();
    let msg = HiditExperiment::open(&exp, None).unwrap_err().to_string();
    says(&msg, &["no checkpoints/ folder"]);

    std::fs::create_dir(exp.join("checkpoints")).unwrap();
    let err = HiditExperiment::open(&exp, None).unwrap_err();
    assert!(
        matches!(err, HiditFilesError::NoCheckpoint { .. }),
        "{err:?}"
    );

    // A checkpoint without `ema` (here: the VAE's state dict) names what it holds instead.
    std::fs::copy(
        files().join("vae/tiny-vae.pt"),
        exp.join("checkpoints/0000001.pt"),
    )
    .unwrap();
    let exp = HiditExperiment::open(&exp, None).unwrap();
    let msg = exp.load_ema().unwrap_err().to_string();
    says(
        &msg,
        &["no `ema` entry", "a plain state dict of", "in all)"],
    );
}

#[test]
fn args_json_vae_names_are_checked() {
    let (_tmp, exp) = scratch_experiment("named");
    let args_path = exp.join("args.json");
    let mut args: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&args_path).unwrap()).unwrap();
    let vae_arch_with = |args: &serde_json::Value| {
        std::fs::write(&args_path, args.to_string()).unwrap();
        HiditExperiment::open(&exp, None).unwrap().vae_arch()
    };
    args.as_object_mut().unwrap().remove("vae_arch");
    assert_eq!(vae_arch_with(&args).unwrap(), VaeArch::f16d32());

    args["vae"] = "f32d64".into();
    let msg = vae_arch_with(&args).unwrap_err().to_string();
    says(&msg, &["args.json", "`vae`", "f16d32, f8d4"]);

    args["vae_arch"] = serde_json::json!({"embed_dim": 8, "ch": 48, "ch_mult": [1, 2]});
    let msg = vae_arch_with(&args).unwrap_err().to_string();
    says(&msg, &["`vae_arch`", "GroupNorm"]);
}

#[test]
fn latent_stats_read_from_either_format() {
    let pt = LatentStats::read(&files().join("vae/tiny-vae-latents-stats.pt")).unwrap();
    let st = LatentStats::read(&files().join("vae/tiny-vae-latents-stats.safetensors")).unwrap();
    assert_eq!(pt.channels(), 8);
    assert_eq!(rel_err(&pt.scale, &st.scale), 0.0);
    assert_eq!(rel_err(&pt.bias, &st.bias), 0.0);
    assert_eq!(
        LatentStats::path_beside(&files().join("vae/tiny-vae.pt")),
        files().join("vae/tiny-vae-latents-stats.pt")
    );
    let z = reference()["z"].clone();
    let back = pt.denormalise(&pt.normalise(&z).unwrap()).unwrap();
    assert!(rel_err(&back, &z) < 1e-6);

    let msg = LatentStats::read(&files().join("vae/tiny-vae.pt"))
        .unwrap_err()
        .to_string();
    says(&msg, &["no `latents_scale`", "tensors)"]);
}

#[test]
fn vae_loads_checked_from_pt_and_safetensors() {
    let arch = tiny_arch();
    let r = reference();
    let pt = files().join("vae/tiny-vae.pt");
    let vae = load_vae(&pt, &arch, "the test", DType::F32, &Device::Cpu).unwrap();
    let from_pt = vae.decode(&r["z"]).unwrap();
    assert!(rel_err(&from_pt, &r["decoded"]) < 1e-4);

    // The same weights converted to safetensors (contiguous copies, float16 as stored).
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("tiny-vae.safetensors");
    let tensors = torch_pt::read_state_dict(&pt, None).unwrap();
    candle_core::safetensors::save(&tensors, &st).unwrap();
    let vae = load_vae(&st, &arch, "the test", DType::F32, &Device::Cpu).unwrap();
    assert_eq!(rel_err(&vae.decode(&r["z"]).unwrap(), &from_pt), 0.0);

    // The published f16d32 layout does not fit the tiny weights: shapes are listed.
    let err = load_vae(
        &pt,
        &VaeArch::f16d32(),
        "args.json's `vae` (f16d32)",
        DType::F32,
        &Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    says(
        &err,
        &[
            "tiny-vae.pt",
            "args.json's `vae` (f16d32) describes",
            "shape differs",
        ],
    );

    // A diffusers (FLUX-layout) VAE is another model: its names do not match.
    let flux = fixtures().join("full-square/model/vae/diffusion_pytorch_model.safetensors");
    let err = load_vae(&flux, &arch, "the test", DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    says(
        &err,
        &[
            "missing from the checkpoint",
            "encoder.down.0.block.0.conv1.weight",
            "not used by this model",
        ],
    );
}

fn info(path: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
        .arg("info")
        .arg(path)
        .env("HF_HUB_CACHE", "/nonexistent-cache-for-tests")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The table row starting with `start`.
fn row<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no row {start:?} in\n{text}"))
}

#[test]
fn info_describes_an_experiment_and_its_vae() {
    // REPA-E's layout: exps/NAME/ beside pretrained/NAME/, as args.json's vae_ckpt says.
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("exps/tiny-loader");
    copy_dir(&files().join("exp"), &exp);
    let pretrained = tmp.path().join("pretrained/tiny-vae");
    std::fs::create_dir_all(&pretrained).unwrap();
    for f in ["tiny-vae.pt", "tiny-vae-latents-stats.pt"] {
        std::fs::copy(files().join("vae").join(f), pretrained.join(f)).unwrap();
    }
    let (ok, text) = info(&exp);
    assert!(ok, "{text}");
    says(
        &text,
        &[
            "REPA-E experiment folder: SiT-XL/1 (args.json `model`)",
            "latent statistics, 8 channels",
            "also holds opt (optimizer state), args (the training arguments)",
            "saved at training step 100",
            "autoencoder from args.json `vae_arch`: 8 latent channels at 1/16",
            "no problems found",
        ],
    );
    let ema = row(&text, "0000100.pt: ema ");
    says(ema, &["SiT weights (sampled)", "float32×5, int64×1  77"]);
    assert!(row(&text, "0000100.pt: model ").contains("SiT weights"));
    let vae = row(&text, "tiny-vae.pt ");
    assert!(
        vae.contains("AutoencoderKL") && vae.contains("float16") && vae.ends_with("ok"),
        "{vae}"
    );
    assert!(row(&text, "tiny-vae-latents-stats.pt ").ends_with("ok"));

    // A broken checkpoint and a second one are reported, not fatal to the description.
    let ckpts = exp.join("checkpoints");
    let bytes = std::fs::read(ckpts.join("0000100.pt")).unwrap();
    std::fs::write(ckpts.join("0000200.pt"), &bytes[..bytes.len() / 2]).unwrap();
    let (ok, text) = info(&exp);
    assert!(!ok, "{text}");
    says(
        &text,
        &[
            "2 checkpoints: sampling needs --checkpoint STEP",
            "0000200.pt: ",
            "truncated or damaged",
        ],
    );
}

#[test]
fn info_describes_single_files() {
    let (ok, text) = info(&files().join("vae/tiny-vae.pt"));
    assert!(ok, "{text}");
    says(
        &text,
        &[
            "PyTorch checkpoint: AutoencoderKL",
            "float16",
            "its latent statistics are beside it",
        ],
    );
    let (ok, text) = info(&files().join("vae/tiny-vae-latents-stats.safetensors"));
    assert!(ok, "{text}");
    says(&text, &["safetensors file: latent statistics"]);
    let (ok, text) = info(&files().join("exp/checkpoints/0000100.pt"));
    assert!(ok, "{text}");
    says(&text, &["REPA-E training checkpoint"]);
    assert!(
        row(&text, "ema ").contains("SiT weights (sampled)"),
        "{text}"
    );
    let (ok, text) = info(&fixtures().join("full-square/reference.png"));
    assert!(!ok && text.contains("it looks like a PNG image"), "{text}");
}
