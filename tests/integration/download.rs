//! The model downloader against a hub on loopback: a whole repository into the cache as
//! huggingface_hub lays it out, resuming, hash checks, a gated repository, a full disk,
//! cancelling, and the `download` command.

use crate::common;
use crate::common::hub_server::{COMMIT, Fault, FixtureFile, GOOD_TOKEN, HubServer, fixture_files};

use std::path::Path;
use std::sync::atomic::Ordering;

use hidream_studio::hub::cache::{CacheRepo, find_snapshot};
use hidream_studio::hub::{DownloadOptions, DownloadProgress, HubClient, HubError, download};
use hidream_studio::weights::HubCache;

const REPO: &str = "fixture-org/Fixture-Model";

fn serve() -> (HubServer, tempfile::TempDir, HubCache) {
    let server = HubServer::start();
    server.add_repo(REPO, fixture_files(), false);
    let dir = tempfile::tempdir().unwrap();
    let cache = HubCache::new(dir.path().join("hub"));
    (server, dir, cache)
}

fn fetch(
    server: &HubServer,
    cache: &HubCache,
    options: &DownloadOptions,
) -> (Result<std::path::PathBuf, HubError>, Vec<DownloadProgress>) {
    let client = HubClient::new(&server.endpoint, None);
    let mut reports = Vec::new();
    let result = download(&client, cache, REPO, options, &mut |p| {
        reports.push(p.clone());
    });
    (result, reports)
}

/// Every fixture file is in the snapshot with its bytes, as a relative symlink into blobs/.
fn assert_snapshot_holds(snapshot: &Path, files: &[FixtureFile]) {
    for f in files {
        let pointer = snapshot.join(f.path);
        assert_eq!(std::fs::read(&pointer).unwrap(), f.bytes, "{}", f.path);
        let target = std::fs::read_link(&pointer).unwrap();
        let depth = 2 + f.path.matches('/').count();
        assert_eq!(
            target,
            Path::new(&"../".repeat(depth))
                .join("blobs")
                .join(f.blob_name()),
            "{}",
            f.path
        );
    }
}

#[test]
fn download_lays_out_the_cache_as_huggingface_hub_reads_it() {
    let (server, _dir, cache) = serve();
    let (result, reports) = fetch(&server, &cache, &DownloadOptions::default());
    let snapshot = result.unwrap();
    let repo_dir = cache.root().join("models--fixture-org--Fixture-Model");
    assert_eq!(snapshot, repo_dir.join("snapshots").join(COMMIT));
    // Read back through refs/main with our own lookup, as huggingface_hub resolves it.
    assert_eq!(find_snapshot(&cache, REPO, "main").unwrap(), snapshot);
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs").join("main")).unwrap(),
        COMMIT
    );
    let files = fixture_files();
    assert_snapshot_holds(&snapshot, &files);
    let mut blobs: Vec<String> = std::fs::read_dir(repo_dir.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    blobs.sort();
    let mut expected: Vec<String> = files.iter().map(FixtureFile::blob_name).collect();
    expected.sort();
    assert_eq!(blobs, expected, "one blob per file, no .incomplete left");
    assert!(
        cache
            .models()
            .iter()
            .any(|m| m.repo_id == REPO && m.snapshot == snapshot)
    );

    let total: u64 = files.iter().map(|f| f.bytes.len() as u64).sum();
    let last = reports.last().unwrap();
    assert_eq!((last.done, last.total), (total, total));
    assert_eq!((last.files_done, last.files_total), (3, 3));
    assert!(reports.windows(2).all(|w| w[0].done <= w[1].done));
    assert!(last.bytes_per_second > 0.0 && last.eta.is_some());

    // A second download finds every blob and fetches nothing.
    let before = server.requests().len();
    fetch(&server, &cache, &DownloadOptions::default())
        .0
        .unwrap();
    let after = server.requests();
    assert_eq!(
        after.len(),
        before + 1,
        "only the listing: {:?}",
        &after[before..]
    );
}

#[test]
fn a_dropped_connection_continues_with_a_range_request() {
    let (server, _dir, cache) = serve();
    server.fault("model.safetensors", Fault::DropHalfOnce);
    let snapshot = fetch(&server, &cache, &DownloadOptions::default())
        .0
        .unwrap();
    assert_snapshot_holds(&snapshot, &fixture_files());
    let requests = server.file_requests("model.safetensors");
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].range, None);
    assert_eq!(requests[1].range.as_deref(), Some("bytes=150000-"));
}

