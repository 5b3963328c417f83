//! Tokenizers and text encoders against the reference pipeline's recorded ids and outputs.

use crate::common::{CASES, case_json, fixture_model, fixtures, reference, rel_err};
use candle_core::{DType, Device, Tensor};
use hidream_studio::models::text::{PromptTokenizer, TextEncoders, Tokens};
use hidream_studio::weights::Snapshot;

const F32_TOLERANCE: f64 = 1e-4;

fn encoders(case: &str) -> TextEncoders {
    let snapshot = Snapshot::open(&fixture_model(case)).unwrap();
    TextEncoders::load(
        &snapshot,
        &fixtures().join("llama-3.1-tiny"),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap()
}

/// The prompts a case encoded: the prompt, and with CFG the negative one ("" by default).
fn prompts(case: &str) -> Vec<(&'static str, String)> {
    let c = case_json(case);
    let mut out = vec![("prompt", c["prompt"].as_str().unwrap().to_string())];
    if c["guidance"].as_f64().unwrap() > 1.0 {
        out.push((
            "negative",
            c["negative_prompt"].as_str().unwrap_or("").to_string(),
        ));
    }
    out
}

fn ids(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::I64)
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|&v| v as u32)
        .collect()
}

fn assert_tokens(
    tokens: &Tokens,
    r: &std::collections::HashMap<String, Tensor>,
    key: &str,
    with_mask: bool,
) {
    assert_eq!(tokens.ids, ids(&r[&format!("{key}.ids")]), "{key} ids");
    assert_eq!(tokens.ids.len(), 128);
    if with_mask {
        assert_eq!(tokens.mask, ids(&r[&format!("{key}.mask")]), "{key} mask");
    }
}

#[test]
fn token_ids_equal_the_reference() {
    for case in CASES {
        let r = reference(case);
        let enc = encoders(case);
        for (role, prompt) in prompts(case) {
            let t = enc.tokenize(&prompt).unwrap();
            assert_tokens(&t.clip_l, &r, &format!("{role}.clip_l"), false);
            assert_tokens(&t.clip_g, &r, &format!("{role}.clip_g"), false);
            assert_tokens(&t.t5, &r, &format!("{role}.t5"), true);
            assert_tokens(&t.llama, &r, &format!("{role}.llama"), true);
        }
    }
}

#[test]
fn the_long_prompt_is_truncated_like_the_reference() {
    let enc = encoders("fast-long-prompt");
    let prompt = case_json("fast-long-prompt")["prompt"]
        .as_str()
        .unwrap()
        .to_string();
    let t = enc.tokenize(&prompt).unwrap();
    assert!(t.truncated());
    // Truncated sequences still end with their end token and carry no padding.
    assert_eq!(*t.t5.ids.last().unwrap(), 1);
    assert!(t.t5.mask.iter().all(|&m| m == 1));
    assert!(t.llama.mask.iter().all(|&m| m == 1));
    // The short prompt is not.
    assert!(!enc.tokenize("a red circle").unwrap().truncated());
}

#[test]
fn t5_from_spiece_model_equals_tokenizer_json() {
    let tmp = tempfile::tempdir().unwrap();
    let source = fixtures().join("tokenizers").join("t5");
    for file in ["spiece.model", "tokenizer_config.json"] {
        std::fs::copy(source.join(file), tmp.path().join(file)).unwrap();
    }
    let from_spiece = PromptTokenizer::t5(tmp.path(), 128).unwrap();
    let from_json = PromptTokenizer::t5(&source, 128).unwrap();
    for case in CASES {
        let r = reference(case);
        for (role, prompt) in prompts(case) {
            let t = from_spiece.encode(&prompt).unwrap();
            assert_eq!(t, from_json.encode(&prompt).unwrap(), "{case} {role}");
            assert_tokens(&t, &r, &format!("{role}.t5"), true);
        }
    }
    // Sentinels are special tokens at the end of the vocabulary, highest first.
    assert_eq!(
        from_spiece.token_to_id("<extra_id_99>"),
        from_json.token_to_id("<extra_id_99>")
    );
    assert_eq!(
        from_spiece.token_to_id("<extra_id_0>"),
        from_json.token_to_id("<extra_id_0>")
    );
}

#[test]
fn encoder_outputs_match_the_reference_in_f32() {
    for case in CASES {
        let r = reference(case);
        let enc = encoders(case);
        for (role, prompt) in prompts(case) {
            let out = enc.encode(&prompt).unwrap();
            let clip_l = &r[&format!("{role}.clip_l.pooled")];
            let width_l = clip_l.dim(1).unwrap();
            let checks = [
                (
                    "clip_l",
                    out.pooled.narrow(1, 0, width_l).unwrap(),
                    clip_l.clone(),
                ),
                (
                    "clip_g",
                    out.pooled
                        .narrow(1, width_l, out.pooled.dim(1).unwrap() - width_l)
                        .unwrap(),
                    r[&format!("{role}.clip_g.pooled")].clone(),
                ),
                (
                    "t5",
                    out.t5.clone(),
                    r[&format!("{role}.t5.hidden")].clone(),
                ),
                (
                    "llama",
                    out.llama.clone(),
                    r[&format!("{role}.llama.hidden")].clone(),
                ),
            ];
            for (name, ours, theirs) in checks {
                let err = rel_err(&ours, &theirs);
                println!("{case} {role} {name}: {err:.3e}");
                assert!(
                    err < F32_TOLERANCE,
                    "{case} {role} {name}: relative error {err:.3e}"
                );
            }
            // Every Llama layer on its own, not just the stack.
            let layers = r[&format!("{role}.llama.hidden")].dim(0).unwrap();
            for layer in 0..layers {
                let err = rel_err(
                    &out.llama.get(layer).unwrap(),
                    &r[&format!("{role}.llama.hidden")].get(layer).unwrap(),
                );
                assert!(
                    err < F32_TOLERANCE,
                    "{case} {role} llama layer {layer}: {err:.3e}"
                );
            }
        }
    }
}
