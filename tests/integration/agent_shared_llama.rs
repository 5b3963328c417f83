//! The agent's language model over the Llama-3.1 text encoder the I1 pipeline already holds:
//! the same logits as the Llama folder loaded on its own, without loading the encoders again.

use candle_core::DType;
use hidream_studio::models::text::{KvCache, load_causal_lm};
use hidream_studio::pipelines::{EncoderMemory, HiDreamModels, ModelSelection};

/// The fixture I1 pipeline and tiny Llama-3.1 of the prompt cache's tests.
fn selection() -> ModelSelection {
    crate::prompt_cache::settings("unused", 0).models
}

#[test]
fn the_shared_llama_answers_as_the_llama_loaded_on_its_own() {
    let selection = selection();
    let mut models = HiDreamModels::load(&selection, EncoderMemory::Keep).unwrap();
    let shared = models.shared_language_model().unwrap();
    assert_eq!(models.encoder_loads(), 1);
    // A second one shares the same loaded encoders.
    let again = models.shared_language_model().unwrap();
    assert_eq!(models.encoder_loads(), 1);
    let own = load_causal_lm(&selection.llama, DType::F32, &candle_core::Device::Cpu).unwrap();
    let ids = [1_u32, 17, 42, 99, 7];
    let logits = |lm: &hidream_studio::models::text::LlamaForCausalLM| {
        lm.forward(&ids, &mut KvCache::new())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let expected = logits(&own);
    assert!(expected.len() > 1);
    assert_eq!(logits(&shared), expected);
    assert_eq!(logits(&again), expected);
}

#[test]
fn encoders_loaded_one_at_a_time_have_no_llama_to_share() {
    let mut models = HiDreamModels::load(&selection(), EncoderMemory::OneAtATime).unwrap();
    let err = models.shared_language_model().unwrap_err().to_string();
    assert!(err.contains("one at a time"), "{err}");
}