#[test]
fn a_partial_file_from_an_earlier_run_is_resumed() {
    let (server, _dir, cache) = serve();
    let files = fixture_files();
    let model = &files[1];
    let target = CacheRepo::new(&cache, REPO);
    let partial = target.incomplete(&model.blob_name());
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, &model.bytes[..100_000]).unwrap();
    assert_eq!(target.partial_bytes(), 100_000);

    let (result, reports) = fetch(&server, &cache, &DownloadOptions::default());
    assert_snapshot_holds(&result.unwrap(), &files);
    let requests = server.file_requests("model.safetensors");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].range.as_deref(), Some("bytes=100000-"));
    // The kept bytes count as done from the first report on.
    assert!(reports[0].done >= 100_000, "{:?}", reports[0]);
    assert_eq!(target.partial_bytes(), 0);
}

#[test]
fn a_corrupted_file_is_caught_by_its_hash_and_fetched_again() {
    let (server, _dir, cache) = serve();
    server.fault("model.safetensors", Fault::CorruptOnce);
    let snapshot = fetch(&server, &cache, &DownloadOptions::default())
        .0
        .unwrap();
    assert_snapshot_holds(&snapshot, &fixture_files());
    let requests = server.file_requests("model.safetensors");
    assert_eq!(
        requests.len(),
        2,
        "fetched again from the start: {requests:?}"
    );
    assert_eq!(requests[1].range, None);
}

#[test]
fn a_file_corrupted_every_time_fails_clearly_and_is_deleted() {
    let (server, _dir, cache) = serve();
    server.fault("model.safetensors", Fault::CorruptAlways);
    let error = fetch(&server, &cache, &DownloadOptions::default())
        .0
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, HubError::HashMismatch { .. }), "{message}");
    let model = &fixture_files()[1];
    assert!(
        message.contains("model.safetensors") && message.contains(&model.sha256()),
        "{message}"
    );
    assert_eq!(server.file_requests("model.safetensors").len(), 2);
    let target = CacheRepo::new(&cache, REPO);
    assert!(!target.blob(&model.blob_name()).exists());
    assert!(!target.incomplete(&model.blob_name()).exists());
}

#[test]
fn a_gated_repo_says_to_set_hf_token_and_accept_the_licence() {
    let (server, _dir, cache) = serve();
    let gated = "meta-llama/Gated-Fixture";
    server.add_repo(gated, fixture_files(), true);
    let options = DownloadOptions::default();
    let anonymous = HubClient::new(&server.endpoint, None);
    let error = download(&anonymous, &cache, gated, &options, &mut |_| {}).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, HubError::Gated { status: 401, .. }),
        "{message}"
    );
    let page = format!("{}/{gated}", server.endpoint);
    assert!(
        message.contains("HF_TOKEN") && message.contains(&page),
        "{message}"
    );
    assert!(message.contains("licence"), "{message}");

    // A wrong token: the message says the token was refused.
    let wrong = HubClient::new(&server.endpoint, Some("hf_wrong".into()));
    let message = download(&wrong, &cache, gated, &options, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("token in HF_TOKEN was refused"),
        "{message}"
    );

    let authorised = HubClient::new(&server.endpoint, Some(GOOD_TOKEN.into()));
    let snapshot = download(&authorised, &cache, gated, &options, &mut |_| {}).unwrap();
    assert_snapshot_holds(&snapshot, &fixture_files());
}

#[test]
fn not_enough_disk_space_stops_before_anything_is_fetched() {
    let (server, _dir, cache) = serve();
    let total: u64 = fixture_files().iter().map(|f| f.bytes.len() as u64).sum();
    let options = DownloadOptions {
        free_space: Box::new(|_| Ok(1_000)),
        ..DownloadOptions::default()
    };
    let error = fetch(&server, &cache, &options).0.unwrap_err();
    let message = error.to_string();
    match error {
        HubError::DiskSpace {
            needed, available, ..
        } => assert_eq!((needed, available), (total, 1_000)),
        e => panic!("{e}"),
    }
    assert!(
        message.contains("free some space") && message.contains("HF_HUB_CACHE"),
        "{message}"
    );
    assert!(
        server
            .requests()
            .iter()
            .all(|r| !r.path.contains("/resolve/"))
    );
    assert!(
        !cache
            .root()
            .join("models--fixture-org--Fixture-Model")
            .exists()
    );
}

