//! Turning what a user types after `--model` into a folder on disk.

use std::path::{Path, PathBuf};

use super::error::{Result, WeightsError};
use super::hf_cache::{HubCache, is_repo_dir, resolve_repo_dir};

/// Resolves a model argument: an existing folder or file (a `models--ORG--NAME` cache folder
/// resolves to its snapshot), or a Hugging Face id `ORG/NAME[@REVISION]` looked up in `cache`.
pub fn resolve_model_path(given: &str, cache: Option<&HubCache>) -> Result<PathBuf> {
    let path = Path::new(given);
    if path.exists() {
        if path.is_dir() && is_repo_dir(path) {
            return resolve_repo_dir(path, None);
        }
        return Ok(path.to_path_buf());
    }
    let (repo_id, revision) = match given.split_once('@') {
        Some((id, rev)) => (id, Some(rev)),
        None => (given, None),
    };
    if !looks_like_repo_id(repo_id) {
        return Err(WeightsError::BadModelPath {
            given: given.to_string(),
        });
    }
    let cache = cache.ok_or_else(|| WeightsError::NoCache {
        repo: repo_id.to_string(),
    })?;
    cache.snapshot(repo_id, revision)
}

/// `ORG/NAME` with the characters the Hub allows, and not something that reads as a path.
fn looks_like_repo_id(s: &str) -> bool {
    let valid = |part: &str| {
        !part.is_empty()
            && !part.starts_with('.')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(s.split_once('/'), Some((org, name)) if valid(org) && valid(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_are_told_apart_from_paths() {
        assert!(looks_like_repo_id("HiDream-ai/HiDream-I1-Full"));
        assert!(looks_like_repo_id("meta-llama/Llama-3.1-8B-Instruct"));
        assert!(!looks_like_repo_id("./models/x"));
        assert!(!looks_like_repo_id("/abs/path"));
        assert!(!looks_like_repo_id("a/b/c"));
        assert!(!looks_like_repo_id("single"));
    }
}
