//! What can go wrong while downloading, each said with where and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(
        "`{repo}` is not a hub repository id: write it as ORG/NAME (for example HiDream-ai/HiDream-I1-Dev)"
    )]
    BadRepoId { repo: String },

    #[error(
        "no Hugging Face cache folder could be determined (HF_HUB_CACHE, HF_HOME and HOME are \
         unset): set HF_HUB_CACHE to the folder to download into"
    )]
    NoCache,

    #[error(
        "could not reach {url}: {cause} (check the network connection, or HF_ENDPOINT if it is set)"
    )]
    // The cause is in the message, not chained as a source, so `{:#}` says it once.
    Connection {
        url: String,
        cause: Box<ureq::Error>,
    },

    #[error("{}", gated_message(repo, page, *status, *token_set))]
    Gated {
        repo: String,
        /// The model's page on the hub, where its licence is accepted.
        page: String,
        status: u16,
        token_set: bool,
    },

    #[error(
        "`{repo}` at revision `{revision}` was not found on {endpoint} (HTTP 404): check the \
         repository id and the revision"
    )]
    NotFound {
        repo: String,
        revision: String,
        endpoint: String,
    },

    #[error(
        "the hub answered HTTP {status} for {url}{}: try again later",
        detail(message)
    )]
    Status {
        url: String,
        status: u16,
        message: String,
    },

    #[error(
        "the hub's file list from {url} could not be read: {message} (is HF_ENDPOINT a Hugging Face hub?)"
    )]
    BadListing { url: String, message: String },

    #[error(
        "could not {action} {}: {cause} (check that the Hugging Face cache folder is writable \
         and has room, or set HF_HUB_CACHE to another)",
        path.display()
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error(
        "{file} of {repo} was downloaded twice and its SHA-256 differed from the hub's both \
         times (expected {expected}, got {actual}): the copy on the server or the connection \
         corrupts it; the damaged file was deleted, try again later"
    )]
    HashMismatch {
        repo: String,
        file: String,
        expected: String,
        actual: String,
    },

    #[error(
        "the connection dropped {attempts} times while downloading {file} of {repo} ({done} of \
         {total} bytes kept): run the download again to continue from there"
    )]
    Interrupted {
        repo: String,
        file: String,
        attempts: u32,
        done: u64,
        total: u64,
    },

    #[error(
        "{file} of {repo} is {got} bytes on the server but the hub lists it as {expected}: \
         the listing and the file disagree, try again later"
    )]
    SizeMismatch {
        repo: String,
        file: String,
        expected: u64,
        got: u64,
    },

    #[error(
        "the download needs {} more in {} but only {} is free there: free some space, or set \
         HF_HUB_CACHE to a folder on a larger disk",
        gigabytes(*needed), cache.display(), gigabytes(*available)
    )]
    DiskSpace {
        needed: u64,
        available: u64,
        cache: PathBuf,
    },

    #[error("`{pattern}` is not a valid --include pattern: {message}")]
    Pattern { pattern: String, message: String },

    #[error("no file of {repo} matches --include {}: the repository holds {}", patterns.join(" --include "), sample.join(", "))]
    NoMatch {
        repo: String,
        patterns: Vec<String>,
        sample: Vec<String>,
    },

    #[error("the download was cancelled; the partial file is kept and a new download continues it")]
    Cancelled,
}

fn gated_message(repo: &str, page: &str, status: u16, token_set: bool) -> String {
    let first = format!("the hub refused access to {repo} (HTTP {status}): it is gated or private");
    if token_set {
        format!(
            "{first}, and the token in HF_TOKEN was refused for it: accept the licence at \
             {page} with the account the token belongs to (and check the token at \
             https://huggingface.co/settings/tokens)"
        )
    } else {
        format!(
            "{first}: accept its licence at {page}, then set HF_TOKEN to a read token of that \
             account (https://huggingface.co/settings/tokens) and download again"
        )
    }
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

/// Bytes as gigabytes with one decimal, or megabytes below one gigabyte.
pub(crate) fn gigabytes(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.1} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}
