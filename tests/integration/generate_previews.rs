//! `generate --preview-dir` writes one preview per step, drawn by the latent preview shader.

#[test]
fn one_preview_per_step_at_the_output_size() {
    let dir = tempfile::tempdir().unwrap();
    let previews = dir.path().join("previews");
    let out = crate::common::generate_command("full-square")
        .args(["--prompt", "a red circle", "--base-resolution", "64"])
        .args(["--steps", "4", "--seed", "3"])
        .arg("--out")
        .arg(dir.path().join("out.png"))
        .arg("--preview-dir")
        .arg(&previews)
        .env("HF_HUB_CACHE", "/nonexistent-cache-for-tests")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("drawn on the CPU"),
        "the shader should run (software Vulkan in CI): {stderr}"
    );
    let mut names: Vec<String> = std::fs::read_dir(&previews)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "step-001.png",
            "step-002.png",
            "step-003.png",
            "step-004.png"
        ]
    );
    let first = image::open(previews.join("step-001.png"))
        .unwrap()
        .to_rgba8();
    let last = image::open(previews.join("step-004.png"))
        .unwrap()
        .to_rgba8();
    assert_eq!(first.dimensions(), (64, 64));
    assert_ne!(first, last, "the estimate changes as the steps go");
}
