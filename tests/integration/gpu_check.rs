//! The GPU device check's CPU path: `tools/gpu/check.sh --dry-run` runs every fixture through
//! `hidream-studio parity` and writes its report; `parity` reports failures by its exit status.

use std::path::Path;
use std::process::Command;

use crate::common::{CASES, fixtures, succeed};

const EDIT_CASES: [&str; 6] = [
    "edit-e11",
    "edit-e11-base-refine",
    "edit-e1full-lora",
    "edit-e1full-merged",
    "edit-e11-resized",
    "edit-e1full-resized",
];

fn parity() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
}

#[test]
fn the_dry_run_reports_every_fixture_passing() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.md");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/gpu/check.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(["--dry-run", "--no-bf16", "--out"])
        .arg(&report)
        .env("HIDREAM_BIN", env!("CARGO_BIN_EXE_hidream-studio"))
        .env("TMPDIR", dir.path())
        .env_remove("OUT")
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    assert!(
        out.status.success(),
        "check.sh failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    for case in CASES.iter().chain(&EDIT_CASES) {
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("| {case} |")))
            .unwrap_or_else(|| panic!("no row for {case} in\n{text}"));
        assert!(row.ends_with("| pass |"), "{row}");
    }
    assert!(
        text.contains("11 of 11 cases passed: cpu in f32 (TF32 off)"),
        "{text}"
    );
    assert_eq!(text.matches("skipped (dry run)").count(), 3, "{text}");
}

#[test]
fn parity_fails_above_the_tolerance_and_names_bad_folders() {
    let out = parity()
        .arg("parity")
        .arg(fixtures().join("dev-mixed-dtypes"))
        .args(["--tolerance", "1e-30", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(row["case"], "dev-mixed-dtypes");
    assert_eq!(row["pass"], false);
    assert!(row["rel_l2"].as_f64().unwrap() < 1e-4, "{row}");

    let dir = tempfile::tempdir().unwrap();
    let out = parity().arg("parity").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("holds no fixture"), "{stderr}");
}

/// `bench pipeline` on the tiny fixtures' configs: every stage runs through `generate` and is
/// reported, for each preset asked.
#[test]
fn bench_pipeline_runs_every_preset_on_random_weights() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = succeed(
        parity()
            .args(["bench", "pipeline", "--preset", "dev", "--preset", "full"])
            .args(["--size", "64", "--snapshot-configs", "--json"])
            .arg("--tokenizers")
            .arg(fixtures().join("full-square/model"))
            .arg("--llama-tokenizer")
            .arg(fixtures().join("llama-3.1-tiny"))
            .current_dir(root),
    );
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    for (row, (preset, steps)) in rows.iter().zip([("dev", 28), ("full", 50)]) {
        assert_eq!(row["preset"], preset);
        assert_eq!(row["steps"], steps);
        assert_eq!(row["step_ms"].as_array().unwrap().len(), steps);
        assert!(row["median_step_ms"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["encode_ms"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["decode_ms"].as_f64().unwrap() > 0.0, "{row}");
        // No GPU memory on the CPU.
        assert!(row["gpu_memory"].is_null(), "{row}");
    }
}
