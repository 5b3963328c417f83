//! `generate` refuses bad input with a message that says what to change, before loading models,
//! and says when it changes what was asked.

use std::process::{Command, Output};

use crate::common::{fixture_model, fixtures};

fn generate(extra: &[&str], out: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
        .arg("generate")
        .arg("--model")
        .arg(fixture_model("dev-mixed-dtypes"))
        .args([
            "--prompt",
            "a red circle",
            "--base-resolution",
            "64",
            "--seed",
            "1",
        ])
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("HF_HUB_CACHE", "/nonexistent-cache-for-tests")
        .output()
        .unwrap()
}

fn fails_with(extra: &[&str], expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let llama = fixtures().join("llama-3.1-tiny");
    let mut args = vec!["--llama", llama.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = generate(&args, &dir.path().join("out.png"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
    for e in expected {
        assert!(err.contains(e), "{extra:?}: expected {e:?} in {err}");
    }
    assert!(!dir.path().join("out.png").exists(), "no output on failure");
}

#[test]
fn zero_steps() {
    fails_with(&["--steps", "0"], &["--steps must be at least 1"]);
}

#[test]
fn negative_guidance() {
    fails_with(&["--guidance=-1"], &["--guidance must be 0 or more"]);
}

#[test]
fn size_unusable_after_rescaling() {
    fails_with(
        &["--width", "10000", "--height", "1"],
        &["10000×1", "cannot be made"],
    );
    fails_with(
        &["--resolution", "huge"],
        &["--resolution huge", "WIDTHxHEIGHT"],
    );
}

#[test]
fn unreadable_noise_file() {
    fails_with(
        &["--noise", "/no/such/noise.safetensors"],
        &["/no/such/noise.safetensors", "cannot read the noise file"],
    );
}

#[test]
fn latents_that_stop_being_finite_fail_with_the_step_instead_of_a_black_image() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noise.safetensors");
    let mut values = vec![0.5f32; 16 * 8 * 8];
    values[77] = f32::NAN;
    let latents =
        candle_core::Tensor::from_vec(values, (1, 16, 8, 8), &candle_core::Device::Cpu).unwrap();
    // This fixture's preset samples with fresh noise between steps: one draw for two steps.
    let step_noise = latents.zeros_like().unwrap();
    let tensors = std::collections::HashMap::from([
        ("latents".to_string(), latents),
        ("step_noise".to_string(), step_noise),
    ]);
    candle_core::safetensors::save(&tensors, &path).unwrap();
    fails_with(
        &["--noise", path.to_str().unwrap(), "--steps", "2"],
        &["step 1 of 2", "NaN", "noise file"],
    );
}

#[test]
fn noise_of_the_wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noise.safetensors");
    let latents = candle_core::Tensor::zeros(
        (1, 16, 4, 4),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("latents".to_string(), latents)]),
        &path,
    )
    .unwrap();
    fails_with(
        &["--noise", path.to_str().unwrap()],
        &["[1, 16, 4, 4]", "[1, 16, 8, 8]", "another size"],
    );
    // And step noise for the wrong number of steps.
    let latents = candle_core::Tensor::zeros(
        (1, 16, 8, 8),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let steps = candle_core::Tensor::zeros(
        (3, 16, 8, 8),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let tensors = std::collections::HashMap::from([
        ("latents".to_string(), latents),
        ("step_noise".to_string(), steps),
    ]);
    candle_core::safetensors::save(&tensors, &path).unwrap();
    fails_with(
        &["--noise", path.to_str().unwrap(), "--steps", "6"],
        &["step_noise", "[3, 16, 8, 8]", "[5, 16, 8, 8]"],
    );
}

#[test]
fn missing_llama_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = generate(&["--llama", "/no/such/llama"], &dir.path().join("out.png"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("/no/such/llama") && err.contains("not a Llama-3.1-8B-Instruct folder"),
        "{err}"
    );

    let out = generate(&[], &dir.path().join("out.png"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs Llama-3.1-8B-Instruct")
            && err.contains("hf download meta-llama/Llama-3.1-8B-Instruct"),
        "{err}"
    );
}

#[test]
fn unwritable_output() {
    let dir = tempfile::tempdir().unwrap();
    let llama = fixtures().join("llama-3.1-tiny");
    let out = generate(
        &["--llama", llama.to_str().unwrap()],
        &dir.path().join("missing-folder").join("x.png"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing-folder") && err.contains("does not exist"),
        "{err}"
    );

    let out = generate(&["--llama", llama.to_str().unwrap()], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a folder"), "{err}");
}

#[test]
fn unbounded_or_late_failures_are_refused_up_front() {
    // The helper gives --base-resolution 64 already: this run names the model alone.
    let dir = tempfile::tempdir().unwrap();
    let err = refused(
        "dev-mixed-dtypes",
        &["--prompt", "a red circle", "--base-resolution", "100000"],
        dir.path(),
    );
    assert!(
        err.contains("--base-resolution must be") && err.contains("at most 2048"),
        "{err}"
    );
    fails_with(
        &["--dtype", "bf16"],
        &["--dtype bf16 does not run on the CPU"],
    );
    fails_with(
        &["--guidance", "1e6"],
        &["--guidance must be 0 or more, at most"],
    );
    fails_with(&["--shift", "inf"], &["--shift must be positive"]);
}

#[test]
fn a_size_that_is_rescaled_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let llama = fixtures().join("llama-3.1-tiny");
    let llama = llama.to_str().unwrap();
    let asked = [
        "--llama", llama, "--steps", "1", "--width", "100", "--height", "50",
    ];
    let out = generate(&asked, &dir.path().join("a.png"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("note: --width 100 --height 50 makes a 80×32 image: every size is rescaled"),
        "{err}"
    );
    assert_eq!(
        image::image_dimensions(dir.path().join("a.png")).unwrap(),
        (80, 32)
    );
    // A size that needs no rescaling gets no note.
    let kept = [
        "--llama", llama, "--steps", "1", "--width", "64", "--height", "64",
    ];
    let out = generate(&kept, &dir.path().join("b.png"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("note:"), "{err}");
}

#[test]
fn a_size_the_model_cannot_take_is_refused_as_the_base_resolution_flag() {
    // The fixture transformer takes 16 patches; a 96×48 image at base 80 has 18. Only the job
    // can tell, once it has read the transformer's config.
    let dir = tempfile::tempdir().unwrap();
    let err = refused(
        "full-square",
        &[
            "--prompt",
            "a red circle",
            "--base-resolution",
            "80",
            "--width",
            "112",
            "--height",
            "64",
            "--steps",
            "2",
        ],
        dir.path(),
    );
    assert!(
        err.contains(
            "--base-resolution is too large for this model: a 96×48 image has 18 patches, \
             more than the 16 it takes (max_resolution [8, 8]); lower it"
        ),
        "{err}"
    );
}

#[test]
fn outputs_that_would_lose_data_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let llama = fixtures().join("llama-3.1-tiny");
    let out = dir.path().join("out.png");
    let same = out.to_str().unwrap();
    let run = generate(&["--llama", llama.to_str().unwrap(), "--dump", same], &out);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--dump") && err.contains("would replace it"),
        "{err}"
    );
    assert!(!out.exists(), "no output on failure");
    for name in ["out.jpg", "out.bmp", "out"] {
        let path = dir.path().join(name);
        let run = generate(&["--llama", llama.to_str().unwrap()], &path);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains("--out") && err.contains(".png"),
            "{name}: {err}"
        );
        assert!(!path.exists(), "{name}: no output on failure");
    }
}

#[test]
fn integer_noise_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let noise = dir.path().join("noise.safetensors");
    let ints = candle_core::Tensor::zeros(
        (1, 16, 8, 8),
        candle_core::DType::U32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("latents", ints)]),
        &noise,
    )
    .unwrap();
    fails_with(
        &["--noise", noise.to_str().unwrap()],
        &["`latents`", "not floating point"],
    );
}

/// `generate` on fixture `case` with `args`, writing into `dir`: it must fail with status 1;
/// its stderr.
fn refused(case: &str, args: &[&str], dir: &std::path::Path) -> String {
    let out = crate::common::generate_command(case)
        .args(args)
        .arg("--out")
        .arg(dir.join("out.png"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    err
}
