//! A chat model from its Hugging Face folder: config.json, generation_config.json, the weights
//! (one safetensors file or shards), tokenizer.json and tokenizer_config.json with the chat
//! template (or the template in chat_template.jinja beside it). It lays a conversation out with
//! the template, tokenizes it, generates and reads the reply as a tool call or chat text.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor};
use candle_nn::ops::log_softmax;
use tokenizers::Tokenizer;

use super::chat_template::{ChatTemplate, ChatTemplateError, Message, RenderOptions};
use super::generate::{GenerateError, GenerateOptions, Generated, GenerationConfig, generate};
use super::tool_call::{Reply, parse_reply};
use crate::host_reads;
use crate::models::LoadError;
use crate::models::text::{KvCache, LlamaForCausalLM, load_causal_lm};
use crate::weights::WeightsError;

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error(transparent)]
    Load(#[from] LoadError),

    #[error(transparent)]
    Template(#[from] ChatTemplateError),

    #[error(transparent)]
    Generate(#[from] GenerateError),

    #[error("{path}: {detail}")]
    Tokenizer { path: PathBuf, detail: String },

    #[error("{path} cannot be used as a chat model: {detail}")]
    NotAChatGguf { path: PathBuf, detail: String },

    #[error(
        "the latest message alone takes {tokens} tokens, more than the {max_tokens} the model \
         can read at once: shorten it"
    )]
    TooLong { tokens: usize, max_tokens: usize },
}

impl From<WeightsError> for ChatError {
    fn from(e: WeightsError) -> Self {
        Self::Load(LoadError::Weights(e))
    }
}

/// The model's answer to a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatReply {
    /// The new tokens and why they ended.
    pub generated: Generated,
    /// Their text, special tokens included (`<|eot_id|>`, `<|python_tag|>`, ...).
    pub text: String,
    /// The text read as a tool call or chat.
    pub reply: Reply,
}

#[derive(Debug)]
pub struct ChatModel {
    lm: LlamaForCausalLM,
    tokenizer: Tokenizer,
    tokenizer_path: PathBuf,
    template: ChatTemplate,
    generation: GenerationConfig,
}

impl ChatModel {
    /// Loads a Llama chat model folder in f32 on `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, ChatError> {
        let lm = load_causal_lm(dir, DType::F32, device)?;
        Self::with_language_model(dir, lm)
    }

    /// A chat model over an already loaded language model (one sharing the text encoder's
    /// weights, say: [`LlamaForCausalLM::from_encoder`]), with the tokenizer, chat template and
    /// generation config of its folder `dir`.
    pub fn with_language_model(dir: &Path, lm: LlamaForCausalLM) -> Result<Self, ChatError> {
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| ChatError::Tokenizer {
                path: tokenizer_path.clone(),
                detail: format!("does not load as a tokenizer: {e}"),
            })?;
        Ok(Self {
            lm,
            tokenizer,
            tokenizer_path,
            template: ChatTemplate::from_tokenizer_config(&dir.join("tokenizer_config.json"))?,
            generation: GenerationConfig::read(dir)?,
        })
    }

    /// A chat model from parts read elsewhere (a GGUF file's, say).
    pub(super) fn from_parts(
        lm: LlamaForCausalLM,
        tokenizer: Tokenizer,
        tokenizer_path: &Path,
        template: ChatTemplate,
        generation: GenerationConfig,
    ) -> Self {
        Self {
            lm,
            tokenizer,
            tokenizer_path: tokenizer_path.to_path_buf(),
            template,
            generation,
        }
    }

    pub fn generation_config(&self) -> &GenerationConfig {
        &self.generation
    }

    pub fn language_model(&self) -> &LlamaForCausalLM {
        &self.lm
    }

    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// The conversation as the model reads it: the rendered text and its token ids (the
    /// template writes the special tokens itself, so none are added).
    pub fn prompt(
        &self,
        messages: &[Message],
        options: &RenderOptions,
    ) -> Result<(String, Vec<u32>), ChatError> {
        let text = self.template.render(messages, options)?;
        let ids = self.encode(&text)?;
        Ok((text, ids))
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ChatError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| self.tokenizer_error(format!("could not tokenize the prompt: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String, ChatError> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| self.tokenizer_error(format!("could not decode tokens: {e}")))
    }

    /// Continues the token ids `prompt`.
    pub fn generate_ids(
        &self,
        prompt: &[u32],
        options: &GenerateOptions,
        on_token: impl FnMut(u32) -> ControlFlow<()>,
    ) -> Result<Generated, ChatError> {
        let decode = |ids: &[u32]| self.tokenizer.decode(ids, false).map_err(|e| e.to_string());
        Ok(generate(&self.lm, prompt, options, &decode, on_token)?)
    }

    /// The log-likelihood (natural log, f64 sum of f32 log-softmax values) of each of
    /// `continuations` after `prompt`: all but the prompt's last token are read once, and each
    /// continuation from a copy of that cache, after the last token (whose logits predict the
    /// continuation's first). `cancel` is checked between continuations.
    pub fn log_likelihoods(
        &self,
        prompt: &[u32],
        continuations: &[Vec<u32>],
        cancel: &AtomicBool,
    ) -> Result<Option<Vec<f64>>, ChatError> {
        let Some((&last, read)) = prompt.split_last() else {
            return Err(GenerateError::EmptyPrompt.into());
        };
        let model = |e: candle_core::Error| ChatError::Generate(GenerateError::Model(e));
        let mut cache = KvCache::new();
        if !read.is_empty() {
            self.lm.forward(read, &mut cache).map_err(model)?;
        }
        let mut out = Vec::with_capacity(continuations.len());
        for ids in continuations {
            if cancel.load(Ordering::Relaxed) {
                return Ok(None);
            }
            if ids.is_empty() {
                out.push(0.0);
                continue;
            }
            // Row i of the logits predicts ids[i]: the prompt's last token, then all but the
            // continuation's last.
            let fed: Vec<u32> = std::iter::once(last)
                .chain(ids[..ids.len() - 1].iter().copied())
                .collect();
            let logits = self
                .lm
                .forward_all(&fed, &mut cache.clone())
                .map_err(model)?;
            let picked = Tensor::new(ids.as_slice(), logits.device())
                .and_then(|next| next.unsqueeze(1))
                .and_then(|next| log_softmax(&logits, 1)?.gather(&next, 1))
                .map_err(model)?;
            let picked: Vec<f32> = host_reads::to_vec1(&picked).map_err(model)?;
            out.push(picked.iter().map(|&p| f64::from(p)).sum());
        }
        Ok(Some(out))
    }

    /// The assistant's next turn in `messages`.
    pub fn reply(
        &self,
        messages: &[Message],
        render: &RenderOptions,
        options: &GenerateOptions,
        on_token: impl FnMut(u32) -> ControlFlow<()>,
    ) -> Result<ChatReply, ChatError> {
        let render = RenderOptions {
            add_generation_prompt: true,
            ..render.clone()
        };
        let (_, prompt) = self.prompt(messages, &render)?;
        let generated = self.generate_ids(&prompt, options, on_token)?;
        let text = self.decode(&generated.ids)?;
        let reply = parse_reply(&text);
        Ok(ChatReply {
            generated,
            text,
            reply,
        })
    }

    fn tokenizer_error(&self, detail: String) -> ChatError {
        ChatError::Tokenizer {
            path: self.tokenizer_path.clone(),
            detail,
        }
    }
}
