//! Running the coordinator on the engine thread: its [`JobRunner`] makes pictures with the
//! engine's own job code (see [`PictureMaker`]) and its events become the window's
//! [`AgentUpdate`]s.

use crate::agent::{AgentEvent, Attachment, Conversation, Job as PlannedJob, JobRunner, Picture};
use crate::agent::{EditorPrompt, edit_description, planned_picture};
use crate::engine::{JobContext, JobError};

use super::agent_job::{AgentJob, AgentModels, AgentUpdate, PictureMaker, TurnEnd};
use super::backend::{HiDreamBackend, JobOutput};

/// One turn of `job`'s conversation; its pictures are kept in the history as they are made.
pub(super) fn run_turn(
    backend: &mut HiDreamBackend,
    models: &mut AgentModels,
    job: &AgentJob,
    ctx: &mut JobContext<'_, JobOutput>,
) -> Result<TurnEnd, JobError> {
    // Two links to the window: the coordinator's events go through one while the pictures'
    // steps go through the other.
    let reporter = ctx.clone();
    let cancel = ctx.cancel_flag();
    let mut conversation = job.conversation.clone();
    let attached = job.attached.as_ref().map(|a| Attachment {
        path: a.path.clone(),
        description: a.description.clone(),
        history_id: a.entry,
    });
    let (agent, maker) = models.split(backend, ctx, job);
    let mut runner = EngineRunner {
        maker,
        editor: job.editor_prompt,
    };
    let mut on_event = |event: AgentEvent| {
        let update = match event {
            AgentEvent::Text(text) => AgentUpdate::Text(text),
            AgentEvent::JobStarted { job, .. } => AgentUpdate::JobStarted(job_title(&job)),
            AgentEvent::JobFailed { error, .. } => AgentUpdate::Note(error),
            // The runner reported the picture with its history entry already.
            AgentEvent::JobFinished { .. } => return,
            AgentEvent::Reply(text) => AgentUpdate::Reply(text),
        };
        reporter.partial(JobOutput::Agent(update));
    };
    let outcome = agent
        .turn(
            &mut conversation,
            &job.message,
            attached,
            &mut runner,
            cancel,
            &mut on_event,
        )
        .map_err(|e| JobError::Failed(e.into()))?;
    Ok(TurnEnd {
        reply: outcome.reply,
        notes: outcome.notes,
        stopped: outcome.cancelled,
        conversation: Box::new(conversation),
    })
}

/// "Generating: a red circle", "Editing #1: make it blue", for the conversation.
pub fn job_title(job: &PlannedJob) -> String {
    match job {
        PlannedJob::Generate { prompt } => format!("Generating: {prompt}"),
        PlannedJob::Edit { image, instruction } => format!("Editing {image}: {instruction}"),
    }
}

/// The coordinator's jobs, made on the engine thread.
struct EngineRunner<'a, 'c> {
    maker: PictureMaker<'a, 'c>,
    editor: EditorPrompt,
}

impl JobRunner for EngineRunner<'_, '_> {
    fn run(&mut self, job: &PlannedJob, conversation: &Conversation) -> Result<Picture, String> {
        let made = match job {
            PlannedJob::Generate { prompt } => self.maker.generate(prompt),
            PlannedJob::Edit { image, instruction } => {
                let Some(source) = conversation.picture(image) else {
                    return Err(format!("There is no picture {image} in this conversation."));
                };
                let Some(path) = &source.path else {
                    return Err(format!("Picture {image} has no file to edit."));
                };
                let description = edit_description(self.editor, Some(source), instruction);
                self.maker
                    .edit(path, source.history_id, instruction.trim(), description)
            }
        };
        // Without a final stop: the coordinator writes the error into a sentence.
        let made = made.map_err(|e| match e {
            JobError::Cancelled => "stopped before the picture was finished".to_owned(),
            JobError::Failed(e) => format!("{e:#}").trim_end_matches('.').to_owned(),
        })?;
        let name = conversation.next_name();
        let picture = Picture {
            path: Some(made.entry.image_path.clone()),
            history_id: Some(made.entry.id),
            ..planned_picture(conversation, job)
        };
        self.maker.report(AgentUpdate::Picture {
            name,
            entry: Box::new(made.entry),
        });
        Ok(picture)
    }
}
