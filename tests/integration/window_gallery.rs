//! The gallery, driven as a user would, by labels, clicks and keys: search, filters,
//! favourites that persist, multi-select with delete and undo, keyboard navigation and the
//! comparison of two results. The history is written through the store's API, cheaply.

use egui::{Key, Modifiers};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use hidream_studio::app::{ScriptedDialogs, StudioApp};
use hidream_studio::store::History;

use crate::common::window::{Dirs, Window, dirs_with_models};
use crate::history_store::{hidit_record, image, record};

/// A day, in milliseconds.
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Four results: 1 "a red circle" (a month old), 2 "a blue square", 3 "A RED triangle",
/// 4 the class "blue square" (a Hi-DiT result).
fn dirs_with_history() -> Dirs {
    let dirs = dirs_with_models();
    let mut history = History::open(&dirs.paths.data_dir).unwrap();
    history
        .add(&image(10), &record("a red circle", 1), None)
        .unwrap();
    history
        .add(&image(90), &record("a blue square", 2), None)
        .unwrap();
    history
        .add(&image(170), &record("A RED triangle", 3), None)
        .unwrap();
    history.add(&image(250), &hidit_record(2, 4), None).unwrap();
    drop(history);
    let db = rusqlite::Connection::open(dirs.paths.data_dir.join("history.sqlite3")).unwrap();
    db.execute(
        "UPDATE entries SET created_ms = created_ms - ?1 WHERE id = 1",
        [30 * DAY_MS],
    )
    .unwrap();
    dirs
}

fn open_gallery(dirs: &Dirs) -> Harness<'static, StudioApp> {
    let mut harness = Window::new(&dirs.paths).build();
    harness.run_ok();
    harness.get_by_label("Gallery").click();
    harness.run_ok();
    harness
}

/// The results the grid shows, by their tiles' labels.
fn shown(harness: &Harness<'_, StudioApp>) -> Vec<i64> {
    (1..=4)
        .rev()
        .filter(|id| harness.query_by_label(&format!("Result {id}")).is_some())
        .collect()
}

fn click(harness: &mut Harness<'_, StudioApp>, label: &str) {
    harness.get_by_label(label).click();
    harness.run_ok();
}

#[test]
fn search_and_filters_narrow_the_grid() {
    let dirs = dirs_with_history();
    let mut harness = open_gallery(&dirs);
    assert_eq!(shown(&harness), vec![4, 3, 2, 1]);

    harness.get_by_label("Search").click();
    harness.run_ok();
    harness.get_by_label("Search").type_text("red");
    harness.run_ok();
    assert_eq!(shown(&harness), vec![3, 1], "case-insensitive substring");
    harness.get_by_label("Search").type_text("dish");
    harness.run_ok();
    assert_eq!(shown(&harness), Vec::<i64>::new());
    harness.get_by_label("Nothing matches the search and filters.");
    // Clear the search (select all, delete).
    harness.key_press_modifiers(Modifiers::COMMAND, Key::A);
    harness.key_press(Key::Backspace);
    harness.run_ok();
    assert_eq!(shown(&harness), vec![4, 3, 2, 1]);

    click(&mut harness, "Class");
    assert_eq!(shown(&harness), vec![4]);
    click(&mut harness, "Generated");
    assert_eq!(shown(&harness), vec![3, 2, 1]);
    click(&mut harness, "Today");
    assert_eq!(
        shown(&harness),
        vec![3, 2],
        "the month-old result is left out"
    );
    click(&mut harness, "All kinds");
    click(&mut harness, "All time");
    assert_eq!(shown(&harness), vec![4, 3, 2, 1]);

    // The model list names each model that made a result.
    click(&mut harness, "Made with");
    click(&mut harness, "shapes-hidit");
    assert_eq!(shown(&harness), vec![4]);
    click(&mut harness, "Made with");
    click(&mut harness, "HiDream-I1-Full");
    assert_eq!(shown(&harness), vec![3, 2, 1]);
}

#[test]
fn a_favourite_persists_across_reopening() {
    let dirs = dirs_with_history();
    let mut harness = open_gallery(&dirs);
    click(&mut harness, "Favourite 2");
    click(&mut harness, "Favourites only");
    assert_eq!(shown(&harness), vec![2]);
    drop(harness);

    let mut harness = open_gallery(&dirs);
    assert_eq!(shown(&harness), vec![4, 3, 2, 1]);
    click(&mut harness, "Favourites only");
    assert_eq!(shown(&harness), vec![2]);
    // Unstarred, it leaves the favourites.
    click(&mut harness, "Favourite 2");
    assert_eq!(shown(&harness), Vec::<i64>::new());
}

