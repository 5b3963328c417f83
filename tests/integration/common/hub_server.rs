//! A tiny Hugging Face hub on loopback for the download tests: the model-info API and
//! `resolve/` with ranges, plus the faults the downloader must survive.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub const COMMIT: &str = "6f0c1b7e2d3a4c5b6a7980e1f2a3b4c5d6e7f809";
/// The token the server accepts for gated repositories.
pub const GOOD_TOKEN: &str = "hf_test_good";

/// One file of the fixture repository.
#[derive(Clone)]
pub struct FixtureFile {
    pub path: &'static str,
    pub bytes: Vec<u8>,
    pub lfs: bool,
}

impl FixtureFile {
    pub fn sha256(&self) -> String {
        format!("{:x}", Sha256::digest(&self.bytes))
    }

    /// A stand-in for the git blob id (40 hex digits, distinct per content).
    pub fn blob_id(&self) -> String {
        self.sha256()[..40].to_string()
    }

    pub fn blob_name(&self) -> String {
        if self.lfs {
            self.sha256()
        } else {
            self.blob_id()
        }
    }
}

/// Deterministic bytes (an LCG), so the files are the same every run and nothing is
/// committed.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

/// config.json (a plain git file), model.safetensors and a nested LFS file.
pub fn fixture_files() -> Vec<FixtureFile> {
    vec![
        FixtureFile {
            path: "config.json",
            bytes: br#"{"_class_name": "Fixture", "layers": 2}"#.to_vec(),
            lfs: false,
        },
        FixtureFile {
            path: "model.safetensors",
            bytes: pseudo_random(300_000, 1),
            lfs: true,
        },
        FixtureFile {
            path: "transformer/weights.bin",
            bytes: pseudo_random(120_000, 2),
            lfs: true,
        },
    ]
}

/// What the server does wrong, per file path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// The first response sends half the file and closes the connection.
    DropHalfOnce,
    /// The first response has one byte changed.
    CorruptOnce,
    /// Every response has one byte changed.
    CorruptAlways,
    /// Sends the file in ten pieces 150 ms apart (time for the client to pause in between).
    Slow,
}

/// A request the server saw: path and Range header.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
}

#[derive(Default)]
struct State {
    repos: HashMap<String, (Vec<FixtureFile>, bool)>,
    faults: HashMap<String, Fault>,
    served: HashMap<String, usize>,
    seen: Vec<Seen>,
    /// The requests that were answered with a file's bytes (after any redirect).
    served_log: Vec<Seen>,
}

pub struct HubServer {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

impl HubServer {
    /// Starts the server on a free loopback port; its thread ends with the test process.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Self { endpoint, state }
    }

    /// Serves `files` as `repo`; a gated one answers 401 to file requests without the token.
    pub fn add_repo(&self, repo: &str, files: Vec<FixtureFile>, gated: bool) {
        let mut state = self.state.lock().unwrap();
        state.repos.insert(repo.to_string(), (files, gated));
    }

    pub fn fault(&self, file: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .insert(file.to_string(), fault);
    }

