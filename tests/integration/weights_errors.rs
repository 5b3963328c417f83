//! Every way a model folder can be broken gets an error that names the file and the problem,
//! and never a panic.

use crate::common;

use std::path::Path;

use crate::common::{f32_bytes, scratch_model, write_safetensors};
use candle_core::{DType, Device};
use hidream_studio::weights::{Snapshot, TensorStore, WeightsError};

fn transformer_index(model: &Path) -> std::path::PathBuf {
    model
        .join("transformer")
        .join("diffusion_pytorch_model.safetensors.index.json")
}

/// The shard file the index assigns to `tensor`.
fn shard_of(model: &Path, tensor: &str) -> String {
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(transformer_index(model)).unwrap()).unwrap();
    index["weight_map"][tensor].as_str().unwrap().to_string()
}

#[test]
fn intact_fixture_opens() {
    let model = common::fixture_model("full-square");
    let snapshot = Snapshot::open(&model).unwrap();
    assert_eq!(snapshot.index().class_name, "HiDreamImagePipeline");
    let store = snapshot.component_weights("transformer").unwrap();
    assert!(
        store.shard_count() > 1,
        "the fixture transformer is sharded like the real one"
    );
    let (entry, _) = store.entry("x_embedder.proj.weight").unwrap();
    assert_eq!(entry.shape, vec![32, 64]);
    let t = store
        .load("x_embedder.proj.weight", Some(&[32, 64]), &Device::Cpu)
        .unwrap();
    assert_eq!(t.dims(), &[32, 64]);
}

