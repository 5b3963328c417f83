//! Finding model snapshots in the Hugging Face hub cache
//! (`<cache>/models--ORG--NAME/snapshots/<commit>/…`), where `hf download` and every
//! `from_pretrained` put them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::error::{Result, WeightsError};

/// The hub cache folder (the one holding `models--*` folders).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubCache {
    root: PathBuf,
}

/// A model found in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedModel {
    /// `ORG/NAME`
    pub repo_id: String,
    pub snapshot: PathBuf,
}

impl HubCache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The cache this process's environment points at.
    pub fn from_env() -> Option<Self> {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// The cache location as `huggingface_hub` computes it: `HF_HUB_CACHE`, then the legacy
    /// `HUGGINGFACE_HUB_CACHE`, then `HF_HOME/hub`, then `XDG_CACHE_HOME/huggingface/hub`,
    /// then `~/.cache/huggingface/hub`.
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Option<Self> {
        let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let root = set("HF_HUB_CACHE")
            .or_else(|| set("HUGGINGFACE_HUB_CACHE"))
            .or_else(|| set("HF_HOME").map(|home| home.join("hub")))
            .or_else(|| set("XDG_CACHE_HOME").map(|c| c.join("huggingface").join("hub")))
            .or_else(|| {
                set("HOME")
                    .or_else(|| set("USERPROFILE"))
                    .map(|home| home.join(".cache").join("huggingface").join("hub"))
            })?;
        Some(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `models--ORG--NAME` for `ORG/NAME`.
    pub fn repo_dir(&self, repo_id: &str) -> PathBuf {
        self.root
            .join(format!("models--{}", repo_id.replace('/', "--")))
    }

    /// The snapshot folder of `repo_id` at `revision` (a branch such as `main`, or a commit).
    /// Without a revision: the commit `refs/main` points at, else the only (or newest)
    /// snapshot.
    pub fn snapshot(&self, repo_id: &str, revision: Option<&str>) -> Result<PathBuf> {
        let repo_dir = self.repo_dir(repo_id);
        if !repo_dir.is_dir() {
            return Err(WeightsError::NotInCache {
                repo: repo_id.to_string(),
                cache: self.root.clone(),
            });
        }
        resolve_repo_dir(&repo_dir, revision)
    }

    /// Every model in the cache with at least one snapshot, sorted by id.
    pub fn models(&self) -> Vec<CachedModel> {
        let Ok(listing) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut models: Vec<CachedModel> = listing
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let name = entry.file_name().into_string().ok()?;
                let repo_id = name.strip_prefix("models--")?.replacen("--", "/", 1);
                let snapshot = resolve_repo_dir(&entry.path(), None).ok()?;
                Some(CachedModel { repo_id, snapshot })
            })
            .collect();
        models.sort_by(|a, b| a.repo_id.cmp(&b.repo_id));
        models
    }
}

/// A `models--ORG--NAME` folder's snapshot.
pub(crate) fn resolve_repo_dir(repo_dir: &Path, revision: Option<&str>) -> Result<PathBuf> {
    let snapshots = repo_dir.join("snapshots");
    let no_snapshot = || WeightsError::NoSnapshot {
        repo_dir: repo_dir.to_path_buf(),
        revision: revision.map(|r| format!(" for `{r}`")).unwrap_or_default(),
    };
    let branch = revision.unwrap_or("main");
    if let Ok(commit) = std::fs::read_to_string(repo_dir.join("refs").join(branch)) {
        let dir = snapshots.join(commit.trim());
        return if dir.is_dir() {
            Ok(dir)
        } else {
            Err(no_snapshot())
        };
    }
    if let Some(revision) = revision {
        let dir = snapshots.join(revision);
        return if dir.is_dir() {
            Ok(dir)
        } else {
            Err(no_snapshot())
        };
    }
    let listing = std::fs::read_dir(&snapshots).map_err(|_| no_snapshot())?;
    listing
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let modified = entry.metadata().ok()?.modified().ok()?;
            entry.path().is_dir().then(|| (modified, entry.path()))
        })
        .max()
        .map(|(_, path)| path)
        .ok_or_else(no_snapshot)
}

/// Whether `dir` is a `models--ORG--NAME` cache folder rather than a snapshot.
pub(crate) fn is_repo_dir(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("models--"))
        && dir.join("snapshots").is_dir()
}
