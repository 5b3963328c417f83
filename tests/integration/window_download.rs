//! Downloading from the Models view, as a user would: Download, Pause, the partial file seen
//! again after a restart, Resume to the end, and Cancel.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use hidream_studio::app::StudioApp;
use hidream_studio::hub::cache::{CacheRepo, find_snapshot};
use hidream_studio::hub::{DownloadProgress, HubClient};
use hidream_studio::weights::HubCache;

use crate::common::hub_server::{Fault, HubServer, fixture_files};
use crate::common::window::{Window, paths};

/// A known repository the test hub serves the fixture files as.
const REPO: &str = "HiDream-ai/HiDream-I1-Dev";
const LABEL: &str = "HiDream-I1-Dev";

fn open_models(
    server: &HubServer,
    root: &std::path::Path,
    cache: &HubCache,
) -> Harness<'static, StudioApp> {
    let mut harness = Window::new(&paths(root))
        .hub(cache.clone(), HubClient::new(&server.endpoint, None))
        .build();
    press(&mut harness, "Models");
    harness.run_ok();
    harness
}

/// Scrolls the button into view (the download rows are below the fold) and clicks it.
fn press(harness: &mut Harness<'static, StudioApp>, label: &str) {
    harness.get_by_label(label).scroll_to_me();
    for _ in 0..3 {
        harness.step();
    }
    harness.get_by_label(label).click();
    harness.step();
}

/// Steps the window until `done` holds (the download thread runs meanwhile).
fn step_until(
    harness: &mut Harness<'static, StudioApp>,
    what: &str,
    mut done: impl FnMut(&mut Harness<'static, StudioApp>) -> bool,
) {
    let start = Instant::now();
    while !done(harness) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}: {:#?}",
            harness.root()
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A hub serving the fixture as I1-Dev slowly, and the Models view downloading it: returned
/// once the first bytes of model.safetensors are on disk.
fn download_started() -> (
    HubServer,
    tempfile::TempDir,
    HubCache,
    Harness<'static, StudioApp>,
) {
    let server = HubServer::start();
    server.add_repo(REPO, fixture_files(), false);
    server.fault("model.safetensors", Fault::Slow);
    let root = tempfile::tempdir().unwrap();
    let cache = HubCache::new(root.path().join("hub"));
    let mut harness = open_models(&server, root.path(), &cache);
    press(&mut harness, &format!("Download {LABEL}"));
    // model.safetensors's own partial blob: config.json's is there for a moment too.
    let model = CacheRepo::new(&cache, REPO).incomplete(&fixture_files()[1].blob_name());
    step_until(&mut harness, "bytes of model.safetensors", |_| {
        std::fs::metadata(&model).is_ok_and(|m| m.len() > 0)
    });
    // A frame drawn since, so the row's Pause and Cancel are there to press.
    harness.step();
    (server, root, cache, harness)
}

#[test]
fn download_pause_restart_resume_from_the_models_view() {
    let (server, root, cache, mut harness) = download_started();
    let partial = || CacheRepo::new(&cache, REPO).partial_bytes();
    press(&mut harness, &format!("Pause {LABEL}"));
    step_until(&mut harness, "the Resume button", |h| {
        h.query_by_label(&format!("Resume {LABEL}")).is_some()
    });
    let kept = partial();
    let whole = fixture_files()[1].bytes.len() as u64;
    assert!(kept > 0 && kept < whole, "{kept}");
    drop(harness);

    // After a restart the view finds the partial file and offers to resume it.
    let mut harness = open_models(&server, root.path(), &cache);
    harness.get_by_label_contains("paused at");
    press(&mut harness, &format!("Resume {LABEL}"));
    step_until(&mut harness, "the download to finish", |h| {
        h.query_by_label(&format!("Pause {LABEL}")).is_none()
            && h.query_by_label(&format!("Resume {LABEL}")).is_none()
    });
    let snapshot = find_snapshot(&cache, REPO, "main").unwrap();
    for f in fixture_files() {
        assert_eq!(
            std::fs::read(snapshot.join(f.path)).unwrap(),
            f.bytes,
            "{}",
            f.path
        );
    }
    let requests = server.file_requests("model.safetensors");
    assert_eq!(
        requests.last().unwrap().range,
        Some(format!("bytes={kept}-"))
    );
    assert!(
        harness
            .query_by_label(&format!("Download {LABEL}"))
            .is_none()
    );
    // The finished model fills its empty slot, as "Find in the Hugging Face cache" does.
    let messages: Vec<_> = harness
        .state()
        .messages()
        .iter()
        .map(|m| m.text.clone())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("From the cache: HiDream-I1-Dev")),
        "{messages:?}"
    );
}

#[test]
fn cancel_from_the_models_view_deletes_the_partial_file() {
    let (_server, _root, cache, mut harness) = download_started();
    let partial = || CacheRepo::new(&cache, REPO).partial_bytes();
    press(&mut harness, &format!("Cancel {LABEL}"));
    step_until(&mut harness, "the Download button", |h| {
        h.query_by_label(&format!("Download {LABEL}")).is_some()
    });
    assert_eq!(partial(), 0);
    assert!(find_snapshot(&cache, REPO, "main").is_err());
}

#[test]
fn a_failed_download_shows_why_in_its_row() {
    let server = HubServer::start();
    server.add_repo("meta-llama/Llama-3.1-8B-Instruct", fixture_files(), true);
    let root = tempfile::tempdir().unwrap();
    let cache = HubCache::new(root.path().join("hub"));
    let mut harness = open_models(&server, root.path(), &cache);
    press(&mut harness, "Download Llama-3.1-8B-Instruct");
    step_until(&mut harness, "the Retry button", |h| {
        h.query_by_label("Retry Llama-3.1-8B-Instruct").is_some()
    });
    // The row's message: where to accept the licence, and HF_TOKEN.
    let message = harness
        .get_by_label_contains(&format!(
            "accept its licence at {}/meta-llama/Llama-3.1-8B-Instruct",
            server.endpoint
        ))
        .value()
        .unwrap_or_default();
    assert!(message.contains("HF_TOKEN"), "{message}");
}

#[test]
fn snapshot_of_a_download_in_progress() {
    let root = tempfile::tempdir().unwrap();
    // A cache and a hub named the same on every machine; nothing is fetched.
    let mut harness = Window::new(&paths(root.path()))
        .for_snapshots()
        .size(860.0, 280.0)
        .hub(
            HubCache::new("/data/huggingface/hub"),
            HubClient::new("https://huggingface.co", None),
        )
        .build();
    harness.get_by_label("Models").click();
    harness.run_ok();
    let progress = DownloadProgress {
        file: "transformer/diffusion_pytorch_model-00002-of-00007.safetensors".into(),
        done: 14_200_000_000,
        total: 47_000_000_000,
        bytes_per_second: 48.3e6,
        eta: Some(Duration::from_secs(679)),
        files_done: 9,
        files_total: 31,
    };
    assert!(harness.state_mut().show_download_progress(LABEL, progress));
    harness.step();
    harness
        .get_by_label(&format!("Pause {LABEL}"))
        .scroll_to_me();
    // A fixed number of frames: the running row keeps asking for repaints.
    for _ in 0..30 {
        harness.step();
    }
    harness.get_by_label_contains("14.2 GB of 47.0 GB, 48.3 MB/s, 11 min 19 s left");
    harness.remove_cursor();
    harness.step();
    harness.snapshot("download_in_progress");
}
