//! Downloading a repository's files into the cache: filtered, checked for room first,
//! resumable, verified, cancellable.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::cache::{CacheRepo, io};
use super::client::{Body, HubClient, RemoteFile, RepoListing};
use super::error::HubError;
use super::progress::{DownloadProgress, Meter};
use crate::weights::HubCache;

/// Free bytes on the filesystem holding a folder. Tests replace it to stage a full disk.
pub type FreeSpace = Box<dyn Fn(&Path) -> std::io::Result<u64> + Send + Sync>;

pub struct DownloadOptions {
    /// A branch, tag or commit.
    pub revision: String,
    /// Glob patterns over repository paths (`*` crosses `/`, as in huggingface_hub); empty
    /// for every file.
    pub include: Vec<String>,
    /// Set to stop at the next chunk; the partial file stays for the next download.
    pub cancel: Arc<AtomicBool>,
    pub free_space: FreeSpace,
    /// Times the connection may drop while fetching one file before giving up (each retry
    /// continues from the bytes already written).
    pub retries: u32,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            revision: "main".to_string(),
            include: Vec::new(),
            cancel: Arc::new(AtomicBool::new(false)),
            free_space: Box::new(|path| fs2::available_space(path)),
            retries: 5,
        }
    }
}

/// Downloads `repo`'s files (those `options.include` selects) into `cache`, reporting
/// progress as it goes, and returns the snapshot folder.
pub fn download(
    client: &HubClient,
    cache: &HubCache,
    repo: &str,
    options: &DownloadOptions,
    progress: &mut dyn FnMut(&DownloadProgress),
) -> Result<PathBuf, HubError> {
    let listing = client.list(repo, &options.revision)?;
    let files = selected(&listing, &options.include)?;
    let target = CacheRepo::new(cache, repo);
    let held: Vec<u64> = files.iter().map(|f| held_bytes(&target, f)).collect();
    let missing: u64 = files.iter().zip(&held).map(|(f, h)| f.size - h).sum();
    if missing > 0 {
        let place = existing_ancestor(cache.root());
        let available =
            (options.free_space)(&place).map_err(io("measure free space in", &place))?;
        if available < missing {
            return Err(HubError::DiskSpace {
                needed: missing,
                available,
                cache: cache.root().to_path_buf(),
            });
        }
    }
    let total: u64 = files.iter().map(|f| f.size).sum();
    let mut run = Run {
        client,
        repo,
        commit: &listing.commit,
        target: &target,
        options,
        report: DownloadProgress {
            file: String::new(),
            done: total - missing,
            total,
            bytes_per_second: 0.0,
            eta: None,
            files_done: 0,
            files_total: files.len(),
        },
        meter: Meter::new(),
        last_report: None,
        progress,
    };
    for (file, &held) in files.iter().zip(&held) {
        run.report.file.clone_from(&file.path);
        // Another download of the same blob (a second window, `hf download`) finishes first.
        let _lock = run.lock(file)?;
        if is_complete(&target.blob(file.blob_name()), file.size) {
            run.report.done += file.size - held;
        } else {
            run.fetch(file, held)?;
        }
        target.link(&listing.commit, &file.path, file.blob_name())?;
        run.report.files_done += 1;
        run.send(true);
    }
    target.write_ref(&options.revision, &listing.commit)?;
    Ok(target.snapshot(&listing.commit))
}

/// Bytes still to fetch for `files`: whole files not yet in the cache, less what their
/// partial blobs hold.
pub fn missing_bytes(target: &CacheRepo, files: &[RemoteFile]) -> u64 {
    files.iter().map(|f| f.size - held_bytes(target, f)).sum()
}

/// Bytes of `file` already in the cache: all of it, or what its partial blob holds (none
/// when that is longer than the file: it is started again).
fn held_bytes(target: &CacheRepo, file: &RemoteFile) -> u64 {
    if is_complete(&target.blob(file.blob_name()), file.size) {
        return file.size;
    }
    let partial = std::fs::metadata(target.incomplete(file.blob_name())).map_or(0, |m| m.len());
    if partial > file.size { 0 } else { partial }
}

