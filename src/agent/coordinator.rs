//! The Coordinator: one turn of the conversation. It lays the conversation out with the
//! protocol, lets the model answer, and turns a tool call into a job (validated first: an
//! unknown tool, a missing argument or a picture `#N` that does not exist become a chat reply
//! saying so). Jobs run one at a time through a [`JobRunner`]; each gets a tool message with
//! its result, and the model is asked again, so a plan of several jobs unfolds call by call
//! until the model ends its turn with text (or [`AgentOptions::max_jobs`] is reached). An edit
//! naming an object its picture lacks is grounded first ([`super::grounding`]); a later edit
//! of a plan asking for what its picture already shows is not run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::chat_model::ChatError;
use super::chat_template::ToolCall;
use super::conversation::{Conversation, ConversationMessage, Picture, PictureOrigin};
use super::grounding::{Said, ground_edit};
use super::json::Json;
use super::language_model::{AgentOptions, LanguageModel};
use super::planner::{Job, changes_nothing, planned_picture};
use super::protocol::{self, EDIT_TOOL, GENERATE_TOOL, Protocol};
use super::tool_call::Reply;

/// Runs the jobs the agent plans (the engine's generate and edit, in the studio).
pub trait JobRunner {
    /// Makes the picture of `job`. The returned picture's name is replaced by the
    /// conversation's next one; [`planned_picture`] gives the fields to start from. An error
    /// is a sentence for the user (and the model) saying what went wrong.
    fn run(&mut self, job: &Job, conversation: &Conversation) -> Result<Picture, String>;
}

/// Plans without making anything: each job's picture gets its name and no file.
#[derive(Debug, Default, Clone, Copy)]
pub struct DryRun;

impl JobRunner for DryRun {
    fn run(&mut self, job: &Job, conversation: &Conversation) -> Result<Picture, String> {
        Ok(planned_picture(conversation, job))
    }
}

/// A picture sent with the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub path: PathBuf,
    /// Its recorded prompt, if it has one.
    pub description: Option<String>,
    pub history_id: Option<i64>,
}

/// What a turn did, by the kind of its first job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Generate,
    Edit,
    Chat,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generate => "generate",
            Self::Edit => "edit",
            Self::Chat => "chat",
        }
    }
}

