//! A model's own chat template (the Jinja `chat_template` of its tokenizer_config.json)
//! rendered as transformers' `apply_chat_template` renders it (`render_jinja_template` in
//! transformers 5.23.0's `utils/chat_template_utils.py`): Jinja with `trim_blocks` and
//! `lstrip_blocks`, loop controls, transformers' `tojson`, `raise_exception` and
//! `strftime_now`, Python's string and dict methods, and the variables `messages`, `tools`,
//! `documents`, `add_generation_prompt`, the special tokens and any extra ones the caller
//! passes (`date_string`, `tools_in_user_message`, ...).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error, ErrorKind, Value};

use super::json::{Json, tojson_filter};
use crate::weights::{WeightsError, read_json};

const TEMPLATE_NAME: &str = "chat_template";
/// The file transformers saves a model's single chat template in, beside tokenizer_config.json.
const TEMPLATE_FILE: &str = "chat_template.jinja";

/// Who speaks. `Ipython` is Llama-3.1's name for a tool's result; its template treats `tool`
/// the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
    Ipython,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
            Self::Ipython => "ipython",
        }
    }
}

/// A call of one of the tools the model was offered: `{"name": ..., "parameters": {...}}` in
/// Llama-3.1's words (`arguments` in transformers' message format).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    pub arguments: Json,
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    /// `None` leaves the `content` key out (an assistant turn that only calls a tool).
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(content.into()),
            tool_calls: Vec::new(),
        }
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// A tool's result, to show the model.
    pub fn tool(content: impl Into<String>) -> Self {
        Self::new(Role::Tool, content)
    }

    /// An assistant turn that calls `call`.
    pub fn tool_call(call: ToolCall) -> Self {
        Self {
            role: Role::Assistant,
            content: None,
            tool_calls: vec![call],
        }
    }

    /// The message as transformers hands it to the template: `role`, `content` when set and
    /// `tool_calls` (`[{"type": "function", "function": {"name", "arguments"}}]`) when any.
    fn to_value(&self) -> Value {
        let mut map = IndexMap::new();
        map.insert(Value::from("role"), Value::from(self.role.as_str()));
        if let Some(content) = &self.content {
            map.insert(Value::from("content"), Value::from(content.as_str()));
        }
        if !self.tool_calls.is_empty() {
            let calls: Vec<Value> = self
                .tool_calls
                .iter()
                .map(|call| {
                    let function = ordered_map([
                        ("name", Value::from(call.name.as_str())),
                        ("arguments", call.arguments.to_value()),
                    ]);
                    ordered_map([("type", Value::from("function")), ("function", function)])
                })
                .collect();
            map.insert(Value::from("tool_calls"), Value::from(calls));
        }
        Value::from(map)
    }
}

/// What to render besides the messages.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// JSON schemas of the tools the model may call (`tools` is `none` without).
    pub tools: Option<Vec<Json>>,
    /// End with the header that makes the model answer as the assistant.
    pub add_generation_prompt: bool,
    /// Further template variables (`date_string`, `tools_in_user_message`, ...).
    pub extra: Vec<(String, Json)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
    #[error(transparent)]
    Config(#[from] WeightsError),

    #[error(
        "{path} has no `chat_template` and there is no chat_template.jinja beside it: this model \
         does not say how to lay out a conversation. Use an instruction-tuned (chat) model, \
         which has one of them"
    )]
    Missing { path: PathBuf },

    #[error("the chat template of {origin} is not valid Jinja: {cause}")]
    Syntax { origin: String, cause: Box<Error> },

    /// The template refused the conversation (its `raise_exception`) or failed on it.
    #[error("the chat template could not lay out this conversation: {message}")]
    Render { message: String },
}

