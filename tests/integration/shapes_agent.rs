//! The bundled agent model (assets/models/shapes-agent, trained by tools/train-agent) in our
//! runtime: held-out requests laid out with the protocol's system text and tools
//! (src/agent/protocol.json) render and tokenize exactly as transformers did, and greedy
//! decoding gives transformers' token ids and the tool call the request asks for
//! (tests/fixtures/agent/cases.json, written by tools/train-agent/evaluate.py).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use candle_core::Device;
use hidream_studio::agent::{ChatModel, GenerateOptions, Json, Message, Reply, Role};
use serde_json::Value;

use crate::chat_lm::{conversation, ids};
use crate::common::fixtures;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bundle() -> PathBuf {
    repo().join("assets/models/shapes-agent")
}

fn read_json(path: &Path) -> Json {
    Json::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn cases() -> Vec<Json> {
    match read_json(&fixtures().join("agent/cases.json")).get("cases") {
        Some(Json::Array(cases)) => cases.clone(),
        _ => panic!("cases.json has no cases"),
    }
}

/// The call a case expects: the tool's name and its arguments in the tool's own key order.
fn expected_call(expect: &Value) -> (String, Json) {
    let text = |key: &str| {
        (
            key.to_owned(),
            Json::String(expect[key].as_str().unwrap().into()),
        )
    };
    match expect["action"].as_str().unwrap() {
        "generate" => ("generate_image".into(), Json::Object(vec![text("prompt")])),
        "edit" => (
            "edit_image".into(),
            Json::Object(vec![text("image"), text("instruction")]),
        ),
        other => panic!("case expects {other}, not a call"),
    }
}

#[test]
fn the_bundled_agent_answers_heldout_requests_as_transformers_does() {
    let protocol = read_json(&repo().join("src/agent/protocol.json"));
    let tools = match protocol.get("tools") {
        Some(Json::Array(tools)) => tools.clone(),
        _ => panic!("protocol.json has no tools"),
    };
    let system = protocol.get("system").and_then(Json::as_str).unwrap();
    let chat = ChatModel::load(&bundle(), &Device::Cpu).unwrap();
    let eos = chat.generation_config().eos_token_ids.clone();
    assert_eq!(eos.len(), 2, "<|eot_id|> and <|eom_id|>");
    let cases = cases();
    assert_eq!(cases.len(), 3);
    for case in &cases {
        let plain = serde_json::to_value(case).unwrap();
        let name = plain["id"].as_str().unwrap();
        let (messages, mut options) = conversation(case);
        // The trainer's system message is the protocol's, word for word.
        assert_eq!(messages[0], Message::system(system), "{name}");
        assert_eq!(messages.last().unwrap().role, Role::User, "{name}");
        options.tools = Some(tools.clone());
        options.add_generation_prompt = true;
        let date = plain["date_string"].as_str().unwrap().to_owned();
        options.extra = vec![("date_string".into(), Json::String(date))];

        let (text, prompt) = chat.prompt(&messages, &options).unwrap();
        assert_eq!(
            text,
            plain["rendered"].as_str().unwrap(),
            "{name}: rendering"
        );
        assert_eq!(prompt, ids(&plain["prompt_ids"]), "{name}: prompt ids");

        let max_new = plain["max_new_tokens"].as_u64().unwrap() as usize;
        // transformers' greedy choice is only reproducible while the top two logits stay
        // apart by more than float noise; the fixture records the smallest gap met.
        assert!(plain["min_top2_gap"].as_f64().unwrap() > 1e-3, "{name}");
        let options_gen = GenerateOptions::greedy(max_new, eos.clone());
        let reply = chat
            .reply(&messages, &options, &options_gen, |_| {
                ControlFlow::Continue(())
            })
            .unwrap();
        println!("{name}: {}", reply.text);
        assert_eq!(
            reply.generated.ids,
            ids(&plain["new_ids"]),
            "{name}: greedy ids"
        );
        let Reply::ToolCall { call, extra_text } = reply.reply else {
            panic!("{name}: no tool call in {:?}", reply.text);
        };
        assert_eq!(extra_text, None, "{name}");
        let (tool, arguments) = expected_call(&plain["expect"]);
        assert_eq!(call.name, tool, "{name}");
        assert_eq!(call.arguments, arguments, "{name}");
    }
}
