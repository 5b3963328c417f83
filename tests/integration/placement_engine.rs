//! The placement planner applied by the engine: `generate --vram-budget` plans from the
//! snapshot's own configs, records the placement in `--json`, and what it picks (blocks
//! streamed from host memory, encoders one at a time or on the CPU) computes what the
//! all-resident models compute. On the CPU "host memory" and "the device" are the same
//! memory, so these tests check the code paths and their arithmetic, not the savings (the GPU
//! check measures those).

use std::path::Path;

use candle_core::Device;

use super::generate_parity::generate;

const CASE: &str = "full-square";

/// Runs the fixture in f16 (the planner sizes bf16, f16 and GGUF models) with `extra`
/// options; returns the JSON summary and the final latents.
fn run(dir: &Path, extra: &[&str]) -> (serde_json::Value, candle_core::Tensor) {
    let mut args = vec!["--dtype", "f16", "--device", "cpu", "--json"];
    args.extend_from_slice(extra);
    let out = generate(CASE, dir, true, &args);
    assert!(
        out.status.success(),
        "{extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = serde_json::from_slice(&out.stdout).unwrap();
    let mut dump =
        candle_core::safetensors::load(dir.join("dump.safetensors"), &Device::Cpu).unwrap();
    (summary, dump.remove("final_latents").unwrap())
}

fn same(a: &candle_core::Tensor, b: &candle_core::Tensor) -> bool {
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    diff.to_scalar::<f32>().unwrap() == 0.0
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs the fixture with everything resident, then with one byte less than that needs, which
/// streams the fewest blocks that fit (two staging slots: three of the four blocks streamed
/// save one); returns both results and the streamed placement.
fn resident_then_streamed(
    extra: &[&str],
) -> (candle_core::Tensor, candle_core::Tensor, serde_json::Value) {
    // A tight budget also sends the encoders to the CPU, where they compute in f32: both runs
    // put them there, so that only the transformer's placement differs.
    let with = |budget: &str| -> Vec<String> {
        let mut args: Vec<String> = ["--vram-budget", budget, "--encoder-device", "cpu"]
            .map(String::from)
            .to_vec();
        args.extend(extra.iter().map(ToString::to_string));
        args
    };
    let roomy_dir = tempfile::tempdir().unwrap();
    let (roomy, resident) = run(roomy_dir.path(), &as_strs(&with("64GiB")));
    let placement = &roomy["placement"];
    assert_eq!(placement["transformer"]["kind"], "resident", "{placement}");
    assert!(!placement["reasons"].as_array().unwrap().is_empty());

    let need = placement["resident_need_bytes"].as_u64().unwrap();
    let tight_dir = tempfile::tempdir().unwrap();
    let tight_args = with(&format!("{}B", need - 1));
    let (tight, streamed) = run(tight_dir.path(), &as_strs(&tight_args));
    let placement = tight["placement"].clone();
    assert_eq!(placement["transformer"]["kind"], "streamed", "{placement}");
    assert_eq!(placement["transformer"]["blocks"], 4);
    assert!(
        placement["transformer"]["resident_blocks"]
            .as_u64()
            .unwrap()
            < 4,
        "{placement}"
    );
    (resident, streamed, placement)
}

#[test]
fn a_budget_the_resident_transformer_needs_less_than_streams_blocks_with_the_same_result() {
    let (resident, streamed, placement) = resident_then_streamed(&[]);
    assert!(
        same(&resident, &streamed),
        "streaming changed the result: {placement}"
    );
}

#[test]
fn a_streamed_gguf_transformer_copies_its_blocks_quantised_with_the_same_result() {
    let gguf = crate::common::fixtures().join("gguf/full-square-Q8_0/transformer-Q8_0.gguf");
    let gguf = gguf.to_str().unwrap();
    let (resident, streamed, placement) = resident_then_streamed(&["--transformer", gguf]);
    assert_eq!(placement["transformer_format"], "q8_0", "{placement}");
    assert!(
        same(&resident, &streamed),
        "streaming changed the result: {placement}"
    );
}

#[test]
fn a_roomy_budget_keeps_everything_resident() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, _) = run(dir.path(), &["--vram-budget", "64GiB"]);
    let placement = &summary["placement"];
    assert_eq!(placement["transformer"]["kind"], "resident", "{placement}");
    assert_eq!(placement["encoders"], "all_resident", "{placement}");
}

#[test]
fn encoders_on_the_cpu_are_planned_recorded_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, latents) = run(
        dir.path(),
        &["--vram-budget", "64GiB", "--encoder-device", "cpu"],
    );
    assert_eq!(summary["placement"]["encoders"], "cpu");
    assert_eq!(
        summary["settings"]["models"]["placement"]["encoder_device"],
        "cpu"
    );
    let sum = latents.sqr().unwrap().sum_all().unwrap();
    assert!(sum.to_scalar::<f32>().unwrap().is_finite());
}

#[test]
fn f32_with_a_budget_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = generate(CASE, dir.path(), true, &["--vram-budget", "24GiB"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--vram-budget") && err.contains("--dtype bf16"),
        "{err}"
    );
}

#[test]
fn without_a_gpu_or_a_budget_nothing_is_planned() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, _) = run(dir.path(), &[]);
    assert!(summary.get("placement").is_none(), "{summary}");
}

/// `edit` plans E1.1's workload and follows it: streamed blocks (the editing and the refine
/// transformer alike) compute what resident ones do.
#[test]
fn an_edit_streams_blocks_with_the_same_result() {
    use super::edit_parity::edit;
    let run_edit = |budget: &str| {
        let dir = tempfile::tempdir().unwrap();
        let args = [
            "--dtype",
            "f16",
            "--json",
            "--vram-budget",
            budget,
            "--encoder-device",
            "cpu",
        ];
        let out = edit("edit-e11-base-refine", dir.path(), &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut dump =
            candle_core::safetensors::load(dir.path().join("dump.safetensors"), &Device::Cpu)
                .unwrap();
        (summary, dump.remove("final_latents").unwrap())
    };
    let (roomy, resident) = run_edit("64GiB");
    let placement = &roomy["placement"];
    assert_eq!(placement["model"], "e1.1", "{placement}");
    assert_eq!(placement["transformer"]["kind"], "resident", "{placement}");
    let need = placement["resident_need_bytes"].as_u64().unwrap();
    let (tight, streamed) = run_edit(&format!("{}B", need - 1));
    let placement = &tight["placement"];
    assert_eq!(placement["transformer"]["kind"], "streamed", "{placement}");
    assert!(
        same(&resident, &streamed),
        "streaming changed the edit: {placement}"
    );
}