/// A compiled chat template with the tokenizer's special tokens.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// `bos_token`, `eos_token`, ... as strings.
    special_tokens: Vec<(String, String)>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("special_tokens", &self.special_tokens)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source`. `origin` names where it came from, for errors.
    pub fn new(
        source: &str,
        special_tokens: Vec<(String, String)>,
        origin: &str,
    ) -> Result<Self, ChatTemplateError> {
        let syntax_error = |e: Error| ChatTemplateError::Syntax {
            origin: origin.to_owned(),
            cause: Box::new(e),
        };
        let mut env = Environment::new();
        env.set_syntax(
            SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .map_err(syntax_error)?,
        );
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        super::py_compat::install(&mut env);
        env.add_filter("tojson", tojson_filter);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(syntax_error)?;
        Ok(Self {
            env,
            special_tokens,
        })
    }

    /// The template and special tokens of a model folder's tokenizer_config.json. A list of
    /// named templates (some models ship several) gives its `default`. A `chat_template.jinja`
    /// beside it wins, as in transformers (which has saved templates there since 4.50:
    /// `PreTrainedTokenizerBase.from_pretrained`, "independent chat template file(s) ... take
    /// priority").
    pub fn from_tokenizer_config(path: &Path) -> Result<Self, ChatTemplateError> {
        let config: serde_json::Value = read_json(path, "tokenizer config")?;
        let jinja_path = path.with_file_name(TEMPLATE_FILE);
        if jinja_path.is_file() {
            let source = std::fs::read_to_string(&jinja_path)
                .map_err(|e| WeightsError::io(&jinja_path, e))?;
            return Self::new(
                &source,
                special_tokens(&config),
                &jinja_path.display().to_string(),
            );
        }
        let source = match config.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Array(named)) => named
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(str::to_owned)),
            _ => None,
        };
        let source = source.ok_or_else(|| ChatTemplateError::Missing {
            path: path.to_path_buf(),
        })?;
        Self::new(
            &source,
            special_tokens(&config),
            &path.display().to_string(),
        )
    }

    /// The special token `name` (`bos_token`, `eos_token`, ...) if the tokenizer has it.
    pub fn special_token(&self, name: &str) -> Option<&str> {
        self.special_tokens
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The conversation as the model reads it.
    pub fn render(
        &self,
        messages: &[Message],
        options: &RenderOptions,
    ) -> Result<String, ChatTemplateError> {
        let mut ctx = IndexMap::new();
        ctx.insert(
            Value::from("messages"),
            Value::from(messages.iter().map(Message::to_value).collect::<Vec<_>>()),
        );
        let tools = options.tools.as_ref().map_or(Value::from(()), |tools| {
            Value::from(tools.iter().map(Json::to_value).collect::<Vec<_>>())
        });
        ctx.insert(Value::from("tools"), tools);
        ctx.insert(Value::from("documents"), Value::from(()));
        ctx.insert(
            Value::from("add_generation_prompt"),
            Value::from(options.add_generation_prompt),
        );
        for (k, v) in &self.special_tokens {
            ctx.insert(Value::from(k.as_str()), Value::from(v.as_str()));
        }
        for (k, v) in &options.extra {
            ctx.insert(Value::from(k.as_str()), v.to_value());
        }
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| render_error(&e))?;
        template
            .render(Value::from(ctx))
            .map_err(|e| render_error(&e))
    }
}

/// A map that keeps `entries` in order, as a Python dict literal does.
fn ordered_map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::from(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect::<IndexMap<Value, Value>>(),
    )
}

fn render_error(e: &Error) -> ChatTemplateError {
    // A template's own raise_exception carries the message the template's authors wrote.
    let message = match e.kind() {
        ErrorKind::InvalidOperation => e.detail().map_or_else(|| e.to_string(), str::to_owned),
        _ => e.to_string(),
    };
    ChatTemplateError::Render { message }
}

/// The special tokens of a tokenizer_config.json as transformers passes them
/// (`special_tokens_map`): each token as its text, whether written as a string or as an
/// AddedToken object with `content`.
fn special_tokens(config: &serde_json::Value) -> Vec<(String, String)> {
    ["bos_token", "eos_token", "unk_token", "pad_token"]
        .iter()
        .filter_map(|&key| {
            let token = match config.get(key)? {
                serde_json::Value::String(s) => s.clone(),
                other => other.get("content")?.as_str()?.to_owned(),
            };
            Some((key.to_owned(), token))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_that_raises_gives_its_message() {
        let t =
            ChatTemplate::new("{{ raise_exception('no system role') }}", vec![], "test").unwrap();
        let err = t.render(&[], &RenderOptions::default()).unwrap_err();
        assert!(err.to_string().contains("no system role"), "{err}");
    }

    #[test]
    fn broken_jinja_is_a_syntax_error_naming_its_origin() {
        let err = ChatTemplate::new("{% if %}", vec![], "model/tokenizer_config.json").unwrap_err();
        assert!(matches!(err, ChatTemplateError::Syntax { .. }));
        assert!(
            err.to_string().contains("model/tokenizer_config.json"),
            "{err}"
        );
    }

    #[test]
    fn a_chat_template_file_beside_the_config_wins_over_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tokenizer_config.json");
        std::fs::write(
            &config,
            r#"{"chat_template": "from the config", "bos_token": {"content": "<s>"}}"#,
        )
        .unwrap();
        let render = |t: ChatTemplate| t.render(&[], &RenderOptions::default()).unwrap();
        assert_eq!(
            render(ChatTemplate::from_tokenizer_config(&config).unwrap()),
            "from the config"
        );
        std::fs::write(
            dir.path().join(TEMPLATE_FILE),
            "{{ bos_token }}from the file",
        )
        .unwrap();
        let t = ChatTemplate::from_tokenizer_config(&config).unwrap();
        assert_eq!(t.special_token("bos_token"), Some("<s>"));
        assert_eq!(render(t), "<s>from the file");
    }

    #[test]
    fn no_template_anywhere_names_both_places() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tokenizer_config.json");
        std::fs::write(&config, "{}").unwrap();
        let err = ChatTemplate::from_tokenizer_config(&config).unwrap_err();
        assert!(matches!(err, ChatTemplateError::Missing { .. }));
        assert!(err.to_string().contains("chat_template.jinja"), "{err}");
    }
}
