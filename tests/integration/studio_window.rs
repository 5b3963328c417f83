//! The studio window driven headlessly through egui_kittest, the way a user would: by labels,
//! clicks, typing and drags. Jobs run on the real engine with the fixture models.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use hidream_studio::app::{
    Message, Mode, ModelSlot, ScriptedDialogs, SeedMode, StudioApp, StudioConfig,
};
use hidream_studio::pipelines::Preset;
use hidream_studio::store::{StoredRecord, read_stored_record};

use crate::common::fixtures;
use crate::common::window::{Window, dirs_with_models, open_image_to_edit};

/// Steps the UI until `done` holds, failing after `timeout`.
pub(crate) fn run_until(
    harness: &mut Harness<'_, StudioApp>,
    timeout: Duration,
    what: &str,
    done: impl Fn(&StudioApp) -> bool,
) {
    let start = Instant::now();
    while !done(harness.state()) {
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {what}; messages: {:?}",
            harness.state().messages()
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    harness.run_ok();
}

/// Clicks Generate, waits for the job to end and returns the error it showed.
pub(crate) fn generate_and_fail(harness: &mut Harness<'_, StudioApp>) -> Message {
    harness.get_by_label("Generate").click();
    harness.run_ok();
    run_until(harness, Duration::from_mins(1), "the failure", |app| {
        app.pending_jobs().is_empty()
    });
    let messages = harness.state().messages().to_vec();
    messages
        .iter()
        .find(|m| m.is_error)
        .cloned()
        .unwrap_or_else(|| panic!("no error shown: {messages:?}"))
}

pub(crate) fn type_prompt(harness: &mut Harness<'_, StudioApp>, label: &str, text: &str) {
    harness.get_by_label(label).click();
    harness.run_ok();
    harness.get_by_label(label).type_text(text);
    harness.run_ok();
}

const PROMPT: &str = "a red circle to the left of a blue square";

/// Types a prompt, fixes the seed, clicks Generate and waits for the result.
pub(crate) fn generate_one(harness: &mut Harness<'_, StudioApp>, seed: u64) {
    type_prompt(harness, "Prompt", PROMPT);
    harness.state_mut().generate_panel_mut().seed_mode = SeedMode::Fixed;
    harness.state_mut().generate_panel_mut().seed = seed;
    // The fixture model is tiny: fewer steps keep the test short.
    harness.state_mut().generate_panel_mut().steps = 6;
    let before = harness.state().history_entries().len();
    harness.get_by_label("Generate").click();
    harness.run_ok();
    run_until(harness, Duration::from_mins(5), "the result", |app| {
        app.history_entries().len() > before
    });
}

/// Generates `prompt` with a thousand steps and waits until it denoises: it keeps the engine
/// busy while a test clicks Cancel or queues more.
pub(crate) fn start_long_job(harness: &mut Harness<'_, StudioApp>, prompt: &str) {
    type_prompt(harness, "Prompt", prompt);
    harness.state_mut().generate_panel_mut().steps = 1000;
    harness.get_by_label("Generate").click();
    harness.run_ok();
    run_until(harness, Duration::from_mins(2), "the first step", |app| {
        app.pending_jobs()
            .first()
            .is_some_and(|j| matches!(j.phase, hidream_studio::app::JobPhase::Denoising { .. }))
    });
}

pub(crate) fn generation_record(app: &StudioApp) -> hidream_studio::pipelines::GenerationRecord {
    match &app.history_entries()[0].record {
        StoredRecord::Generation(r) => (**r).clone(),
        other => panic!("expected a text-to-image record, got {other:?}"),
    }
}

#[test]
fn generate_sends_the_settings_and_the_result_persists_across_instances() {
    let dirs = dirs_with_models();
    let mut harness = Window::new(&dirs.paths).build();
    generate_one(&mut harness, 1234);
    let app = harness.state();
    assert!(app.pending_jobs().is_empty());
    let record = generation_record(app);
    assert_eq!(record.settings.prompt, PROMPT);
    assert_eq!(record.settings.seed, 1234);
    assert_eq!(record.settings.preset, Preset::Full);
    assert_eq!(record.settings.steps, Some(6));
    assert_eq!(record.settings.base_resolution, 64);
    assert_eq!(
        record.settings.models.model,
        fixtures().join("full-square/model")
    );
    assert_eq!(
        record.settings.negative_prompt.as_deref(),
        Some(""),
        "Full runs with guidance, so the (empty) negative prompt is sent"
    );
    assert_eq!((record.resolved.width, record.resolved.height), (64, 64));
    let entry = app.history_entries()[0].clone();
    assert!(entry.image_path.is_file());
    assert!(entry.thumbnail_path.is_file());
    assert_eq!(app.selected(), Some(entry.id));
    drop(harness);

    // A second window on the same data folder sees the same history.
    let mut second = Window::new(&dirs.paths).build();
    second.run_ok();
    let entries = second.state().history_entries().to_vec();
    assert_eq!(entries, vec![entry.clone()]);
    // "Reuse settings" brings the entry's settings back into the controls.
    second.get_by_label("Reuse settings").click();
    second.run_ok();
    let panel = second.state().generate_panel();
    assert_eq!(panel.prompt, PROMPT);
    assert_eq!(
        (panel.seed, panel.seed_mode, panel.steps),
        (1234, SeedMode::Fixed, 6)
    );
    second.get_by_label("Delete").click();
    second.run_ok();
    assert!(second.state().history_entries().is_empty());
    assert!(!entry.image_path.exists());
    drop(second);
    let third = Window::new(&dirs.paths).build();
    assert!(third.state().history_entries().is_empty());
}

#[test]
fn switching_presets_changes_the_shown_defaults() {
    let dirs = dirs_with_models();
    let mut harness = Window::new(&dirs.paths).build();
    harness.run_ok();
    assert_eq!(harness.state().generate_panel().steps, 50);
    assert!(
        !harness
            .get_by_label("Negative prompt")
            .accesskit_node()
            .is_disabled()
    );
    harness.get_by_label("Full: 50 steps, UniPC, guidance 5, shift 3");

    harness.get_by_label("Dev").click();
    harness.run_ok();
    let panel = harness.state().generate_panel();
    assert_eq!(panel.preset, Preset::Dev);
    assert_eq!((panel.steps, panel.guidance, panel.shift), (28, 0.0, 6.0));
    harness.get_by_label("Dev: 28 steps, Flash Euler, no guidance, shift 6");
    assert!(
        harness
            .get_by_label("Negative prompt")
            .accesskit_node()
            .is_disabled(),
        "the negative prompt is disabled without guidance"
    );

    harness.get_by_label("Fast").click();
    harness.run_ok();
    let panel = harness.state().generate_panel();
    assert_eq!((panel.steps, panel.shift), (16, 3.0));
    harness.get_by_label("Fast: 16 steps, Flash Euler, no guidance, shift 3");

    // Dev is not configured: asking for it says what to do instead of failing silently.
    harness.get_by_label("Dev").click();
    harness.run_ok();
    type_prompt(&mut harness, "Prompt", "a red circle");
    harness.get_by_label("Generate").click();
    harness.run_ok();
    let messages = harness.state().messages();
    assert!(
        messages
            .iter()
            .any(|m| m.is_error && m.text.contains("No folder is set for HiDream-I1-Dev")),
        "{messages:?}"
    );
}

#[test]
fn cancel_stops_a_running_job() {
    let dirs = dirs_with_models();
    let mut harness = Window::new(&dirs.paths).build();
    start_long_job(&mut harness, "a long job");
    harness.get_by_label("Cancel").click();
    run_until(
        &mut harness,
        Duration::from_mins(1),
        "the cancellation",
        |app| app.pending_jobs().is_empty(),
    );
    let app = harness.state();
    assert!(app.history_entries().is_empty());
    assert!(
        app.messages().iter().any(|m| m.text.contains("cancelled")),
        "{:?}",
        app.messages()
    );
}

#[test]
fn brushing_and_an_instruction_send_an_edit_job_with_that_mask() {
    let dirs = dirs_with_models();
    let source = fixtures().join("edit-e11/source.png");
    let dialogs = ScriptedDialogs {
        images: vec![source.clone()],
        ..Default::default()
    };
    let mut harness = Window::new(&dirs.paths).dialogs(dialogs).build();
    open_image_to_edit(&mut harness);
    assert_eq!(harness.state().mode(), Mode::Edit);
    harness.state_mut().edit_panel_mut().brush.radius = 6.0;

    // One stroke across the middle of the canvas, left to right.
    let canvas = harness.get_by_label("Canvas").rect();
    let y = canvas.center().y;
    let from = egui::pos2(canvas.center().x - canvas.width() * 0.2, y);
    let to = egui::pos2(canvas.center().x + canvas.width() * 0.05, y);
    harness.hover_at(from);
    harness.run_ok();
    harness.drag_at(from);
    harness.run_ok();
    for i in 1..=8 {
        harness.hover_at(from.lerp(to, i as f32 / 8.0));
        harness.run_ok();
    }
    harness.drop_at(to);
    harness.run_ok();
    let mask = harness.state().mask().unwrap();
    assert!(!mask.is_empty(), "the stroke painted the mask");
    let (w, h) = mask.size();
    assert_eq!((w, h), (80, 48));
    let painted = mask.pixels().to_vec();
    // The stroke runs along the middle row, and leaves the corners alone.
    assert_eq!(painted[(h / 2 * w + w / 2) as usize], 255);
    assert_eq!(painted[0], 0);
    assert_eq!(painted[(w * h - 1) as usize], 0);

    type_prompt(&mut harness, "Instruction", "make the circle blue");
    harness.get_by_label("Apply edit").click();
    harness.run_ok();
    run_until(&mut harness, Duration::from_mins(5), "the edit", |app| {
        !app.history_entries().is_empty()
    });
    let entry = harness.state().history_entries()[0].clone();
    let StoredRecord::Edit(record) = &entry.record else {
        panic!("expected an edit record");
    };
    assert_eq!(record.settings.instruction, "make the circle blue");
    assert_eq!(record.settings.image, source);
    assert_eq!(
        record.settings.models.model,
        fixtures().join("edit-e11/model")
    );
    let mask_file = record
        .settings
        .mask
        .clone()
        .expect("the job carried the mask");
    let sent = image::open(&mask_file).unwrap().to_luma8();
    assert_eq!(sent.as_raw(), &painted, "the mask sent is the mask brushed");
    // Outside the brushed area (beyond the feather) the result keeps the source's pixels.
    let result = image::open(&entry.image_path).unwrap().to_rgb8();
    let original = image::open(&source).unwrap().to_rgb8();
    assert_eq!(result.dimensions(), original.dimensions());
    assert_eq!(result.get_pixel(0, 0), original.get_pixel(0, 0));
    assert_eq!(
        result.get_pixel(w - 1, h - 1),
        original.get_pixel(w - 1, h - 1)
    );
    assert_eq!(
        entry.parent, None,
        "the source came from a file, not the history"
    );
}

#[test]
fn export_writes_a_file_whose_metadata_reproduces_the_settings() {
    let dirs = dirs_with_models();
    let out = dirs.paths.data_dir.parent().unwrap().join("exported.png");
    let jpeg = dirs.paths.data_dir.parent().unwrap().join("exported.jpg");
    let dialogs = ScriptedDialogs {
        save_paths: vec![out.clone(), jpeg.clone()],
        ..Default::default()
    };
    let mut harness = Window::new(&dirs.paths).dialogs(dialogs).build();
    generate_one(&mut harness, 77);
    let original = harness.state().history_entries()[0].clone();
    harness.get_by_label("Export…").click();
    harness.run_ok();
    harness.get_by_label("Export…").click();
    harness.run_ok();
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(
        read_stored_record(&bytes).unwrap(),
        Some(original.record.clone())
    );
    let jpeg_image = image::open(&jpeg).unwrap();
    assert_eq!(jpeg_image.width(), 64);
    drop(harness);

    // Dropping the exported PNG on a fresh window with an empty history brings the settings
    // back, and generating again gives the same image.
    let fresh = dirs_with_models();
    let mut harness = Window::new(&fresh.paths).build();
    harness.run_ok();
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(out.clone())));
    harness.run_ok();
    let panel = harness.state().generate_panel();
    assert_eq!(panel.prompt, PROMPT);
    assert_eq!((panel.seed, panel.seed_mode), (77, SeedMode::Fixed));
    assert_eq!(panel.steps, 6);
    harness.get_by_label("Generate").click();
    harness.run_ok();
    run_until(&mut harness, Duration::from_mins(5), "the result", |app| {
        !app.history_entries().is_empty()
    });
    let again = harness.state().history_entries()[0].clone();
    let a = image::open(&original.image_path).unwrap().to_rgb8();
    let b = image::open(&again.image_path).unwrap().to_rgb8();
    assert_eq!(a, b, "the dropped settings reproduce the image");
}

