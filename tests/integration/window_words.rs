//! Messages that come back from a job name a setting by the label the window shows, never by
//! the command line's flag (which the command line still names).

use std::time::Duration;

use egui_kittest::kittest::Queryable as _;
use hidream_studio::app::{Editor, ModelSlot, ScriptedDialogs, SizeChoice, StudioConfig};
use hidream_studio::weights::StudioManifest;

use super::studio_window::{generate_and_fail, run_until, type_prompt};
use crate::common::window::{Window, dirs_with_models, open_image_to_edit};
use crate::common::{copy_dir, fixture_model, fixtures};

fn texts(messages: &[hidream_studio::app::Message]) -> Vec<String> {
    messages.iter().map(|m| m.text.clone()).collect()
}

#[test]
fn a_size_the_model_cannot_take_is_refused_as_the_base_resolution_label() {
    let dirs = dirs_with_models();
    let (mut config, _) = StudioConfig::load(&dirs.paths);
    // The fixture transformer takes 16 patches; a 96×48 image at base 80 has 18.
    config.base_resolution = 80;
    config.save(&dirs.paths).unwrap();
    let mut harness = Window::new(&dirs.paths).build();
    let panel = harness.state_mut().generate_panel_mut();
    panel.size = SizeChoice::Custom;
    (panel.custom_width, panel.custom_height) = (112, 64);
    panel.steps = 2;
    type_prompt(&mut harness, "Prompt", "a red circle");
    let failure = generate_and_fail(&mut harness);
    assert!(
        failure
            .text
            .contains("failed: Base resolution is too large for this model: a 96×48 image")
            && failure.text.ends_with("; lower it")
            && !failure.text.contains("--"),
        "the message names the label, not a flag: {}",
        failure.text
    );
}

/// A copy of the merged E1-Full fixture whose studio.json asks for a refine stage it cannot
/// run, in two steps.
fn merged_e1_full_that_asks_to_refine(root: &std::path::Path) -> std::path::PathBuf {
    let model = root.join("e1-full-merged");
    copy_dir(&fixture_model("edit-e1full-merged"), &model);
    let manifest = serde_json::json!({
        "name": "merged E1-Full asking to refine",
        "base_resolution": 64,
        "max_sequence_length": 128,
        "defaults": {
            "steps": 2, "guidance": 5.0, "shift": 3.0, "image_guidance": 3.0,
            "refine_strength": 0.5
        }
    });
    std::fs::write(model.join(StudioManifest::FILE), manifest.to_string()).unwrap();
    model
}

#[test]
fn an_unused_refine_strength_is_named_by_its_label() {
    let dirs = dirs_with_models();
    let models = tempfile::tempdir().unwrap();
    let (mut config, _) = StudioConfig::load(&dirs.paths);
    config.models.set(
        ModelSlot::Editor(Editor::E1Full),
        Some(merged_e1_full_that_asks_to_refine(models.path())),
    );
    config.save(&dirs.paths).unwrap();
    let dialogs = ScriptedDialogs {
        images: vec![fixtures().join("edit-e1full-merged/source.png")],
        ..Default::default()
    };
    let mut harness = Window::new(&dirs.paths).dialogs(dialogs).build();
    open_image_to_edit(&mut harness);
    harness.get_by_label("E1-Full").click();
    harness.run_ok();
    type_prompt(&mut harness, "Instruction", "make the circle blue");
    harness.get_by_label("Apply edit").click();
    harness.run_ok();
    run_until(&mut harness, Duration::from_mins(5), "the edit", |app| {
        !app.history_entries().is_empty()
    });
    let messages = texts(harness.state().messages());
    let warning = messages
        .iter()
        .find(|m| m.contains("has no effect"))
        .unwrap_or_else(|| panic!("no warning shown: {messages:?}"));
    assert!(
        warning.starts_with("Edit: Refine strength 0.5 has no effect with a merged E1-Full model")
            && !warning.contains("--"),
        "the message names the label, not a flag: {warning}"
    );
}
