//! `hidream-studio generate` end to end against every fixture: the reference's noise in, final
//! latents within 1e-4 and the image within PSNR 60 dB out.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::common::against_reference;
use crate::common::{CASES, case_json, fixture_model, fixtures, reference, rel_err};
use candle_core::Device;

/// The preset a fixture case imitates.
fn preset(case: &serde_json::Value) -> &'static str {
    match (
        case["scheduler"].as_str().unwrap(),
        case["shift"].as_f64().unwrap(),
    ) {
        ("flow_unipc", _) => "full",
        ("flash", 6.0) => "dev",
        _ => "fast",
    }
}

fn write_noise(case: &str, path: &Path) {
    let r = reference(case);
    let mut tensors = HashMap::from([("latents".to_string(), r["latents.init"].clone())]);
    if let Some(noise) = r.get("step_noise") {
        tensors.insert("step_noise".to_string(), noise.clone());
    }
    candle_core::safetensors::save(&tensors, path).unwrap();
}

/// Runs `generate` with a case's settings; extra args are appended.
pub fn generate(case: &str, dir: &Path, noise: bool, extra: &[&str]) -> std::process::Output {
    let c = case_json(case);
    let noise_file = dir.join("noise.safetensors");
    write_noise(case, &noise_file);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hidream-studio"));
    cmd.arg("generate")
        .arg("--model")
        .arg(fixture_model(case))
        .arg("--llama")
        .arg(fixtures().join("llama-3.1-tiny"))
        .args(["--prompt", c["prompt"].as_str().unwrap()])
        .args(["--preset", preset(&c)])
        .args(["--steps", &c["steps"].to_string()])
        .args(["--guidance", &c["guidance"].to_string()])
        .args(["--shift", &c["shift"].to_string()])
        .args([
            "--width",
            &c["width"].to_string(),
            "--height",
            &c["height"].to_string(),
        ])
        .args(["--base-resolution", &c["base_resolution"].to_string()])
        .arg("--out")
        .arg(dir.join("out.png"))
        .arg("--dump")
        .arg(dir.join("dump.safetensors"))
        .env("HF_HUB_CACHE", dir.join("no-cache"));
    if let Some(neg) = c["negative_prompt"].as_str() {
        cmd.args(["--negative-prompt", neg]);
    }
    if noise {
        cmd.arg("--noise").arg(&noise_file);
    }
    if !extra.contains(&"--seed") {
        cmd.args(["--seed", &c["seed"].to_string()]);
    }
    cmd.args(extra).output().unwrap()
}

#[test]
fn every_fixture_reproduces_the_reference() {
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let out = generate(case, dir.path(), true, &["--json"]);
        assert!(
            out.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["noise"], "file");

        let dump =
            candle_core::safetensors::load(dir.path().join("dump.safetensors"), &Device::Cpu)
                .unwrap();
        let image_err = rel_err(&dump["image"], &reference(case)["vae.image"]);
        let against = against_reference(case, dir.path());
        let (err, p) = (against.latents, against.psnr);
        println!("{case}: final latents {err:.3e}, decoded {image_err:.3e}, PSNR {p:.1} dB");
        assert!(err < 1e-4, "{case}: final latents relative error {err:.3e}");
        assert!(p >= 60.0, "{case}: PSNR {p:.1} dB");
        let steps = summary["timings"]["step_ms"].as_array().unwrap().len() as u64;
        assert_eq!(steps, case_json(case)["steps"].as_u64().unwrap());
    }
}

#[test]
fn the_same_seed_gives_the_same_pixels() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for dir in [&a, &b] {
        let out = generate("dev-landscape", dir.path(), false, &["--seed", "1234"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let png_a = std::fs::read(a.path().join("out.png")).unwrap();
    let png_b = std::fs::read(b.path().join("out.png")).unwrap();
    assert_eq!(
        image_chunks(&png_a),
        image_chunks(&png_b),
        "pixel data differs"
    );
    // A different seed gives a different image.
    let c = tempfile::tempdir().unwrap();
    assert!(
        generate("dev-landscape", c.path(), false, &["--seed", "1235"])
            .status
            .success()
    );
    assert_ne!(
        image_chunks(&std::fs::read(c.path().join("out.png")).unwrap()),
        image_chunks(&png_a)
    );
}

/// Every chunk of a PNG except the text ones (which hold timings).
fn image_chunks(png: &[u8]) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let mut pos = 8;
    while pos + 8 <= png.len() {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &png[pos + 4..pos + 8];
        if !matches!(kind, b"tEXt" | b"iTXt" | b"zTXt") {
            chunks.push(png[pos..pos + 12 + len].to_vec());
        }
        pos += 12 + len;
    }
    chunks
}
