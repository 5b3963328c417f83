//! What the window says when what it reads from disk is damaged: a dropped PNG's settings,
//! the history database, a row of it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use hidream_studio::app::{Mode, StudioApp, StudioPaths};
use hidream_studio::store::{History, png_with_texts};

use super::history_store::{image, record, write_unlistable_history};
use super::studio_window::{DroppedPath, run_until, type_prompt};
use crate::common::window::{Window, dirs_with_models, paths};

fn window(paths: &StudioPaths) -> Harness<'static, StudioApp> {
    let mut harness = Window::new(paths).build();
    harness.run_ok();
    harness
}

fn shown_errors(harness: &Harness<'_, StudioApp>) -> Vec<String> {
    let messages = harness.state().messages();
    messages
        .iter()
        .filter(|m| m.is_error)
        .map(|m| m.text.clone())
        .collect()
}

fn drop_file(harness: &mut Harness<'_, StudioApp>, path: &Path) {
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(path.to_path_buf())));
    harness.run_ok();
}

#[test]
fn a_png_with_unreadable_settings_says_so_and_is_not_taken_for_editing() {
    let root = tempfile::tempdir().unwrap();
    let newer = root.path().join("from-a-newer-version.png");
    let png = png_with_texts(
        &image(5),
        "a prompt".into(),
        r#"{"written by": "a newer version"}"#.into(),
    )
    .unwrap();
    std::fs::write(&newer, png).unwrap();
    let mut harness = window(&paths(root.path()));
    drop_file(&mut harness, &newer);
    assert_eq!(
        harness.state().mode(),
        Mode::Generate,
        "nothing to edit was set"
    );
    let errors = shown_errors(&harness);
    assert!(
        errors.iter().any(|e| e.contains("from-a-newer-version.png")
            && e.contains("cannot be read, so nothing was loaded")
            && e.contains("newer version of HiDream Studio")),
        "{errors:?}"
    );

    // A PNG without studio settings, or an image of another format, is still the image to
    // edit.
    let plain = root.path().join("plain.png");
    image(6).save(&plain).unwrap();
    drop_file(&mut harness, &plain);
    assert_eq!(harness.state().mode(), Mode::Edit);
    harness.state_mut().clear_messages();
    let jpeg = root.path().join("photo.jpg");
    image::RgbImage::new(48, 32).save(&jpeg).unwrap();
    drop_file(&mut harness, &jpeg);
    assert_eq!(shown_errors(&harness), Vec::<String>::new());
    let mask = harness
        .state()
        .mask()
        .map(hidream_studio::app::BrushMask::size);
    assert_eq!(mask, Some((48, 32)), "the photo is the image to edit");
}

#[test]
fn a_damaged_history_is_refused_with_advice_and_readable_rows_are_shown_with_a_note() {
    let root = tempfile::tempdir().unwrap();
    let paths = paths(root.path());
    let mut history = History::open(&paths.data_dir).unwrap();
    let good = history.add(&image(1), &record("good", 1), None).unwrap();
    let bad = history.add(&image(2), &record("bad", 2), None).unwrap();
    drop(history);
    let db = paths.data_dir.join("history.sqlite3");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE entries SET record_json = 'not json' WHERE id = ?1",
        [bad.id],
    )
    .unwrap();
    drop(conn);

    let harness = window(&paths);
    assert_eq!(harness.state().history_entries(), &[good]);
    let errors = shown_errors(&harness);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("1 history entry could not be read")
                && e.contains(&format!("entry {}", bad.id))),
        "{errors:?}"
    );
    drop(harness);

    // A file that is not a database at all (or lost its pages) is refused, and said so.
    std::fs::write(&db, vec![0x5A; 8192]).unwrap();
    let harness = window(&paths);
    assert!(harness.state().history_entries().is_empty());
    let errors = shown_errors(&harness);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("history.sqlite3 is damaged")
                && e.contains("Results will not be kept this session")),
        "{errors:?}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), vec![0x5A; 8192]);
}

#[test]
fn a_history_that_cannot_be_listed_is_refused_and_a_result_is_not_written_to_it() {
    let dirs = dirs_with_models();
    let db = write_unlistable_history(&dirs.paths.data_dir);
    let before = std::fs::read(&db).unwrap();
    let mut harness = window(&dirs.paths);
    let errors = shown_errors(&harness);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("history.sqlite3 passed its check")
                && e.contains("cannot be listed")
                && e.contains("move it away")
                && e.contains("Results will not be kept this session")),
        "{errors:?}"
    );

    // Nothing is offered that would write to it: Generate is off, as without a history.
    harness.state_mut().clear_messages();
    harness.state_mut().generate_panel_mut().steps = 2;
    type_prompt(&mut harness, "Prompt", "a red circle");
    assert!(
        harness
            .get_by_label("Generate")
            .accesskit_node()
            .is_disabled()
    );
    // The shortcut still runs a job; its picture is shown but the history takes no row and
    // no file.
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Enter);
    harness.run_ok();
    assert_eq!(harness.state().pending_jobs().len(), 1);
    run_until(&mut harness, Duration::from_mins(5), "the result", |app| {
        app.pending_jobs().is_empty()
    });
    let errors = shown_errors(&harness);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("could not be kept: the history is not available")),
        "{errors:?}"
    );
    assert!(harness.state().history_entries().is_empty());
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the refused database was written to"
    );
    let images = std::fs::read_dir(dirs.paths.data_dir.join("images")).unwrap();
    assert_eq!(images.count(), 0, "an image was filed");
}
