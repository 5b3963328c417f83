//! Finding snapshots in the Hugging Face cache layout.

use crate::common;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;

use hidream_studio::weights::{HubCache, Snapshot, WeightsError, resolve_model_path};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Lays out `models--ORG--NAME` the way huggingface_hub does: files in `blobs/`, symlinked from
/// `snapshots/<commit>/`, and `refs/main` naming the commit.
fn cache_with_fixture(cache: &Path, repo_id: &str) {
    let repo = cache.join(format!("models--{}", repo_id.replace('/', "--")));
    let blobs = repo.join("blobs");
    let snapshot = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), COMMIT).unwrap();
    link_tree(
        &common::fixture_model("dev-mixed-dtypes"),
        &snapshot,
        &blobs,
    );
}

fn link_tree(src: &Path, dst: &Path, blobs: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let target = dst.join(entry.file_name());
        if entry.path().is_dir() {
            link_tree(&entry.path(), &target, blobs);
        } else {
            let blob = blobs.join(format!(
                "{}-{}",
                dst.file_name().unwrap().to_string_lossy(),
                entry.file_name().to_string_lossy()
            ));
            std::fs::copy(entry.path(), &blob).unwrap();
            std::os::unix::fs::symlink(&blob, &target).unwrap();
        }
    }
}

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn cache_location_follows_huggingface_hub_precedence() {
    let root =
        |pairs: &[(&str, &str)]| HubCache::from_vars(vars(pairs)).map(|c| c.root().to_path_buf());
    assert_eq!(
        root(&[("HOME", "/home/u")]).unwrap(),
        Path::new("/home/u/.cache/huggingface/hub")
    );
    assert_eq!(
        root(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")]).unwrap(),
        Path::new("/xdg/huggingface/hub")
    );
    assert_eq!(
        root(&[
            ("HOME", "/home/u"),
            ("XDG_CACHE_HOME", "/xdg"),
            ("HF_HOME", "/hf")
        ])
        .unwrap(),
        Path::new("/hf/hub")
    );
    assert_eq!(
        root(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/hub")]).unwrap(),
        Path::new("/hub")
    );
    // An empty variable counts as unset, as in huggingface_hub.
    assert_eq!(
        root(&[("HF_HUB_CACHE", ""), ("HF_HOME", "/hf")]).unwrap(),
        Path::new("/hf/hub")
    );
    assert_eq!(root(&[]), None);
}

#[test]
fn resolves_repo_ids_through_refs_main_and_symlinked_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    cache_with_fixture(tmp.path(), "HiDream-ai/HiDream-I1-Dev");
    let cache = HubCache::new(tmp.path());

    let snapshot_dir = cache.snapshot("HiDream-ai/HiDream-I1-Dev", None).unwrap();
    assert!(snapshot_dir.ends_with(Path::new("snapshots").join(COMMIT)));
    // The symlinked files load like regular ones.
    let snapshot = Snapshot::open(&snapshot_dir).unwrap();
    assert!(
        !snapshot
            .component_weights("transformer")
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        resolve_model_path("HiDream-ai/HiDream-I1-Dev", Some(&cache)).unwrap(),
        snapshot_dir
    );
    assert_eq!(
        resolve_model_path(&format!("HiDream-ai/HiDream-I1-Dev@{COMMIT}"), Some(&cache)).unwrap(),
        snapshot_dir
    );
    // Pointing at the models--… folder itself also works.
    let repo_dir = tmp.path().join("models--HiDream-ai--HiDream-I1-Dev");
    assert_eq!(
        resolve_model_path(repo_dir.to_str().unwrap(), Some(&cache)).unwrap(),
        snapshot_dir
    );

    let listed = cache.models();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].repo_id, "HiDream-ai/HiDream-I1-Dev");
    assert_eq!(listed[0].snapshot, snapshot_dir);
}

#[test]
fn snapshot_without_refs_is_still_found() {
    let tmp = tempfile::tempdir().unwrap();
    cache_with_fixture(tmp.path(), "HiDream-ai/HiDream-I1-Fast");
    std::fs::remove_dir_all(
        tmp.path()
            .join("models--HiDream-ai--HiDream-I1-Fast")
            .join("refs"),
    )
    .unwrap();
    let cache = HubCache::new(tmp.path());
    let dir = cache.snapshot("HiDream-ai/HiDream-I1-Fast", None).unwrap();
    assert!(dir.ends_with(COMMIT));
}

#[test]
fn model_not_in_cache_says_how_to_get_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = HubCache::new(tmp.path());
    let err = resolve_model_path("meta-llama/Llama-3.1-8B-Instruct", Some(&cache)).unwrap_err();
    assert!(matches!(err, WeightsError::NotInCache { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("meta-llama/Llama-3.1-8B-Instruct") && msg.contains("hf download"),
        "{msg}"
    );
}

#[test]
fn interrupted_download_without_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(
        tmp.path()
            .join("models--HiDream-ai--HiDream-I1-Full")
            .join("blobs"),
    )
    .unwrap();
    let cache = HubCache::new(tmp.path());
    let err = cache
        .snapshot("HiDream-ai/HiDream-I1-Full", None)
        .unwrap_err();
    assert!(matches!(err, WeightsError::NoSnapshot { .. }), "{err:?}");
}

#[test]
fn missing_blob_behind_a_symlink_is_a_missing_shard() {
    let tmp = tempfile::tempdir().unwrap();
    cache_with_fixture(tmp.path(), "HiDream-ai/HiDream-I1-Dev");
    let blobs = tmp
        .path()
        .join("models--HiDream-ai--HiDream-I1-Dev")
        .join("blobs");
    let victim = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.to_string_lossy()
                .contains("transformer-diffusion_pytorch_model-00002-of")
        })
        .unwrap();
    std::fs::remove_file(victim).unwrap();
    let cache = HubCache::new(tmp.path());
    let snapshot =
        Snapshot::open(&cache.snapshot("HiDream-ai/HiDream-I1-Dev", None).unwrap()).unwrap();
    let err = snapshot.component_weights("transformer").unwrap_err();
    assert!(matches!(err, WeightsError::ShardMissing { .. }), "{err:?}");
}

#[test]
fn neither_path_nor_repo_id() {
    let err = resolve_model_path("./no/such/folder", None).unwrap_err();
    assert!(matches!(err, WeightsError::BadModelPath { .. }), "{err:?}");
    let err = resolve_model_path("HiDream-ai/HiDream-I1-Full", None).unwrap_err();
    assert!(matches!(err, WeightsError::NoCache { .. }), "{err:?}");
}
