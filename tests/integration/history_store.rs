//! The history database: what it keeps, across reopenings, and what a crash or a bad file
//! leaves behind.

use hidream_studio::pipelines::{
    ComputeDType, DeviceChoice, GenerateSettings, GenerationRecord, ModelSelection, Preset,
    Resolved, Timings,
};
use hidream_studio::schedulers::{SchedulerKind, ShiftMode};
use hidream_studio::store::{
    EntryKind, History, HistoryEntry, HistoryError, StoredRecord, read_stored_record,
};
use image::RgbImage;
use std::path::{Path, PathBuf};

pub(crate) fn record(prompt: &str, seed: u64) -> StoredRecord {
    StoredRecord::Generation(Box::new(GenerationRecord {
        settings: GenerateSettings {
            models: ModelSelection {
                model: "/models/HiDream-I1-Full".into(),
                llama: "/models/Llama".into(),
                dtype: ComputeDType::F32,
                device: DeviceChoice::Cpu,
                transformer: None,
                placement: hidream_studio::settings::PlacementChoice::default(),
            },
            prompt: prompt.into(),
            negative_prompt: Some(String::new()),
            preset: Preset::Full,
            steps: Some(50),
            guidance: Some(5.0),
            shift: Some(3.0),
            shift_mode: ShiftMode::Dynamic,
            width: 1024,
            height: 1024,
            base_resolution: 1024,
            seed,
        },
        resolved: Resolved {
            steps: 50,
            guidance: 5.0,
            shift: 3.0,
            scheduler: SchedulerKind::FlowUnipc,
            width: 1024,
            height: 1024,
            latent_height: 128,
            latent_width: 128,
        },
        noise: "seed".into(),
        prompt_truncated: false,
        timings: Timings {
            total_ms: 1234.5678901234,
            ..Timings::default()
        },
        gpu_memory: None,
        placement: None,
        app: "test".into(),
    }))
}

pub(crate) fn image(shade: u8) -> RgbImage {
    RgbImage::from_fn(40, 24, |x, y| {
        image::Rgb([shade, x as u8 * 6, y as u8 * 10])
    })
}

/// A history in `dir` with two entries, "first" and "second" made from it, then closed.
pub(crate) fn first_and_second(dir: &Path) -> (HistoryEntry, HistoryEntry) {
    let mut history = History::open(dir).unwrap();
    let first = history.add(&image(10), &record("first", 1), None).unwrap();
    let second = history
        .add(&image(20), &record("second", 2), Some(first.id))
        .unwrap();
    (first, second)
}

#[test]
fn entries_survive_reopening_newest_first_with_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = first_and_second(dir.path());

    let history = History::open(dir.path()).unwrap();
    let entries = history.entries().unwrap();
    assert_eq!(entries, vec![second.clone(), first.clone()]);
    assert_eq!(entries[0].parent, Some(first.id));
    assert_eq!(entries[0].kind, EntryKind::Generate);
    assert_eq!(entries[0].seed(), 2);
    // The image file is the image, and carries the full record.
    let bytes = std::fs::read(&second.image_path).unwrap();
    assert_eq!(
        image::load_from_memory(&bytes).unwrap().to_rgb8(),
        image(20)
    );
    assert_eq!(
        read_stored_record(&bytes).unwrap(),
        Some(record("second", 2))
    );
    let thumbnail = image::open(&second.thumbnail_path).unwrap();
    assert_eq!((thumbnail.width(), thumbnail.height()), (40, 24));
}

#[test]
fn deleting_removes_row_and_files_and_unlinks_children() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = History::open(dir.path()).unwrap();
    let parent = history.add(&image(1), &record("parent", 1), None).unwrap();
    let child = history
        .add(&image(2), &record("child", 2), Some(parent.id))
        .unwrap();
    history.delete(parent.id).unwrap();
    assert!(!parent.image_path.exists());
    assert!(!parent.thumbnail_path.exists());
    let entries = history.entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].id, child.id);
    assert_eq!(entries[0].parent, None);
    // An edit whose source was deleted meanwhile is still kept, without a parent.
    let orphan = history
        .add(&image(3), &record("late", 3), Some(parent.id))
        .unwrap();
    assert_eq!(orphan.parent, None);
}

