//! Scoring replies with the chat language model (what grounds an agent's edit in its picture):
//! the logits of every position in one pass against transformers (tests/fixtures/chat, made by
//! tools/fixtures/make_chat_fixtures.py), and log-likelihoods against the generation loop's own
//! logits, step by step.

use std::sync::atomic::AtomicBool;

use candle_core::{D, DType, Device, Tensor};
use hidream_studio::agent::ChatModel;
use hidream_studio::models::text::{KvCache, load_causal_lm};

use crate::chat_lm::{chat_dir, ids, model_dir, reference_logits, runs};
use crate::common::rel_err;

const F32_TOLERANCE: f64 = 1e-4;

#[test]
fn every_positions_logits_in_one_pass_match_transformers() {
    let reference = reference_logits();
    for run in runs() {
        let name = run["name"].as_str().unwrap();
        let lm = load_causal_lm(&model_dir(&run), DType::F32, &Device::Cpu).unwrap();
        let (prompt, new) = (ids(&run["prompt_ids"]), ids(&run["new_ids"]));
        // The prompt and every generated token but the last, read at once: row i holds the
        // logits after token i, so the prompt's last row is transformers' first step and the
        // final row its last.
        let read: Vec<u32> = prompt
            .iter()
            .chain(&new[..new.len() - 1])
            .copied()
            .collect();
        let all = lm.forward_all(&read, &mut KvCache::new()).unwrap();
        assert_eq!(all.dims(), [read.len(), lm.config().vocab_size]);
        let first = all.get(prompt.len() - 1).unwrap();
        let err = rel_err(&first, &reference[&format!("{name}.first")]);
        assert!(err < F32_TOLERANCE, "{name} first step: {err}");
        if let Some(expected) = reference.get(&format!("{name}.last")) {
            let err = rel_err(&all.get(read.len() - 1).unwrap(), expected);
            println!("{name}: last step in one pass, relative error {err:.1e}");
            assert!(err < F32_TOLERANCE, "{name} last step: {err}");
        }
    }
    let lm = load_causal_lm(&chat_dir().join("model"), DType::F32, &Device::Cpu).unwrap();
    assert!(lm.forward_all(&[], &mut KvCache::new()).is_err());
}

/// The log-probability of `next` under `logits` [vocab], in f64.
fn log_prob(logits: &Tensor, next: u32) -> f64 {
    let l: Vec<f64> = logits.to_dtype(DType::F64).unwrap().to_vec1().unwrap();
    let max = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let log_sum = l.iter().map(|x| (x - max).exp()).sum::<f64>().ln() + max;
    l[next as usize] - log_sum
}

#[test]
fn a_replys_log_likelihood_is_the_sum_of_its_tokens_log_probabilities() {
    let chat = ChatModel::load(&chat_dir().join("model"), &Device::Cpu).unwrap();
    let lm = chat.language_model();
    let run = runs()
        .into_iter()
        .find(|r| model_dir(r) == chat_dir().join("model"))
        .unwrap();
    let (prompt, new) = (ids(&run["prompt_ids"]), ids(&run["new_ids"]));
    // Step by step through the cache, as generation reads them.
    let mut cache = KvCache::new();
    let mut logits = lm.forward(&prompt, &mut cache).unwrap();
    let mut expected = 0.0;
    for (i, &id) in new.iter().enumerate() {
        expected += log_prob(&logits, id);
        if i + 1 < new.len() {
            logits = lm.forward(&[id], &mut cache).unwrap();
        }
    }
    // The same reply with its last token swapped for the one the model liked least there.
    let mut unlikely = new.clone();
    let worst = logits
        .argmin(D::Minus1)
        .unwrap()
        .to_scalar::<u32>()
        .unwrap();
    *unlikely.last_mut().unwrap() = worst;
    let continuations = vec![new.clone(), unlikely, vec![new[0]], Vec::new()];
    let scores = chat
        .log_likelihoods(&prompt, &continuations, &AtomicBool::new(false))
        .unwrap()
        .unwrap();
    println!("log-likelihoods {scores:?}, step by step {expected}");
    assert!((scores[0] - expected).abs() < 1e-4 * expected.abs().max(1.0));
    assert!(scores[1] < scores[0]);
    let first = lm.forward(&prompt, &mut KvCache::new()).unwrap();
    assert!((scores[2] - log_prob(&first, new[0])).abs() < 1e-5);
    assert_eq!(scores[3], 0.0);
    // Stopped by the caller: no scores.
    let stopped = chat
        .log_likelihoods(&prompt, &continuations, &AtomicBool::new(true))
        .unwrap();
    assert_eq!(stopped, None);
    assert!(
        chat.log_likelihoods(&[], &continuations, &AtomicBool::new(false))
            .is_err()
    );
}
