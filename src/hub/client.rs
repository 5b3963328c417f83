//! The hub's HTTP API: a repository's files at a revision, and one file's bytes.

use std::fmt::Write as _;
use std::io::Read;
use std::time::Duration;

use serde::Deserialize;

use super::error::HubError;

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// A connection to one hub (huggingface.co, a mirror, or a test server).
#[derive(Clone)]
pub struct HubClient {
    endpoint: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// A repository's files at one commit.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoListing {
    pub repo: String,
    /// The commit the revision pointed at when listed; files are fetched at this commit so a
    /// push during the download cannot mix two versions.
    pub commit: String,
    pub files: Vec<RemoteFile>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemoteFile {
    /// Path inside the repository, `/`-separated.
    pub path: String,
    pub size: u64,
    /// The git blob id: the blob's name in the cache for files not stored with LFS.
    pub blob_id: String,
    /// LFS files' SHA-256 (hex): their blob name in the cache, and the check after download.
    pub sha256: Option<String>,
}

impl RemoteFile {
    /// The file's name under `blobs/`, as huggingface_hub names it (the ETag the hub sends:
    /// the SHA-256 for LFS files, the git blob id for the others).
    pub fn blob_name(&self) -> &str {
        self.sha256.as_deref().unwrap_or(&self.blob_id)
    }
}

/// A file's body, as the server chose to send it.
pub(crate) enum Body {
    /// 206: the bytes from the requested offset on.
    Partial(ureq::BodyReader<'static>),
    /// 200: the whole file (the server ignored the range).
    Whole(ureq::BodyReader<'static>),
    /// 416: nothing after the offset: the partial file is already complete.
    NothingLeft,
}

#[derive(Deserialize)]
struct ModelInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sibling {
    rfilename: String,
    size: Option<u64>,
    blob_id: Option<String>,
    lfs: Option<Lfs>,
}

#[derive(Deserialize)]
struct Lfs {
    sha256: String,
    size: u64,
}

impl HubClient {
    pub fn new(endpoint: impl Into<String>, token: Option<String>) -> Self {
        let config = ureq::Agent::config_builder()
            // Statuses are answered here (401 for a gated repo, 206/416 for ranges).
            .http_status_as_error(false)
            // The hub redirects a renamed repository to itself (the token still applies) and
            // LFS files to its CDN with signed URLs (no token goes there).
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_mins(1)))
            // A stalled connection fails the read, and the download continues from there.
            .timeout_per_read(Some(Duration::from_mins(1)))
            .user_agent(concat!("hidream-studio/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.trim().is_empty()),
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// The hub huggingface_hub would use: `HF_ENDPOINT` (default huggingface.co), with
    /// `HF_TOKEN` or the token `hf auth login` saved.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let endpoint = var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let token = var("HF_TOKEN").or_else(|| {
            let file = var("HF_TOKEN_PATH")
                .map(std::path::PathBuf::from)
                .or_else(|| var("HF_HOME").map(|h| std::path::Path::new(&h).join("token")))
                .or_else(|| {
                    var("HOME").map(|h| std::path::Path::new(&h).join(".cache/huggingface/token"))
                })?;
            std::fs::read_to_string(file)
                .ok()
                .map(|t| t.trim().to_string())
        });
        Self::new(endpoint, token)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The repository's page, where a gated model's licence is accepted.
    pub fn page(&self, repo: &str) -> String {
        format!("{}/{repo}", self.endpoint)
    }

    /// Every file of `repo` at `revision` (a branch, tag or commit), with sizes and hashes.
    pub fn list(&self, repo: &str, revision: &str) -> Result<RepoListing, HubError> {
        check_repo_id(repo)?;
        let url = format!(
            "{}/api/models/{repo}/revision/{}?blobs=true",
            self.endpoint,
            encode(revision, false)
        );
        let mut response = self.get(&url, None)?;
        self.check_status(&mut response, &url, repo, revision)?;
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| connection(&url, e))?;
        let bad = |message: String| HubError::BadListing {
            url: url.clone(),
            message,
        };
        let info: ModelInfo = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut files = Vec::with_capacity(info.siblings.len());
        for s in info.siblings {
            check_file_path(&s.rfilename).map_err(bad)?;
            let (size, sha256) = match s.lfs {
                Some(lfs) => (lfs.size, Some(lfs.sha256.to_ascii_lowercase())),
                None => (
                    s.size
                        .ok_or_else(|| bad(format!("{} has no size", s.rfilename)))?,
                    None,
                ),
            };
            let blob_id = s
                .blob_id
                .ok_or_else(|| bad(format!("{} has no blobId", s.rfilename)))?;
            for id in std::iter::once(&blob_id).chain(sha256.as_ref()) {
                if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(bad(format!("{} has a malformed hash `{id}`", s.rfilename)));
                }
            }
            files.push(RemoteFile {
                path: s.rfilename,
                size,
                blob_id,
                sha256,
            });
        }
        if info.sha.len() != 40 || !info.sha.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad(format!("the commit `{}` is not a git hash", info.sha)));
        }
        Ok(RepoListing {
            repo: repo.to_string(),
            commit: info.sha,
            files,
        })
    }

    /// `file`'s bytes from offset `from` on (`resolve/{commit}/{path}`, redirects followed).
    pub(crate) fn open(
        &self,
        repo: &str,
        commit: &str,
        file: &str,
        from: u64,
    ) -> Result<Body, HubError> {
        let url = self.file_url(repo, commit, file);
        let mut response = self.get(&url, (from > 0).then(|| format!("bytes={from}-")))?;
        if from > 0 && response.status().as_u16() == 416 {
            return Ok(Body::NothingLeft);
        }
        self.check_status(&mut response, &url, repo, commit)?;
        let partial = response.status().as_u16() == 206;
        let reader = response.into_body().into_reader();
        Ok(if partial {
            Body::Partial(reader)
        } else {
            Body::Whole(reader)
        })
    }

    pub fn file_url(&self, repo: &str, commit: &str, file: &str) -> String {
        format!(
            "{}/{repo}/resolve/{}/{}",
            self.endpoint,
            encode(commit, false),
            encode(file, true)
        )
    }

    fn get(
        &self,
        url: &str,
        range: Option<String>,
    ) -> Result<ureq::http::Response<ureq::Body>, HubError> {
        let mut request = self.agent.get(url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        if let Some(range) = range {
            request = request.header("Range", &range);
        }
        request.call().map_err(|e| connection(url, e))
    }

    fn check_status(
        &self,
        response: &mut ureq::http::Response<ureq::Body>,
        url: &str,
        repo: &str,
        revision: &str,
    ) -> Result<(), HubError> {
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            401 | 403 => Err(HubError::Gated {
                repo: repo.to_string(),
                page: self.page(repo),
                status,
                token_set: self.has_token(),
            }),
            404 => Err(HubError::NotFound {
                repo: repo.to_string(),
                revision: revision.to_string(),
                endpoint: self.endpoint.clone(),
            }),
            _ => {
                let header = response
                    .headers()
                    .get("x-error-message")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let mut body = String::new();
                let _ = response
                    .body_mut()
                    .as_reader()
                    .take(2000)
                    .read_to_string(&mut body);
                Err(HubError::Status {
                    url: url.to_string(),
                    status,
                    message: header.unwrap_or_else(|| body.trim().to_string()),
                })
            }
        }
    }
}

