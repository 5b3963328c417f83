//! The turn loop against scripted replies: what the model says is fixed, so each test checks
//! what the coordinator makes of it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::agent::Speaker;
use crate::agent::chat_template::{Message, RenderOptions, Role};
use crate::agent::language_model::ModelTurn;
use crate::agent::tool_call::parse_reply;

/// Replies in order; records the conversations it was shown.
struct Scripted {
    replies: RefCell<VecDeque<&'static str>>,
    seen: RefCell<Vec<Vec<Message>>>,
    /// Reported as messages left out of every prompt.
    dropped: usize,
    /// Scores replies containing this text highest; `None`: cannot score.
    prefers: Option<&'static str>,
    /// The replies it was asked to score, per request.
    scored: RefCell<Vec<Vec<String>>>,
}

fn scripted(replies: &[&'static str]) -> Scripted {
    Scripted {
        replies: RefCell::new(replies.iter().copied().collect()),
        seen: RefCell::new(Vec::new()),
        dropped: 0,
        prefers: None,
        scored: RefCell::new(Vec::new()),
    }
}

impl LanguageModel for Scripted {
    fn respond(
        &self,
        messages: &[Message],
        _render: &RenderOptions,
        _options: &AgentOptions,
        _cancel: &AtomicBool,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ModelTurn, ChatError> {
        self.seen.borrow_mut().push(messages.to_vec());
        let text = self
            .replies
            .borrow_mut()
            .pop_front()
            .unwrap_or("(script ran out)");
        on_text(text);
        Ok(ModelTurn {
            reply: parse_reply(text),
            text: text.to_owned(),
            dropped: self.dropped,
            cancelled: false,
        })
    }

    fn score_replies(
        &self,
        _messages: &[Message],
        _render: &RenderOptions,
        _options: &AgentOptions,
        replies: &[String],
        _cancel: &AtomicBool,
    ) -> Result<Option<Vec<f64>>, ChatError> {
        self.scored.borrow_mut().push(replies.to_vec());
        Ok(self.prefers.map(|liked| {
            replies
                .iter()
                .map(|r| if r.contains(liked) { 0.0 } else { -10.0 })
                .collect()
        }))
    }
}

/// Makes pictures at /out/#N.png; fails jobs whose prompt or instruction contains "fail";
/// raises `cancel_after` once it has run that many jobs.
#[derive(Default)]
struct Recorder<'a> {
    ran: Vec<Job>,
    cancel_after: Option<(usize, &'a AtomicBool)>,
}

impl JobRunner for Recorder<'_> {
    fn run(&mut self, job: &Job, conversation: &Conversation) -> Result<Picture, String> {
        self.ran.push(job.clone());
        if let Some((n, flag)) = self.cancel_after
            && self.ran.len() >= n
        {
            flag.store(true, Ordering::Relaxed);
        }
        let text = match job {
            Job::Generate { prompt } => prompt,
            Job::Edit { instruction, .. } => instruction,
        };
        if text.contains("fail") {
            return Err("the model folder is missing".into());
        }
        let mut picture = planned_picture(conversation, job);
        picture.path = Some(format!("/out/{}.png", picture.name).into());
        Ok(picture)
    }
}

const GENERATE_RED: &str =
    r#"{"name": "generate_image", "parameters": {"prompt": "a red circle on the left, on white"}}"#;
const EDIT_1_BLUE: &str = r##"{"name": "edit_image", "parameters": {"image": "#1", "instruction": "make the red circle blue"}}"##;

struct Run {
    outcome: TurnOutcome,
    events: Vec<AgentEvent>,
}

fn turn(
    model: Scripted,
    conversation: &mut Conversation,
    message: &str,
    attached: Option<Attachment>,
    runner: &mut dyn JobRunner,
    cancel: &AtomicBool,
) -> (Run, Scripted) {
    let agent = Agent::new(model, AgentOptions::default());
    let mut events = Vec::new();
    let outcome = agent
        .turn(conversation, message, attached, runner, cancel, &mut |e| {
            events.push(e);
        })
        .unwrap();
    (Run { outcome, events }, agent.model)
}

const USER: Speaker = Speaker::User;
const ASSISTANT: Speaker = Speaker::Assistant;
const TOOL: Speaker = Speaker::Tool;

fn speakers(conversation: &Conversation) -> Vec<Speaker> {
    conversation.messages().iter().map(|m| m.speaker).collect()
}

#[test]
fn a_generate_call_runs_one_job_and_ends_on_the_models_text() {
    let mut conversation = Conversation::new();
    let mut runner = Recorder::default();
    let (run, model) = turn(
        scripted(&[GENERATE_RED, "Here is a red circle on the left."]),
        &mut conversation,
        "draw a red circle on the left",
        None,
        &mut runner,
        &AtomicBool::new(false),
    );
    let o = &run.outcome;
    assert_eq!(o.action, Action::Generate);
    assert_eq!(
        o.jobs,
        [Job::Generate {
            prompt: "a red circle on the left, on white".into()
        }]
    );
    assert_eq!(o.reply, "Here is a red circle on the left.");
    assert_eq!(o.outputs.len(), 1);
    assert_eq!(o.outputs[0].name, "#1");
    assert_eq!(o.outputs[0].path, Some("/out/#1.png".into()));
    assert!(o.notes.is_empty() && !o.cancelled);
    assert_eq!(speakers(&conversation), [USER, ASSISTANT, TOOL, ASSISTANT]);
    // The second prompt showed the model its call and the protocol's result, as ipython.
    let seen = model.seen.borrow();
    let last = seen[1].last().unwrap();
    assert_eq!(last.role, Role::Tool);
    assert_eq!(
        last.content.as_deref(),
        Some(r##"{"image":"#1","prompt":"a red circle on the left, on white"}"##)
    );
    assert_eq!(seen[1][0].role, Role::System);
    assert!(matches!(
        run.events.as_slice(),
        [
            AgentEvent::Text(_),
            AgentEvent::JobStarted { index: 0, .. },
            AgentEvent::JobFinished { index: 0, .. },
            AgentEvent::Text(_),
            AgentEvent::Reply(_)
        ]
    ));
}

#[test]
fn a_plan_generates_then_edits_its_own_result() {
    let mut conversation = Conversation::new();
    let mut runner = Recorder::default();
    let (run, _) = turn(
        scripted(&[
            GENERATE_RED,
            EDIT_1_BLUE,
            "Done: #1 and its blue version #2.",
        ]),
        &mut conversation,
        "a red circle on the left, then make it blue",
        None,
        &mut runner,
        &AtomicBool::new(false),
    );
    assert_eq!(run.outcome.action, Action::Generate);
    assert_eq!(run.outcome.jobs.len(), 2);
    let edited = &run.outcome.outputs[1];
    assert_eq!(edited.name, "#2");
    assert_eq!(edited.made_from.as_deref(), Some("#1"));
    assert_eq!(edited.origin, PictureOrigin::Edited);
    assert_eq!(
        edited.instruction.as_deref(),
        Some("make the red circle blue")
    );
    let tool = &conversation.messages()[4];
    assert_eq!(
        tool.content.as_deref(),
        Some(r##"{"image":"#1","edited":"#2","instruction":"make the red circle blue"}"##)
    );
    assert_eq!(tool.pictures, ["#2"]);
}

#[test]
fn a_malformed_call_becomes_a_chat_reply_with_a_note() {
    let mut conversation = Conversation::new();
    let mut runner = Recorder::default();
    let (run, _) = turn(
        scripted(&[r#"{"name": "generate_image", "parameters": {"prompt": "a red"#]),
        &mut conversation,
        "draw something",
        None,
        &mut runner,
        &AtomicBool::new(false),
    );
    assert_eq!(run.outcome.action, Action::Chat);
    assert!(run.outcome.jobs.is_empty() && runner.ran.is_empty());
    assert!(
        run.outcome.reply.contains("cut off"),
        "{}",
        run.outcome.reply
    );
    assert_eq!(run.outcome.notes, std::slice::from_ref(&run.outcome.reply));
}

#[test]
fn unknown_pictures_tools_and_missing_arguments_are_refused_in_words() {
    let cases: [(&'static str, &str); 3] = [
        (
            r##"{"name": "edit_image", "parameters": {"image": "#7", "instruction": "x"}}"##,
            "There is no picture #7 in this conversation (there are #1)",
        ),
        (
            r#"{"name": "paint", "parameters": {}}"#,
            "`paint`, which does not exist (I have generate_image and edit_image)",
        ),
        (
            r##"{"name": "edit_image", "parameters": {"image": "#1"}}"##,
            "without its `instruction`",
        ),
    ];
    for (reply, expected) in cases {
        let mut conversation = Conversation::new();
        let attached = Attachment {
            path: "cat.png".into(),
            description: None,
            history_id: None,
        };
        let mut runner = Recorder::default();
        let (run, _) = turn(
            scripted(&[reply]),
            &mut conversation,
            "change it",
            Some(attached),
            &mut runner,
            &AtomicBool::new(false),
        );
        assert!(runner.ran.is_empty());
        assert_eq!(run.outcome.action, Action::Chat);
        assert!(
            run.outcome.reply.contains(expected),
            "{}",
            run.outcome.reply
        );
        // The refused call stays in the conversation with an error result, then the reply.
        assert_eq!(speakers(&conversation), [USER, ASSISTANT, TOOL, ASSISTANT]);
        assert!(
            conversation.messages()[2]
                .content
                .as_deref()
                .unwrap()
                .starts_with(r#"{"error":"#)
        );
        assert_eq!(
            conversation.messages()[0].content.as_deref(),
            Some("[image #1 attached: no description]\nchange it")
        );
    }
}

#[test]
fn an_edit_with_no_picture_anywhere_asks_for_one() {
    let mut conversation = Conversation::new();
    let mut runner = Recorder::default();
    let (run, _) = turn(
        scripted(&[EDIT_1_BLUE]),
        &mut conversation,
        "make it blue",
        None,
        &mut runner,
        &AtomicBool::new(false),
    );
    assert_eq!(run.outcome.reply, NO_PICTURE_TO_EDIT);
    assert!(run.outcome.reply.contains("--image"));
    assert!(run.outcome.reply.contains("attach button"));
    assert!(runner.ran.is_empty());
}

/// "a red circle, then make it blue" in a new conversation, its jobs run by `runner`, with
/// `cancel` as the user's Stop; the model's script has a third reply it should never give.
fn red_then_blue(runner: &mut dyn JobRunner, cancel: &AtomicBool) -> (Run, Scripted, Conversation) {
    let mut conversation = Conversation::new();
    let (run, model) = turn(
        scripted(&[GENERATE_RED, EDIT_1_BLUE, "never said"]),
        &mut conversation,
        "a red circle, then make it blue",
        None,
        runner,
        cancel,
    );
    (run, model, conversation)
}

#[test]
fn cancel_between_jobs_stops_the_plan_and_says_what_was_made() {
    let cancel = AtomicBool::new(false);
    let mut runner = Recorder {
        cancel_after: Some((1, &cancel)),
        ..Recorder::default()
    };
    let (run, model, conversation) = red_then_blue(&mut runner, &cancel);
    assert!(run.outcome.cancelled);
    assert_eq!(runner.ran.len(), 1);
    assert_eq!(run.outcome.reply, "Stopped. Made so far: #1.");
    assert_eq!(
        model.seen.borrow().len(),
        1,
        "the model was not asked again"
    );
    assert_eq!(
        conversation.messages().last().unwrap().speaker,
        Speaker::Assistant
    );
}

/// Stops the turn from inside its second job, as the engine does when the user presses Stop
/// while a picture is drawn: the job ends with an error and the flag is up.
struct StoppedDuringSecondJob<'a> {
    ran: usize,
    cancel: &'a AtomicBool,
}

impl JobRunner for StoppedDuringSecondJob<'_> {
    fn run(&mut self, job: &Job, conversation: &Conversation) -> Result<Picture, String> {
        self.ran += 1;
        if self.ran == 2 {
            self.cancel.store(true, Ordering::Relaxed);
            return Err("stopped before the picture was finished".into());
        }
        Ok(planned_picture(conversation, job))
    }
}

#[test]
fn a_stop_during_a_job_ends_the_plan_as_a_stop_not_a_failure() {
    let cancel = AtomicBool::new(false);
    let mut runner = StoppedDuringSecondJob {
        ran: 0,
        cancel: &cancel,
    };
    let (run, model, conversation) = red_then_blue(&mut runner, &cancel);
    assert!(run.outcome.cancelled);
    assert_eq!(run.outcome.reply, "Stopped. Made so far: #1.");
    assert!(
        !run.events
            .iter()
            .any(|e| matches!(e, AgentEvent::JobFailed { .. })),
        "a stop is not reported as a failed job"
    );
    assert_eq!(model.seen.borrow().len(), 2);
    assert_eq!(
        conversation.messages().last().unwrap().speaker,
        Speaker::Assistant
    );
}

#[test]
fn a_failed_job_gets_an_error_result_and_ends_the_plan() {
    let mut conversation = Conversation::new();
    let mut runner = Recorder::default();
    let (run, model) = turn(
        scripted(&[
            GENERATE_RED,
            r##"{"name": "edit_image", "parameters": {"image": "#1", "instruction": "fail now"}}"##,
            GENERATE_RED,
        ]),
        &mut conversation,
        "go",
        None,
        &mut runner,
        &AtomicBool::new(false),
    );
    assert_eq!(runner.ran.len(), 2);
    assert_eq!(run.outcome.jobs.len(), 2);
    assert_eq!(run.outcome.outputs.len(), 1);
    assert_eq!(
        run.outcome.reply,
        "The edit job failed: the model folder is missing. Made so far: #1. I stopped the plan \
         there."
    );
    assert_eq!(model.seen.borrow().len(), 2);
    let tool = &conversation.messages()[4];
    assert_eq!(
        tool.content.as_deref(),
        Some(r#"{"error":"the model folder is missing"}"#)
    );
    assert!(
        run.events
            .iter()
            .any(|e| matches!(e, AgentEvent::JobFailed { index: 1, .. }))
    );
}

#[test]
fn truncation_is_noted_once_and_the_job_limit_ends_a_runaway_plan() {
    let mut conversation = Conversation::new();
    let mut runner = Recorder::default();
    let mut model = scripted(&[GENERATE_RED; 6]);
    model.dropped = 3;
    let (run, _) = turn(
        model,
        &mut conversation,
        "many",
        None,
        &mut runner,
        &AtomicBool::new(false),
    );
    assert_eq!(runner.ran.len(), 4);
    assert!(run.outcome.reply.contains("at most 4 pictures"));
    assert_eq!(run.outcome.notes.len(), 1);
    assert!(run.outcome.notes[0].contains("its 3 oldest messages were left out"));
}

#[test]
fn an_empty_message_is_an_error_before_the_model_runs() {
    let agent = Agent::new(scripted(&[]), AgentOptions::default());
    let mut conversation = Conversation::new();
    let err = agent
        .turn(
            &mut conversation,
            "  \n",
            None,
            &mut DryRun,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap_err();
    assert!(matches!(err, AgentError::EmptyMessage));
    assert!(agent.model.seen.borrow().is_empty());
    assert!(conversation.messages().is_empty());
}

#[test]
fn a_dry_run_names_pictures_without_files() {
    let mut conversation = Conversation::new();
    let (run, _) = turn(
        scripted(&[GENERATE_RED, EDIT_1_BLUE, "ok"]),
        &mut conversation,
        "go",
        None,
        &mut DryRun,
        &AtomicBool::new(false),
    );
    let names: Vec<_> = run
        .outcome
        .outputs
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["#1", "#2"]);
    assert!(run.outcome.outputs.iter().all(|p| p.path.is_none()));
}

// The checks an edit call goes through before it runs.
#[path = "coordinator_edit_tests.rs"]
mod edit_checks;
