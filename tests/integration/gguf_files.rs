//! GGUF transformers: what `quantize` writes loads and runs, and every broken or foreign GGUF
//! is refused with a message naming the file and the tensor.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device};
use hidream_studio::models::hidream::HiDreamTransformer;
use hidream_studio::weights::TensorStore;
use hidream_studio::weights::gguf::{MetaValue, TensorHeader, write_header, write_tensor_data};

use crate::common;

fn studio() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
}

fn transformer_dir() -> PathBuf {
    common::fixture_model("full-square").join("transformer")
}

/// `quantize` on the full-square fixture.
fn quantize(target: &str, out: &Path) -> String {
    let output = studio()
        .arg("quantize")
        .arg(common::fixture_model("full-square"))
        .args(["--type", target])
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A GGUF of the full-square transformer in F32, written with the library's writer after
/// `edit` has had its say over each tensor (rename, reshape, retype or drop it).
fn write_f32_gguf(
    path: &Path,
    architecture: Option<&str>,
    edit: impl Fn(&str, Vec<u64>) -> Option<(String, Vec<u64>, u32)>,
) {
    write_f32_gguf_of(&transformer_dir(), path, architecture, edit);
}

/// As [`write_f32_gguf`], for the transformer folder `source`.
fn write_f32_gguf_of(
    source: &Path,
    path: &Path,
    architecture: Option<&str>,
    edit: impl Fn(&str, Vec<u64>) -> Option<(String, Vec<u64>, u32)>,
) {
    let store = TensorStore::open_dir(source).unwrap();
    let mut names: Vec<&str> = store.names().collect();
    names.sort_unstable();
    let mut headers = Vec::new();
    let mut data = Vec::new();
    let mut owned_names = Vec::new();
    for name in names {
        let tensor = store.load(name, None, &Device::Cpu).unwrap();
        let dims: Vec<u64> = tensor.dims().iter().rev().map(|&d| d as u64).collect();
        let Some((new_name, dims, type_id)) = edit(name, dims) else {
            continue;
        };
        let values: Vec<f32> = tensor
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let count: u64 = dims.iter().product();
        let mut bytes = common::f32_bytes(&values);
        bytes.resize(count as usize * 4, 0);
        owned_names.push(new_name);
        data.push((dims, type_id, bytes));
    }
    for (name, (dims, type_id, bytes)) in owned_names.iter().zip(&data) {
        headers.push(TensorHeader {
            name,
            ggml_dims: dims.clone(),
            type_id: *type_id,
            byte_len: bytes.len(),
        });
    }
    let metadata: Vec<(String, MetaValue)> = architecture
        .map(|a| ("general.architecture".to_string(), MetaValue::Str(a.into())))
        .into_iter()
        .collect();
    let mut out = Vec::new();
    write_header(&mut out, &metadata, &headers).unwrap();
    for (_, _, bytes) in &data {
        write_tensor_data(&mut out, bytes).unwrap();
    }
    std::fs::write(path, out).unwrap();
}

/// Every tensor as it is, in F32.
#[allow(clippy::unnecessary_wraps)] // the shape `write_f32_gguf`'s edits have
fn unchanged(name: &str, dims: Vec<u64>) -> Option<(String, Vec<u64>, u32)> {
    Some((name.to_string(), dims, 0))
}

/// Loading `gguf` as the full-square transformer: the error's message.
fn load_error(gguf: &Path) -> String {
    match HiDreamTransformer::load_weights(&transformer_dir(), gguf, DType::F32, &Device::Cpu) {
        Ok(_) => panic!("{} loaded", gguf.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_f32_gguf_generates_what_the_safetensors_do() {
    let dir = tempfile::tempdir().unwrap();
    // With the ComfyUI prefix every name carries, which loading strips.
    let gguf = dir.path().join("t.gguf");
    write_f32_gguf(&gguf, Some("hidream"), |name, dims| {
        Some((format!("model.diffusion_model.{name}"), dims, 0))
    });
    let gguf_arg = gguf.display().to_string();
    let out = crate::generate_parity::generate(
        "full-square",
        dir.path(),
        true,
        &["--transformer", &gguf_arg],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump =
        candle_core::safetensors::load(dir.path().join("dump.safetensors"), &Device::Cpu).unwrap();
    let reference = common::reference("full-square");
    let err = common::rel_err(&dump["final_latents"], &reference["latents.final"]);
    assert!(err < 1e-4, "final latents relative error {err:.3e}");
}

#[test]
fn quantize_writes_the_same_file_every_time_and_says_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.gguf"), dir.path().join("b.gguf"));
    let said = quantize("q4_k_m", &a);
    quantize("q4_k_m", &b);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // The tiny model's 256-wide down projections take Q6_K (the _M rule); rows of 32 cannot
    // hold a K-quant block and fall back to F16, as in the community recipe.
    assert!(said.contains("Q6_K 20"), "{said}");
    assert!(said.contains("F16 57"), "{said}");
    assert!(said.contains("157 tensors"), "{said}");
}

#[test]
fn a_truncated_gguf_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.gguf");
    quantize("q8_0", &whole);
    let bytes = std::fs::read(&whole).unwrap();
    for cut in [10, 2000, bytes.len() / 2, bytes.len() - 1] {
        let path = dir.path().join(format!("cut-{cut}.gguf"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let message = load_error(&path);
        assert!(message.contains("truncated"), "cut at {cut}: {message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
    let tail = dir.path().join(format!("cut-{}.gguf", bytes.len() / 2));
    assert!(
        load_error(&tail).contains("tensor `"),
        "names the tensor that runs past the end"
    );
}

#[test]
fn a_gguf_of_another_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let flux = dir.path().join("flux.gguf");
    write_f32_gguf(&flux, Some("flux"), unchanged);
    let message = load_error(&flux);
    assert!(message.contains("is a GGUF of a `flux` model"), "{message}");
    // A file naming no architecture is judged by its tensors.
    let anonymous = dir.path().join("anonymous.gguf");
    write_f32_gguf(&anonymous, None, |name, dims| {
        Some((
            name.replace("double_stream_blocks", "double_blocks"),
            dims,
            0,
        ))
    });
    let message = load_error(&anonymous);
    assert!(message.contains("missing from the checkpoint"), "{message}");
    assert!(message.contains("double_stream_blocks.0"), "{message}");
    let not_gguf = dir.path().join("model.gguf");
    std::fs::write(&not_gguf, b"PK\x03\x04 a zip file").unwrap();
    assert!(load_error(&not_gguf).contains("not a GGUF file"));
}

#[test]
fn a_missing_or_reshaped_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.gguf");
    write_f32_gguf(&missing, Some("hidream"), |name, dims| {
        (name != "final_layer.linear.weight").then(|| (name.to_string(), dims, 0))
    });
    let message = load_error(&missing);
    assert!(message.contains("final_layer.linear.weight"), "{message}");
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    let reshaped = dir.path().join("reshaped.gguf");
    write_f32_gguf(&reshaped, Some("hidream"), |name, mut dims| {
        if name == "x_embedder.proj.weight" {
            dims[0] += 1;
        }
        Some((name.to_string(), dims, 0))
    });
    let message = load_error(&reshaped);
    assert!(
        message.contains("x_embedder.proj.weight: checkpoint [32, 65]"),
        "{message}"
    );
}

#[test]
fn an_unsupported_type_is_named_with_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iq4.gguf");
    // 23 is ggml's IQ4_XS, which ComfyUI-GGUF does not write for image models.
    write_f32_gguf(&path, Some("hidream"), |name, dims| {
        let ty = if name == "x_embedder.proj.weight" {
            23
        } else {
            0
        };
        Some((name.to_string(), dims, ty))
    });
    let message = load_error(&path);
    assert!(
        message.contains("tensor `x_embedder.proj.weight` is stored as IQ4_XS"),
        "{message}"
    );
    assert!(message.contains("Q8_0"), "lists what loads: {message}");
}

#[test]
fn info_describes_a_gguf_by_type() {
    let file = common::fixtures().join("gguf/full-square-Q8_0/transformer-Q8_0.gguf");
    let out = studio().arg("info").arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("GGUF file: hidream"), "{text}");
    assert!(text.contains("Q8_0 tensors"), "{text}");
    assert!(text.contains("577.5 K"), "Q8_0 parameters: {text}");
    assert!(text.contains("--transformer"), "says how to use it: {text}");
    let dir = tempfile::tempdir().unwrap();
    let flux = dir.path().join("flux.gguf");
    write_f32_gguf(&flux, Some("flux"), unchanged);
    let out = studio().arg("info").arg(&flux).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("a GGUF of a `flux` model"));
}

#[test]
fn a_gguf_in_place_of_the_transformer_weights_is_found() {
    let (_keep, model) = common::scratch_model("full-square");
    let transformer = model.join("transformer");
    for entry in std::fs::read_dir(&transformer).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "config.json" {
            std::fs::remove_file(path).unwrap();
        }
    }
    let community = common::fixtures().join("gguf/full-square-Q8_0/transformer-Q8_0.gguf");
    // Beside the snapshot (its root), then inside transformer/.
    for place in [
        model.join("HiDream-I1-Q8_0.gguf"),
        transformer.join("t.gguf"),
    ] {
        std::fs::copy(&community, &place).unwrap();
        let info = studio().arg("info").arg(&model).output().unwrap();
        let text = String::from_utf8_lossy(&info.stdout);
        assert!(info.status.success(), "{text}");
        assert!(text.contains(".gguf"), "names the file it found: {text}");
        let loaded = HiDreamTransformer::load(&transformer, DType::F32, &Device::Cpu);
        assert!(loaded.is_ok(), "{:?}", loaded.err().map(|e| e.to_string()));
        if place.starts_with(&transformer) {
            // Two candidates (root and transformer/): the one inside the folder wins.
            continue;
        }
        std::fs::remove_file(&place).unwrap();
    }
    // An intact folder is never swapped: safetensors weights next to a GGUF are used.
    let (_keep, intact) = common::scratch_model("full-square");
    std::fs::copy(&community, intact.join("HiDream-I1-Q8_0.gguf")).unwrap();
    assert_eq!(
        TensorStore::gguf_standing_in(&intact.join("transformer")),
        None
    );
}

#[test]
fn quantised_layers_stay_quantised_in_memory() {
    let community = common::fixtures().join("gguf/full-square-Q8_0/transformer-Q8_0.gguf");
    let dense = HiDreamTransformer::load(&transformer_dir(), DType::F32, &Device::Cpu).unwrap();
    let quantised =
        HiDreamTransformer::load_weights(&transformer_dir(), &community, DType::F32, &Device::Cpu)
            .unwrap();
    let (dense, quantised) = (dense.linear_memory(), quantised.linear_memory());
    assert_eq!(dense.layers, quantised.layers);
    assert_eq!(dense.quantized, 0);
    // Every Q8_0 tensor of the file is a linear layer's weight, and stays Q8_0.
    assert_eq!(quantised.quantized, 70);
    // Q8_0 is 34 bytes per 32 weights against f32's 128: the quantised weights take about a
    // quarter; the small layers the recipe keeps in F32 keep the total above that.
    let ratio = quantised.bytes as f64 / dense.bytes as f64;
    println!(
        "linear layers: {} → {} bytes ({ratio:.3})",
        dense.bytes, quantised.bytes
    );
    assert!(ratio < 0.4, "{ratio}");
}

#[test]
fn edit_takes_a_gguf_transformer_and_the_lora_form_refuses_one() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("e11.gguf");
    let e11 = common::fixtures().join("edit-e11/model/transformer");
    write_f32_gguf_of(&e11, &gguf, Some("hidream"), unchanged);
    let noise = common::fixtures().join("edit-e11/reference.safetensors");
    let (noise, gguf_arg) = (noise.display().to_string(), gguf.display().to_string());
    let (with, without) = (dir.path().join("with"), dir.path().join("without"));
    std::fs::create_dir_all(&with).unwrap();
    std::fs::create_dir_all(&without).unwrap();
    let run = |out: &Path, extra: &[&str]| {
        let output = crate::edit_parity::edit("edit-e11", out, extra);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        candle_core::safetensors::load(out.join("dump.safetensors"), &Device::Cpu).unwrap()
    };
    let from_gguf = run(&with, &["--noise", &noise, "--transformer", &gguf_arg]);
    let from_folder = run(&without, &["--noise", &noise]);
    // An F32 GGUF holds the same numbers as the folder's safetensors: the same edit, exactly.
    assert_eq!(
        common::rel_err(&from_gguf["final_latents"], &from_folder["final_latents"]),
        0.0
    );
    let lora = crate::edit_parity::edit(
        "edit-e1full-lora",
        dir.path(),
        &["--transformer", &gguf_arg],
    );
    assert!(!lora.status.success());
    let message = String::from_utf8_lossy(&lora.stderr);
    assert!(message.contains("takes no --transformer"), "{message}");
}

/// The bundled models ship their transformers as Q8_0 GGUFs whose manifests ask for them to be
/// dequantised at load; the same file named with `--transformer` (or given to `load_weights`)
/// keeps its layers quantised.
#[test]
fn a_manifest_can_have_its_gguf_dequantised_at_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/shapes-i1-full");
    let dir = root.join("transformer");
    let gguf = TensorStore::gguf_standing_in(&dir).expect("the bundled transformer is a GGUF");
    let bundled = HiDreamTransformer::load(&dir, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(bundled.linear_memory().quantized, 0);
    let named = HiDreamTransformer::load_weights(&dir, &gguf, DType::F32, &Device::Cpu).unwrap();
    assert!(named.linear_memory().quantized > 0);
    assert_eq!(bundled.linear_memory().layers, named.linear_memory().layers);
}
