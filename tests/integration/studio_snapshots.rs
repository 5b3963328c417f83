//! Snapshot images of the studio's main screens, rendered headlessly with wgpu (Mesa's
//! software Vulkan driver in CI). `UPDATE_SNAPSHOTS=1 cargo test --test integration studio_snapshots`
//! rewrites them after an intended change; look at the diff before committing.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use hidream_studio::app::{ModelSlot, ScriptedDialogs, StudioApp, StudioConfig};

use crate::common::fixtures;
use crate::common::window::{
    Window, brush_stroke, configure_fixture_models, open_image_to_edit, paths,
};

fn wait_for_result(harness: &mut Harness<'_, StudioApp>) {
    let start = Instant::now();
    while harness.state().history_entries().is_empty() {
        assert!(
            start.elapsed() < Duration::from_mins(5),
            "no result: {:?}",
            harness.state().messages()
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    // Timings differ from run to run; the screens are about layout.
    harness.state_mut().clear_messages();
    harness.run_ok();
}

#[test]
fn first_run_screen() {
    let root = tempfile::tempdir().unwrap();
    let mut harness = Window::new(&paths(root.path())).for_snapshots().build();
    harness.run_ok();
    harness.get_by_label("Choose model folders…");
    harness.snapshot("first_run");
}

/// What a fresh install shows: the bundled Shapes models fill every slot.
#[test]
fn first_launch_with_the_bundled_models() {
    let root = tempfile::tempdir().unwrap();
    let mut harness = Window::new(&paths(root.path()))
        .bundled_models()
        .for_snapshots()
        .build();
    harness.run_ok();
    harness.get_by_label("Model: Shapes I1-Full (bundled)");
    harness.snapshot("first_launch_bundled");
}

#[test]
fn models_screen() {
    let root = tempfile::tempdir().unwrap();
    let paths = paths(root.path());
    // Folders that exist nowhere, so the screen reads the same on every machine.
    let mut config = StudioConfig::default();
    config
        .models
        .set(ModelSlot::I1Dev, Some("/models/HiDream-I1-Dev".into()));
    config.save(&paths).unwrap();
    let mut harness = Window::new(&paths).for_snapshots().build();
    harness.get_by_label("Models").click();
    harness.remove_cursor();
    harness.run_ok();
    harness.snapshot("models");
}

#[test]
fn generate_screen_with_a_result() {
    let root = tempfile::tempdir().unwrap();
    let paths = paths(root.path());
    configure_fixture_models(&paths);
    let mut harness = Window::new(&paths).for_snapshots().build();
    harness.get_by_label("Prompt").click();
    harness.run_ok();
    harness
        .get_by_label("Prompt")
        .type_text("a red circle to the left of a blue square");
    harness.state_mut().generate_panel_mut().steps = 6;
    harness.get_by_label("Generate").click();
    wait_for_result(&mut harness);
    harness.remove_cursor();
    harness.run_ok();
    harness.snapshot("generate_with_result");
}

#[test]
fn edit_screen_with_a_brushed_mask() {
    let root = tempfile::tempdir().unwrap();
    let paths = paths(root.path());
    configure_fixture_models(&paths);
    let dialogs = ScriptedDialogs {
        images: vec![fixtures().join("edit-e11/source.png")],
        ..Default::default()
    };
    let mut harness = Window::new(&paths).dialogs(dialogs).for_snapshots().build();
    open_image_to_edit(&mut harness);
    harness.state_mut().edit_panel_mut().brush.radius = 5.0;
    let canvas = harness.get_by_label("Canvas").rect();
    let from = canvas.center() - egui::vec2(canvas.width() * 0.15, 0.0);
    let to = canvas.center() + egui::vec2(0.0, canvas.height() * 0.1);
    brush_stroke(&mut harness, from, to);
    harness.get_by_label("Instruction").click();
    harness.run_ok();
    harness
        .get_by_label("Instruction")
        .type_text("make the circle blue");
    harness.remove_cursor();
    harness.run_ok();
    harness.snapshot("edit_with_mask");
}
