//! The model behind the agent: what it said for one prompt, how likely it finds other replies,
//! and the options of a turn. [`ChatModel`] is the real one; tests script theirs.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};

use super::chat_model::{ChatError, ChatModel};
use super::chat_template::{Message, RenderOptions};
use super::context::FittedPrompt;
use super::generate::GenerateOptions;
use super::tool_call::Reply;

/// What the language model said for one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelTurn {
    pub reply: Reply,
    /// The reply's text as generated (special tokens included), which
    /// [`LanguageModel::score_replies`] can score other versions of.
    pub text: String,
    /// Oldest messages left out so that the prompt fits the model's window.
    pub dropped: usize,
    /// The cancel flag stopped generation before the model finished.
    pub cancelled: bool,
}

/// The model behind the agent: [`ChatModel`], or scripted replies in tests.
pub trait LanguageModel {
    /// The assistant's next message after `messages` (system message first). `on_text`
    /// receives the reply's text as it is generated; `cancel` is checked between tokens.
    fn respond(
        &self,
        messages: &[Message],
        render: &RenderOptions,
        options: &AgentOptions,
        cancel: &AtomicBool,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ModelTurn, ChatError>;

    /// The log-likelihood of each of `replies` as the assistant's next message after
    /// `messages` (the whole text, its end marker included), or `None` for a model that cannot
    /// score text (a scripted one): the planner then runs calls as they were written.
    fn score_replies(
        &self,
        _messages: &[Message],
        _render: &RenderOptions,
        _options: &AgentOptions,
        _replies: &[String],
        _cancel: &AtomicBool,
    ) -> Result<Option<Vec<f64>>, ChatError> {
        Ok(None)
    }
}

impl<T: LanguageModel + ?Sized> LanguageModel for Box<T> {
    fn respond(
        &self,
        messages: &[Message],
        render: &RenderOptions,
        options: &AgentOptions,
        cancel: &AtomicBool,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ModelTurn, ChatError> {
        (**self).respond(messages, render, options, cancel, on_text)
    }

    fn score_replies(
        &self,
        messages: &[Message],
        render: &RenderOptions,
        options: &AgentOptions,
        replies: &[String],
        cancel: &AtomicBool,
    ) -> Result<Option<Vec<f64>>, ChatError> {
        (**self).score_replies(messages, render, options, replies, cancel)
    }
}

impl LanguageModel for ChatModel {
    fn respond(
        &self,
        messages: &[Message],
        render: &RenderOptions,
        options: &AgentOptions,
        cancel: &AtomicBool,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ModelTurn, ChatError> {
        let (fitted, generate) = self.turn_prompt(messages, render, options)?;
        let mut stream = self.text_stream();
        let mut stream_error = None;
        let generated = self.generate_ids(&fitted.ids, &generate, |id| {
            match stream.push(id) {
                Ok(piece) if !piece.is_empty() => on_text(&piece),
                Ok(_) => {}
                Err(e) => stream_error = Some(e),
            }
            if cancel.load(Ordering::Relaxed) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        if let Some(e) = stream_error {
            return Err(e);
        }
        let text = self.decode(&generated.ids)?;
        Ok(ModelTurn {
            reply: super::tool_call::parse_reply(&text),
            text,
            dropped: fitted.dropped,
            cancelled: generated.stop == super::generate::StopReason::Cancelled,
        })
    }

    fn score_replies(
        &self,
        messages: &[Message],
        render: &RenderOptions,
        options: &AgentOptions,
        replies: &[String],
        cancel: &AtomicBool,
    ) -> Result<Option<Vec<f64>>, ChatError> {
        // The prompt `respond` read.
        let (fitted, _) = self.turn_prompt(messages, render, options)?;
        let replies = replies
            .iter()
            .map(|r| self.encode(r))
            .collect::<Result<Vec<_>, _>>()?;
        self.log_likelihoods(&fitted.ids, &replies, cancel)
    }
}

impl ChatModel {
    /// The prompt of the assistant's next message and the decoding options of a turn: the
    /// reply needs room too, so the prompt gets what the window leaves it.
    fn turn_prompt(
        &self,
        messages: &[Message],
        render: &RenderOptions,
        options: &AgentOptions,
    ) -> Result<(FittedPrompt, GenerateOptions), ChatError> {
        let mut generate = self.generation_config().options(options.seed);
        if let Some(max) = options.max_new_tokens {
            generate.max_new_tokens = max;
        }
        let window = options.context_tokens.unwrap_or(DEFAULT_CONTEXT_TOKENS);
        let render = RenderOptions {
            add_generation_prompt: true,
            ..render.clone()
        };
        let fitted = self.prompt_within(
            messages,
            &render,
            window.saturating_sub(generate.max_new_tokens).max(1),
        )?;
        Ok((fitted, generate))
    }
}

/// Tokens the model reads at once unless told otherwise: Llama-3.1 takes far more (RoPE has
/// no fixed table), but the prompt's KV cache and attention grow with it, and a chat about
/// pictures rarely needs more.
pub const DEFAULT_CONTEXT_TOKENS: usize = 8192;

#[derive(Debug, Clone, PartialEq)]
pub struct AgentOptions {
    /// Seed of sampled decoding (models whose generation config samples).
    pub seed: u64,
    /// At most this many jobs in one turn.
    pub max_jobs: usize,
    /// Tokens the model may read at once (prompt and reply): [`DEFAULT_CONTEXT_TOKENS`].
    pub context_tokens: Option<usize>,
    /// New tokens per reply, instead of the model's generation config.
    pub max_new_tokens: Option<usize>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            max_jobs: 4,
            context_tokens: None,
            max_new_tokens: None,
        }
    }
}