/// A file dropped on the window, read from disk.
#[derive(Debug)]
pub(crate) struct DroppedPath(pub(crate) PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn ctrl_enter_submits_what_was_typed_in_the_same_frame() {
    let dirs = dirs_with_models();
    let mut harness = Window::new(&dirs.paths).build();
    harness.state_mut().generate_panel_mut().steps = 2;
    harness.get_by_label("Prompt").click();
    harness.run_ok();
    // Text and shortcut arrive in one frame, as from a fast typist or a script.
    harness.get_by_label("Prompt").type_text("a green star");
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Enter);
    run_until(&mut harness, Duration::from_mins(5), "the result", |app| {
        !app.history_entries().is_empty()
    });
    let record = generation_record(harness.state());
    assert_eq!(record.settings.prompt, "a green star");
    assert_eq!(harness.state().generate_panel().prompt, "a green star");
}

#[test]
fn an_edit_without_instruction_is_refused_in_the_window_words() {
    let dirs = dirs_with_models();
    let dialogs = ScriptedDialogs {
        images: vec![fixtures().join("edit-e11/source.png")],
        ..Default::default()
    };
    let mut harness = Window::new(&dirs.paths).dialogs(dialogs).build();
    open_image_to_edit(&mut harness);
    harness.get_by_label("Apply edit").click();
    harness.run_ok();
    let messages = harness.state().messages().to_vec();
    let refusal = messages
        .iter()
        .find(|m| m.is_error)
        .unwrap_or_else(|| panic!("no error shown: {messages:?}"));
    assert!(
        refusal.text.contains("Instruction is empty") && !refusal.text.contains("--"),
        "the message names the label, not a flag: {}",
        refusal.text
    );
    assert!(harness.state().pending_jobs().is_empty());
}

