//! The conversational mode's protocol (`protocol.json`, shared with the agent trainer in
//! `tools/train-agent`): the system text, the two tools, and how pictures, attachments and tool
//! results are written into the conversation. Everything the model reads about pictures is
//! spelled here, so the coordinator and the trainer cannot drift apart.

use std::sync::OnceLock;

use serde::Deserialize;

use super::chat_template::{Message, RenderOptions};
use super::json::Json;

/// The protocol file, compiled in: the studio needs no file beside the binary to chat.
const PROTOCOL_JSON: &str = include_str!("protocol.json");

pub const GENERATE_TOOL: &str = "generate_image";
pub const EDIT_TOOL: &str = "edit_image";

#[derive(Debug, Clone, PartialEq)]
pub struct Protocol {
    /// The system message's text.
    pub system: String,
    /// The tools' JSON schemas, as the chat template's `tools`.
    pub tools: Vec<Json>,
}

#[derive(Deserialize)]
struct ProtocolFile {
    system: String,
    tools: Vec<Json>,
}

impl Protocol {
    /// The protocol compiled into the binary.
    pub fn bundled() -> &'static Protocol {
        static PROTOCOL: OnceLock<Protocol> = OnceLock::new();
        PROTOCOL.get_or_init(|| {
            // The file is part of the source and a unit test reads it, so it always parses;
            // an empty protocol (no tools) would still only ever chat.
            let file: Option<ProtocolFile> = serde_json::from_str(PROTOCOL_JSON).ok();
            file.map_or_else(
                || Protocol {
                    system: String::new(),
                    tools: Vec::new(),
                },
                |f| Protocol {
                    system: f.system,
                    tools: f.tools,
                },
            )
        })
    }

    pub fn system_message(&self) -> Message {
        Message::system(self.system.clone())
    }

    /// Render options offering the protocol's tools.
    pub fn render_options(&self) -> RenderOptions {
        RenderOptions {
            tools: Some(self.tools.clone()),
            ..RenderOptions::default()
        }
    }

    /// The names of the tools offered.
    pub fn tool_names(&self) -> Vec<String> {
        self.tools
            .iter()
            .filter_map(|tool| {
                tool.get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Json::as_str)
                    .map(str::to_owned)
            })
            .collect()
    }
}

/// The first line of a user message that comes with a picture.
pub fn attached_line(name: &str, description: Option<&str>) -> String {
    let description = description
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .unwrap_or("no description");
    format!("[image {name} attached: {description}]")
}

/// A tool message's JSON object in compact form (no spaces, non-ASCII as is), keys in order:
/// the form the agent trainer writes (`json.dumps(obj, separators=(",", ":"),
/// ensure_ascii=False)` in tools/train-agent/conversations.py).
fn object(entries: &[(&str, &str)]) -> String {
    let object = Json::Object(
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Json::String((*v).to_owned())))
            .collect(),
    );
    // Strings and objects always serialise; the fallback is never reached.
    serde_json::to_string(&object).unwrap_or_default()
}

/// The tool message after `generate_image` made picture `name`.
pub fn generated_result(name: &str, prompt: &str) -> String {
    object(&[("image", name), ("prompt", prompt)])
}

/// The tool message after `edit_image` turned `source` into `edited`.
pub fn edited_result(source: &str, edited: &str, instruction: &str) -> String {
    object(&[
        ("image", source),
        ("edited", edited),
        ("instruction", instruction),
    ])
}

/// The tool message after a call that failed, was refused or was cancelled.
pub fn error_result(error: &str) -> String {
    object(&[("error", error)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_protocol_parses_with_its_two_tools() {
        let file: ProtocolFile = serde_json::from_str(PROTOCOL_JSON).unwrap();
        assert!(!file.system.is_empty());
        let protocol = Protocol::bundled();
        assert_eq!(protocol.system, file.system);
        assert_eq!(protocol.tool_names(), [GENERATE_TOOL, EDIT_TOOL]);
    }

    #[test]
    fn tool_results_and_attachments_are_written_as_the_protocol_says() {
        assert_eq!(
            generated_result("#1", "a red \"circle\" ×"),
            r##"{"image":"#1","prompt":"a red \"circle\" ×"}"##
        );
        assert_eq!(
            edited_result("#1", "#2", "make it blue"),
            r##"{"image":"#1","edited":"#2","instruction":"make it blue"}"##
        );
        assert_eq!(error_result("no"), r#"{"error":"no"}"#);
        assert_eq!(
            attached_line("#3", Some(" a cat ")),
            "[image #3 attached: a cat]"
        );
        assert_eq!(
            attached_line("#3", Some("")),
            "[image #3 attached: no description]"
        );
    }
}