/// What the user interface hears during a turn.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// Text of the model's reply as it is generated (tool calls included).
    Text(String),
    JobStarted {
        index: usize,
        job: Job,
    },
    JobFinished {
        index: usize,
        picture: Picture,
    },
    JobFailed {
        index: usize,
        job: Job,
        error: String,
    },
    /// The turn's final text.
    Reply(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TurnOutcome {
    pub action: Action,
    /// Jobs that were run (or planned, in a dry run), failed ones included.
    pub jobs: Vec<Job>,
    /// The assistant's final text.
    pub reply: String,
    /// Pictures made, in order.
    pub outputs: Vec<Picture>,
    /// What the user should know besides the reply: truncation, fallbacks, refusals.
    pub notes: Vec<String>,
    /// The cancel flag ended the turn.
    pub cancelled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the message is empty: write what you want made, changed or answered")]
    EmptyMessage,

    #[error(transparent)]
    Model(#[from] ChatError),
}

/// The coordinator over a language model.
#[derive(Debug)]
pub struct Agent<M> {
    model: M,
    protocol: Protocol,
    options: AgentOptions,
}

impl<M: LanguageModel> Agent<M> {
    /// An agent speaking the bundled protocol.
    pub fn new(model: M, options: AgentOptions) -> Self {
        Self {
            model,
            protocol: Protocol::bundled().clone(),
            options,
        }
    }

    pub fn model(&self) -> &M {
        &self.model
    }

    pub fn options(&self) -> &AgentOptions {
        &self.options
    }

    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    /// One turn: appends the user's `message` (with `attached`, named `#N` and described on
    /// its first line) and everything that follows to `conversation`, running jobs through
    /// `runner`. `cancel` is checked between tokens and between jobs; a cancelled turn still
    /// ends with an assistant message saying what was done, so the conversation stays whole.
    pub fn turn(
        &self,
        conversation: &mut Conversation,
        message: &str,
        attached: Option<Attachment>,
        runner: &mut dyn JobRunner,
        cancel: &AtomicBool,
        on_event: &mut dyn FnMut(AgentEvent),
    ) -> Result<TurnOutcome, AgentError> {
        let message = message.trim();
        if message.is_empty() {
            return Err(AgentError::EmptyMessage);
        }
        let mut turn = Turn {
            conversation,
            runner,
            on_event,
            cancel,
            outcome: TurnOutcome {
                action: Action::Chat,
                jobs: Vec::new(),
                reply: String::new(),
                outputs: Vec::new(),
                notes: Vec::new(),
                cancelled: false,
            },
        };
        turn.add_user_message(message, attached);
        let render = self.protocol.render_options();
        let mut truncated = false;
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Ok(turn.stopped());
            }
            let messages = turn.conversation.model_messages(&self.protocol);
            let on_event = &mut *turn.on_event;
            let answer =
                self.model
                    .respond(&messages, &render, &self.options, cancel, &mut |text| {
                        on_event(AgentEvent::Text(text.to_owned()));
                    })?;
            if answer.dropped > 0 && !truncated {
                truncated = true;
                turn.outcome.notes.push(format!(
                    "The conversation is longer than the model can read at once: its {} oldest \
                     messages were left out of what the model saw.",
                    answer.dropped
                ));
            }
            if answer.cancelled {
                return Ok(turn.stopped());
            }
            let mut call = match answer.reply {
                Reply::Chat { text, note } => return Ok(turn.chat(text, note)),
                Reply::ToolCall { call, .. } => call,
            };
            if turn.outcome.jobs.len() >= self.options.max_jobs {
                let text = format!(
                    "I stopped here: one request makes at most {} pictures. Ask again to go on.",
                    self.options.max_jobs
                );
                return Ok(turn.finish(text));
            }
            let mut job = match self.job_of(&call, turn.conversation) {
                Ok(job) => job,
                Err(refusal) => return Ok(turn.refuse(&call, refusal)),
            };
            let said = Said {
                messages: &messages,
                render: &render,
                options: &self.options,
                text: &answer.text,
            };
            if let Some(grounded) =
                ground_edit(&self.model, &said, &call, &job, turn.conversation, cancel)?
            {
                (call, job) = (grounded.call, grounded.job);
                turn.outcome.notes.push(grounded.note);
            }
            if cancel.load(Ordering::Relaxed) {
                return Ok(turn.stopped());
            }
            // Only a plan's later edits: the first job answers the user, who may be asking
            // for what a picture's prompt says but the picture failed to show (a square
            // drawn half blue, "make the square purple").
            if let Job::Edit { image, instruction } = &job
                && !turn.outcome.jobs.is_empty()
                && let Some(shows) = already_shown(image, instruction, turn.conversation)
            {
                return Ok(turn.leave_unchanged(&call, image, instruction, shows));
            }
            if !turn.run(&call, job) {
                return Ok(turn.outcome);
            }
        }
    }

    /// The job a call asks for, or why it cannot be run (a sentence for the user).
    fn job_of(&self, call: &ToolCall, conversation: &Conversation) -> Result<Job, String> {
        let text = |key: &str| -> Result<String, String> {
            match call.arguments.get(key) {
                Some(Json::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
                _ => Err(format!(
                    "I tried to use {} without its `{key}`, so nothing was made. Please say it \
                     again in other words.",
                    call.name
                )),
            }
        };
        match call.name.as_str() {
            GENERATE_TOOL => Ok(Job::Generate {
                prompt: text("prompt")?,
            }),
            EDIT_TOOL => {
                if conversation.pictures().is_empty() {
                    return Err(NO_PICTURE_TO_EDIT.to_owned());
                }
                let image = text("image")?;
                if conversation.picture(&image).is_none() {
                    let names: Vec<&str> = conversation
                        .pictures()
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect();
                    return Err(format!(
                        "There is no picture {image} in this conversation (there are {}), so \
                         nothing was changed. Say which picture to change.",
                        names.join(", ")
                    ));
                }
                Ok(Job::Edit {
                    image,
                    instruction: text("instruction")?,
                })
            }
            other => Err(format!(
                "I tried to use a tool called `{other}`, which does not exist (I have {}), so \
                 nothing was made. Please say it again in other words.",
                self.protocol.tool_names().join(" and ")
            )),
        }
    }
}

/// What the source picture of an edit shows, when the edit would leave it as it is
/// ([`changes_nothing`]): "make the background black" of a picture on black.
fn already_shown(image: &str, instruction: &str, conversation: &Conversation) -> Option<String> {
    let shows = conversation.picture(image)?.prompt.as_deref()?;
    changes_nothing(shows, instruction).then(|| shows.to_owned())
}

pub const NO_PICTURE_TO_EDIT: &str = "There is no picture to change yet. Attach one (--image \
     on the command line, the attach button in the window) or ask me to make one first.";

/// The state of one turn in progress.
struct Turn<'a> {
    conversation: &'a mut Conversation,
    runner: &'a mut dyn JobRunner,
    on_event: &'a mut dyn FnMut(AgentEvent),
    /// The user's Stop: a job that ends with it raised was stopped, not failed.
    cancel: &'a AtomicBool,
    outcome: TurnOutcome,
}