#[test]
fn what_a_crash_leaves_is_cleaned_up_and_never_listed() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = History::open(dir.path()).unwrap();
    let kept = history.add(&image(1), &record("kept", 1), None).unwrap();
    drop(history);
    // A crash while writing a file leaves its temporary; a crash after the file was renamed
    // but before the row was committed leaves an unreferenced image.
    let temporary = dir
        .path()
        .join(format!("images/.123.png.{}.tmp", finished_pid()));
    std::fs::write(&temporary, b"half a png").unwrap();
    std::fs::write(dir.path().join("images/999.png"), b"unreferenced").unwrap();

    let history = History::open(dir.path()).unwrap();
    assert!(!temporary.exists());
    assert_eq!(history.entries().unwrap(), vec![kept]);
}

#[test]
fn unusable_databases_are_reported_with_their_path_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite3");
    std::fs::write(&db, b"this is not a database, and it is the user's file").unwrap();
    let Err(error) = History::open(dir.path()) else {
        panic!("a damaged database must not open");
    };
    let message = error.to_string();
    assert!(message.contains("history.sqlite3"), "{message}");
    assert!(message.contains("move it away"), "{message}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        b"this is not a database, and it is the user's file",
        "the damaged file is not overwritten"
    );

    let newer = tempfile::tempdir().unwrap();
    drop(History::open(newer.path()).unwrap());
    set_user_version(newer.path(), 99);
    match History::open(newer.path()) {
        Err(HistoryError::NewerSchema { found: 99, .. }) => {}
        other => panic!("expected a newer-schema error, got {:?}", other.err()),
    }
}

/// Marks the database as written by a future version.
fn set_user_version(dir: &std::path::Path, version: i64) {
    let conn = rusqlite::Connection::open(dir.join("history.sqlite3")).unwrap();
    conn.pragma_update(None, "user_version", version).unwrap();
}

/// The id of a process that has exited, as a crashed writer's has.
pub(crate) fn finished_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn a_write_in_progress_in_another_window_is_left_alone() {
    // Two windows may share a data folder: opening the history in one must not remove the
    // temporary the other is writing.
    let dir = tempfile::tempdir().unwrap();
    drop(History::open(dir.path()).unwrap());
    let mut other_window = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let writing = dir
        .path()
        .join(format!("images/.5.png.{}.tmp", other_window.id()));
    std::fs::write(&writing, b"half a png, still being written").unwrap();
    let history = History::open(dir.path());
    let _ = other_window.kill();
    let _ = other_window.wait();
    assert!(history.is_ok());
    assert!(writing.exists());
}

#[test]
fn a_database_with_a_damaged_page_is_refused_and_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = History::open(dir.path()).unwrap();
    for i in 0..12 {
        history
            .add(&image(i), &record("kept", i.into()), None)
            .unwrap();
    }
    drop(history);
    let db = dir.path().join("history.sqlite3");
    let (root, page_size) = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let root: i64 = conn
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'entries'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let page_size: i64 = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap();
        (root as usize, page_size as usize)
    };
    assert!(
        root > 1,
        "the table's b-tree is not on the file's first page"
    );
    // Garbage over the start of the table's root page: its b-tree page header and cell
    // pointers, as a torn write or a failing disk leaves them.
    let mut bytes = std::fs::read(&db).unwrap();
    let page = (root - 1) * page_size;
    bytes[page..page + 64].fill(0xEE);
    std::fs::write(&db, &bytes).unwrap();

    let Err(error) = History::open(dir.path()) else {
        panic!("a damaged database must not open (it would take new rows into damaged pages)");
    };
    assert!(matches!(error, HistoryError::Damaged { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("history.sqlite3 is damaged"), "{message}");
    assert!(message.contains("move it away"), "{message}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes,
        "the damaged database is not written to"
    );
}

#[test]
fn a_row_that_does_not_parse_is_set_apart_and_hides_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = History::open(dir.path()).unwrap();
    let first = history.add(&image(1), &record("first", 1), None).unwrap();
    let second = history.add(&image(2), &record("second", 2), None).unwrap();
    let third = history.add(&image(3), &record("third", 3), None).unwrap();
    drop(history);
    let conn = rusqlite::Connection::open(dir.path().join("history.sqlite3")).unwrap();
    conn.execute(
        "UPDATE entries SET record_json = '{\"written by\": \"a newer version\"}' WHERE id = ?1",
        [second.id],
    )
    .unwrap();
    drop(conn);

    let history = History::open(dir.path()).unwrap();
    let listing = history.listing().unwrap();
    assert_eq!(listing.entries, vec![third, first]);
    assert_eq!(listing.unreadable.len(), 1);
    assert_eq!(listing.unreadable[0].id, second.id);
    let reason = &listing.unreadable[0].reason;
    assert!(
        reason.contains("newer version of HiDream Studio"),
        "{reason}"
    );
    // Asked for every entry, the history names the row it cannot give.
    match history.entries() {
        Err(HistoryError::Record { id, .. }) if id == second.id => {}
        other => panic!("expected entry {} to be named, got {other:?}", second.id),
    }
}

