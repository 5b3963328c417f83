//! `hidream-studio info` on the committed fixture snapshots and on broken copies of them.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

fn info(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
        .arg("info")
        .args(args)
        .env("HF_HUB_CACHE", "/nonexistent-cache-for-tests")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn prints_the_component_table() {
    let model = common::fixture_model("full-square");
    let out = info(&[path_arg(&model)]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("diffusers pipeline: HiDreamImagePipeline (written by diffusers 0.42.1)"),
        "{text}"
    );
    for line_start in [
        "transformer     HiDreamImageTransformer2DModel",
        "text_encoder    CLIPTextModelWithProjection",
        "text_encoder_3  T5EncoderModel",
        "tokenizer       CLIPTokenizer                   vocab.json, merges.txt",
        "tokenizer_3     T5Tokenizer                     spiece.model",
        "vae             AutoencoderKL",
        "scheduler       UniPCMultistepScheduler         scheduler_config.json",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line_start)),
            "no row starting {line_start:?} in\n{text}"
        );
    }
    let transformer = text
        .lines()
        .find(|l| l.starts_with("transformer "))
        .unwrap();
    assert!(
        transformer.contains("6 shards")
            && transformer.contains("float32")
            && transformer.ends_with("ok"),
        "{transformer}"
    );
    assert!(
        text.contains("text_encoder_4 (LlamaForCausalLM) is not bundled"),
        "{text}"
    );
    assert!(text.contains("no problems found"), "{text}");
}

#[test]
fn json_report_counts_parameters_and_dtypes() {
    let model = common::fixture_model("dev-mixed-dtypes");
    let out = info(&[path_arg(&model), "--json"]);
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let components = report["components"].as_array().unwrap();
    let find = |name: &str| components.iter().find(|c| c["name"] == name).unwrap();

    // Count the transformer's parameters independently from its safetensors headers.
    let store = hidream_studio::weights::TensorStore::open_dir(&model.join("transformer")).unwrap();
    let expected: u64 = store
        .names()
        .map(|n| store.entry(n).unwrap().0.numel() as u64)
        .sum();
    let transformer = find("transformer");
    assert_eq!(
        transformer["weights"]["parameters"].as_u64().unwrap(),
        expected
    );
    assert_eq!(
        transformer["weights"]["dtypes"]["bfloat16"]
            .as_u64()
            .unwrap(),
        store.len() as u64
    );
    assert!(
        find("text_encoder_3")["weights"]["dtypes"]["float16"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(find("text_encoder_4")["status"]["state"], "external");
    assert_eq!(report["problems"].as_array().unwrap().len(), 0);
}

#[test]
fn reports_what_is_missing_and_exits_with_failure() {
    let (_tmp, model) = common::scratch_model("full-square");
    std::fs::remove_dir_all(model.join("vae")).unwrap();
    std::fs::remove_file(model.join("tokenizer").join("merges.txt")).unwrap();
    let shard = std::fs::read_dir(model.join("text_encoder_3"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("-00002-of-"))
        .unwrap();
    std::fs::remove_file(&shard).unwrap();
    std::fs::create_dir(model.join("stray_folder")).unwrap();

    let out = info(&[path_arg(&model)]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("vae") && l.ends_with("MISSING")),
        "{text}"
    );
    assert!(text.contains("vae/ is missing"), "{text}");
    assert!(
        text.contains(
            "tokenizer/: no CLIPTokenizer files: expected vocab.json + merges.txt or tokenizer.json"
        ),
        "{text}"
    );
    assert!(
        text.contains(&shard.file_name().unwrap().to_string_lossy().to_string()),
        "{text}"
    );
    assert!(text.contains("unexpected folder stray_folder/"), "{text}");
}

#[test]
fn describes_a_llama_folder() {
    let llama = common::fixtures().join("llama-3.1-tiny");
    let out = info(&[path_arg(&llama)]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("transformers model: LlamaForCausalLM"),
        "{text}"
    );
    let model_row = text.lines().find(|l| l.starts_with("(model)")).unwrap();
    assert!(
        model_row.contains("4 shards") && model_row.contains("bfloat16"),
        "{model_row}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("(tokenizer)") && l.contains("tokenizer.json")),
        "{text}"
    );
}

#[test]
fn bad_paths_get_a_readable_error() {
    let out = info(&["/definitely/not/here"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("/definitely/not/here"),
        "{err}"
    );

    let out = info(&["HiDream-ai/HiDream-I1-Full"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not in the Hugging Face cache")
            && err.contains("/nonexistent-cache-for-tests"),
        "{err}"
    );

    let empty = tempfile::tempdir().unwrap();
    let out = info(&[path_arg(empty.path())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a model folder"), "{err}");
}

#[test]
fn help_is_written_for_users() {
    let out = Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
        .arg("--help")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success());
    assert!(
        text.contains("Run without a command to open the studio window"),
        "{text}"
    );
    assert!(text.contains("info"), "{text}");
}
