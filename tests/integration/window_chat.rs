//! The chat, driven by label as a user would: a request becomes a picture in the conversation
//! and the history, the next request edits that picture, an empty message is asked for, Stop
//! ends a turn, a missing agent model is named. The agent runs on the engine thread.
//!
//! The conversations that make pictures run the bundled agent (assets/models/shapes-agent);
//! the plumbing is also tested on the tiny chat fixture model (random weights: its words are
//! noise, but its turn goes through the engine like any other).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use hidream_studio::app::{
    ChatItem, JobPhase, MESSAGE_REQUEST, ModelFolders, ScriptedDialogs, StudioApp,
};
use hidream_studio::store::{EntryKind, StoredRecord};

use crate::common::fixtures;
use crate::common::window::{Window, paths};

/// A generation, an edit and the agent's replies on a loaded machine.
const TURN_TIMEOUT: Duration = Duration::from_mins(6);

/// The bundled Shapes models, with `agent` as the chat's agent.
fn window_with_agent(root: &std::path::Path, agent: Option<PathBuf>) -> Window {
    Window::new(&paths(root)).bundled(ModelFolders {
        agent,
        ..ModelFolders::bundled()
    })
}

/// The window with the tiny random chat model of the language-model fixtures as its agent.
/// Its random tokens include stray bytes of UTF-8, which are shown as boxes (the window's own
/// policy) rather than failing the test.
fn window_with_fixture_agent(root: &std::path::Path) -> Window {
    window_with_agent(root, Some(fixtures().join("chat/model"))).allow_missing_glyphs()
}

fn open_chat(harness: &mut Harness<'_, StudioApp>) {
    harness.run_ok();
    harness.get_by_label("Chat").click();
    harness.run_ok();
}

/// Types `text` in the message box and presses Enter.
fn send(harness: &mut Harness<'_, StudioApp>, text: &str) {
    harness.get_by_label("Message").click();
    harness.run_ok();
    harness.get_by_label("Message").type_text(text);
    harness.run_ok();
    harness.key_press(egui::Key::Enter);
    harness.run_ok();
}