#[test]
fn an_edit_of_a_history_entry_is_linked_to_it() {
    let dirs = dirs_with_models();
    let mut harness = Window::new(&dirs.paths).build();
    generate_one(&mut harness, 5);
    let source = harness.state().history_entries()[0].clone();
    harness.get_by_label("Edit this").click();
    harness.run_ok();
    assert_eq!(harness.state().mode(), Mode::Edit);
    type_prompt(&mut harness, "Instruction", "make the square green");
    harness.get_by_label("Apply edit").click();
    harness.run_ok();
    run_until(&mut harness, Duration::from_mins(5), "the edit", |app| {
        app.history_entries().len() == 2
    });
    let edit = harness.state().history_entries()[0].clone();
    assert_eq!(edit.parent, Some(source.id));
    let StoredRecord::Edit(record) = &edit.record else {
        panic!("expected an edit record");
    };
    assert_eq!(record.settings.image, source.image_path);
    assert_eq!(record.settings.mask, None, "nothing was brushed");
}

#[test]
fn a_failing_job_is_reported_and_the_window_keeps_working() {
    let dirs = dirs_with_models();
    let empty = tempfile::tempdir().unwrap();
    let (mut config, _) = StudioConfig::load(&dirs.paths);
    config
        .models
        .set(ModelSlot::I1Fast, Some(empty.path().to_path_buf()));
    config.save(&dirs.paths).unwrap();
    let mut harness = Window::new(&dirs.paths).build();
    harness.get_by_label("Fast").click();
    harness.run_ok();
    type_prompt(&mut harness, "Prompt", "a red circle");
    let failure = generate_and_fail(&mut harness);
    assert!(
        failure.text.contains(&empty.path().display().to_string()),
        "the message names the folder: {}",
        failure.text
    );
    assert!(harness.state().history_entries().is_empty());

    // The next job, on a good model, still runs.
    harness.get_by_label("Full").click();
    harness.run_ok();
    generate_one(&mut harness, 9);
    assert_eq!(harness.state().history_entries().len(), 1);
}