#[test]
fn missing_component_names_the_folder() {
    let (_tmp, model) = scratch_model("full-square");
    std::fs::remove_dir_all(model.join("vae")).unwrap();
    let snapshot = Snapshot::open(&model).unwrap();
    let err = snapshot.component_weights("vae").unwrap_err();
    assert!(
        matches!(err, WeightsError::ComponentMissing { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("`vae`") && msg.contains("AutoencoderKL") && msg.contains("missing"),
        "{msg}"
    );
}

#[test]
fn component_not_in_model_index() {
    let model = common::fixture_model("full-square");
    let err = Snapshot::open(&model)
        .unwrap()
        .component_dir("image_encoder")
        .unwrap_err();
    assert!(
        matches!(err, WeightsError::ComponentNotListed { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("image_encoder"));
}

#[test]
fn missing_shard_names_the_shard_and_the_index() {
    let (_tmp, model) = scratch_model("full-square");
    let shard = shard_of(&model, "final_layer.linear.weight");
    std::fs::remove_file(model.join("transformer").join(&shard)).unwrap();
    let err = TensorStore::open_dir(&model.join("transformer")).unwrap_err();
    assert!(matches!(err, WeightsError::ShardMissing { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&shard), "{msg}");
    assert!(
        msg.contains("diffusion_pytorch_model.safetensors.index.json"),
        "{msg}"
    );
}

#[test]
fn index_pointing_at_a_file_that_does_not_exist() {
    let (_tmp, model) = scratch_model("full-square");
    let path = transformer_index(&model);
    let mut index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    index["weight_map"]["final_layer.linear.weight"] =
        "diffusion_pytorch_model-renamed.safetensors".into();
    std::fs::write(&path, serde_json::to_string(&index).unwrap()).unwrap();
    let msg = TensorStore::open_dir(&model.join("transformer"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("diffusion_pytorch_model-renamed.safetensors"),
        "{msg}"
    );
    assert!(msg.contains("not in"), "{msg}");
}

#[test]
fn index_entry_not_in_its_shard() {
    let (_tmp, model) = scratch_model("full-square");
    let path = transformer_index(&model);
    let mut index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let other_shard = shard_of(&model, "x_embedder.proj.weight");
    let wrong = if shard_of(&model, "final_layer.linear.weight") == other_shard {
        shard_of(&model, "caption_projection.0.linear.weight")
    } else {
        other_shard
    };
    index["weight_map"]["final_layer.linear.weight"] = wrong.clone().into();
    std::fs::write(&path, serde_json::to_string(&index).unwrap()).unwrap();
    let err = TensorStore::open_dir(&model.join("transformer")).unwrap_err();
    // Only possible if both tensors share a shard in a regenerated fixture.
    assert!(
        matches!(err, WeightsError::IndexEntryMissing { .. }),
        "expected IndexEntryMissing, got {err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("final_layer.linear.weight") && msg.contains(&wrong),
        "{msg}"
    );
}

#[test]
fn shards_without_their_index() {
    let (_tmp, model) = scratch_model("full-square");
    std::fs::remove_file(transformer_index(&model)).unwrap();
    let err = TensorStore::open_dir(&model.join("transformer")).unwrap_err();
    assert!(matches!(err, WeightsError::IndexMissing { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("diffusion_pytorch_model-00001-of-"),
        "{err}"
    );
}

#[test]
fn folder_without_weights() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pytorch_model.bin"), b"pickle").unwrap();
    let err = TensorStore::open_dir(dir.path()).unwrap_err();
    assert!(matches!(err, WeightsError::NoWeights { .. }), "{err:?}");
    assert!(err.to_string().contains("safetensors"));
}

#[test]
fn missing_tensor_names_tensor_and_folder() {
    let store =
        TensorStore::open_dir(&common::fixture_model("full-square").join("transformer")).unwrap();
    let err = store
        .load(
            "double_stream_blocks.99.block.attn1.to_q.weight",
            None,
            &Device::Cpu,
        )
        .unwrap_err();
    assert!(matches!(err, WeightsError::TensorMissing { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("double_stream_blocks.99.block.attn1.to_q.weight")
            && msg.contains("transformer"),
        "{msg}"
    );

    // The same message reaches model code through a VarBuilder.
    let vb = store.into_var_builder(DType::F32, &Device::Cpu);
    let msg = vb
        .get((32, 32), "double_stream_blocks.99.block.attn1.to_q.weight")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("double_stream_blocks.99.block.attn1.to_q.weight") && msg.contains("missing"),
        "{msg}"
    );
}

#[test]
fn wrong_shape_prints_both_shapes() {
    let store =
        TensorStore::open_dir(&common::fixture_model("full-square").join("transformer")).unwrap();
    let err = store
        .load("x_embedder.proj.weight", Some(&[2560, 64]), &Device::Cpu)
        .unwrap_err();
    assert!(matches!(err, WeightsError::ShapeMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("[32, 64]") && msg.contains("[2560, 64]"),
        "{msg}"
    );
    assert!(msg.contains(".safetensors"), "names the shard: {msg}");

    let vb = store.into_var_builder(DType::F32, &Device::Cpu);
    let msg = vb
        .get((2560, 64), "x_embedder.proj.weight")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("[32, 64]") && msg.contains("[2560, 64]"),
        "{msg}"
    );
}

#[test]
fn weights_convert_to_the_requested_dtype() {
    // bf16 on disk (the mixed-dtype fixture) loads into f32 and f16.
    let store =
        TensorStore::open_dir(&common::fixture_model("dev-mixed-dtypes").join("transformer"))
            .unwrap();
    assert_eq!(
        store.dtype_counts().keys().copied().collect::<Vec<_>>(),
        vec!["bfloat16"]
    );
    let vb = store.into_var_builder(DType::F32, &Device::Cpu);
    assert_eq!(
        vb.get((32, 64), "x_embedder.proj.weight").unwrap().dtype(),
        DType::F32
    );
    assert_eq!(
        vb.to_dtype(DType::F16)
            .get((32, 64), "x_embedder.proj.weight")
            .unwrap()
            .dtype(),
        DType::F16
    );
}

#[test]
fn unsupported_dtype_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    write_safetensors(
        &path,
        &[
            ("ok", "F32", &[2], f32_bytes(&[1.0, 2.0])),
            ("quantised", "F8_E4M3", &[4], vec![1, 2, 3, 4]),
        ],
    );
    let store = TensorStore::open_dir(dir.path()).unwrap();
    assert!(store.load("ok", Some(&[2]), &Device::Cpu).is_ok());
    let err = store.load("quantised", None, &Device::Cpu).unwrap_err();
    assert!(
        matches!(err, WeightsError::UnsupportedDtype { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("quantised")
            && msg.contains("float8_e4m3")
            && msg.contains("model.safetensors"),
        "{msg}"
    );
}

#[test]
fn truncated_file_says_the_download_is_incomplete() {
    let (_tmp, model) = scratch_model("full-square");
    let vae = model
        .join("vae")
        .join("diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&vae).unwrap();
    std::fs::write(&vae, &bytes[..bytes.len() / 2]).unwrap();
    let err = TensorStore::open_dir(&model.join("vae")).unwrap_err();
    assert!(matches!(err, WeightsError::Truncated { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("truncated") && msg.contains("diffusion_pytorch_model.safetensors"),
        "{msg}"
    );

    // Shorter than the 8-byte length prefix, and cut inside the header.
    for cut in [4, 40] {
        std::fs::write(&vae, &bytes[..cut]).unwrap();
        let err = TensorStore::open_dir(&model.join("vae")).unwrap_err();
        assert!(
            matches!(err, WeightsError::Truncated { .. }),
            "cut at {cut}: {err:?}"
        );
    }
}

#[test]
fn corrupt_header_is_reported() {
    let (_tmp, model) = scratch_model("full-square");
    let vae = model
        .join("vae")
        .join("diffusion_pytorch_model.safetensors");
    let mut bytes = std::fs::read(&vae).unwrap();
    bytes[8..16].copy_from_slice(b"#!garbag");
    std::fs::write(&vae, &bytes).unwrap();
    let err = TensorStore::open_dir(&model.join("vae")).unwrap_err();
    assert!(matches!(err, WeightsError::CorruptHeader { .. }), "{err:?}");
    assert!(err.to_string().contains("not valid JSON"), "{err}");

    // An absurd header length is corruption, not truncation.
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&vae, &bytes).unwrap();
    let err = TensorStore::open_dir(&model.join("vae")).unwrap_err();
    assert!(matches!(err, WeightsError::CorruptHeader { .. }), "{err:?}");
}

#[test]
fn config_that_does_not_parse_names_the_file_and_position() {
    let (_tmp, model) = scratch_model("full-square");
    std::fs::write(
        model.join("transformer").join("config.json"),
        "{\n  \"num_layers\": 2,\n  oops\n}",
    )
    .unwrap();
    let snapshot = Snapshot::open(&model).unwrap();
    let err = snapshot
        .component_config::<serde_json::Value>("transformer")
        .unwrap_err();
    assert!(matches!(err, WeightsError::JsonParse { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("transformer") && msg.contains("config.json") && msg.contains("line 3"),
        "{msg}"
    );
}

#[test]
fn model_index_that_does_not_parse() {
    let (_tmp, model) = scratch_model("full-square");
    std::fs::write(model.join("model_index.json"), "not json").unwrap();
    let err = Snapshot::open(&model).unwrap_err();
    assert!(matches!(err, WeightsError::JsonParse { .. }), "{err:?}");
    assert!(err.to_string().contains("model_index.json"));
}

#[test]
fn folder_that_is_not_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let err = Snapshot::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, WeightsError::NotAModelFolder { .. }),
        "{err:?}"
    );
}
