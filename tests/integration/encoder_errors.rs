//! Broken tokenizer and text-encoder files fail with an error that names the file.

use crate::common;

use crate::common::{fixtures, scratch_model};
use candle_core::{DType, Device};
use hidream_studio::models::text::{PromptTokenizer, TextEncoders};
use hidream_studio::weights::Snapshot;

fn load(model: &std::path::Path, llama: &std::path::Path) -> String {
    let snapshot = Snapshot::open(model).unwrap();
    TextEncoders::load(&snapshot, llama, DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string()
}

fn scratch_llama() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let llama = dir.path().join("llama");
    common::copy_dir(&fixtures().join("llama-3.1-tiny"), &llama);
    (dir, llama)
}

#[test]
fn missing_clip_merges() {
    let (_tmp, model) = scratch_model("full-square");
    std::fs::remove_file(model.join("tokenizer_2").join("merges.txt")).unwrap();
    let msg = load(&model, &fixtures().join("llama-3.1-tiny"));
    assert!(
        msg.contains("tokenizer_2") && msg.contains("merges.txt") && msg.contains("is missing"),
        "{msg}"
    );
}

#[test]
fn corrupt_clip_vocab() {
    let (_tmp, model) = scratch_model("full-square");
    std::fs::write(model.join("tokenizer").join("vocab.json"), "{\"a\": ").unwrap();
    let msg = load(&model, &fixtures().join("llama-3.1-tiny"));
    assert!(msg.contains("vocab.json"), "{msg}");
}

#[test]
fn garbage_spiece_model() {
    let (_tmp, model) = scratch_model("full-square");
    let dir = model.join("tokenizer_3");
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    std::fs::write(dir.join("spiece.model"), b"\x0a\xff\xff\xff\xff\x0f").unwrap();
    let err = PromptTokenizer::t5(&dir, 128).unwrap_err().to_string();
    assert!(
        err.contains("spiece.model") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn t5_tokenizer_with_no_files() {
    let (_tmp, model) = scratch_model("full-square");
    let dir = model.join("tokenizer_3");
    for f in ["tokenizer.json", "spiece.model"] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    let err = load(&model, &fixtures().join("llama-3.1-tiny"));
    assert!(
        err.contains("spiece.model") && err.contains("tokenizer.json"),
        "{err}"
    );
}

#[test]
fn corrupt_llama_tokenizer_json() {
    let (_tmp, llama) = scratch_llama();
    std::fs::write(llama.join("tokenizer.json"), "{ \"version\": ").unwrap();
    let err = load(&common::fixture_model("full-square"), &llama);
    assert!(
        err.contains("tokenizer.json") && err.contains("does not parse"),
        "{err}"
    );
}

#[test]
fn llama_folder_without_config() {
    let (_tmp, llama) = scratch_llama();
    std::fs::remove_file(llama.join("config.json")).unwrap();
    let err = load(&common::fixture_model("full-square"), &llama);
    assert!(
        err.contains("llama") && err.contains("not a model folder"),
        "{err}"
    );
}

#[test]
fn llama_missing_a_shard() {
    let (_tmp, llama) = scratch_llama();
    std::fs::remove_file(llama.join("model-00002-of-00004.safetensors")).unwrap();
    let err = load(&common::fixture_model("full-square"), &llama);
    assert!(err.contains("model-00002-of-00004.safetensors"), "{err}");
}

#[test]
fn clip_config_that_does_not_parse() {
    let (_tmp, model) = scratch_model("full-square");
    std::fs::write(
        model.join("text_encoder_2").join("config.json"),
        "{\"hidden_size\": \"big\"}",
    )
    .unwrap();
    let err = load(&model, &fixtures().join("llama-3.1-tiny"));
    assert!(
        err.contains("text_encoder_2") && err.contains("config.json"),
        "{err}"
    );
}
