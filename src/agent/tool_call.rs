//! Reading an assistant reply: a tool call in Llama-3.1's JSON format
//! (`{"name": "generate_image", "parameters": {"prompt": "..."}}`, optionally after
//! `<|python_tag|>`; `"arguments"` is accepted for `"parameters"`, and so is the OpenAI-style
//! `{"type": "function", "function": {...}}` wrapping), or plain chat text. A reply that tries to
//! be a call but is not valid becomes a chat reply with a note saying what was wrong: the
//! model's words are never lost and nothing panics.

use super::chat_template::ToolCall;
use super::json::Json;

/// What the assistant said.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A tool call. `extra_text` is whatever the model wrote around the JSON, trimmed.
    ToolCall {
        call: ToolCall,
        extra_text: Option<String>,
    },
    /// Chat text; `note` explains, for the user, why a tool call in it could not be used.
    Chat { text: String, note: Option<String> },
}

/// Llama-3.1 marks a call it makes in code with this tag; JSON calls may carry it too.
const PYTHON_TAG: &str = "<|python_tag|>";
/// End-of-turn / end-of-message markers, when the caller decoded them with the reply.
const END_MARKERS: [&str; 3] = ["<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"];

/// Splits `reply` into a tool call or chat text.
pub fn parse_reply(reply: &str) -> Reply {
    let mut text = reply.trim();
    for marker in END_MARKERS {
        text = text.strip_suffix(marker).unwrap_or(text).trim_end();
    }
    let tagged = text.starts_with(PYTHON_TAG);
    let body = text.strip_prefix(PYTHON_TAG).unwrap_or(text).trim_start();
    // A call is a JSON object; look for one at the start, else at a later `{` that opens a
    // valid call (a model sometimes says a few words first).
    let mut first_failure = None;
    for (start, _) in body.match_indices('{') {
        match read_call(&body[start..]) {
            Ok((call, rest)) => {
                let around = format!("{} {}", body[..start].trim(), rest.trim());
                let around = around.trim();
                return Reply::ToolCall {
                    call,
                    extra_text: (!around.is_empty()).then(|| around.to_owned()),
                };
            }
            Err(failure) if start == 0 => first_failure = Some(failure),
            Err(_) => {}
        }
    }
    let note = match first_failure {
        Some(failure) => Some(failure),
        // A python tag promises a call; without any JSON object that is malformed too.
        None if tagged => Some(
            "The model began a tool call but wrote no JSON object after it, so nothing was run."
                .to_owned(),
        ),
        None => None,
    };
    Reply::Chat {
        text: if note.is_some() { text } else { body }.to_owned(),
        note,
    }
}

/// The call at the start of `text` and what follows it, or a note for the user.
fn read_call(text: &str) -> Result<(ToolCall, &str), String> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Json>();
    let value = match stream.next() {
        Some(Ok(value)) => value,
        Some(Err(e)) if e.is_eof() => {
            return Err(format!(
                "The model's tool call was cut off before its JSON ended ({e}), so nothing was \
                 run. Allowing more new tokens may help."
            ));
        }
        Some(Err(e)) => {
            return Err(format!(
                "The model's tool call is not valid JSON ({e}), so nothing was run."
            ));
        }
        None => return Err("The model's tool call is empty, so nothing was run.".to_owned()),
    };
    let rest = &text[stream.byte_offset()..];
    call_from_json(&value).map(|call| (call, rest))
}

