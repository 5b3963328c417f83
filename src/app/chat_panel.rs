//! The chat panel: the conversation with the agent (the user's messages, the assistant's
//! replies, the pictures its plan made as thumbnails, each job as it runs, notes), a message
//! box that sends on Enter, the picture to send with the message, and Stop.

use std::collections::HashMap;
use std::path::PathBuf;

use egui::{Key, RichText, TextureHandle, Ui};

use super::actions::Action;
use super::history_panel::{fitted_size, load_thumbnail};
use crate::engine::JobId;

/// Said by the message box when Send finds it empty.
pub const MESSAGE_REQUEST: &str =
    "Write a message first: ask for a picture, a change to one, or a question.";

/// Pictures in the conversation are drawn at most this many points wide.
const PICTURE_POINTS: f32 = 128.0;

/// One line of the conversation as shown.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatItem {
    /// What the user sent, with the name of the picture sent along.
    User {
        text: String,
        attached: Option<String>,
    },
    /// The assistant's words.
    Assistant(String),
    /// A job of the plan: "Generating: …".
    Job(String),
    /// A picture the plan made, kept in the history as `entry`.
    Picture {
        name: String,
        entry: i64,
        thumbnail: PathBuf,
        caption: String,
    },
    /// Something the user should know: a shortened conversation, a failed or stopped job.
    Note { text: String, is_error: bool },
}

/// The picture to send with the next message.
#[derive(Debug, Clone, PartialEq)]
pub struct Attached {
    pub path: PathBuf,
    /// Its history entry, when it is one of the results.
    pub entry: Option<i64>,
    /// What it shows (its recorded prompt), when known.
    pub description: Option<String>,
}

#[derive(Default)]
pub struct ChatPanel {
    /// The message being written.
    pub message: String,
    pub(crate) items: Vec<ChatItem>,
    pub(crate) attached: Option<Attached>,
    /// The turn running now.
    pub(crate) turn: Option<JobId>,
    /// The text the model is writing, shown until it turns out to be a job or a reply.
    pub(crate) draft: String,
    /// Said under the message box (an empty message, a missing agent model).
    pub(crate) problem: Option<String>,
    /// `None`: the thumbnail could not be read.
    thumbnails: HashMap<i64, Option<TextureHandle>>,
}

/// What the window tells the panel each frame.
pub(crate) struct ChatContext<'a> {
    /// The running turn's progress ("step 3 of 50"), while it runs.
    pub status: Option<&'a str>,
    /// A result is selected in the history, to send with the message.
    pub has_selection: bool,
}

impl ChatPanel {
    pub fn items(&self) -> &[ChatItem] {
        &self.items
    }

    pub fn is_running(&self) -> bool {
        self.turn.is_some()
    }