impl Turn<'_> {
    fn add_user_message(&mut self, message: &str, attached: Option<Attachment>) {
        let Some(attached) = attached else {
            self.conversation
                .push_message(ConversationMessage::user(message));
            return;
        };
        let name = self.conversation.push_picture(Picture {
            name: String::new(),
            origin: PictureOrigin::Attached,
            path: Some(attached.path),
            prompt: attached.description.clone(),
            instruction: None,
            made_from: None,
            history_id: attached.history_id,
        });
        let line = protocol::attached_line(&name, attached.description.as_deref());
        let mut user = ConversationMessage::user(format!("{line}\n{message}"));
        user.pictures.push(name);
        self.conversation.push_message(user);
    }

    /// Runs `job` for `call`; false when the turn ends here (the job failed or was cancelled).
    fn run(&mut self, call: &ToolCall, job: Job) -> bool {
        let index = self.outcome.jobs.len();
        if index == 0 {
            self.outcome.action = match job {
                Job::Generate { .. } => Action::Generate,
                Job::Edit { .. } => Action::Edit,
            };
        }
        self.outcome.jobs.push(job.clone());
        self.conversation
            .push_message(ConversationMessage::call(call));
        (self.on_event)(AgentEvent::JobStarted {
            index,
            job: job.clone(),
        });
        match self.runner.run(&job, self.conversation) {
            Ok(mut picture) => {
                let planned = planned_picture(self.conversation, &job);
                picture.origin = planned.origin;
                picture.made_from = planned.made_from;
                picture.instruction = planned.instruction;
                if picture.prompt.is_none() {
                    picture.prompt = planned.prompt;
                }
                let name = self.conversation.push_picture(picture);
                let result = match &job {
                    Job::Generate { prompt } => protocol::generated_result(&name, prompt),
                    Job::Edit { image, instruction } => {
                        protocol::edited_result(image, &name, instruction)
                    }
                };
                let mut tool = ConversationMessage::tool(result);
                tool.pictures.push(name.clone());
                self.conversation.push_message(tool);
                let picture = self.conversation.picture(&name).cloned();
                if let Some(picture) = picture {
                    self.outcome.outputs.push(picture.clone());
                    (self.on_event)(AgentEvent::JobFinished { index, picture });
                }
                true
            }
            Err(error) => {
                self.conversation
                    .push_message(ConversationMessage::tool(protocol::error_result(&error)));
                if self.cancel.load(Ordering::Relaxed) {
                    // The user's Stop, seen by the job: the plan ends as a stop, not a failure.
                    self.outcome = self.stopped_outcome();
                    return false;
                }
                (self.on_event)(AgentEvent::JobFailed {
                    index,
                    job: job.clone(),
                    error: error.clone(),
                });
                let done = self.made_so_far();
                let text = format!(
                    "The {} job failed: {error}. {done}I stopped the plan there.",
                    job.kind()
                );
                self.outcome = self.finish_outcome(text);
                false
            }
        }
    }

    /// "Made so far: #1, #2. " when pictures were made in this turn.
    fn made_so_far(&self) -> String {
        let names: Vec<&str> = self
            .outcome
            .outputs
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        if names.is_empty() {
            String::new()
        } else {
            format!("Made so far: {}. ", names.join(", "))
        }
    }

    /// A call that cannot run: it is kept, with an error result, and the refusal is the reply.
    fn refuse(mut self, call: &ToolCall, refusal: String) -> TurnOutcome {
        self.keep_unrun(call, &refusal);
        self.outcome.notes.push(refusal.clone());
        self.finish(refusal)
    }

    /// A call that was not run stays in the conversation with an error result saying why, so
    /// the model reads back what happened.
    fn keep_unrun(&mut self, call: &ToolCall, why: &str) {
        self.conversation
            .push_message(ConversationMessage::call(call));
        self.conversation
            .push_message(ConversationMessage::tool(protocol::error_result(why)));
    }

    /// A plan's later edit that would change nothing is not run: an editor would only redraw
    /// the picture, a copy the user did not ask for. The call is kept with a result saying so,
    /// and the turn ends on a reply naming what was made and what the picture shows.
    fn leave_unchanged(
        mut self,
        call: &ToolCall,
        image: &str,
        instruction: &str,
        shows: String,
    ) -> TurnOutcome {
        self.keep_unrun(
            call,
            &format!("{image} already shows that; nothing was changed"),
        );
        let done = self.made_so_far();
        self.finish(format!(
            "{done}{image} already shows what \"{instruction}\" asks for ({shows}), so I left it \
             as it is."
        ))
    }

    /// The model ended the turn with text. A malformed call arrives here as text with a note;
    /// the user then reads the note, not the broken JSON.
    fn chat(mut self, text: String, note: Option<String>) -> TurnOutcome {
        let text = match note {
            Some(note) => {
                self.outcome.notes.push(note.clone());
                note
            }
            None if text.trim().is_empty() => {
                let empty = "The model gave an empty reply.".to_owned();
                self.outcome.notes.push(empty.clone());
                empty
            }
            None => text.trim().to_owned(),
        };
        self.finish(text)
    }

    fn stopped(mut self) -> TurnOutcome {
        self.stopped_outcome()
    }

    fn stopped_outcome(&mut self) -> TurnOutcome {
        self.outcome.cancelled = true;
        let done = self.made_so_far();
        self.finish_outcome(format!("Stopped. {done}").trim().to_owned())
    }

    fn finish(mut self, text: String) -> TurnOutcome {
        self.finish_outcome(text)
    }

    fn finish_outcome(&mut self, text: String) -> TurnOutcome {
        self.conversation
            .push_message(ConversationMessage::assistant(text.clone()));
        (self.on_event)(AgentEvent::Reply(text.clone()));
        let mut outcome = self.outcome.clone();
        outcome.reply = text;
        outcome
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
