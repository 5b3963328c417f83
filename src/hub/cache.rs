//! Where downloads go in the hub cache, laid out as huggingface_hub's `file_download.py` lays
//! it out, and finding them again.
//!
//! ```text
//! models--ORG--NAME/
//!   blobs/{sha256 or git blob id}            the bytes ({…}.incomplete while downloading)
//!   snapshots/{commit}/{path}                relative symlinks to ../../blobs/…
//!   refs/{revision}                          the commit the revision pointed at
//! ```

use std::path::{Path, PathBuf};

use super::error::HubError;
use crate::weights::{HubCache, WeightsError};

/// The suffix huggingface_hub gives blobs still being written.
pub const INCOMPLETE: &str = ".incomplete";

/// One repository's folder in the cache.
#[derive(Debug, Clone)]
pub struct CacheRepo {
    dir: PathBuf,
}

impl CacheRepo {
    pub fn new(cache: &HubCache, repo: &str) -> Self {
        Self {
            dir: cache.repo_dir(repo),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn blob(&self, name: &str) -> PathBuf {
        self.dir.join("blobs").join(name)
    }

    pub fn incomplete(&self, name: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{name}{INCOMPLETE}"))
    }

    /// `{cache}/.locks/models--ORG--NAME/{blob}.lock`, where huggingface_hub locks a blob
    /// while writing it.
    pub fn lock(&self, name: &str) -> PathBuf {
        let root = self.dir.parent().unwrap_or(&self.dir);
        let repo_folder = self.dir.file_name().unwrap_or_default();
        root.join(".locks")
            .join(repo_folder)
            .join(format!("{name}.lock"))
    }

    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    /// Points `snapshots/{commit}/{file}` at the blob (a relative symlink, so the cache can
    /// be moved; a copy where the system refuses symlinks, as huggingface_hub falls back to).
    pub fn link(&self, commit: &str, file: &str, blob_name: &str) -> Result<PathBuf, HubError> {
        let pointer = self.snapshot(commit).join(file);
        let parent = pointer.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        if pointer.symlink_metadata().is_ok() {
            std::fs::remove_file(&pointer).map_err(io("replace", &pointer))?;
        }
        // snapshots/{commit}/a/b → ../../../blobs/…: one `..` per folder below the repo's.
        let depth = 2 + file.matches('/').count();
        let target = Path::new(&"../".repeat(depth))
            .join("blobs")
            .join(blob_name);
        make_link(&target, &self.blob(blob_name), &pointer).map_err(io("link", &pointer))?;
        Ok(pointer)
    }

    /// Writes `refs/{revision}`; a revision that is the commit itself gets no ref, as in
    /// huggingface_hub.
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<(), HubError> {
        if revision == commit {
            return Ok(());
        }
        let path = self.dir.join("refs").join(revision);
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        std::fs::write(&path, commit).map_err(io("write", &path))
    }

    /// Bytes in partial blobs: a download that was paused or cut and can be resumed.
    pub fn partial_bytes(&self) -> u64 {
        let Ok(listing) = std::fs::read_dir(self.dir.join("blobs")) else {
            return 0;
        };
        listing
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(INCOMPLETE))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }
}

/// The snapshot folder of `repo` at `revision` (a branch, tag or commit), read back through
/// `refs/` as huggingface_hub reads it.
pub fn find_snapshot(
    cache: &HubCache,
    repo: &str,
    revision: &str,
) -> Result<PathBuf, WeightsError> {
    cache.snapshot(repo, Some(revision))
}

pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HubError {
    let path = path.to_path_buf();
    move |cause| HubError::Io {
        action,
        path,
        cause,
    }
}

#[cfg(unix)]
fn make_link(target: &Path, _blob: &Path, pointer: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, pointer)
}

#[cfg(windows)]
fn make_link(target: &Path, blob: &Path, pointer: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, pointer)
        .or_else(|_| std::fs::copy(blob, pointer).map(|_| ()))
}

#[cfg(not(any(unix, windows)))]
fn make_link(_target: &Path, blob: &Path, pointer: &Path) -> std::io::Result<()> {
    std::fs::copy(blob, pointer).map(|_| ())
}
