//! A GGUF transformer chosen in the Models view: checked against the snapshot, saved, and used
//! by the next generation.

use egui_kittest::kittest::Queryable as _;
use hidream_studio::app::{ModelSlot, ScriptedDialogs, StudioConfig};

use crate::common::fixtures;
use crate::common::window::{Window, dirs_with_models};
use crate::studio_window::{generate_one, generation_record};

#[test]
fn a_chosen_gguf_is_checked_saved_and_generates() {
    let dirs = dirs_with_models();
    let community = fixtures().join("gguf/full-square-Q8_0/transformer-Q8_0.gguf");
    let foreign = fixtures().join("gguf/types.gguf");
    let dialogs = ScriptedDialogs {
        gguf_files: vec![foreign, community.clone()],
        ..Default::default()
    };
    let mut harness = Window::new(&dirs.paths).dialogs(dialogs).build();
    harness.get_by_label("Models").click();
    harness.run_ok();
    choose_first_gguf(&mut harness);
    assert!(
        harness
            .query_by_label_contains("missing from the checkpoint")
            .is_some(),
        "a GGUF of other tensors is reported against the snapshot"
    );
    harness.get_by_label("Use the snapshot's").click();
    harness.run_ok();
    choose_first_gguf(&mut harness);
    assert!(harness.query_by_label_contains("missing from").is_none());
    let (saved, _) = StudioConfig::load(&dirs.paths);
    assert_eq!(
        saved.models.transformer_file(ModelSlot::I1Full),
        Some(community.as_path())
    );
    harness.get_by_label("Done").click();
    harness.run_ok();
    generate_one(&mut harness, 5);
    let record = generation_record(harness.state());
    assert_eq!(record.settings.models.transformer, Some(community));
}

/// Clicks the first "Choose GGUF…" (I1-Full's slot, the fixture snapshot) and lets the view
/// check the file: one frame handles the click, the next shows the check.
fn choose_first_gguf(harness: &mut egui_kittest::Harness<'static, hidream_studio::app::StudioApp>) {
    harness
        .get_all_by_label("Choose GGUF…")
        .next()
        .unwrap()
        .click();
    harness.run_ok();
    harness.run_ok();
}
