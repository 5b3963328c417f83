//! The chat's side of the window: sending a message as an agent turn to the engine (with the
//! models in use and the picture attached), and taking in what the turn reports: its text, its
//! jobs, its pictures (already kept in the history by the engine thread) and its end.

use std::path::{Path, PathBuf};

use super::StudioApp;
use super::chat_items::items_of;
use super::chat_panel::{Attached, ChatItem, MESSAGE_REQUEST};
use super::editor::Editor;
use super::jobs::PendingJob;
use super::submit::short;
use crate::agent::{Conversation, EditorPrompt};
use crate::engine::JobId;
use crate::pipelines::edit::read_rgb;
use crate::pipelines::{AgentJob, AgentUpdate, AttachedPicture, GenerateSettings, Job, TurnEnd};
use crate::store::{HistoryEntry, StoredRecord, read_stored_record};

impl StudioApp {
    /// Sends the chat's message (Send, Enter) as a turn of the agent on the engine thread.
    pub(super) fn send_message(&mut self) {
        if self.chat.turn.is_some() {
            return;
        }
        let message = self.chat.message.trim().to_owned();
        if message.is_empty() {
            self.chat.problem = Some(MESSAGE_REQUEST.to_owned());
            return;
        }
        let job = match self.agent_job(message.clone()) {
            Ok(job) => job,
            Err(problem) => {
                self.chat.problem = Some(problem);
                return;
            }
        };
        let attached = job.attached.as_ref().map(|_| self.conversation.next_name());
        let id = self.engine.submit(Job::Agent(Box::new(job)));
        self.jobs.push(PendingJob::new(
            id,
            format!("Chat: {}", short(&message)),
            None,
        ));
        let chat = &mut self.chat;
        chat.items.push(ChatItem::User {
            text: message,
            attached,
        });
        chat.turn = Some(id);
        chat.message.clear();
        chat.attached = None;
        chat.problem = None;
        chat.draft.clear();
    }

    /// The turn `message` starts: the agent's folder, the models in use for pictures and
    /// changes, the attached picture. The error is said under the message box.
    fn agent_job(&mut self, message: String) -> Result<AgentJob, String> {
        let model = self.agent_folder()?;
        // The text-to-image controls' model and values (the agent writes the prompt) and the
        // edit controls' (it names the picture and writes the instruction). Whether either is
        // needed is only known once the plan asks.
        // A start image chosen for the generate panel is not the agent's: it draws from text.
        let generate = self.generate_settings().map(|settings| GenerateSettings {
            init: None,
            ..settings
        });
        let seed = self.generate.take_seed();
        let edit = self.edit_settings_for(PathBuf::new(), String::new(), seed);
        let editor_prompt = match self.edit.editor {
            Editor::E1Full => EditorPrompt::InstructionAndTarget,
            Editor::E1_1 => EditorPrompt::Plain,
        };
        let attached = self.chat.attached.clone().map(|a| AttachedPicture {
            path: a.path,
            entry: a.entry,
            description: a.description,
        });
        Ok(AgentJob {
            model,
            device: self.config.device,
            conversation: self.conversation.clone(),
            message,
            attached,
            generate,
            edit,
            editor_prompt,
            data_dir: self.history.is_some().then(|| self.paths.data_dir.clone()),
        })
    }

    /// The agent model's folder: the configured one, else the bundled one; an error naming
    /// the folder when it is missing.
    fn agent_folder(&self) -> Result<PathBuf, String> {
        let configured = self.config.models.agent.clone();
        let Some(folder) = configured.or_else(|| self.bundled.agent.clone()) else {
            return Err(
                "No agent model is set: the bundled one (assets/models/shapes-agent) was not \
                 found. Reinstall HiDream Studio, or set `agent` under `models` in config.json \
                 to the folder of a Llama chat model."
                    .into(),
            );
        };
        if !folder.join("config.json").is_file() {
            return Err(format!(
                "The agent model is missing: {} has no config.json. Reinstall HiDream Studio \
                 (it bundles assets/models/shapes-agent), or set `agent` under `models` in \
                 config.json to the folder of a Llama chat model.",
                folder.display()
            ));
        }
        Ok(folder)
    }

    /// Attach image…: a picture file to send with the message.
    pub(super) fn attach_file(&mut self) {
        let Some(path) = self.dialogs.pick_image() else {
            return;
        };
        match attachment(&path) {
            Ok(description) => {
                // A result of this window is linked as one.
                let entry = self
                    .entries
                    .iter()
                    .find(|e| e.image_path == path)
                    .map(|e| e.id);
                self.chat.attached = Some(Attached {
                    path,
                    entry,
                    description,
                });
                self.chat.problem = None;
            }
            Err(problem) => self.chat.problem = Some(problem),
        }
    }

    /// Use selected result: the result selected in the history goes with the message.
    pub(super) fn attach_selected(&mut self) {
        let Some(entry) = self
            .selected
            .and_then(|id| self.entries.iter().find(|e| e.id == id))
        else {
            self.chat.problem =
                Some("Select a result in the history first, then use it.".to_owned());
            return;
        };
        self.chat.attached = Some(Attached {
            path: entry.image_path.clone(),
            entry: Some(entry.id),
            description: description(&entry.record),
        });
        self.chat.problem = None;
    }