#[test]
fn include_patterns_select_files() {
    let (server, _dir, cache) = serve();
    let options = DownloadOptions {
        include: vec!["*.json".into(), "transformer/".into()],
        ..DownloadOptions::default()
    };
    let snapshot = fetch(&server, &cache, &options).0.unwrap();
    let files = fixture_files();
    assert_snapshot_holds(&snapshot, &[files[0].clone(), files[2].clone()]);
    assert!(!snapshot.join("model.safetensors").exists());

    let options = DownloadOptions {
        include: vec!["*.gguf".into()],
        ..DownloadOptions::default()
    };
    let message = fetch(&server, &cache, &options).0.unwrap_err().to_string();
    assert!(
        message.contains("no file of") && message.contains("config.json"),
        "{message}"
    );
}

#[test]
fn cancelling_keeps_the_partial_file_for_the_next_download() {
    let (server, _dir, cache) = serve();
    server.fault("model.safetensors", Fault::Slow);
    let options = DownloadOptions::default();
    let cancel = options.cancel.clone();
    let client = HubClient::new(&server.endpoint, None);
    let result = download(&client, &cache, REPO, &options, &mut |p| {
        if p.file == "model.safetensors" && p.done > 0 {
            cancel.store(true, Ordering::Relaxed);
        }
    });
    assert!(matches!(result, Err(HubError::Cancelled)), "{result:?}");
    let model = &fixture_files()[1];
    let target = CacheRepo::new(&cache, REPO);
    let kept = target.partial_bytes();
    assert!(kept > 0 && kept < model.bytes.len() as u64, "{kept}");

    options.cancel.store(false, Ordering::Relaxed);
    let snapshot = download(&client, &cache, REPO, &options, &mut |_| {}).unwrap();
    assert_snapshot_holds(&snapshot, &fixture_files());
    let requests = server.file_requests("model.safetensors");
    assert_eq!(
        requests.last().unwrap().range,
        Some(format!("bytes={kept}-"))
    );
}

fn cli(server: &HubServer, home: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hidream-studio"));
    command
        .arg("download")
        .env("HF_ENDPOINT", &server.endpoint)
        .env("HF_HOME", home)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HUGGINGFACE_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env("HF_TOKEN_PATH", home.join("no-token"));
    command
}

#[test]
fn the_download_command_fetches_into_hf_home_and_prints_the_snapshot() {
    let (server, dir, _) = serve();
    let out = common::succeed(cli(&server, dir.path()).args([REPO, "--include", "*.json"]));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let cache = HubCache::new(dir.path().join("hub"));
    let snapshot = find_snapshot(&cache, REPO, "main").unwrap();
    assert_eq!(stdout.trim(), snapshot.display().to_string());
    assert_snapshot_holds(&snapshot, &fixture_files()[..1]);

    let gated = "meta-llama/Gated-Fixture";
    server.add_repo(gated, fixture_files(), true);
    let out = cli(&server, dir.path()).arg(gated).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HF_TOKEN") && stderr.contains("licence"),
        "{stderr}"
    );
    let out = common::succeed(
        cli(&server, dir.path())
            .arg(gated)
            .env("HF_TOKEN", GOOD_TOKEN),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(COMMIT));

    let out = common::succeed(&mut cli(&server, dir.path()));
    let list = String::from_utf8(out.stdout).unwrap();
    for repo in [
        "HiDream-ai/HiDream-I1-Full",
        "meta-llama/Llama-3.1-8B-Instruct",
        "city96/HiDream-I1-Dev-gguf",
    ] {
        assert!(list.contains(repo), "{list}");
    }
}

#[test]
fn two_downloads_of_one_repo_at_once_fetch_each_file_once() {
    let (server, _dir, cache) = serve();
    server.fault("model.safetensors", Fault::Slow);
    let snapshots: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| fetch(&server, &cache, &DownloadOptions::default()).0))
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap().unwrap())
            .collect()
    });
    assert_eq!(snapshots[0], snapshots[1]);
    assert_snapshot_holds(&snapshots[0], &fixture_files());
    // The second waited on the blob's lock in .locks/, as huggingface_hub's do, then found it.
    assert_eq!(server.file_requests("model.safetensors").len(), 1);
    let model = &fixture_files()[1];
    assert!(
        cache
            .root()
            .join(".locks/models--fixture-org--Fixture-Model")
            .join(format!("{}.lock", model.blob_name()))
            .is_file()
    );
}
