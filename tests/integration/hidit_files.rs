//! Hi-DiT's files: the torch `.pt` reader on REPA-E's layouts, the KL autoencoder against
//! REPA-E's own code, experiment folders, and `info` on them (tests/fixtures/hidit/files,
//! made by tools/fixtures/make_hidit_vae_fixtures.py).

use std::path::PathBuf;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use hidream_studio::models::hidit::autoencoder::{AutoencoderKl, VaeArch};
use hidream_studio::weights::torch_pt::{self, PtError};

use crate::common::{fixtures, rel_err};

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
    assert!(msg.contains("0000100.pt") && msg.contains("`vae`"), "{msg}");
    assert!(msg.contains("model, ema, opt, args, steps"), "{msg}");
    // A whole checkpoint read as a state dict says which entries to choose from.
    let msg = torch_pt::read_state_dict(&path, None)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("checkpoint with entries model, ema"), "{msg}");
    // A key that is not a state dict says what it is.
    let msg = torch_pt::read_state_dict(&path, Some("args"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("argparse.Namespace"), "{msg}");
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
        assert!(
            msg.contains("cut.pt") && msg.contains("fetch it again"),
            "{msg}"
        );
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
    assert!(
        msg.contains("image.pt") && msg.contains("a PNG image"),
        "{msg}"
    );

    let st = files().join("vae/tiny-vae-latents-stats.safetensors");
    let msg = torch_pt::read_state_dict(&st, None)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("a safetensors file"), "{msg}");

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
