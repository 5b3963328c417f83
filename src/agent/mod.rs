//! The conversational mode's language-model core: a Llama chat model's own chat template,
//! the generation loop (KV cache, greedy or seeded sampling, stop tokens and strings) and the
//! reading of its replies as tool calls (Llama-3.1's JSON format) or chat; then the coordinator
//! (one turn of a conversation: replies into jobs, jobs through a runner, results back to the
//! model), the grounding of an edit in the objects its picture shows, and the planner's prompt
//! rules.

mod chat_model;
mod chat_template;
mod context;
mod conversation;
mod coordinator;
mod generate;
mod gguf;
mod grounding;
mod json;
mod language_model;
mod planner;
mod protocol;
mod py_compat;
pub mod sampling;
mod scripted;
mod tool_call;

pub use chat_model::{ChatError, ChatModel, ChatReply};
pub use chat_template::{ChatTemplate, ChatTemplateError, Message, RenderOptions, Role, ToolCall};
pub use context::{FittedPrompt, TextStream};
pub use conversation::{
    Conversation, ConversationError, ConversationMessage, Picture, PictureOrigin, SavedCall,
    Speaker, picture_name,
};
pub use coordinator::{
    Action, Agent, AgentError, AgentEvent, Attachment, DryRun, JobRunner, NO_PICTURE_TO_EDIT,
    TurnOutcome,
};
pub use generate::{
    DEFAULT_MAX_NEW_TOKENS, Decoding, GenerateError, GenerateOptions, Generated, GenerationConfig,
    StopReason, generate,
};
pub use json::Json;
pub use language_model::{AgentOptions, DEFAULT_CONTEXT_TOKENS, LanguageModel, ModelTurn};
pub use planner::{
    EditorPrompt, Job, edit_description, edit_prompt, planned_picture, target_description,
};
pub use protocol::{
    EDIT_TOOL, GENERATE_TOOL, Protocol, attached_line, edited_result, error_result,
    generated_result,
};
pub use sampling::SamplingParams;
pub use scripted::{SCRIPT_ENDED, ScriptedModel};
pub use tool_call::{Reply, parse_reply};