/// Steps the window until the running turn has ended.
fn wait_for_turn(harness: &mut Harness<'_, StudioApp>) {
    let start = Instant::now();
    while harness.state().chat_panel().is_running() {
        assert!(
            start.elapsed() < TURN_TIMEOUT,
            "the turn did not end; the conversation: {:?}; messages: {:?}",
            harness.state().chat_panel().items(),
            harness.state().messages()
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    harness.run_ok();
}

/// What the assistant and the notes said.
fn said(app: &StudioApp) -> Vec<String> {
    app.chat_panel()
        .items()
        .iter()
        .filter_map(|item| match item {
            ChatItem::Note { text, .. } | ChatItem::Assistant(text) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_empty_message_is_asked_for() {
    let root = tempfile::tempdir().unwrap();
    let mut harness = window_with_fixture_agent(root.path()).build();
    open_chat(&mut harness);
    harness.get_by_label("Send").click();
    harness.run_ok();
    harness.get_by_label(MESSAGE_REQUEST);
    // Spaces are no message either, and nothing went to the engine.
    send(&mut harness, "   ");
    harness.get_by_label(MESSAGE_REQUEST);
    assert!(harness.state().pending_jobs().is_empty());
    assert!(harness.state().chat_panel().items().is_empty());
}

#[test]
fn a_missing_agent_model_is_named() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("shapes-agent");
    let mut harness = window_with_agent(root.path(), Some(missing.clone())).build();
    open_chat(&mut harness);
    harness.get_by_label("Model: Shapes agent (bundled)");
    send(&mut harness, "draw a red circle on the left");
    let problem = harness
        .state()
        .chat_panel()
        .problem()
        .unwrap_or_default()
        .to_owned();
    assert!(
        problem.starts_with("The agent model is missing")
            && problem.contains(&missing.display().to_string()),
        "{problem}"
    );
    harness.get_by_label(&problem);
    // The message stays for another try.
    assert_eq!(
        harness.state().chat_panel().message,
        "draw a red circle on the left"
    );
    assert!(harness.state().pending_jobs().is_empty());
}

/// The turn goes to the engine, the model is loaded there on first use, and its answer comes
/// back into the conversation (the fixture model's words are noise: a reply or a note saying
/// its tool call could not be used).
#[test]
fn a_turn_runs_on_the_engine_and_is_kept_in_the_conversation() {
    let root = tempfile::tempdir().unwrap();
    let mut harness = window_with_fixture_agent(root.path()).build();
    open_chat(&mut harness);
    send(&mut harness, "hello there");
    assert!(harness.state().chat_panel().is_running());
    assert_eq!(harness.state().chat_panel().message, "", "sent, so cleared");
    wait_for_turn(&mut harness);
    let app = harness.state();
    let items = app.chat_panel().items();
    assert_eq!(
        items[0],
        ChatItem::User {
            text: "hello there".into(),
            attached: None
        }
    );
    assert!(items.len() >= 2, "{items:?}");
    assert!(
        !app.messages().iter().any(|m| m.is_error),
        "{:?}",
        app.messages()
    );
    // The conversation as the agent reads it: the user's message and the assistant's.
    let conversation = app.conversation().messages();
    assert!(conversation.len() >= 2, "{conversation:?}");
    assert_eq!(conversation[0].content.as_deref(), Some("hello there"));

    // Kept in the data folder: a restarted window shows it again and the agent reads it.
    let kept = app.conversation().clone();
    drop(harness);
    let mut harness = window_with_fixture_agent(root.path()).build();
    open_chat(&mut harness);
    assert_eq!(harness.state().conversation(), &kept);
    assert_eq!(
        harness.state().chat_panel().items()[0],
        ChatItem::User {
            text: "hello there".into(),
            attached: None
        }
    );
    // A new conversation starts empty (and is kept as a conversation of its own).
    harness.get_by_label("New conversation").click();
    harness.run_ok();
    assert!(harness.state().chat_panel().items().is_empty());
    assert!(harness.state().conversation().messages().is_empty());
}

#[test]
fn stop_ends_a_turn_and_says_so() {
    let root = tempfile::tempdir().unwrap();
    let mut harness = window_with_fixture_agent(root.path()).build();
    open_chat(&mut harness);
    send(&mut harness, "hello there");
    harness.get_by_label("Stop").click();
    harness.run_ok();
    wait_for_turn(&mut harness);
    let said = said(harness.state());
    assert!(said.iter().any(|n| n.starts_with("Stopped")), "{said:?}");
    assert!(harness.state().pending_jobs().is_empty());
}

#[test]
fn an_unreadable_picture_is_not_attached_and_a_readable_one_goes_with_the_message() {
    let root = tempfile::tempdir().unwrap();
    let not_an_image = root.path().join("notes.png");
    std::fs::write(&not_an_image, "not a picture").unwrap();
    let source = fixtures().join("edit-e11-base-refine/source.png");
    let dialogs = ScriptedDialogs {
        images: vec![not_an_image, source.clone()],
        ..ScriptedDialogs::default()
    };
    let mut harness = window_with_fixture_agent(root.path())
        .dialogs(dialogs)
        .build();
    open_chat(&mut harness);
    harness.get_by_label("Attach image…").click();
    harness.run_ok();
    let problem = harness.state().chat_panel().problem().unwrap_or_default();
    assert!(
        problem.starts_with("Cannot attach this picture"),
        "{problem}"
    );
    assert!(problem.contains("notes.png"), "{problem}");

    harness.get_by_label("Attach image…").click();
    harness.run_ok();
    assert_eq!(harness.state().chat_panel().problem(), None);
    harness.get_by_label("Attached: source.png");
    send(&mut harness, "make it blue");
    // Sent with the message as the conversation's first picture, then no longer attached.
    assert!(harness.query_by_label("Attached: source.png").is_none());
    wait_for_turn(&mut harness);
    let app = harness.state();
    assert_eq!(
        app.chat_panel().items()[0],
        ChatItem::User {
            text: "make it blue".into(),
            attached: Some("#1".into())
        }
    );
    let picture = &app.conversation().pictures()[0];
    assert_eq!(picture.path.as_deref(), Some(source.as_path()));
    assert_eq!(picture.history_id, None);
}

/// The bundled agent.
fn bundled_agent() -> PathBuf {
    let agent = ModelFolders::bundled()
        .agent
        .expect("the bundled models folder is in the source tree");
    assert!(
        agent.join("config.json").is_file(),
        "{} is missing",
        agent.display()
    );
    agent
}

/// Sends `text` and waits for its turn; the entries the history gained, oldest first.
fn turn(
    harness: &mut Harness<'_, StudioApp>,
    text: &str,
) -> Vec<hidream_studio::store::HistoryEntry> {
    let before = harness.state().history_entries().len();
    send(harness, text);
    wait_for_turn(harness);
    let entries = harness.state().history_entries();
    let mut new: Vec<_> = entries[..entries.len() - before].to_vec();
    new.reverse();
    new
}

#[test]
fn a_request_draws_a_picture_and_the_next_one_edits_it() {
    let root = tempfile::tempdir().unwrap();
    let mut harness = window_with_agent(root.path(), Some(bundled_agent())).build();
    open_chat(&mut harness);

    let made = turn(&mut harness, "draw a red circle on the left");
    assert_eq!(made.len(), 1, "{:?}", harness.state().chat_panel().items());
    let first = &made[0];
    let StoredRecord::Generation(record) = &first.record else {
        panic!("expected a generation, got {:?}", first.kind);
    };
    // What the agent asked for is what the generator drew. (Whether the agent read the
    // request right is its own evaluation's business: tools/train-agent, agent-eval.)
    let asked = harness.state().conversation().pictures()[0].prompt.clone();
    assert_eq!(asked.as_deref(), Some(record.settings.prompt.as_str()));
    assert!(!record.settings.prompt.trim().is_empty());
    // In the conversation as its first picture, and selected in the history.
    assert!(harness.state().chat_panel().items().iter().any(
        |i| matches!(i, ChatItem::Picture { name, entry, .. } if name == "#1" && *entry == first.id)
    ));
    assert_eq!(harness.state().selected(), Some(first.id));
    harness.get_by_label("Picture #1");

    let made = turn(&mut harness, "now make it blue");
    assert_eq!(made.len(), 1, "{:?}", harness.state().chat_panel().items());
    let edit = &made[0];
    assert_eq!(edit.kind, EntryKind::Edit);
    assert_eq!(
        edit.parent,
        Some(first.id),
        "the edit's source is the first result"
    );
    let StoredRecord::Edit(record) = &edit.record else {
        panic!("expected an edit record");
    };
    assert_eq!(record.settings.image, first.image_path);
    let pictures = harness.state().conversation().pictures();
    // The bundled E1.1 takes the agent's instruction as it is.
    assert_eq!(
        pictures[1].instruction.as_deref(),
        Some(record.settings.instruction.as_str())
    );
    assert_eq!(pictures.len(), 2);
    assert_eq!(pictures[1].made_from.as_deref(), Some("#1"));
    assert_eq!(pictures[1].history_id, Some(edit.id));
}

#[test]
fn stop_during_a_plan_keeps_no_half_made_picture() {
    let root = tempfile::tempdir().unwrap();
    let mut harness = window_with_agent(root.path(), Some(bundled_agent())).build();
    open_chat(&mut harness);
    // The bundled model draws in well under a second at its own steps; many more steps keep
    // the job running while the test presses Stop (set once the model's defaults are shown).
    harness.state_mut().generate_panel_mut().steps = 1000;
    send(&mut harness, "draw a red circle on the left");
    // Stop once the plan's picture is being drawn.
    let start = Instant::now();
    while !harness
        .state()
        .pending_jobs()
        .iter()
        .any(|j| matches!(j.phase, JobPhase::Denoising { .. }))
    {
        assert!(start.elapsed() < TURN_TIMEOUT, "no picture started");
        assert!(
            harness.state().chat_panel().is_running(),
            "the turn ended without drawing: {:?}",
            harness.state().chat_panel().items()
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.get_by_label("Stop").click();
    harness.run_ok();
    wait_for_turn(&mut harness);
    assert!(
        harness.state().history_entries().is_empty(),
        "{:?}",
        harness.state().chat_panel().items()
    );
    let said = said(harness.state());
    assert!(
        said.iter().any(|n| n.to_lowercase().contains("stopped")),
        "{said:?}"
    );
}

#[test]
fn snapshot_of_the_chat_with_a_result() {
    let root = tempfile::tempdir().unwrap();
    let mut harness = window_with_agent(root.path(), Some(bundled_agent()))
        .for_snapshots()
        .build();
    open_chat(&mut harness);
    turn(&mut harness, "draw a red circle on the left");
    // Timings differ from run to run; the screen is about layout.
    harness.state_mut().clear_messages();
    harness.remove_cursor();
    harness.run_ok();
    harness.snapshot("chat_with_result");
}