    /// Every request answered with `file`'s bytes (`resolve/`, or the CDN for LFS files), in
    /// order.
    pub fn file_requests(&self, file: &str) -> Vec<Seen> {
        let suffix = format!("/{file}");
        let state = self.state.lock().unwrap();
        state
            .served_log
            .iter()
            .filter(|s| s.path.ends_with(&suffix))
            .cloned()
            .collect()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
    let range = headers.get("range").cloned();
    let authorised =
        headers.get("authorization").map(String::as_str) == Some(&format!("Bearer {GOOD_TOKEN}"));
    state.lock().unwrap().seen.push(Seen {
        path: path.clone(),
        range: range.clone(),
    });
    let mut out = stream;
    let (route, _query) = path.split_once('?').unwrap_or((&path, ""));
    if let Some(rest) = route.strip_prefix("/api/models/") {
        let Some((repo, _rev)) = rest.split_once("/revision/") else {
            return respond(&mut out, 404, "application/json", &[], b"{}");
        };
        let repo_entry = state.lock().unwrap().repos.get(repo).cloned();
        let Some((files, _gated)) = repo_entry else {
            return respond(
                &mut out,
                404,
                "application/json",
                &[],
                br#"{"error":"Repository not found"}"#,
            );
        };
        return respond(
            &mut out,
            200,
            "application/json",
            &[],
            listing(&files).as_bytes(),
        );
    }
    // /{org}/{name}/resolve/{commit}/{path…}, and /{org}/{name}/cdn-lfs/{commit}/{path…}
    // standing in for the CDN the hub redirects LFS files to.
    let parts: Vec<&str> = route.trim_start_matches('/').splitn(5, '/').collect();
    if parts.len() != 5 || !matches!(parts[2], "resolve" | "cdn-lfs") {
        return respond(&mut out, 404, "text/plain", &[], b"not found");
    }
    let repo = format!("{}/{}", parts[0], parts[1]);
    let file_path = parts[4];
    let Some((files, gated)) = state.lock().unwrap().repos.get(&repo).cloned() else {
        return respond(&mut out, 404, "text/plain", &[], b"no repo");
    };
    let resolve = parts[2] == "resolve";
    if resolve && gated && !authorised {
        return respond(
            &mut out,
            401,
            "application/json",
            &[("X-Error-Code", "GatedRepo")],
            br#"{"error":"Access to model is restricted. You must have access to it and be authenticated to access it. Please log in."}"#,
        );
    }
    let Some(file) = files.into_iter().find(|f| f.path == file_path) else {
        return respond(&mut out, 404, "text/plain", &[], b"entry not found");
    };
    if resolve && file.lfs {
        // As the hub does: a redirect to the CDN, with the blob's hash and size.
        let host = headers.get("host").cloned().unwrap_or_default();
        let location = format!("http://{host}/{repo}/cdn-lfs/{}/{file_path}", parts[3]);
        let etag = format!("\"{}\"", file.sha256());
        let size = file.bytes.len().to_string();
        let extra = [
            ("Location", location.as_str()),
            ("X-Linked-Etag", etag.as_str()),
            ("X-Linked-Size", size.as_str()),
            ("X-Repo-Commit", COMMIT),
        ];
        return respond(&mut out, 302, "text/plain", &extra, b"");
    }
    let (fault, count) = {
        let mut s = state.lock().unwrap();
        s.served_log.push(Seen {
            path: path.clone(),
            range: range.clone(),
        });
        let fault = s.faults.get(file_path).copied();
        let count = s.served.entry(file_path.to_string()).or_default();
        *count += 1;
        (fault, *count)
    };
    let mut bytes = file.bytes.clone();
    if fault == Some(Fault::CorruptAlways) || (fault == Some(Fault::CorruptOnce) && count == 1) {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
    }
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok());
    let etag = format!("\"{}\"", file.blob_name());
    let commit_header = ("X-Repo-Commit", COMMIT);
    let (status, body, content_range) = match start {
        Some(s) if s >= bytes.len() => {
            let cr = format!("bytes */{}", bytes.len());
            return respond(&mut out, 416, "text/plain", &[("Content-Range", &cr)], b"");
        }
        Some(s) => (
            206,
            &bytes[s..],
            Some(format!("bytes {s}-{}/{}", bytes.len() - 1, bytes.len())),
        ),
        None => (200, &bytes[..], None),
    };
    let mut extra = vec![("ETag", etag.as_str()), commit_header];
    if let Some(cr) = &content_range {
        extra.push(("Content-Range", cr));
    }
    let drop_half = fault == Some(Fault::DropHalfOnce) && count == 1;
    if !drop_half && fault != Some(Fault::Slow) {
        return respond(&mut out, status, "application/octet-stream", &extra, body);
    }
    // Both promise the whole body in the head.
    write_head(
        &mut out,
        status,
        "application/octet-stream",
        &extra,
        body.len(),
    );
    if drop_half {
        // Send half, hang up.
        let _ = out.write_all(&body[..body.len() / 2]);
        let _ = out.flush();
        let _ = out.shutdown(std::net::Shutdown::Both);
        return;
    }
    for piece in body.chunks(body.len().div_ceil(10).max(1)) {
        if out.write_all(piece).and_then(|()| out.flush()).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// The model-info answer with `blobs=true`, as the hub writes it.
fn listing(files: &[FixtureFile]) -> String {
    let siblings: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            let mut s = serde_json::json!({
                "rfilename": f.path,
                "size": f.bytes.len(),
                "blobId": f.blob_id(),
            });
            if f.lfs {
                s["lfs"] = serde_json::json!({
                    "sha256": f.sha256(),
                    "size": f.bytes.len(),
                    "pointerSize": 134,
                });
            }
            s
        })
        .collect();
    serde_json::json!({ "id": "fixture", "sha": COMMIT, "siblings": siblings }).to_string()
}

fn write_head(
    out: &mut TcpStream,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    len: usize,
) {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        _ => "Other",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: close\r\n"
    );
    for (k, v) in extra {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head += "\r\n";
    let _ = out.write_all(head.as_bytes());
}

fn respond(
    out: &mut TcpStream,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) {
    write_head(out, status, content_type, extra, body.len());
    let _ = out.write_all(body);
    let _ = out.flush();
}
