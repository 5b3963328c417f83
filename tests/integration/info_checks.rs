//! `info` checks every component the way loading it will: config fields read into the model's
//! settings, then each tensor's name, shape and dtype against what the model asks for. Each
//! test breaks one thing in a copy of a fixture snapshot that `generate` refuses.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

const ADALN: &str = "double_stream_blocks.0.block.adaLN_modulation.1.weight";

/// Runs `info` on `model`, expects it to fail, and returns its report.
fn info_fails(model: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
        .arg("info")
        .arg(model)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("no problems found"), "{text}");
    text
}

/// The shard of `component` that holds `tensor`.
fn shard_holding(model: &Path, component: &str, tensor: &str) -> PathBuf {
    let index = model
        .join(component)
        .join("diffusion_pytorch_model.safetensors.index.json");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(index).unwrap()).unwrap();
    model
        .join(component)
        .join(index["weight_map"][tensor].as_str().unwrap())
}

/// Rewrites a safetensors file's JSON header, keeping its data bytes.
fn edit_header(path: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    edit(&mut header);
    let mut new_header = serde_json::to_vec(&header).unwrap();
    while !new_header.len().is_multiple_of(8) {
        new_header.push(b' ');
    }
    let mut file = (new_header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&new_header);
    file.extend_from_slice(&bytes[8 + len..]);
    std::fs::write(path, file).unwrap();
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

#[test]
fn a_renamed_tensor_is_reported_with_both_names() {
    let (_tmp, model) = common::scratch_model("full-square");
    let renamed = "double_stream_blocks.0.block.adaLN_modulation.1.weights";
    let shard = shard_holding(&model, "transformer", ADALN);
    edit_header(&shard, |h| {
        let entry = h.remove(ADALN).unwrap();
        h.insert(renamed.into(), entry);
    });
    edit_json(
        &model
            .join("transformer")
            .join("diffusion_pytorch_model.safetensors.index.json"),
        |index| {
            let map = index["weight_map"].as_object_mut().unwrap();
            let file = map.remove(ADALN).unwrap();
            map.insert(renamed.into(), file);
        },
    );
    let text = info_fails(&model);
    let row = text
        .lines()
        .find(|l| l.starts_with("transformer "))
        .unwrap();
    assert!(row.ends_with("BROKEN (see below)"), "{text}");
    assert!(text.contains("1 missing from the checkpoint"), "{text}");
    assert!(text.contains(&format!("    {ADALN}\n")), "{text}");
    assert!(
        text.contains("1 in the checkpoint but not used by this model"),
        "{text}"
    );
    assert!(text.contains(renamed), "{text}");
}

#[test]
fn a_reshaped_tensor_is_reported_with_both_shapes() {
    let (_tmp, model) = common::scratch_model("full-square");
    edit_header(&shard_holding(&model, "transformer", ADALN), |h| {
        h[ADALN]["shape"] = serde_json::json!([32, 384]);
    });
    let text = info_fails(&model);
    assert!(
        text.contains(&format!("{ADALN}: checkpoint [32, 384], config [384, 32]")),
        "{text}"
    );
}

#[test]
fn a_head_count_that_does_not_match_the_weights_is_reported() {
    let (_tmp, model) = common::scratch_model("full-square");
    edit_json(&model.join("transformer").join("config.json"), |c| {
        c["num_attention_heads"] = 3.into();
    });
    let text = info_fails(&model);
    assert!(text.contains("shape differs"), "{text}");
    assert!(text.contains("attn1.to_q.weight"), "{text}");
}

#[test]
fn a_config_field_of_the_wrong_type_is_reported() {
    let (_tmp, model) = common::scratch_model("full-square");
    edit_json(&model.join("vae").join("config.json"), |c| {
        c["latent_channels"] = "16".into();
    });
    let text = info_fails(&model);
    let row = text.lines().find(|l| l.starts_with("vae ")).unwrap();
    assert!(row.ends_with("BROKEN (see below)"), "{text}");
    assert!(text.contains("latent_channels"), "{text}");
}

#[test]
fn an_index_that_misses_a_tensor_is_reported() {
    let (_tmp, model) = common::scratch_model("full-square");
    edit_json(
        &model
            .join("transformer")
            .join("diffusion_pytorch_model.safetensors.index.json"),
        |index| {
            index["weight_map"].as_object_mut().unwrap().remove(ADALN);
        },
    );
    let text = info_fails(&model);
    assert!(text.contains("1 missing from the checkpoint"), "{text}");
    assert!(text.contains(ADALN), "{text}");
}

#[test]
fn integer_weights_are_reported() {
    let (_tmp, model) = common::scratch_model("full-square");
    let vae = model
        .join("vae")
        .join("diffusion_pytorch_model.safetensors");
    let name = "decoder.conv_in.weight";
    edit_header(&vae, |h| {
        h[name]["dtype"] = "I32".into();
    });
    let text = info_fails(&model);
    assert!(text.contains("stored as integers"), "{text}");
    assert!(text.contains(&format!("{name}: int32")), "{text}");
}
