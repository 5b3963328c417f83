//! Writing result files (`--out`, export, the history's own): what is at the path decides how.
//! A file is replaced whole, a link is followed and kept, a character device is written
//! through, and a folder, a disk, a pipe or a link loop is refused and left as it was. What a
//! killed writer left behind is removed by the next write to the folder.

use std::os::unix::fs::{FileTypeExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hidream_studio::store::{WriteError, write_atomically};

use super::history_store::finished_pid;

/// The names of the hidden files in `dir`: what a write leaves behind if it leaks temporaries.
fn hidden_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

fn is_link_to(link: &Path, target: &str) -> bool {
    std::fs::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink())
        && std::fs::read_link(link).is_ok_and(|t| t == Path::new(target))
}

#[test]
fn a_link_is_followed_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.png");
    std::fs::write(&real, b"old").unwrap();
    let link = dir.path().join("link.png");
    symlink("real.png", &link).unwrap();

    write_atomically(&link, b"new").unwrap();
    assert!(is_link_to(&link, "real.png"), "the link is kept");
    assert_eq!(std::fs::read(&real).unwrap(), b"new");

    // A link to a file still to be made: the file is made where the link points.
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let ahead = dir.path().join("ahead.png");
    symlink("out/made.png", &ahead).unwrap();
    write_atomically(&ahead, b"made").unwrap();
    assert!(is_link_to(&ahead, "out/made.png"));
    assert_eq!(
        std::fs::read(dir.path().join("out/made.png")).unwrap(),
        b"made"
    );

    // A plain file is still replaced whole, and no temporary is left anywhere.
    write_atomically(&real, b"newer").unwrap();
    assert_eq!(std::fs::read(&real).unwrap(), b"newer");
    assert_eq!(hidden_files(dir.path()), Vec::<String>::new());
    assert_eq!(hidden_files(&dir.path().join("out")), Vec::<String>::new());
}

#[test]
fn a_character_device_is_written_through_not_replaced() {
    // Through a link in a scratch folder: a writer that replaces what is at the path replaces
    // this link, not the machine's /dev/null.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("null.png");
    symlink("/dev/null", &link).unwrap();
    write_atomically(&link, b"discarded").unwrap();
    assert!(is_link_to(&link, "/dev/null"), "the link is kept");
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert_eq!(hidden_files(dir.path()), Vec::<String>::new());
}

#[test]
fn folders_pipes_disks_and_link_loops_are_refused_and_left_as_they_were() {
    let dir = tempfile::tempdir().unwrap();

    let folder = dir.path().join("album");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("keep.png"), b"kept").unwrap();
    let error = write_atomically(&folder, b"x").unwrap_err();
    assert!(matches!(error, WriteError::Folder { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("album is a folder"), "{message}");
    assert!(message.contains("album/image.png"), "{message}");
    assert_eq!(std::fs::read(folder.join("keep.png")).unwrap(), b"kept");

    let pipe = dir.path().join("pipe.png");
    let made = std::process::Command::new("mkfifo")
        .arg(&pipe)
        .status()
        .unwrap();
    assert!(made.success());
    let error = write_atomically(&pipe, b"x").unwrap_err();
    assert!(matches!(error, WriteError::Pipe { .. }), "{error:?}");
    assert!(error.to_string().contains("pipe.png is a pipe"), "{error}");
    let kind = std::fs::symlink_metadata(&pipe).unwrap().file_type();
    assert!(kind.is_fifo(), "the pipe is still a pipe");

    let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
    symlink("b.png", &a).unwrap();
    symlink("a.png", &b).unwrap();
    let error = write_atomically(&a, b"x").unwrap_err();
    assert!(matches!(error, WriteError::LinkLoop { .. }), "{error:?}");
    assert!(is_link_to(&a, "b.png") && is_link_to(&b, "a.png"));

    // A disk, reached through a link so that nothing but the link could ever be replaced.
    if let Some(disk) = first_block_device() {
        let link = dir.path().join("disk.png");
        symlink(&disk, &link).unwrap();
        let error = write_atomically(&link, b"x").unwrap_err();
        assert!(matches!(error, WriteError::BlockDevice { .. }), "{error:?}");
        assert!(is_link_to(&link, &disk.to_string_lossy()));
    }

    assert_eq!(hidden_files(dir.path()), Vec::<String>::new());
}

fn first_block_device() -> Option<PathBuf> {
    std::fs::read_dir("/dev")
        .ok()?
        .flatten()
        .find(|e| e.file_type().is_ok_and(|t| t.is_block_device()))
        .map(|e| e.path())
}

#[test]
fn temporaries_of_killed_writers_are_removed_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let temporary = |name: &str, pid: u32| {
        let path = dir.path().join(format!(".{name}.{pid}.tmp"));
        std::fs::write(&path, vec![0u8; 1 << 20]).unwrap();
        path
    };
    let killed = temporary("killed.png", finished_pid());
    // A writer still running in another process.
    let mut running = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let in_progress = temporary("busy.png", running.id());
    // A temporary whose id another program has taken since: only its age tells.
    let ancient = temporary("ancient.png", running.id());
    std::fs::File::options()
        .write(true)
        .open(&ancient)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_hours(48))
        .unwrap();
    // Not a name this writer makes.
    let someone_elses = dir.path().join("notes.1.tmp");
    std::fs::write(&someone_elses, b"notes").unwrap();

    write_atomically(&dir.path().join("next.png"), b"png").unwrap();
    let _ = running.kill();
    let _ = running.wait();

    assert!(!killed.exists(), "the killed writer's temporary is removed");
    assert!(!ancient.exists(), "a day-old temporary is removed");
    assert!(in_progress.exists(), "a running writer's temporary is kept");
    assert!(someone_elses.exists());
    assert_eq!(std::fs::read(dir.path().join("next.png")).unwrap(), b"png");
}
