//! GGUF files against the `gguf` Python package and the official pipeline
//! (tools/fixtures/make_gguf_fixtures.py): every ggml type dequantises as gguf-py's reference
//! dequantisers do, and a community-format Q8_0 file and our own Q4_K_M file generate what the
//! official HiDream-I1 pipeline generates with the same file dequantised in Python.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use candle_core::Device;
use hidream_studio::weights::TensorStore;
use sha2::{Digest, Sha256};

use crate::common::{fixtures, rel_err};
use crate::generate_parity::generate;

#[test]
fn every_ggml_type_dequantises_as_gguf_py_does() {
    let dir = fixtures().join("gguf");
    let store = TensorStore::open_gguf(&dir.join("types.gguf"), "hidream").unwrap();
    let expected =
        candle_core::safetensors::load(dir.join("types.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(
        store.len(),
        13,
        "F32, F16, BF16 and the ten quantised types"
    );
    for (name, want) in &expected {
        let got = store.load(name, Some(&[2, 256]), &Device::Cpu).unwrap();
        let got = got.to_dtype(candle_core::DType::F32).unwrap();
        let diff: f32 = (&got - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        // Both sides multiply the same f16 scales by the same small integers in f32.
        assert!(diff == 0.0, "{name}: largest difference {diff:e}");
    }
}

/// Writes the fixture's Q4_K_M file again with our quantizer (it is not committed) and checks
/// that it is the file the Python reference was computed from.
fn our_q4_k_m(dir: &Path) -> PathBuf {
    let out = dir.join("transformer-Q4_K_M.gguf");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
        .arg("quantize")
        .arg(fixtures().join("full-square").join("model"))
        .args(["--type", "q4_k_m", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let case = case_json("full-square-Q4_K_M");
    let hash =
        Sha256::digest(std::fs::read(&out).unwrap())
            .iter()
            .fold(String::new(), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            });
    // A quantizer that now writes other bytes needs the reference made again
    // (tools/fixtures/make_gguf_fixtures.py).
    assert_eq!(
        hash,
        case["transformer_sha256"].as_str().unwrap(),
        "quantize no longer writes the file the reference was made from"
    );
    out
}

fn case_json(case: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("gguf").join(case).join("case.json"));
    serde_json::from_str(&text.unwrap()).unwrap()
}

/// Dequantising then computing in f32 leaves only the f32 pipeline's own difference from
/// PyTorch (full-square's safetensors run is 1.6e-6 apart), so the house f32 bound (1e-4)
/// holds unchanged; both cases measure about 1.5e-6.
#[test]
fn quantised_transformers_generate_what_the_official_pipeline_does() {
    let scratch = tempfile::tempdir().unwrap();
    let community = fixtures().join("gguf/full-square-Q8_0/transformer-Q8_0.gguf");
    assert_eq!(case_json("full-square-Q8_0")["committed"], true);
    let cases = [
        ("full-square-Q8_0", community),
        ("full-square-Q4_K_M", our_q4_k_m(scratch.path())),
    ];
    for (case, file) in cases {
        let gguf = file.display().to_string();
        let dir = tempfile::tempdir().unwrap();
        // full-square's settings and starting noise: the references were run with them.
        let out = generate("full-square", dir.path(), true, &["--transformer", &gguf]);
        assert!(
            out.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dump =
            candle_core::safetensors::load(dir.path().join("dump.safetensors"), &Device::Cpu)
                .unwrap();
        let reference = candle_core::safetensors::load(
            fixtures()
                .join("gguf")
                .join(case)
                .join("reference.safetensors"),
            &Device::Cpu,
        )
        .unwrap();
        let err = rel_err(&dump["final_latents"], &reference["latents.final"]);
        let image_err = rel_err(&dump["image"], &reference["vae.image"]);
        println!("{case}: final latents {err:.3e}, decoded {image_err:.3e}");
        assert!(err < 1e-4, "{case}: final latents relative error {err:.3e}");
        assert!(
            image_err < 1e-4,
            "{case}: decoded image relative error {image_err:.3e}"
        );
    }
}

/// A Llama folder whose weights are llama.cpp's GGUF: config.json and the tokenizer from the
/// tiny Llama, the weights from the fixture file.
fn llama_gguf_folder(dir: &Path) -> PathBuf {
    let folder = dir.join("llama");
    std::fs::create_dir_all(&folder).unwrap();
    let tiny = fixtures().join("llama-3.1-tiny");
    for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tiny.join(file), folder.join(file)).unwrap();
    }
    let gguf = fixtures().join("gguf/llama-Q8_0/llama-Q8_0.gguf");
    std::fs::copy(gguf, folder.join("Llama-3.1-8B-Instruct-Q8_0.gguf")).unwrap();
    folder
}

/// llama.cpp renames Llama's tensors and reorders the query and key rows; read back, the
/// encoder gives what transformers gives with the file read as ComfyUI-GGUF reads it.
#[test]
fn a_llama_cpp_gguf_encodes_what_transformers_does() {
    let dir = tempfile::tempdir().unwrap();
    let llama = llama_gguf_folder(dir.path());
    let err = encoded_against_reference(&fixtures().join("full-square/model"), &llama, "llama");
    println!("llama Q8_0: hidden states {err:.3e}");
    assert!(err < 1e-4, "relative error {err:.3e}");
}

/// A snapshot whose T5 encoder is a `t5encoder` GGUF (ComfyUI-GGUF's T5 names) encodes what
/// transformers does with the file read back as ComfyUI-GGUF reads it.
#[test]
fn a_t5_gguf_encodes_what_transformers_does() {
    let (_keep, model) = crate::common::scratch_model("full-square");
    let t5 = model.join("text_encoder_3");
    for entry in std::fs::read_dir(&t5).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "config.json" {
            std::fs::remove_file(path).unwrap();
        }
    }
    std::fs::copy(
        fixtures().join("gguf/t5-Q8_0/t5-Q8_0.gguf"),
        t5.join("t5-v1_1-xxl-encoder-Q8_0.gguf"),
    )
    .unwrap();
    // `info` checks the GGUF the way loading will, and names it.
    let report = hidream_studio::info::inspect(&model).unwrap();
    assert!(report.is_ok(), "{report}");
    assert!(
        report.to_string().contains("t5-v1_1-xxl-encoder-Q8_0.gguf"),
        "{report}"
    );
    let err = encoded_against_reference(&model, &fixtures().join("llama-3.1-tiny"), "t5");
    println!("t5 Q8_0: hidden states {err:.3e}");
    assert!(err < 1e-4, "relative error {err:.3e}");
}

/// Encodes full-square's prompt with the snapshot's encoders and `llama`, and compares the
/// `encoder`'s hidden states ("llama" or "t5") with `gguf/ENCODER-Q8_0/reference.safetensors`.
fn encoded_against_reference(snapshot: &Path, llama: &Path, encoder: &str) -> f64 {
    let snapshot = hidream_studio::weights::Snapshot::open(snapshot).unwrap();
    let encoders = hidream_studio::models::text::TextEncoders::load(
        &snapshot,
        llama,
        candle_core::DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let prompt = crate::common::case_json("full-square")["prompt"]
        .as_str()
        .unwrap()
        .to_string();
    let out = encoders.encode(&prompt).unwrap();
    let reference = candle_core::safetensors::load(
        fixtures().join(format!("gguf/{encoder}-Q8_0/reference.safetensors")),
        &Device::Cpu,
    )
    .unwrap();
    let ours = if encoder == "llama" {
        &out.llama
    } else {
        &out.t5
    };
    rel_err(ours, &reference[&format!("prompt.{encoder}.hidden")])
}
