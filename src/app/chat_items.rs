//! The chat panel's lines for a saved conversation (one kept from an earlier session): the
//! same lines a live turn shows, read back from the messages and pictures the agent keeps.

use crate::agent::{Conversation, EDIT_TOOL, GENERATE_TOOL, Job, Json, Speaker};
use crate::pipelines::job_title;
use crate::store::HistoryEntry;

use super::chat_panel::ChatItem;

/// The lines of `conversation`; its pictures are found in `entries` by their history ids.
pub(crate) fn items_of(conversation: &Conversation, entries: &[HistoryEntry]) -> Vec<ChatItem> {
    let mut items = Vec::new();
    for message in conversation.messages() {
        let content = message.content.as_deref().unwrap_or("").trim();
        match message.speaker {
            Speaker::User => {
                // The attached picture's line is for the model; the user sees its name.
                let attached = message.pictures.first().cloned();
                let text = match attached {
                    Some(_) => content.split_once('\n').map_or(content, |(_, rest)| rest),
                    None => content,
                };
                items.push(ChatItem::User {
                    text: text.trim().to_owned(),
                    attached,
                });
            }
            Speaker::Assistant => match &message.tool_call {
                Some(call) => items.push(ChatItem::Job(call_title(&call.name, &call.parameters))),
                None if !content.is_empty() => items.push(ChatItem::Assistant(content.into())),
                None => {}
            },
            // A tool message holds the result for the model; its pictures are shown.
            Speaker::Tool => {
                for name in &message.pictures {
                    items.push(picture_item(conversation, entries, name));
                }
            }
        }
    }
    items
}

/// The words a saved call is shown with, as its job was when it ran.
fn call_title(tool: &str, parameters: &Json) -> String {
    let text = |key: &str| {
        parameters
            .get(key)
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let job = match tool {
        GENERATE_TOOL => Job::Generate {
            prompt: text("prompt"),
        },
        EDIT_TOOL => Job::Edit {
            image: text("image"),
            instruction: text("instruction"),
        },
        other => return format!("Calling {other}"),
    };
    job_title(&job)
}

fn picture_item(conversation: &Conversation, entries: &[HistoryEntry], name: &str) -> ChatItem {
    let entry = conversation
        .picture(name)
        .and_then(|p| p.history_id)
        .and_then(|id| entries.iter().find(|e| e.id == id));
    match entry {
        Some(entry) => ChatItem::Picture {
            name: name.to_owned(),
            entry: entry.id,
            thumbnail: entry.thumbnail_path.clone(),
            caption: entry.prompt.clone(),
        },
        None => ChatItem::Note {
            text: format!("Picture {name} is no longer in the history."),
            is_error: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{ConversationMessage, Picture, PictureOrigin, ToolCall};

    #[test]
    fn a_saved_conversation_reads_back_as_the_lines_a_turn_shows() {
        let mut conversation = Conversation::new();
        let mut user = ConversationMessage::user(
            "[image #1 attached: a red circle on the left]\nnow make it blue",
        );
        user.pictures.push("#1".into());
        conversation.push_message(user);
        let call = ToolCall {
            name: EDIT_TOOL.into(),
            arguments: Json::parse(r##"{"image": "#1", "instruction": "make the circle blue"}"##)
                .unwrap_or(Json::Null),
        };
        conversation.push_message(ConversationMessage::call(&call));
        for history_id in [Some(7), Some(8)] {
            conversation.push_picture(Picture {
                name: String::new(),
                origin: PictureOrigin::Edited,
                path: None,
                prompt: None,
                instruction: None,
                made_from: None,
                history_id,
            });
        }
        let mut tool = ConversationMessage::tool("{}");
        tool.pictures.push("#2".into());
        conversation.push_message(tool);
        conversation.push_message(ConversationMessage::assistant("Done: #2 is blue."));

        // Entry 8 was deleted from the history since.
        let items = items_of(&conversation, &[]);
        assert_eq!(
            items,
            [
                ChatItem::User {
                    text: "now make it blue".into(),
                    attached: Some("#1".into())
                },
                ChatItem::Job("Editing #1: make the circle blue".into()),
                ChatItem::Note {
                    text: "Picture #2 is no longer in the history.".into(),
                    is_error: false
                },
                ChatItem::Assistant("Done: #2 is blue.".into()),
            ]
        );
    }
}
