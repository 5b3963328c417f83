//! A conversation with the agent: its messages and the pictures in it, saved as a JSON file
//! (`agent --conversation FILE`) or in the history database. Messages are only ever appended;
//! saving refuses a file whose messages are not a prefix of ours (written by someone else
//! meanwhile, or not a conversation at all), so nothing a user kept is overwritten.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::chat_template::{Message, Role, ToolCall};
use super::json::Json;
use super::protocol::Protocol;
use crate::store::{WriteError, write_atomically};

/// The file format's version, written in every file.
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("could not read the conversation file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error(
        "{path} is not a conversation file of HiDream Studio ({detail}); it was left as it is: \
         name another file with --conversation, or move this one away"
    )]
    Invalid { path: PathBuf, detail: String },

    #[error(
        "{path} changed since it was read (its messages are no longer the start of this \
         conversation), so it was not overwritten: run the request again"
    )]
    Diverged { path: PathBuf },

    #[error("could not save the conversation to {path}: {cause}")]
    Write { path: PathBuf, cause: WriteError },
}

/// How a picture entered the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PictureOrigin {
    Attached,
    Generated,
    Edited,
}

/// A picture of the conversation, named `#N` in the order pictures were made or attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Picture {
    pub name: String,
    pub origin: PictureOrigin,
    /// Where the image file is; `None` for a dry run's planned picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// What the picture shows: the generation prompt, an attachment's recorded prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The instruction an edited picture was made with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// The picture an edit started from (`#N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made_from: Option<String>,
    /// The history entry of the picture, when it was kept in the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_id: Option<i64>,
}

/// Who wrote a message of a saved conversation (the system message is never saved: it comes
/// from the protocol of the program that reads the conversation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    User,
    Assistant,
    Tool,
}

/// One message as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationMessage {
    pub speaker: Speaker,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The assistant's tool call: `{"name": …, "parameters": {…}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call: Option<SavedCall>,
    /// Pictures this message brought in (attached with a user message, made by a tool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pictures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedCall {
    pub name: String,
    pub parameters: Json,
}

