//! `hidream-studio plan`: the tiers table, one placement as text and JSON, and the errors a
//! user sees for a bad size or a budget too small.

use std::process::{Command, Output};

fn plan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
        .arg("plan")
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn row<'a>(out: &'a str, start: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no row starting {start:?} in\n{out}"))
}

#[test]
fn prints_the_tiers_table() {
    let out = plan(&[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("HiDream-I1: 4480 tokens a sample × batch 2"),
        "{stdout}"
    );
    // The grid: budget × format.
    let grid = row(&stdout, "budget  bf16");
    for format in ["q8_0", "q6_k", "q5_k_m", "q4_k_m"] {
        assert!(grid.contains(format), "{grid}");
    }
    // The placements, one row a tier.
    for start in [
        "80 GB   bf16    resident     all resident",
        "48 GB   bf16    resident     one at a time, before it  whole",
        "24 GB   q8_0    resident     one at a time, before it  tiled",
        "16 GB   q4_k_m  resident     CPU",
        "12 GB   q4_k_m  32/48        CPU",
    ] {
        assert!(stdout.contains(start), "no {start:?} in\n{stdout}");
    }
    assert!(
        stdout.contains("32 of 48 blocks resident, 16 streamed from host memory"),
        "{stdout}"
    );
}

#[test]
fn e1_1_table_streams_at_16_gb() {
    let out = plan(&["--model", "e1.1"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.starts_with("HiDream-E1.1: 8576 tokens a sample × batch 3"),
        "{stdout}"
    );
    assert!(stdout.contains("16 GB   q4_k_m  43/48"), "{stdout}");
}

#[test]
fn one_budget_as_json() {
    let out = plan(&["--model", "e1.1", "--vram-budget", "24GB", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let p: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(p["model"], "e1.1");
    assert_eq!(p["budget_bytes"], 24_000_000_000_u64);
    assert_eq!(p["transformer_format"], "q8_0");
    assert_eq!(p["transformer"]["kind"], "resident");
    assert_eq!(p["encoders"], "one_at_a_time_before_transformer");
    let peak = p["overall_peak_bytes"].as_u64().unwrap();
    assert!(peak <= 24_000_000_000 && peak > 20_000_000_000, "{peak}");
    assert!(p["reasons"].as_array().unwrap().len() >= 4);
}

#[test]
fn a_given_format_and_a_gib_budget() {
    let out = plan(&["--vram-budget", "12GiB", "--transformer-type", "q4_k_m"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // 12 GiB is 12.9 GB: still short of the 14.4 GB Q4_K_M needs resident.
    assert!(
        stdout.starts_with("HiDream-I1 in 12.9 GB: q4_k_m transformer streamed"),
        "{stdout}"
    );
    let out = plan(&["--vram-budget", "16000MiB", "--encoder-device", "cpu"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("encoders on the CPU (--encoder-device cpu)"));
}

#[test]
fn bad_sizes_name_the_flag() {
    for (value, says) in [
        ("24", "has no unit"),
        ("24XB", "unknown unit `XB`"),
        ("lots", "does not start with a number"),
    ] {
        let out = plan(&["--vram-budget", value]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--vram-budget") && stderr.contains(says),
            "{value}: {stderr}"
        );
    }
}

#[test]
fn budgets_too_small_say_what_to_do() {
    let out = plan(&["--vram-budget", "4GB", "--transformer-type", "q4_k_m"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("does not fit 4.0 GB") && stderr.contains("--vram-budget"),
        "{stderr}"
    );
    let out = plan(&["--vram-budget", "12GB", "--encoder-device", "gpu"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--encoder-device cpu"), "{stderr}");
}
