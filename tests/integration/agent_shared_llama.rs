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

#[test]
fn sharing_the_llama_keeps_dropped_encoders_so_it_is_loaded_once() {
    use hidream_studio::pipelines::{Silent, generate};
    let first = crate::prompt_cache::settings("a red circle", 1);
    let mut models = HiDreamModels::load(&first.models, EncoderMemory::Drop).unwrap();
    let _shared = models.shared_language_model().unwrap();
    assert_eq!(models.encoder_memory(), EncoderMemory::Keep);
    for prompt in ["a red circle", "a blue square"] {
        let settings = crate::prompt_cache::settings(prompt, 1);
        generate(&mut models, &settings, None, &mut Silent).unwrap();
    }
    // Freed after the first prompt, the encoders (and a second Llama beside the shared one)
    // would have loaded again for the second.
    assert_eq!(models.encoder_loads(), 1);
}

/// The tiny Llama-3.1 of the I1 fixture with a chat template: the folder that is both the
/// text encoder and the agent's model.
fn chat_llama(dir: &std::path::Path) -> std::path::PathBuf {
    let source = crate::common::fixtures().join("llama-3.1-tiny");
    let llama = dir.join("llama");
    std::fs::create_dir_all(&llama).unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, llama.join(path.file_name().unwrap())).unwrap();
    }
    let chat = crate::common::fixtures().join("chat/model/tokenizer_config.json");
    let template =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(chat).unwrap()).unwrap()
            ["chat_template"]
            .clone();
    let config_path = llama.join("tokenizer_config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["chat_template"] = template;
    std::fs::write(&config_path, config.to_string()).unwrap();
    llama
}

/// Two agent turns whose model is the I1 fixture's (chat-templated) Llama, on an engine that
/// holds encoders as `memory` says; what the engine said it loaded.
fn two_turns_on_the_text_encoder(memory: Option<EncoderMemory>) -> Vec<String> {
    use hidream_studio::agent::{Conversation, EditorPrompt};
    use hidream_studio::engine::{Engine, Event};
    use hidream_studio::pipelines::{
        AgentJob, AgentUpdate, DeviceChoice, HiDreamBackend, Job, JobOutput,
    };
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let llama = chat_llama(dir.path());
    let mut generate = crate::prompt_cache::settings("unused", 0);
    generate.models.llama.clone_from(&llama);
    let job = AgentJob {
        model: llama,
        device: DeviceChoice::Cpu,
        conversation: Conversation::new(),
        message: "hello".into(),
        attached: None,
        generate: Ok(generate),
        edit: Err("no editor in this test".into()),
        editor_prompt: EditorPrompt::Plain,
        data_dir: None,
    };
    assert!(job.shares_llama().is_some());
    let mut engine = Engine::spawn(HiDreamBackend {
        encoder_memory: memory,
    });
    let mut loads = Vec::new();
    for _ in 0..2 {
        let id = engine.submit(Job::Agent(Box::new(job.clone())));
        loop {
            match engine
                .next_event_timeout(Duration::from_mins(2))
                .expect("an event within two minutes")
            {
                Event::Loading { what, .. } => loads.push(what),
                Event::Finished {
                    id: done, output, ..
                } => {
                    assert_eq!(done, id);
                    // The random tiny model says something; the turn ends cleanly.
                    assert!(matches!(output, JobOutput::Agent(AgentUpdate::Done(_))));
                    break;
                }
                Event::Failed { error, .. } => panic!("{error}"),
                Event::Cancelled { .. } => panic!("cancelled"),
                _ => {}
            }
        }
    }
    loads
}

#[test]
fn an_agent_turn_whose_model_is_the_text_encoder_shares_it_and_keeps_it_loaded() {
    let loads = two_turns_on_the_text_encoder(None);
    // One load for both turns: the I1 models, whose Llama the agent runs on.
    assert_eq!(loads.len(), 1, "{loads:?}");
    assert!(loads[0].contains("the agent on that Llama"), "{}", loads[0]);
}

#[test]
fn with_encoders_one_at_a_time_the_agent_loads_its_folder_and_still_answers() {
    // No resident Llama to share (set on the engine here; a small GPU's placement planner makes
    // the same choice inside the load, which AgentModels::load reads back): the turn runs on
    // the folder loaded on its own instead of failing.
    let loads = two_turns_on_the_text_encoder(Some(EncoderMemory::OneAtATime));
    assert_eq!(loads.len(), 1, "{loads:?}");
}
