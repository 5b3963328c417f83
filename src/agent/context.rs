//! Fitting a conversation into the model's window, and turning generated tokens into text as
//! they arrive.

use super::chat_model::{ChatError, ChatModel};
use super::chat_template::{Message, RenderOptions, Role};

/// A prompt that fits, and how many of the oldest messages had to go for it.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedPrompt {
    pub text: String,
    pub ids: Vec<u32>,
    /// Messages left out from the start of the conversation (after its system message).
    pub dropped: usize,
}

impl ChatModel {
    /// The conversation's prompt in at most `max_tokens` tokens: the system message (if it
    /// opens the conversation) and the latest message always stay; the oldest messages go
    /// first, and a kept part never starts with an assistant or tool turn, which would have
    /// lost the request it answered.
    pub fn prompt_within(
        &self,
        messages: &[Message],
        options: &RenderOptions,
        max_tokens: usize,
    ) -> Result<FittedPrompt, ChatError> {
        let system = usize::from(messages.first().is_some_and(|m| m.role == Role::System));
        let mut start = system;
        loop {
            let kept: Vec<Message> = messages[..system]
                .iter()
                .chain(&messages[start..])
                .cloned()
                .collect();
            let (text, ids) = self.prompt(&kept, options)?;
            if ids.len() <= max_tokens {
                return Ok(FittedPrompt {
                    text,
                    ids,
                    dropped: start - system,
                });
            }
            // Drop the oldest message, then any answers left without their question.
            if start + 1 >= messages.len() {
                return Err(ChatError::TooLong {
                    tokens: ids.len(),
                    max_tokens,
                });
            }
            start += 1;
            while start + 1 < messages.len() && messages[start].role != Role::User {
                start += 1;
            }
        }
    }

    /// A decoder for the tokens of one reply, to show the text while it is generated.
    pub fn text_stream(&self) -> TextStream<'_> {
        TextStream {
            model: self,
            ids: Vec::new(),
            sent: 0,
        }
    }
}

/// Turns a reply's tokens into text piece by piece. Byte-level tokens can end inside a UTF-8
/// character; such a tail is held back until the next token completes it.
#[derive(Debug)]
pub struct TextStream<'a> {
    model: &'a ChatModel,
    ids: Vec<u32>,
    /// Bytes of the decoded text already handed out.
    sent: usize,
}

impl TextStream<'_> {
    /// The text that `id` completes (often a word or part of one; empty while a character
    /// is incomplete).
    pub fn push(&mut self, id: u32) -> Result<String, ChatError> {
        self.ids.push(id);
        let text = self.model.decode(&self.ids)?;
        // An incomplete character decodes as U+FFFD at the very end.
        let ready = text.trim_end_matches('\u{FFFD}');
        let piece = ready.get(self.sent..).unwrap_or_default().to_owned();
        self.sent = self.sent.max(ready.len());
        Ok(piece)
    }

    /// Whatever is still held back (an incomplete character at the end of the reply).
    pub fn finish(self) -> Result<String, ChatError> {
        let text = self.model.decode(&self.ids)?;
        Ok(text.get(self.sent..).unwrap_or_default().to_owned())
    }
}