    /// The problem shown under the message box, if any.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    pub(crate) fn ui(&mut self, ui: &mut Ui, cx: &ChatContext<'_>) -> Option<Action> {
        let mut action = None;
        ui.horizontal(|ui| {
            ui.heading("Conversation");
            let can_restart = self.turn.is_none() && !self.items.is_empty();
            if ui
                .add_enabled(can_restart, egui::Button::new("New conversation"))
                .on_hover_text("Start again: the agent forgets this conversation's pictures")
                .clicked()
            {
                action = Some(Action::NewConversation);
            }
        });
        // The conversation takes what the message rows leave.
        let rows_height = 96.0 + if self.problem.is_some() { 24.0 } else { 0.0 };
        let height = (ui.available_height() - rows_height).max(80.0);
        egui::ScrollArea::vertical()
            .max_height(height)
            .auto_shrink([false, false])
            .stick_to_bottom(true)
            .show(ui, |ui| {
                if let Some(a) = self.conversation_ui(ui, cx) {
                    action = Some(a);
                }
            });
        ui.separator();
        if let Some(a) = self.attach_row_ui(ui, cx) {
            action = Some(a);
        }
        if let Some(a) = self.message_row_ui(ui) {
            action = Some(a);
        }
        if let Some(problem) = &self.problem {
            ui.colored_label(ui.visuals().error_fg_color, problem);
        }
        action
    }

    fn conversation_ui(&mut self, ui: &mut Ui, cx: &ChatContext<'_>) -> Option<Action> {
        if self.items.is_empty() && self.turn.is_none() {
            ui.weak(
                "Ask for a picture (\"draw a red circle on the left\"), a change to the last \
                 one (\"now make it blue\"), or ask a question.",
            );
            return None;
        }
        let mut action = None;
        for item in &self.items {
            match item {
                ChatItem::User { text, attached } => {
                    ui.horizontal_wrapped(|ui| {
                        ui.label(RichText::new("You:").strong());
                        if let Some(name) = attached {
                            ui.weak(format!("[{name}]"));
                        }
                        ui.label(text);
                    });
                }
                ChatItem::Assistant(text) => {
                    ui.horizontal_wrapped(|ui| {
                        ui.label(RichText::new("Assistant:").strong());
                        ui.label(text);
                    });
                }
                ChatItem::Job(text) => {
                    ui.weak(text);
                }
                ChatItem::Picture {
                    name,
                    entry,
                    thumbnail,
                    caption,
                } => {
                    let texture = self
                        .thumbnails
                        .entry(*entry)
                        .or_insert_with(|| {
                            load_thumbnail(ui.ctx(), format!("chat-picture:{entry}"), thumbnail)
                        })
                        .clone();
                    if picture_ui(ui, name, caption, texture.as_ref()) {
                        action = Some(Action::Select(*entry));
                    }
                }
                ChatItem::Note { text, is_error } => {
                    if *is_error {
                        ui.colored_label(ui.visuals().error_fg_color, text);
                    } else {
                        ui.label(RichText::new(text).italics());
                    }
                }
            }
            ui.add_space(4.0);
        }
        if self.turn.is_some() {
            if !self.draft.trim().is_empty() {
                ui.label(RichText::new(self.draft.trim()).italics().weak());
            }
            ui.horizontal(|ui| {
                ui.spinner();
                ui.weak(cx.status.unwrap_or("thinking"));
            });
        }
        action
    }

    fn attach_row_ui(&mut self, ui: &mut Ui, cx: &ChatContext<'_>) -> Option<Action> {
        let mut action = None;
        ui.horizontal(|ui| {
            if ui
                .button("Attach image…")
                .on_hover_text("Send a picture file with the message")
                .clicked()
            {
                action = Some(Action::AttachFile);
            }
            if ui
                .add_enabled(cx.has_selection, egui::Button::new("Use selected result"))
                .on_hover_text("Send the result selected in the history with the message")
                .clicked()
            {
                action = Some(Action::AttachSelected);
            }
            if let Some(attached) = &self.attached {
                let name = attached.path.file_name().map_or_else(
                    || attached.path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                ui.add(egui::Label::new(format!("Attached: {name}")).truncate());
                if ui.small_button("×").on_hover_text("Remove").clicked() {
                    action = Some(Action::Detach);
                }
            }
        });
        action
    }

    fn message_row_ui(&mut self, ui: &mut Ui) -> Option<Action> {
        let mut action = None;
        let label = ui.label("Message");
        ui.horizontal(|ui| {
            let running = self.turn.is_some();
            let buttons = 120.0;
            let response = ui
                .add(
                    egui::TextEdit::singleline(&mut self.message)
                        .hint_text("draw a red circle on the left")
                        .desired_width((ui.available_width() - buttons).max(80.0)),
                )
                .labelled_by(label.id);
            if response.changed() && !self.message.trim().is_empty() {
                self.problem = None;
            }
            let entered = response.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
            let send = ui
                .add_enabled(!running, egui::Button::new("Send"))
                .on_hover_text("Enter")
                .clicked();
            if (send || entered) && !running {
                action = Some(Action::SendMessage);
                // Keep typing where the user was.
                response.request_focus();
            }
            if ui
                .add_enabled(running, egui::Button::new("Stop"))
                .on_hover_text("Stop the plan after the current step")
                .clicked()
            {
                action = Some(Action::StopTurn);
            }
        });
        action
    }
}

/// A picture of the conversation with its name and caption; true when clicked (shown on
/// the canvas and selected in the history).
fn picture_ui(ui: &mut Ui, name: &str, caption: &str, texture: Option<&TextureHandle>) -> bool {
    ui.horizontal(|ui| {
        let size = fitted_size(texture, PICTURE_POINTS);
        let response = match texture {
            Some(t) => ui.add(
                egui::Image::new((t.id(), size))
                    .sense(egui::Sense::click())
                    .alt_text(format!("Picture {name}")),
            ),
            None => ui.add_sized(size, egui::Button::new(format!("{name} (no thumbnail)"))),
        };
        ui.vertical(|ui| {
            ui.label(RichText::new(name).strong());
            ui.label(caption);
        });
        response.clicked()
    })
    .inner
}