/// A history that passes SQLite's check but whose entries cannot be listed: another tool
/// rewrote the table without its column types, and its row's id is not a number. Rows could
/// still be added to it. Returns the database's path.
pub(crate) fn write_unlistable_history(data_dir: &Path) -> PathBuf {
    std::fs::create_dir_all(data_dir).unwrap();
    let db = data_dir.join("history.sqlite3");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE entries (id, created_ms, kind, prompt, image_file, thumbnail_file, \
         parent_id, record_json);
         INSERT INTO entries VALUES ('first', 0, 'generate', 'a prompt', '1.png', \
         '1.thumb.png', NULL, '{}');
         PRAGMA user_version = 1;",
    )
    .unwrap();
    db
}

#[test]
fn a_history_that_cannot_be_listed_is_refused_with_advice_and_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_unlistable_history(dir.path());
    let before = std::fs::read(&db).unwrap();
    let Err(error) = History::open_listed(dir.path()) else {
        panic!("a history that cannot be listed must be refused");
    };
    assert!(matches!(error, HistoryError::Unlisted { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("{} passed its check", db.display()))
            && message.contains("cannot be listed")
            && message.contains("move it away")
            && message.contains(&dir.path().join("images").display().to_string()),
        "{message}"
    );
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the refused database is not written to"
    );
}

pub(crate) fn hidit_record(class: usize, seed: u64) -> StoredRecord {
    use hidream_studio::models::hidit::Mode;
    use hidream_studio::pipelines::hidit::{HiditFiles, HiditRecord, HiditSettings};
    StoredRecord::Hidit(Box::new(HiditRecord {
        settings: HiditSettings {
            class,
            steps: 50,
            mode: Mode::Sde,
            cfg_scale: 1.5,
            guidance_low: 0.0,
            guidance_high: 0.73,
            seed,
            tau: None,
            latent_only: false,
        },
        class_name: Some("blue square".into()),
        files: HiditFiles {
            model: "/models/shapes-hidit".into(),
            checkpoint: Some("200".into()),
            vae: Some("/models/shapes-hidit/shapes-vae.pt".into()),
            latents_stats: None,
        },
        checkpoint: "/models/shapes-hidit/checkpoints/0000200.pt".into(),
        width: 64,
        height: 64,
        noise: "seed".into(),
        pixel_stream: None,
        timings: Timings {
            total_ms: 12.25,
            ..Timings::default()
        },
        app: "test".into(),
    }))
}

fn user_version(dir: &Path) -> i64 {
    rusqlite::Connection::open(dir.join("history.sqlite3"))
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn class_entries_round_trip_and_upgrade_a_schema_1_history_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = History::open(dir.path()).unwrap();
    let first = history.add(&image(1), &record("first", 1), None).unwrap();
    let second = history
        .add(&image(2), &record("second", 2), Some(first.id))
        .unwrap();
    // The newest id is deleted: the upgrade must not hand it out again.
    let dropped = history.add(&image(3), &record("dropped", 3), None).unwrap();
    history.delete(dropped.id).unwrap();
    assert_eq!(
        user_version(dir.path()),
        1,
        "a history without class entries stays at 1"
    );

    let class = history.add(&image(4), &hidit_record(6, 31), None).unwrap();
    assert_eq!(user_version(dir.path()), 2);
    assert_eq!(class.kind, EntryKind::Class);
    assert_eq!(class.prompt, "blue square");
    assert_eq!(class.seed(), 31);
    assert!(class.id > dropped.id, "{} after {}", class.id, dropped.id);
    // The PNG carries the Hi-DiT record under its own key.
    let bytes = std::fs::read(&class.image_path).unwrap();
    assert_eq!(
        read_stored_record(&bytes).unwrap(),
        Some(hidit_record(6, 31))
    );
    drop(history);

    let mut history = History::open(dir.path()).unwrap();
    let entries = history.entries().unwrap();
    assert_eq!(entries, vec![class.clone(), second.clone(), first.clone()]);
    assert_eq!(
        entries[1].parent,
        Some(first.id),
        "links survive the rebuild"
    );
    // The rebuilt table still unlinks children of a deleted entry.
    history.delete(first.id).unwrap();
    assert_eq!(history.entries().unwrap()[1].parent, None);
    let another = history.add(&image(5), &hidit_record(0, 1), None).unwrap();
    assert_eq!(user_version(dir.path()), 2);
    assert!(another.id > class.id);
}
