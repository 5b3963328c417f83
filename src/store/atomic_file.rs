//! Writing a file without ever leaving half of it, and without replacing anything at the path
//! that is not a file: a link is followed and kept, a folder or a device is refused (except a
//! character device such as /dev/null, which is written through).
//!
//! A file is written into a temporary file beside it (`.NAME.PID.tmp`), flushed to disk, then
//! renamed over the target. Every error removes the temporary; what a killed process left is
//! removed by the next write to the same folder.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Links followed before a path counts as a loop (the limit Linux itself applies).
const MAX_LINKS: usize = 40;

/// A temporary whose process id runs again (another program reused it) is still removed once
/// it is this old: no write of an image takes a day.
const STALE_AFTER: Duration = Duration::from_hours(24);

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "{} is a folder; name a file inside it instead, for example {}",
        path.display(),
        path.join("image.png").display()
    )]
    Folder { path: PathBuf },
    #[error(
        "{} is a disk device; writing an image onto it would destroy what the disk holds. \
         Name a file instead",
        path.display()
    )]
    BlockDevice { path: PathBuf },
    #[error(
        "{} is a pipe (FIFO); HiDream Studio does not write into pipes, since with no program \
         reading it the write would wait forever. Name a file instead",
        path.display()
    )]
    Pipe { path: PathBuf },
    #[error("{} is a socket, not a file. Name a file instead", path.display())]
    Socket { path: PathBuf },
    #[error(
        "{} is neither a file nor a device HiDream Studio can write to. Name a file instead",
        path.display()
    )]
    NotAFile { path: PathBuf },
    #[error(
        "{} is a symbolic link that loops or passes through more than {MAX_LINKS} links. Fix \
         the link or name a file instead",
        path.display()
    )]
    LinkLoop { path: PathBuf },
    #[error("\"{}\" does not name a file. Name a file, for example image.png", path.display())]
    NoFileName { path: PathBuf },
    #[error("could not write {}: {cause}", path.display())]
    Io { path: PathBuf, cause: io::Error },
}

/// Writes `bytes` to `path` so that a crash never leaves half of a file there. A symbolic link
/// at `path` is followed (its target is replaced, the link kept); a folder, a disk device, a
/// pipe or a socket is refused; a character device is written through.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomically_with(path, |out| out.write_all(bytes))
}

/// As [`write_atomically`], for contents too large to hold in memory: `write` streams them
/// into the temporary (or the device). An error from `write` leaves `path` as it was.
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), WriteError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => replace_file(&resolve_links(path)?, write),
        Ok(meta) => write_to_special(path, &meta, write),
        // Nothing there, or a link to nothing (or a loop, which resolving reports).
        Err(e) if e.kind() == io::ErrorKind::NotFound || is_link(path) => {
            replace_file(&resolve_links(path)?, write)
        }
        Err(cause) => Err(WriteError::Io {
            path: path.to_path_buf(),
            cause,
        }),
    }
}

fn is_link(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Follows the links at `path` to the path they end at, which may not exist yet (a link to a
/// file still to be made). Only the last component is followed: renaming inside a linked
/// folder is renaming inside the folder it links to.
fn resolve_links(path: &Path) -> Result<PathBuf, WriteError> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        if !is_link(&current) {
            return Ok(current);
        }
        let target = fs::read_link(&current).map_err(|cause| WriteError::Io {
            path: current.clone(),
            cause,
        })?;
        current = match current.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
    }
    Err(WriteError::LinkLoop {
        path: path.to_path_buf(),
    })
}

/// Something that exists at `path` and is not a regular file (links already followed).
fn write_to_special(
    path: &Path,
    meta: &fs::Metadata,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), WriteError> {
    let path_buf = || path.to_path_buf();
    let file_type = meta.file_type();
    if file_type.is_dir() {
        return Err(WriteError::Folder { path: path_buf() });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_char_device() {
            // Written through, not refused: `--out /dev/null` is the usual way to run without
            // keeping the result, and a terminal takes the bytes as a stream. A character
            // device has no contents a half-finished write could damage, so the rename that
            // protects a file buys nothing; replacing the node would break every program that
            // uses it.
            return OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|mut device| write(&mut device))
                .map_err(|cause| WriteError::Io {
                    path: path_buf(),
                    cause,
                });
        }
        if file_type.is_block_device() {
            return Err(WriteError::BlockDevice { path: path_buf() });
        }
        if file_type.is_fifo() {
            return Err(WriteError::Pipe { path: path_buf() });
        }
        if file_type.is_socket() {
            return Err(WriteError::Socket { path: path_buf() });
        }
    }
    Err(WriteError::NotAFile { path: path_buf() })
}

/// Writes a temporary beside `target`, flushes it and renames it over `target`.
fn replace_file(
    target: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), WriteError> {
    let Some(name) = target.file_name() else {
        return Err(WriteError::NoFileName {
            path: target.to_path_buf(),
        });
    };
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    remove_stale_temporaries(dir);
    let tmp = dir.join(temporary_name(&name.to_string_lossy(), std::process::id()));
    let written = write_new_file(&tmp, write).and_then(|()| fs::rename(&tmp, target));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(|cause| WriteError::Io {
        path: target.to_path_buf(),
        cause,
    })
}

/// Creates `path` (never opening what is already there: a link planted at the temporary's name
/// would otherwise be written through), writes and flushes it.
fn write_new_file(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let create = || OpenOptions::new().write(true).create_new(true).open(path);
    let file = match create() {
        // Left by an earlier process with this process's id, so not removed as stale.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(path)?;
            create()?
        }
        other => other?,
    };
    let mut buffered = io::BufWriter::new(file);
    write(&mut buffered)?;
    buffered
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_all()
}

fn temporary_name(name: &str, pid: u32) -> String {
    format!(".{name}.{pid}.tmp")
}

/// The process id in a temporary's name, if `file_name` is one.
fn temporary_pid(file_name: &str) -> Option<u32> {
    let inner = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (name, pid) = inner.rsplit_once('.')?;
    if name.is_empty() {
        return None;
    }
    pid.parse().ok()
}

/// Removes the temporaries in `dir` that a killed process left: those whose process no longer
/// runs, or that are older than a day. This process's own are left alone (another thread may be
/// writing one). Best effort: a folder that cannot be read is simply skipped.
pub(crate) fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let own = std::process::id();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(temporary_pid) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if pid == own || !meta.is_file() {
            continue;
        }
        let old = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old || !process_runs(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether a process with this id runs. Where that cannot be told, it is assumed to run, and
/// only age makes its temporaries stale.
fn process_runs(pid: u32) -> bool {
    if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
        return Path::new(&format!("/proc/{pid}")).exists();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_carry_the_process_id() {
        assert_eq!(temporary_name("a.png", 42), ".a.png.42.tmp");
        assert_eq!(temporary_pid(".a.png.42.tmp"), Some(42));
        assert_eq!(temporary_pid(".a.b.c.7.tmp"), Some(7));
        // Not ours: no name, no number, not hidden.
        assert_eq!(temporary_pid("..42.tmp"), None);
        assert_eq!(temporary_pid(".a.png.x.tmp"), None);
        assert_eq!(temporary_pid("a.png.42.tmp"), None);
    }
}