#[test]
fn multi_select_delete_and_undo_restores() {
    let dirs = dirs_with_history();
    let mut harness = open_gallery(&dirs);
    let files: Vec<_> = harness
        .state()
        .history_entries()
        .iter()
        .map(|e| e.image_path.clone())
        .collect();
    click(&mut harness, "Result 4");
    harness
        .get_by_label("Result 2")
        .click_modifiers(Modifiers::COMMAND);
    harness.run_ok();
    harness.get_by_label("2 selected");
    click(&mut harness, "Delete selected");
    assert_eq!(shown(&harness), vec![3, 1]);
    assert_eq!(harness.state().history_entries().len(), 2);
    assert!(files.iter().all(|f| f.is_file()), "nothing removed yet");
    harness.get_by_label("Deleted 2 results.");

    click(&mut harness, "Undo");
    assert_eq!(shown(&harness), vec![4, 3, 2, 1]);
    let ids: Vec<i64> = harness
        .state()
        .history_entries()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, vec![4, 3, 2, 1], "back in the history's order");

    // Shift-click selects the run; deleted and not undone, the files go when the window closes
    // (and a favourite with its entry).
    click(&mut harness, "Favourite 3");
    click(&mut harness, "Result 3");
    harness
        .get_by_label("Result 1")
        .click_modifiers(Modifiers::SHIFT);
    harness.run_ok();
    harness.get_by_label("3 selected");
    harness.key_press(Key::Delete);
    harness.run_ok();
    assert_eq!(shown(&harness), vec![4]);
    drop(harness);
    assert_eq!(files.iter().filter(|f| f.is_file()).count(), 1);
    let reopened = History::open(&dirs.paths.data_dir).unwrap();
    let ids: Vec<i64> = reopened.entries().unwrap().iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![4]);
    assert!(reopened.favourites().unwrap().is_empty());
}

#[test]
fn the_keyboard_moves_selects_and_opens() {
    let dirs = dirs_with_history();
    let mut harness = open_gallery(&dirs);
    click(&mut harness, "Result 4");
    harness.key_press(Key::ArrowRight);
    harness.key_press(Key::ArrowRight);
    harness.run_ok();
    harness.key_press(Key::Space);
    harness.run_ok();
    harness.get_by_label("2 selected");
    harness.key_press(Key::ArrowLeft);
    harness.run_ok();
    harness.key_press(Key::Space);
    harness.run_ok();
    harness.get_by_label("3 selected");
    // Enter opens the focused result (3) on the canvas and leaves the gallery.
    harness.key_press(Key::Enter);
    harness.run_ok();
    assert_eq!(harness.state().selected(), Some(3));
    assert!(harness.query_by_label("Close gallery").is_none());
    harness.get_by_label("Canvas");
}

#[test]
fn export_selected_writes_each_into_the_chosen_folder() {
    let dirs = dirs_with_history();
    let out = tempfile::tempdir().unwrap();
    let dialogs = ScriptedDialogs {
        folders: vec![out.path().to_path_buf()],
        ..ScriptedDialogs::default()
    };
    let mut harness = Window::new(&dirs.paths).dialogs(dialogs).build();
    harness.run_ok();
    click(&mut harness, "Gallery");
    click(&mut harness, "Result 3");
    harness
        .get_by_label("Result 2")
        .click_modifiers(Modifiers::COMMAND);
    harness.run_ok();
    click(&mut harness, "Export selected…");
    let mut names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["A-RED-triangle-3.png", "a-blue-square-2.png"]);
}

#[test]
fn compare_shows_both_side_by_side_and_with_a_slider() {
    let dirs = dirs_with_history();
    let mut harness = open_gallery(&dirs);
    click(&mut harness, "Result 3");
    harness
        .get_by_label("Result 2")
        .click_modifiers(Modifiers::COMMAND);
    harness.run_ok();
    click(&mut harness, "Compare");
    harness.get_by_label("Left image, result 2");
    harness.get_by_label("Right image, result 3");
    click(&mut harness, "Slider");
    harness.get_by_label("Comparison slider");
    // The divider's slider (with its own label of the same words).
    assert!(harness.query_all_by_label("Divider").next().is_some());
    click(&mut harness, "Back to gallery");
    assert_eq!(shown(&harness), vec![4, 3, 2, 1]);
}

#[test]
fn gallery_snapshot() {
    let dirs = dirs_with_history();
    let mut harness = Window::new(&dirs.paths).for_snapshots().build();
    harness.run_ok();
    click(&mut harness, "Gallery");
    click(&mut harness, "Favourite 3");
    click(&mut harness, "Result 2");
    harness.remove_cursor();
    harness.run_ok();
    harness.snapshot("gallery");
}
