//! What every weights file format shares: the file mapped into memory and its table of
//! tensors, read from a header the format's own module parses.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::error::{Result, WeightsError};
use super::safetensors_file::TensorEntry;

pub(crate) struct MappedFile {
    pub path: PathBuf,
    pub mmap: Mmap,
    pub tensors: HashMap<String, TensorEntry>,
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .finish_non_exhaustive()
    }
}

/// Maps `path` read-only. Tensors are only copied out when loaded, so opening a 5 GB shard to
/// read its header costs next to nothing.
pub(crate) fn map(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(|e| WeightsError::io(path, e))?;
    // SAFETY: the mapping is read-only. Another process truncating the file while we hold the
    // map would fault; that is the usual contract of memory-mapped model loading, and each
    // format's header checks catch files that were already short when opened.
    unsafe { Mmap::map(&file) }.map_err(|e| WeightsError::io(path, e))
}

impl MappedFile {
    /// The entry of tensor `name`, or an error naming the file.
    pub fn entry(&self, name: &str) -> Result<&TensorEntry> {
        self.tensors
            .get(name)
            .ok_or_else(|| WeightsError::TensorMissing {
                tensor: name.to_string(),
                location: self.path.clone(),
            })
    }

    /// An error loading tensor `name` of this file.
    pub fn load_error(&self, name: &str, detail: impl ToString) -> WeightsError {
        WeightsError::TensorLoad {
            file: self.path.clone(),
            tensor: name.to_string(),
            detail: detail.to_string(),
        }
    }
}
