//! Batches and the job queue, driven by label with the bundled Shapes models: a batch of N
//! makes N history entries with consecutive seeds; waiting jobs can be moved and removed, and
//! the engine then runs them in the list's order, never the removed one.

use std::time::Duration;

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use hidream_studio::app::StudioApp;
use hidream_studio::store::StoredRecord;

use crate::common::window::{Window, paths};
use crate::studio_window::{run_until, start_long_job, type_prompt};

/// The prompt and seed of every text-to-image entry in the history, oldest first.
fn results(app: &StudioApp) -> Vec<(String, u64)> {
    app.history_entries()
        .iter()
        .rev()
        .map(|e| match &e.record {
            StoredRecord::Generation(r) => (r.settings.prompt.clone(), r.settings.seed),
            other => panic!("expected a text-to-image record, got {other:?}"),
        })
        .collect()
}

/// A fresh window on the bundled Shapes models, with the folder it keeps its data in.
fn shapes_window() -> (tempfile::TempDir, Harness<'static, StudioApp>) {
    let root = tempfile::tempdir().unwrap();
    let mut harness = Window::new(&paths(root.path())).bundled_models().build();
    harness.run_ok();
    (root, harness)
}

fn waiting_titles(app: &StudioApp) -> Vec<String> {
    app.waiting_jobs().iter().map(|e| e.title.clone()).collect()
}

#[test]
fn a_batch_of_three_makes_three_entries_with_consecutive_seeds() {
    let (_root, mut harness) = shapes_window();
    type_prompt(
        &mut harness,
        "Prompt",
        "a red circle in the centre, on white",
    );
    harness.get_by_label("fixed").click();
    harness.run_ok();
    harness.get_by_label("Seed").set_value_accesskit(1234.0);
    harness.get_by_label("Batch").set_value_accesskit(3.0);
    harness.run_ok();
    assert_eq!(harness.state().generate_panel().batch, 3);
    // The bundled model is small, but fewer steps keep the test short.
    harness.state_mut().generate_panel_mut().steps = 4;
    harness.get_by_label("Generate").click();
    harness.run_ok();
    run_until(
        &mut harness,
        Duration::from_mins(5),
        "three results",
        |app| app.history_entries().len() == 3 && app.pending_jobs().is_empty(),
    );

    let app = harness.state();
    let prompt = "a red circle in the centre, on white".to_string();
    assert_eq!(
        results(app),
        [
            (prompt.clone(), 1234),
            (prompt.clone(), 1235),
            (prompt, 1236)
        ],
        "messages: {:?}",
        app.messages()
    );
    // The canvas shows the latest image; the fixed seed is left as it was.
    assert_eq!(app.selected(), Some(app.history_entries()[0].id));
    assert_eq!(app.generate_panel().seed, 1234);
}

#[test]
fn queued_jobs_run_in_the_order_left_after_moving_and_removing() {
    let (_root, mut harness) = shapes_window();
    // A long job holds the engine while the others are queued and rearranged.
    start_long_job(&mut harness, "a blue square on the left, on black");

    harness.state_mut().generate_panel_mut().steps = 4;
    for prompt in ["job A", "job B", "job C"] {
        harness.state_mut().generate_panel_mut().prompt = prompt.into();
        harness.get_by_label("Generate").click();
        harness.run_ok();
    }
    assert_eq!(
        waiting_titles(harness.state()),
        ["Generate: job A", "Generate: job B", "Generate: job C"]
    );
    // The first waiting job cannot go up, the last cannot go down.
    let ups: Vec<_> = harness.get_all_by_label("Up").collect();
    assert_eq!(ups.len(), 3);
    assert!(ups[0].accesskit_node().is_disabled());
    assert!(
        harness
            .get_all_by_label("Down")
            .last()
            .unwrap()
            .accesskit_node()
            .is_disabled()
    );

    // C goes before B, then A is removed.
    harness.get_all_by_label("Up").last().unwrap().click();
    harness.run_ok();
    assert_eq!(
        waiting_titles(harness.state()),
        ["Generate: job A", "Generate: job C", "Generate: job B"]
    );
    harness.get_all_by_label("Remove").next().unwrap().click();
    harness.run_ok();
    assert_eq!(
        waiting_titles(harness.state()),
        ["Generate: job C", "Generate: job B"]
    );

    harness.get_by_label("Cancel").click();
    harness.run_ok();
    run_until(&mut harness, Duration::from_mins(5), "the queue", |app| {
        app.pending_jobs().is_empty() && app.waiting_jobs().is_empty()
    });
    let app = harness.state();
    let prompts: Vec<String> = results(app).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        prompts,
        ["job C", "job B"],
        "messages: {:?}",
        app.messages()
    );
    let said: Vec<&str> = app.messages().iter().map(|m| m.text.as_str()).collect();
    assert!(
        said.contains(&"Generate: job A: removed from the queue."),
        "{said:?}"
    );
}
