//! A language model that answers from a script: tests of the coordinator, the chat panel and
//! the `agent` command use it to make the model say exactly what a case needs.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use super::chat_model::ChatError;
use super::chat_template::{Message, RenderOptions};
use super::language_model::{AgentOptions, LanguageModel, ModelTurn};
use super::tool_call::parse_reply;

/// Said once the script has run out.
pub const SCRIPT_ENDED: &str = "(the scripted replies ran out)";

/// Answers each prompt with the next reply of its script, read as the real model's text is
/// (a tool call in Llama-3.1's JSON, or chat).
#[derive(Debug, Default)]
pub struct ScriptedModel {
    replies: Mutex<VecDeque<String>>,
}

impl ScriptedModel {
    pub fn new(replies: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            replies: Mutex::new(replies.into_iter().map(Into::into).collect()),
        }
    }

    /// Replies not yet given.
    pub fn remaining(&self) -> usize {
        self.replies.lock().map_or(0, |r| r.len())
    }
}

impl LanguageModel for ScriptedModel {
    fn respond(
        &self,
        _messages: &[Message],
        _render: &RenderOptions,
        _options: &AgentOptions,
        _cancel: &AtomicBool,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ModelTurn, ChatError> {
        let next = self
            .replies
            .lock()
            .ok()
            .and_then(|mut replies| replies.pop_front());
        let text = next.unwrap_or_else(|| SCRIPT_ENDED.to_owned());
        on_text(&text);
        Ok(ModelTurn {
            reply: parse_reply(&text),
            text,
            dropped: 0,
            cancelled: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chat panel runs turns on a worker thread: the models must move there.
    #[test]
    fn the_models_can_move_to_another_thread() {
        fn send<T: Send + Sync>() {}
        send::<ScriptedModel>();
        send::<crate::agent::ChatModel>();
    }

    #[test]
    fn replies_come_in_order_then_the_script_ends() {
        let model = ScriptedModel::new(["hello", r#"{"name": "x"}"#]);
        let cancel = AtomicBool::new(false);
        let mut said = String::new();
        let mut ask = || {
            model
                .respond(
                    &[],
                    &RenderOptions::default(),
                    &AgentOptions::default(),
                    &cancel,
                    &mut |t| said.push_str(t),
                )
                .unwrap()
                .reply
        };
        assert!(matches!(ask(), super::super::Reply::Chat { text, .. } if text == "hello"));
        assert!(matches!(ask(), super::super::Reply::ToolCall { .. }));
        assert!(matches!(ask(), super::super::Reply::Chat { text, .. } if text == SCRIPT_ENDED));
        assert_eq!(model.remaining(), 0);
    }
}