#[test]
fn ctrl_enter_on_the_models_view_is_not_submitted_later() {
    let dirs = dirs_with_models();
    let mut harness = Window::new(&dirs.paths).build();
    harness.state_mut().generate_panel_mut().steps = 2;
    type_prompt(&mut harness, "Prompt", "a green star");
    harness.get_by_label("Models").click();
    harness.run_ok();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Enter);
    harness.run_ok();
    harness.get_by_label("Done").click();
    harness.run_ok();
    assert!(
        harness.state().pending_jobs().is_empty(),
        "a shortcut pressed where nothing can be submitted must not submit on return"
    );

    // Back among the controls, the same shortcut submits.
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Enter);
    harness.run_ok();
    assert_eq!(harness.state().pending_jobs().len(), 1);
    harness.state_mut().clear_messages();
    harness.key_press(egui::Key::Escape);
    run_until(&mut harness, Duration::from_mins(1), "the cancel", |app| {
        app.pending_jobs().is_empty()
    });
}

#[test]
fn a_drop_is_handled_once_when_the_window_is_hidden_afterwards() {
    let dirs = dirs_with_models();
    let mut harness = Window::new(&dirs.paths).build();
    harness.run_ok();
    let notes = dirs.paths.data_dir.join("notes.txt");
    std::fs::write(&notes, "not an image").unwrap();
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(notes)));
    harness.step();
    assert_eq!(harness.state().messages().len(), 1, "the drop is reported");
    // While the window is hidden eframe calls `logic` alone, on the last shown frame's input.
    let ctx = harness.ctx.clone();
    let mut frame = eframe::Frame::_new_kittest();
    for _ in 0..2 {
        eframe::App::logic(harness.state_mut(), &ctx, &mut frame);
    }
    assert_eq!(
        harness.state().messages().len(),
        1,
        "the drop was handled again: {:?}",
        harness.state().messages()
    );
}