/// The files `include` selects (all without patterns). A pattern ending in `/` means the
/// folder's files, as in huggingface_hub.
fn selected(listing: &RepoListing, include: &[String]) -> Result<Vec<RemoteFile>, HubError> {
    if include.is_empty() {
        return Ok(listing.files.clone());
    }
    let patterns = include
        .iter()
        .map(|p| {
            let full = if p.ends_with('/') {
                format!("{p}*")
            } else {
                p.clone()
            };
            glob::Pattern::new(&full).map_err(|e| HubError::Pattern {
                pattern: p.clone(),
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let files: Vec<RemoteFile> = listing
        .files
        .iter()
        .filter(|f| patterns.iter().any(|p| p.matches(&f.path)))
        .cloned()
        .collect();
    if files.is_empty() {
        return Err(HubError::NoMatch {
            repo: listing.repo.clone(),
            patterns: include.to_vec(),
            sample: listing
                .files
                .iter()
                .take(8)
                .map(|f| f.path.clone())
                .collect(),
        });
    }
    Ok(files)
}

fn is_complete(blob: &Path, size: u64) -> bool {
    std::fs::metadata(blob).is_ok_and(|m| m.is_file() && m.len() == size)
}

fn existing_ancestor(path: &Path) -> PathBuf {
    path.ancestors()
        .find(|p| p.is_dir())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// Why one attempt at a file stopped early.
enum Stop {
    /// The connection dropped or stalled: continue from the bytes written.
    Dropped,
    Failed(HubError),
}

impl From<HubError> for Stop {
    fn from(e: HubError) -> Self {
        match e {
            HubError::Connection { .. } => Stop::Dropped,
            e => Stop::Failed(e),
        }
    }
}

/// A partial blob open for appending, with the SHA-256 of what it holds so far.
struct Partial {
    path: PathBuf,
    file: File,
    len: u64,
    hasher: Sha256,
}

impl Partial {
    /// Opens `{blob}.incomplete`, hashing what an earlier run left (a prefix longer than the
    /// file cannot be right, so it is dropped).
    fn open(path: PathBuf, size: u64) -> Result<Self, HubError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("open", &path))?;
        let mut partial = Self {
            len: file.metadata().map_err(io("read", &path))?.len(),
            hasher: Sha256::new(),
            file: file.try_clone().map_err(io("open", &path))?,
            path,
        };
        if partial.len > size {
            partial.restart()?;
        } else {
            let copied = std::io::copy(&mut (&mut file).take(partial.len), &mut partial.hasher)
                .map_err(io("read", &partial.path))?;
            if copied != partial.len {
                partial.restart()?;
            }
        }
        partial
            .file
            .seek(SeekFrom::Start(partial.len))
            .map_err(io("seek in", &partial.path))?;
        Ok(partial)
    }

    fn restart(&mut self) -> Result<(), HubError> {
        self.file.set_len(0).map_err(io("truncate", &self.path))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(io("seek in", &self.path))?;
        self.len = 0;
        self.hasher = Sha256::new();
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), HubError> {
        self.file
            .write_all(bytes)
            .map_err(io("write", &self.path))?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }
}

/// One download's state: where it writes and what it has reported.
struct Run<'a> {
    client: &'a HubClient,
    repo: &'a str,
    commit: &'a str,
    target: &'a CacheRepo,
    options: &'a DownloadOptions,
    report: DownloadProgress,
    meter: Meter,
    last_report: Option<Instant>,
    progress: &'a mut dyn FnMut(&DownloadProgress),
}

impl Run<'_> {
    /// Fetches one file into its blob: continues a partial blob, survives dropped
    /// connections, and fetches again once when the SHA-256 is wrong.
    fn fetch(&mut self, file: &RemoteFile, held: u64) -> Result<(), HubError> {
        let part_path = self.target.incomplete(file.blob_name());
        let mut fetched_again = false;
        // The bytes of this file `report.done` counts.
        let mut counted = held;
        loop {
            let mut partial = Partial::open(part_path.clone(), file.size)?;
            self.report.done = self.report.done - counted + partial.len;
            let mut drops = 0;
            while partial.len < file.size {
                match self.attempt(file, &mut partial) {
                    Ok(()) => {}
                    Err(Stop::Dropped) if drops < self.options.retries => {
                        drops += 1;
                        std::thread::sleep(Duration::from_millis(200 * u64::from(drops)));
                    }
                    Err(Stop::Dropped) => {
                        return Err(HubError::Interrupted {
                            repo: self.repo.to_string(),
                            file: file.path.clone(),
                            attempts: drops + 1,
                            done: partial.len,
                            total: file.size,
                        });
                    }
                    Err(Stop::Failed(e)) => return Err(e),
                }
            }
            drop(partial.file.sync_all());
            if let Some(expected) = &file.sha256 {
                let actual = format!("{:x}", partial.hasher.finalize());
                if &actual != expected {
                    std::fs::remove_file(&part_path).map_err(io("delete", &part_path))?;
                    self.report.done -= file.size;
                    counted = 0;
                    if !fetched_again {
                        fetched_again = true;
                        tracing::warn!(file = %file.path, "SHA-256 mismatch; fetching it again");
                        continue;
                    }
                    return Err(HubError::HashMismatch {
                        repo: self.repo.to_string(),
                        file: file.path.clone(),
                        expected: expected.clone(),
                        actual,
                    });
                }
            }
            let blob = self.target.blob(file.blob_name());
            return std::fs::rename(&part_path, &blob).map_err(io("move into place", &blob));
        }
    }

    /// Holds `{cache}/.locks/models--…/{blob}.lock`, as huggingface_hub does, waiting (and
    /// still cancellable) while another process holds it. A filesystem without locks
    /// downloads unlocked.
    fn lock(&self, file: &RemoteFile) -> Result<Option<File>, HubError> {
        use fs2::FileExt as _;
        let path = self.target.lock(file.blob_name());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("create the lock file", &path))?;
        let contended = fs2::lock_contended_error().raw_os_error();
        let mut waiting = false;
        loop {
            match lock.try_lock_exclusive() {
                Ok(()) => return Ok(Some(lock)),
                Err(e) if e.raw_os_error() == contended => {
                    if !waiting {
                        tracing::info!(file = %file.path, "waiting for another download of the same file");
                        waiting = true;
                    }
                    if self.options.cancel.load(Ordering::Relaxed) {
                        return Err(HubError::Cancelled);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot lock ({e}); downloading without");
                    return Ok(None);
                }
            }
        }
    }

    /// One request: appends what the server sends until the file is whole or the
    /// connection ends.
    fn attempt(&mut self, file: &RemoteFile, partial: &mut Partial) -> Result<(), Stop> {
        let mut reader = match self
            .client
            .open(self.repo, self.commit, &file.path, partial.len)?
        {
            Body::Partial(reader) => reader,
            Body::Whole(reader) => {
                // The server ignored the range: start the file again.
                self.report.done -= partial.len;
                partial.restart()?;
                reader
            }
            Body::NothingLeft => return Err(Stop::Failed(self.size_mismatch(file, partial.len))),
        };
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            if self.options.cancel.load(Ordering::Relaxed) {
                return Err(Stop::Failed(HubError::Cancelled));
            }
            let n = match reader.read(&mut buffer) {
                Ok(0) => {
                    return if partial.len < file.size {
                        Err(Stop::Dropped)
                    } else {
                        Ok(())
                    };
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(Stop::Dropped),
            };
            if partial.len + n as u64 > file.size {
                return Err(Stop::Failed(
                    self.size_mismatch(file, partial.len + n as u64),
                ));
            }
            partial.append(&buffer[..n])?;
            self.report.done += n as u64;
            self.meter.add(n as u64);
            self.send(false);
        }
    }

    fn size_mismatch(&self, file: &RemoteFile, got: u64) -> HubError {
        HubError::SizeMismatch {
            repo: self.repo.to_string(),
            file: file.path.clone(),
            expected: file.size,
            got,
        }
    }

    /// Reports progress, at most ten times a second unless `now`.
    fn send(&mut self, now: bool) {
        let due = self
            .last_report
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if now || due {
            let (speed, eta) = self.meter.rate(self.report.total - self.report.done);
            self.report.bytes_per_second = speed;
            self.report.eta = eta;
            (self.progress)(&self.report);
            self.last_report = Some(Instant::now());
        }
    }
}
