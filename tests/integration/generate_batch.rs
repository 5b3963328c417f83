//! `generate --batch N`: N images with seeds --seed, --seed + 1, …, written as numbered files.

use hidream_studio::store::{StoredRecord, read_stored_record};

use crate::common::{generate_command, succeed};

/// The seed recorded in a PNG the command wrote.
fn seed_in(path: &std::path::Path) -> u64 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match read_stored_record(&bytes).unwrap() {
        Some(StoredRecord::Generation(r)) => r.settings.seed,
        other => panic!(
            "{}: expected a text-to-image record, got {other:?}",
            path.display()
        ),
    }
}

#[test]
fn a_batch_of_three_writes_numbered_images_with_consecutive_seeds() {
    let dir = tempfile::tempdir().unwrap();
    succeed(
        generate_command("full-square")
            .args(["--prompt", "a red circle", "--base-resolution", "64"])
            .args(["--steps", "2", "--seed", "7", "--batch", "3"])
            .arg("--out")
            .arg(dir.path().join("out.png"))
            .env("HF_HUB_CACHE", "/nonexistent-cache-for-tests"),
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["out-1.png", "out-2.png", "out-3.png"]);
    let seeds: Vec<u64> = names.iter().map(|n| seed_in(&dir.path().join(n))).collect();
    assert_eq!(seeds, [7, 8, 9]);
}

#[test]
fn a_batch_with_one_image_s_noise_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = generate_command("full-square")
        .args(["--prompt", "a red circle", "--batch", "2"])
        .arg("--noise")
        .arg(dir.path().join("noise.safetensors"))
        .arg("--out")
        .arg(dir.path().join("out.png"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--batch 2: --noise and --preview-dir belong to one image"),
        "{stderr}"
    );
}
