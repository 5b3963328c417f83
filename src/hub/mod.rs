//! Downloading models from the Hugging Face hub into the standard hub cache, laid out as
//! `huggingface_hub` lays it out, so `hf`, `from_pretrained` and this app all find the files.
//!
//! The protocol (checked against huggingface_hub's `hf_api.py` and `file_download.py`):
//! - `GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true` names the commit (`sha`) and
//!   every file (`siblings`: `rfilename`, `size`, `blobId`, and `lfs.sha256` for LFS files);
//! - `GET {endpoint}/{repo}/resolve/{commit}/{path}` serves a file (the hub redirects LFS files
//!   to its CDN), with `Range: bytes=N-` to continue a partial one;
//! - `Authorization: Bearer $HF_TOKEN` for gated and private repos.
//!
//! The cache (see [`cache`]): `models--ORG--NAME/blobs/{sha256 or git blob id}`, written as
//! `{blob}.incomplete` first; `snapshots/{commit}/{path}` are relative symlinks to the blobs;
//! `refs/{revision}` holds the commit.
//!
//! Why not the `hf-hub` crate: its current line (1.x) is async only (tokio, reqwest, hf-xet),
//! far heavier than the rest of this app's build; the older 0.4 line's blocking API resumes
//! and reports progress, but does not check LFS files' SHA-256, cannot be cancelled between
//! chunks, lists no file sizes before downloading (so no disk-space check) and pins ureq 2
//! with indicatif. The protocol is three requests, so this module speaks it with `ureq`
//! (blocking, rustls) and `sha2`.

pub mod cache;
mod client;
mod download;
mod error;
pub mod known;
mod progress;

pub use client::{DEFAULT_ENDPOINT, HubClient, RemoteFile, RepoListing};
pub use download::{DownloadOptions, FreeSpace, download, missing_bytes};
pub use error::HubError;
pub use progress::DownloadProgress;
