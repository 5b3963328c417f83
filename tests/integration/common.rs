//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub mod hub_server;
pub mod window;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// The committed pipeline snapshot of a fixture case.
pub fn fixture_model(case: &str) -> PathBuf {
    fixtures().join(case).join("model")
}

/// Runs `command`, which must succeed (its stderr is the failure message).
pub fn succeed(command: &mut std::process::Command) -> std::process::Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let target = dst.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A writable copy of a fixture snapshot, to break in a test.
pub fn scratch_model(case: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    copy_dir(&fixture_model(case), &model);
    (dir, model)
}

/// Writes a safetensors file by hand, so tests can produce dtypes and layouts no library writer
/// would.
pub fn write_safetensors(path: &Path, tensors: &[(&str, &str, &[usize], Vec<u8>)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let start = data.len();
        data.extend_from_slice(bytes);
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut header = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&header);
    file.extend_from_slice(&data);
    std::fs::write(path, file).unwrap();
}

pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub const CASES: [&str; 5] = [
    "full-square",
    "full-portrait",
    "dev-landscape",
    "fast-long-prompt",
    "dev-mixed-dtypes",
];

/// The reference tensors of a fixture case.
pub fn reference(case: &str) -> std::collections::HashMap<String, candle_core::Tensor> {
    let path = fixtures().join(case).join("reference.safetensors");
    candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap()
}

/// The settings of a fixture case (`case.json`).
pub fn case_json(case: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join(case).join("case.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// ‖a − b‖ / ‖b‖, computed in f64.
pub fn rel_err(actual: &candle_core::Tensor, expected: &candle_core::Tensor) -> f64 {
    assert_eq!(actual.dims(), expected.dims(), "shapes differ");
    let a = actual
        .to_dtype(candle_core::DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let b = expected
        .to_dtype(candle_core::DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let diff: f64 = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    diff / norm
}

/// Peak signal-to-noise ratio of two RGB8 images in dB (∞ when identical).
pub fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let mse = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// `None` when the bytes are equal, else how many differ and by how much at most.
pub fn byte_difference(ours: &[u8], expected: &[u8]) -> Option<String> {
    if ours == expected {
        return None;
    }
    if ours.len() != expected.len() {
        return Some(format!("{} bytes, expected {}", ours.len(), expected.len()));
    }
    let diffs: Vec<i32> = ours
        .iter()
        .zip(expected)
        .map(|(&a, &b)| i32::from(a) - i32::from(b))
        .filter(|&d| d != 0)
        .collect();
    let max = diffs.iter().map(|d| d.abs()).max().unwrap_or(0);
    Some(format!(
        "{} of {} bytes differ, by up to {max}",
        diffs.len(),
        expected.len()
    ))
}

/// `hidream-studio generate` on fixture `case`'s model with the tiny Llama; the caller adds the
/// prompt, the settings and `--out`.
pub fn generate_command(case: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hidream-studio"));
    command
        .arg("generate")
        .arg("--model")
        .arg(fixture_model(case))
        .arg("--llama")
        .arg(fixtures().join("llama-3.1-tiny"));
    command
}

/// A run's `--dump` and PNG in `dir` against fixture `case`'s reference.
pub struct AgainstReference {
    /// Final latents' relative error.
    pub latents: f64,
    pub ours: image::RgbImage,
    pub theirs: image::RgbImage,
    /// PSNR of our PNG against the reference's, in dB.
    pub psnr: f64,
}

pub fn against_reference(case: &str, dir: &Path) -> AgainstReference {
    let dump =
        candle_core::safetensors::load(dir.join("dump.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let latents = rel_err(&dump["final_latents"], &reference(case)["latents.final"]);
    let ours = image::open(dir.join("out.png")).unwrap().to_rgb8();
    let theirs = image::open(fixtures().join(case).join("reference.png"))
        .unwrap()
        .to_rgb8();
    let psnr = psnr(&ours, &theirs);
    AgainstReference {
        latents,
        ours,
        theirs,
        psnr,
    }
}
