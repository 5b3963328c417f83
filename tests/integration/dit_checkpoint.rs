//! The transformer's tensor names and shapes: the released checkpoint's exact layout, and clear
//! errors for checkpoints that do not match their config.

use crate::common;

use candle_core::{DType, Device};
use hidream_studio::models::LoadError;
use hidream_studio::models::hidream::{Config, HiDreamTransformer};
use hidream_studio::weights::{WeightsError, requested_tensors};

/// transformer/config.json of https://huggingface.co/HiDream-ai/HiDream-I1-Full.
fn real_config() -> Config {
    let mut llama_layers: Vec<usize> = (0..32).collect();
    llama_layers.extend(std::iter::repeat_n(31, 16));
    serde_json::from_value(serde_json::json!({
        "_class_name": "HiDreamImageTransformer2DModel",
        "patch_size": 2, "in_channels": 16, "out_channels": 16,
        "num_layers": 16, "num_single_layers": 32,
        "attention_head_dim": 128, "num_attention_heads": 20,
        "caption_channels": [4096, 4096], "text_emb_dim": 2048,
        "num_routed_experts": 4, "num_activated_experts": 2,
        "axes_dims_rope": [64, 32, 32], "max_resolution": [128, 128],
        "llama_layers": llama_layers,
    }))
    .unwrap()
}

#[test]
fn asks_for_exactly_the_released_checkpoint() {
    let cfg = real_config();
    cfg.validate().unwrap();
    let tensors = requested_tensors(|vb| HiDreamTransformer::new(&cfg, vb)).unwrap();
    assert_eq!(tensors.len(), 1615);
    let params: u64 = tensors
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() as u64)
        .sum();
    assert_eq!(params, 17_105_733_184);
    let shape = |name: &str| {
        tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    assert_eq!(
        shape("double_stream_blocks.15.block.ff_i.experts.3.w1.weight"),
        [6912, 2560]
    );
    assert_eq!(
        shape("single_stream_blocks.31.block.ff_i.shared_experts.w2.weight"),
        [2560, 3584]
    );
    assert_eq!(
        shape("double_stream_blocks.0.block.adaLN_modulation.1.weight"),
        [30720, 2560]
    );
    assert_eq!(shape("caption_projection.48.linear.weight"), [2560, 4096]);
    assert_eq!(shape("final_layer.linear.weight"), [64, 2560]);
}

fn load(dir: &std::path::Path) -> Result<HiDreamTransformer, LoadError> {
    HiDreamTransformer::load(dir, DType::F32, &Device::Cpu)
}

fn edit_config(dir: &std::path::Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

#[test]
fn a_config_with_more_blocks_lists_the_missing_tensors() {
    let (_tmp, model) = common::scratch_model("full-square");
    let dir = model.join("transformer");
    edit_config(&dir, |c| {
        c["num_single_layers"] = 3.into();
        c["llama_layers"] = serde_json::json!([0, 1, 2, 3, 3]);
    });
    let err = load(&dir).expect_err("loading must fail");
    assert!(
        matches!(err, LoadError::Weights(WeightsError::Mismatch { .. })),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("missing from the checkpoint"), "{msg}");
    assert!(
        msg.contains("single_stream_blocks.2.block.adaLN_modulation.1.weight"),
        "{msg}"
    );
    // The T5 projection moved from #4 to #5.
    assert!(msg.contains("caption_projection.5.linear.weight"), "{msg}");
    assert!(
        msg.contains("caption_projection.4.linear.weight: checkpoint [32, 32], config [32, 48]"),
        "{msg}"
    );
    // Only the first ten are spelled out.
    assert!(msg.contains("… and"), "{msg}");
}

#[test]
fn a_config_of_another_width_lists_shape_differences() {
    let (_tmp, model) = common::scratch_model("full-square");
    let dir = model.join("transformer");
    edit_config(&dir, |c| c["num_attention_heads"] = 4.into());
    let msg = load(&dir).expect_err("loading must fail").to_string();
    assert!(msg.contains("shape differs"), "{msg}");
    assert!(
        msg.contains("caption_projection.0.linear.weight: checkpoint [32, 48], config [64, 48]"),
        "{msg}"
    );
}

#[test]
fn unknown_tensor_names_are_reported() {
    let (_tmp, model) = common::scratch_model("full-square");
    let dir = model.join("transformer");
    edit_config(&dir, |c| {
        c["num_single_layers"] = 1.into();
        c["llama_layers"] = serde_json::json!([0, 1, 2]);
    });
    let msg = load(&dir).expect_err("loading must fail").to_string();
    assert!(
        msg.contains("in the checkpoint but not used by this model")
            && msg.contains("single_stream_blocks.1.block"),
        "{msg}"
    );
}

#[test]
fn inconsistent_config_names_the_field() {
    let (_tmp, model) = common::scratch_model("full-square");
    let dir = model.join("transformer");
    edit_config(&dir, |c| c["llama_layers"] = serde_json::json!([0, 1]));
    let msg = load(&dir).expect_err("loading must fail").to_string();
    assert!(
        msg.contains("config.json")
            && msg.contains("llama_layers")
            && msg.contains("one per block"),
        "{msg}"
    );
}