fn call_from_json(value: &Json) -> Result<ToolCall, String> {
    if !matches!(value, Json::Object(_)) {
        return Err("The model's tool call is JSON but not an object, so nothing was run.".into());
    }
    // OpenAI-style wrapping: {"type": "function", "function": {"name", "arguments"}}.
    let value = match value.get("function") {
        Some(inner @ Json::Object(_)) if value.get("name").is_none() => inner,
        _ => value,
    };
    let name = match value.get("name") {
        Some(Json::String(name)) if !name.trim().is_empty() => name.trim().to_owned(),
        Some(_) => {
            return Err(
                "The model's tool call has a `name` that is not a tool's name, so \
                        nothing was run."
                    .into(),
            );
        }
        None => {
            return Err(
                "The model's reply is JSON without a tool `name`, so nothing was run.".into(),
            );
        }
    };
    let arguments = match value.get("parameters").or_else(|| value.get("arguments")) {
        None | Some(Json::Null) => Json::Object(Vec::new()),
        Some(args @ Json::Object(_)) => args.clone(),
        // Some models write the arguments as a JSON string holding the object.
        Some(Json::String(s)) => match Json::parse(s) {
            Ok(args @ Json::Object(_)) => args,
            _ => {
                return Err(format!(
                    "The model's call of `{name}` gives its parameters as text that is not a \
                     JSON object, so nothing was run."
                ));
            }
        },
        Some(_) => {
            return Err(format!(
                "The model's call of `{name}` has parameters that are not a JSON object, so \
                 nothing was run."
            ));
        }
    };
    Ok(ToolCall { name, arguments })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(reply: &str) -> (ToolCall, Option<String>) {
        match parse_reply(reply) {
            Reply::ToolCall { call, extra_text } => (call, extra_text),
            other @ Reply::Chat { .. } => panic!("not a call: {other:?}"),
        }
    }

    fn chat(reply: &str) -> (String, Option<String>) {
        match parse_reply(reply) {
            Reply::Chat { text, note } => (text, note),
            other @ Reply::ToolCall { .. } => panic!("not chat: {other:?}"),
        }
    }

    #[test]
    fn a_llama_json_call_is_read_with_its_parameters_in_order() {
        let (c, extra) = call(
            r#" {"name": "generate_image", "parameters": {"prompt": "a red circle", "seed": 3, "guidance": 4.5}}<|eot_id|>"#,
        );
        assert_eq!(c.name, "generate_image");
        assert_eq!(
            c.arguments.to_string(),
            r#"{"prompt": "a red circle", "seed": 3, "guidance": 4.5}"#
        );
        assert_eq!(extra, None);
    }

    #[test]
    fn arguments_python_tag_and_openai_wrapping_are_accepted() {
        let (c, _) = call(
            r#"<|python_tag|>{"name": "edit_image", "arguments": {"instruction": "make it blue"}}<|eom_id|>"#,
        );
        assert_eq!(c.name, "edit_image");
        assert_eq!(
            c.arguments.get("instruction").and_then(Json::as_str),
            Some("make it blue")
        );
        let (c, _) = call(
            r#"{"type": "function", "function": {"name": "edit_image", "arguments": "{\"instruction\": \"x\"}"}}"#,
        );
        assert_eq!(
            c.arguments.get("instruction").and_then(Json::as_str),
            Some("x")
        );
        let (c, _) = call(r#"{"name": "list_images"}"#);
        assert_eq!(c.arguments, Json::Object(vec![]));
    }

    #[test]
    fn text_around_a_call_is_kept_apart() {
        let (c, extra) =
            call(r#"Sure! {"name": "generate_image", "parameters": {"prompt": "a star"}} Enjoy."#);
        assert_eq!(c.name, "generate_image");
        assert_eq!(extra.as_deref(), Some("Sure! Enjoy."));
    }

    #[test]
    fn plain_text_is_chat_without_a_note() {
        assert_eq!(
            chat("  Hello! I draw shapes.<|eot_id|>"),
            ("Hello! I draw shapes.".into(), None)
        );
        // Braces in prose that are not a call stay prose.
        assert_eq!(chat("Use {curly} braces {like this}.").1, None);
        assert_eq!(chat("").0, "");
    }

    #[test]
    fn malformed_calls_fall_back_to_chat_with_a_note() {
        let (text, note) =
            chat(r#"{"name": "generate_image", "parameters": {"prompt": "a red" circle}}"#);
        assert!(text.starts_with(r#"{"name""#));
        assert!(note.unwrap().contains("not valid JSON"));

        let (_, note) = chat(r#"{"name": "generate_image", "parameters": {"prompt": "a red ci"#);
        assert!(note.unwrap().contains("cut off"));

        let (_, note) = chat(r#"{"parameters": {"prompt": "x"}}"#);
        assert!(note.unwrap().contains("without a tool `name`"));

        let (_, note) = chat(r#"{"name": 7, "parameters": {}}"#);
        assert!(note.unwrap().contains("not a tool's name"));

        let (_, note) = chat(r#"{"name": "edit_image", "parameters": [1, 2]}"#);
        assert!(note.unwrap().contains("not a JSON object"));

        let (text, note) = chat("<|python_tag|>brave_search.call(query=\"x\")");
        assert!(text.starts_with("<|python_tag|>"));
        assert!(note.unwrap().contains("no JSON object"));
    }
}
