//! The conversational mode's language-model core: a Llama chat model's own chat template,
//! the generation loop (KV cache, greedy or seeded sampling, stop tokens and strings) and the
//! reading of its replies as tool calls (Llama-3.1's JSON format) or chat. The coordinator and
//! planner that turn replies into jobs build on this.

mod chat_model;
mod chat_template;
mod context;
mod generate;
mod gguf;
mod json;
mod py_compat;
pub mod sampling;
mod tool_call;

pub use chat_model::{ChatError, ChatModel, ChatReply};
pub use chat_template::{ChatTemplate, ChatTemplateError, Message, RenderOptions, Role, ToolCall};
pub use context::{FittedPrompt, TextStream};
pub use generate::{
    DEFAULT_MAX_NEW_TOKENS, Decoding, GenerateError, GenerateOptions, Generated, GenerationConfig,
    StopReason, generate,
};
pub use json::Json;
pub use sampling::SamplingParams;
pub use tool_call::{Reply, parse_reply};