impl ConversationMessage {
    pub fn user(content: impl Into<String>) -> Self {
        Self::said(Speaker::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::said(Speaker::Assistant, content)
    }

    pub fn tool(content: impl Into<String>) -> Self {
        Self::said(Speaker::Tool, content)
    }

    pub fn call(call: &ToolCall) -> Self {
        Self {
            speaker: Speaker::Assistant,
            content: None,
            tool_call: Some(SavedCall {
                name: call.name.clone(),
                parameters: call.arguments.clone(),
            }),
            pictures: Vec::new(),
        }
    }

    fn said(speaker: Speaker, content: impl Into<String>) -> Self {
        Self {
            speaker,
            content: Some(content.into()),
            tool_call: None,
            pictures: Vec::new(),
        }
    }

    /// The message as the chat template reads it. Tool results take the `tool` role, as the
    /// agent trainer writes them; Llama-3.1's template renders it as its `ipython` turn.
    pub fn to_message(&self) -> Message {
        let role = match self.speaker {
            Speaker::User => Role::User,
            Speaker::Assistant => Role::Assistant,
            Speaker::Tool => Role::Tool,
        };
        Message {
            role,
            content: self.content.clone(),
            tool_calls: self
                .tool_call
                .iter()
                .map(|c| ToolCall {
                    name: c.name.clone(),
                    arguments: c.parameters.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Conversation {
    #[serde(default)]
    version: u32,
    /// The conversation's id in the history database, once it is kept there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    messages: Vec<ConversationMessage>,
    pictures: Vec<Picture>,
}

impl Conversation {
    pub fn new() -> Self {
        Self {
            version: FORMAT_VERSION,
            ..Self::default()
        }
    }

    /// Rebuilds a conversation from saved parts (the history database's rows).
    pub fn from_parts(
        id: Option<i64>,
        messages: Vec<ConversationMessage>,
        pictures: Vec<Picture>,
    ) -> Self {
        Self {
            version: FORMAT_VERSION,
            id,
            messages,
            pictures,
        }
    }

    /// The conversation saved at `path`.
    pub fn load(path: &Path) -> Result<Self, ConversationError> {
        let bytes = std::fs::read(path).map_err(|cause| ConversationError::Read {
            path: path.to_owned(),
            cause,
        })?;
        let invalid = |detail: String| ConversationError::Invalid {
            path: path.to_owned(),
            detail,
        };
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        let conversation: Self =
            serde_path_to_error::deserialize(de).map_err(|e| invalid(e.to_string()))?;
        if conversation.version != FORMAT_VERSION {
            return Err(invalid(format!(
                "format version {}, this program reads version {FORMAT_VERSION}",
                conversation.version
            )));
        }
        conversation.check().map_err(invalid)?;
        Ok(conversation)
    }

    /// The conversation at `path`, or a new one when there is no file there yet.
    pub fn load_or_new(path: &Path) -> Result<Self, ConversationError> {
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::new()),
            _ => Self::load(path),
        }
    }

    /// Writes the conversation to `path` in one piece. A file there must hold the start of
    /// this conversation (messages are appended, never rewritten).
    pub fn save(&self, path: &Path) -> Result<(), ConversationError> {
        if std::fs::symlink_metadata(path).is_ok() {
            let saved = Self::load(path)?;
            if !self.messages.starts_with(&saved.messages)
                || !self.pictures.starts_with(&saved.pictures)
            {
                return Err(ConversationError::Diverged {
                    path: path.to_owned(),
                });
            }
        }
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| ConversationError::Invalid {
                path: path.to_owned(),
                detail: format!("it could not be written as JSON: {e}"),
            })?;
        text.push('\n');
        write_atomically(path, text.as_bytes()).map_err(|cause| ConversationError::Write {
            path: path.to_owned(),
            cause,
        })
    }

    /// Names unique and in order `#1, #2, …`, and every `made_from` names an earlier picture.
    fn check(&self) -> Result<(), String> {
        for (i, picture) in self.pictures.iter().enumerate() {
            let expected = picture_name(i + 1);
            if picture.name != expected {
                return Err(format!(
                    "picture {} is named {:?}, expected {expected:?}",
                    i + 1,
                    picture.name
                ));
            }
            if let Some(source) = &picture.made_from
                && !self.pictures[..i].iter().any(|p| &p.name == source)
            {
                return Err(format!(
                    "picture {} is made from {source:?}, which comes later or not at all",
                    picture.name
                ));
            }
        }
        Ok(())
    }

    pub fn messages(&self) -> &[ConversationMessage] {
        &self.messages
    }

    pub fn pictures(&self) -> &[Picture] {
        &self.pictures
    }

    pub fn picture(&self, name: &str) -> Option<&Picture> {
        self.pictures.iter().find(|p| p.name == name.trim())
    }

    /// The most recent picture (made or attached).
    pub fn last_picture(&self) -> Option<&Picture> {
        self.pictures.last()
    }

    /// The name the next picture gets.
    pub fn next_name(&self) -> String {
        picture_name(self.pictures.len() + 1)
    }

    pub fn push_message(&mut self, message: ConversationMessage) {
        self.messages.push(message);
    }

    /// Adds `picture` under the next name (whatever name it carried) and returns that name.
    pub fn push_picture(&mut self, mut picture: Picture) -> String {
        picture.name = self.next_name();
        let name = picture.name.clone();
        self.pictures.push(picture);
        name
    }

    /// The conversation as the model reads it: the protocol's system message, then every
    /// message.
    pub fn model_messages(&self, protocol: &Protocol) -> Vec<Message> {
        std::iter::once(protocol.system_message())
            .chain(self.messages.iter().map(ConversationMessage::to_message))
            .collect()
    }
}

pub fn picture_name(n: usize) -> String {
    format!("#{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_messages() -> Conversation {
        let mut c = Conversation::new();
        c.push_message(ConversationMessage::user("draw a star"));
        c.push_picture(Picture {
            name: String::new(),
            origin: PictureOrigin::Generated,
            path: Some("out/1.png".into()),
            prompt: Some("a star".into()),
            instruction: None,
            made_from: None,
            history_id: Some(4),
        });
        c.push_message(ConversationMessage::assistant("here"));
        c
    }

    #[test]
    fn a_saved_conversation_reads_back_and_grows_only_by_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.json");
        assert_eq!(
            Conversation::load_or_new(&path).unwrap(),
            Conversation::new()
        );
        let mut c = two_messages();
        c.save(&path).unwrap();
        let back = Conversation::load(&path).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.picture("#1").unwrap().history_id, Some(4));
        c.push_message(ConversationMessage::user("again"));
        c.save(&path).unwrap();
        // A conversation that does not continue the file's is refused; the file stays.
        let before = std::fs::read(&path).unwrap();
        let mut other = Conversation::new();
        other.push_message(ConversationMessage::user("something else"));
        let err = other.save(&path).unwrap_err();
        assert!(matches!(err, ConversationError::Diverged { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_file_that_is_not_a_conversation_is_named_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.json");
        for text in [
            "not json",
            r#"{"messages": 3}"#,
            r#"{"version": 9, "messages": [], "pictures": []}"#,
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Conversation::load_or_new(&path).unwrap_err().to_string();
            assert!(err.contains("notes.json"), "{err}");
            assert!(err.contains("not a conversation file"), "{err}");
            assert!(two_messages().save(&path).is_err());
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        }
        // Pictures out of order are refused too.
        let mut bad = serde_json::to_value(two_messages()).unwrap();
        bad["pictures"][0]["name"] = "#2".into();
        std::fs::write(&path, bad.to_string()).unwrap();
        let err = Conversation::load(&path).unwrap_err().to_string();
        assert!(err.contains(r##"named "#2", expected "#1""##), "{err}");
    }
}