    /// Stop: the turn ends after the current step of its plan.
    pub(super) fn stop_turn(&mut self) {
        if let Some(id) = self.chat.turn {
            self.engine.cancel(id);
        }
    }

    /// New conversation: the chat starts empty (the pictures stay in the history).
    pub(super) fn new_conversation(&mut self) {
        if self.chat.turn.is_some() {
            return;
        }
        self.conversation = Conversation::new();
        self.chat.items.clear();
        self.chat.problem = None;
    }

    /// What a running turn reported.
    pub(super) fn agent_update(&mut self, update: AgentUpdate) {
        let chat = &mut self.chat;
        match update {
            AgentUpdate::Text(text) => chat.draft.push_str(&text),
            AgentUpdate::JobStarted(title) => {
                // The draft was the tool call; the job says it in words.
                chat.draft.clear();
                chat.items.push(ChatItem::Job(title));
            }
            AgentUpdate::Picture { name, entry } => self.picture_made(name, *entry),
            AgentUpdate::Note(text) => chat.items.push(ChatItem::Note {
                text,
                is_error: true,
            }),
            AgentUpdate::Reply(text) => {
                chat.draft.clear();
                if !text.trim().is_empty() {
                    chat.items.push(ChatItem::Assistant(text.trim().to_owned()));
                }
            }
            AgentUpdate::Done(end) => self.turn_ended(*end),
        }
    }

    /// A picture of the plan, kept in the history by the engine thread: listed there as the
    /// newest result and selected, and shown in the conversation.
    fn picture_made(&mut self, name: String, entry: HistoryEntry) {
        let id = entry.id;
        self.chat.items.push(ChatItem::Picture {
            name,
            entry: id,
            thumbnail: entry.thumbnail_path.clone(),
            caption: entry.prompt.clone(),
        });
        if !self.entries.iter().any(|e| e.id == id) {
            self.entries.insert(0, entry);
        }
        self.selected = Some(id);
    }

    fn turn_ended(&mut self, end: TurnEnd) {
        self.chat.turn = None;
        self.chat.draft.clear();
        // A refusal or an unreadable tool call is the reply itself; it is not said twice.
        for note in end
            .notes
            .into_iter()
            .filter(|n| n.trim() != end.reply.trim())
        {
            self.chat.items.push(ChatItem::Note {
                text: note,
                is_error: false,
            });
        }
        self.conversation = *end.conversation;
        self.save_conversation();
    }

    /// Keeps the conversation in the history database beside the entries its pictures link
    /// to, so the chat comes back after a restart.
    fn save_conversation(&mut self) {
        let Some(history) = self.history.as_mut() else {
            return;
        };
        if let Err(e) = history.save_conversation(&mut self.conversation) {
            self.chat.items.push(ChatItem::Note {
                text: format!("The conversation could not be kept: {e}"),
                is_error: true,
            });
        }
    }

    /// The conversation with the latest message, shown again at start.
    pub(super) fn restore_conversation(&mut self) {
        let Some(history) = self.history.as_ref() else {
            return;
        };
        let newest = history
            .conversations()
            .map(|list| list.first().map(|c| c.id))
            .and_then(|id| id.map(|id| history.conversation(id)).transpose());
        match newest {
            Ok(Some(conversation)) => {
                self.chat.items = items_of(&conversation, &self.entries);
                self.conversation = conversation;
            }
            Ok(None) => {}
            // Left as it is in the database; the chat starts a new one.
            Err(e) => self.chat.items.push(ChatItem::Note {
                text: format!("The last conversation could not be read: {e}"),
                is_error: true,
            }),
        }
    }

    /// The turn `id` failed or was cancelled before it could end by itself.
    pub(super) fn turn_lost(&mut self, id: JobId, text: String, is_error: bool) {
        if self.chat.turn != Some(id) {
            return;
        }
        self.chat.turn = None;
        self.chat.draft.clear();
        self.chat.items.push(ChatItem::Note { text, is_error });
    }
}

/// A picture file to send: readable as an image; its recorded prompt when it is a studio
/// PNG. The error says what is wrong with it.
fn attachment(path: &Path) -> Result<Option<String>, String> {
    read_rgb(path).map_err(|e| format!("Cannot attach this picture: {e}"))?;
    let bytes =
        std::fs::read(path).map_err(|e| format!("Cannot attach {}: {e}", path.display()))?;
    // Settings that do not read leave the picture undescribed; it is still a picture.
    Ok(read_stored_record(&bytes)
        .ok()
        .flatten()
        .and_then(|record| description(&record)))
}

/// What a result shows, for the agent: a generation's prompt, an edit's target description.
/// An edit's instruction says what changed, not what is there, so it is not one.
fn description(record: &StoredRecord) -> Option<String> {
    match record {
        StoredRecord::Generation(r) => Some(r.settings.prompt.clone()),
        StoredRecord::Edit(r) => r.settings.description.clone(),
        StoredRecord::Hidit(_) => None,
    }
    .filter(|p| !p.trim().is_empty())
}