fn connection(url: &str, e: ureq::Error) -> HubError {
    HubError::Connection {
        url: url.to_string(),
        cause: Box::new(e),
    }
}

/// `ORG/NAME`, each part of the characters the hub allows.
pub(crate) fn check_repo_id(repo: &str) -> Result<(), HubError> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match repo.split_once('/') {
        Some((org, name)) if ok_part(org) && ok_part(name) => Ok(()),
        _ => Err(HubError::BadRepoId {
            repo: repo.to_string(),
        }),
    }
}

/// A listed path must stay inside the snapshot folder once joined to it.
fn check_file_path(path: &str) -> Result<(), String> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        Err(format!(
            "the file path `{path}` would leave the snapshot folder"
        ))
    } else {
        Ok(())
    }
}

/// Percent-encodes everything but unreserved characters (and `/` between path segments).
fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && byte == b'/')
        {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_and_paths_are_checked() {
        assert!(check_repo_id("HiDream-ai/HiDream-I1-Dev").is_ok());
        for bad in ["HiDream-I1-Dev", "a/b/c", "../x", "a/", "a b/c"] {
            assert!(check_repo_id(bad).is_err(), "{bad}");
        }
        assert!(check_file_path("transformer/config.json").is_ok());
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            assert!(check_file_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_encode_revisions_and_paths() {
        let client = HubClient::new("http://h/", None);
        assert_eq!(
            client.file_url("o/n", "refs/pr/1", "a b/c.json"),
            "http://h/o/n/resolve/refs%2Fpr%2F1/a%20b/c.json"
        );
    }
}
