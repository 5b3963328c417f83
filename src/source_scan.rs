//! Tests that read this crate's own source (which code may read tensors back to the host,
//! how errors word their causes) walk it with this.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, at any depth; an unreadable folder adds nothing.
pub(crate) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
