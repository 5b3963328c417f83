//! `quantize`: writing a model's weights as a GGUF file in the community's format, so that our
//! files load in ComfyUI-GGUF and theirs in ours.
//!
//! The file is streamed: the header is written from the tensors' shapes and types, then each
//! tensor is read, quantised (candle's ggml quantisers, on the CPU) and written, so memory
//! holds one tensor at a time however large the model.

mod policy;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use candle_core::quantized::QTensor;
use candle_core::{DType, Device};

pub use policy::{QuantTarget, tensor_type};

use crate::models::hidream::GGUF_ARCHITECTURE;
use crate::models::{ComponentKind, LoadError};
use crate::store::{WriteError, write_atomically_with};
use crate::weights::gguf::{
    ARCHITECTURE_KEY, GgmlType, MetaValue, TensorHeader, write_header, write_tensor_data,
};
use crate::weights::{MODEL_INDEX, Snapshot, StoredDtype, TensorStore, WeightsError};

/// ggml's `GGML_QNT_VERSION`, which `gguf` writes as `general.quantization_version`.
const QUANTIZATION_VERSION: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(
        "{path}: does not hold a HiDream transformer (no `{missing}`); give a HiDream-I1 or \
         E1.1 snapshot, its transformer/ folder, or the transformer's safetensors file"
    )]
    NotHiDream {
        path: PathBuf,
        missing: &'static str,
    },
    #[error("{location}: tensor `{tensor}` could not be converted to {ty}: {detail}")]
    Convert {
        location: PathBuf,
        tensor: String,
        ty: &'static str,
        detail: String,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// What a quantisation wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantizeReport {
    pub tensors: usize,
    pub parameters: u64,
    /// Tensor count per ggml type name.
    pub by_type: BTreeMap<&'static str, usize>,
    /// Bytes of tensor data (without header and padding).
    pub data_bytes: u64,
}

/// Tensors every HiDream transformer has (ComfyUI-GGUF convert.py's `keys_detect`), to tell a
/// lone weights file of another model apart.
const HIDREAM_KEYS: [&str; 2] = [
    "caption_projection.0.linear.weight",
    "double_stream_blocks.0.block.ff_i.shared_experts.w3.weight",
];

/// The HiDream transformer weights at `path`, checked: a snapshot (its `transformer/`), a
/// transformer folder (checked against its config.json as loading would), or one safetensors
/// or GGUF file (checked for HiDream's tensors).
pub fn open_transformer(path: &Path) -> Result<TensorStore, QuantizeError> {
    let dir = if path.join(MODEL_INDEX).is_file() {
        Snapshot::open(path)?.component_dir("transformer")?
    } else {
        path.to_path_buf()
    };
    if dir.is_dir() {
        ComponentKind::Transformer.check(&dir)?;
        return Ok(TensorStore::open_dir(&dir)?);
    }
    let store = TensorStore::open_path(&dir, GGUF_ARCHITECTURE)?;
    if let Some(missing) = HIDREAM_KEYS.into_iter().find(|k| !store.contains(k)) {
        return Err(QuantizeError::NotHiDream { path: dir, missing });
    }
    Ok(store)
}

struct Planned {
    name: String,
    shape: Vec<usize>,
    ty: GgmlType,
    byte_len: usize,
}

/// Writes every tensor of `store` to `out` as a GGUF of `architecture` (`general.architecture`,
/// `hidream` for the transformer) with the types `target` gives them.
pub fn quantize_weights(
    store: &TensorStore,
    architecture: &str,
    target: QuantTarget,
    out: &Path,
) -> Result<QuantizeReport, QuantizeError> {
    let location = store.location().to_path_buf();
    let mut names: Vec<&str> = store.names().collect();
    names.sort_unstable();
    let mut plan = Vec::with_capacity(names.len());
    for name in names {
        let Some((entry, _)) = store.entry(name) else {
            continue;
        };
        let source = match entry.dtype {
            StoredDtype::Safetensors(safetensors::Dtype::BF16)
            | StoredDtype::Ggml(GgmlType { name: "BF16", .. }) => DType::BF16,
            _ => DType::F16,
        };
        let ty = tensor_type(name, &entry.shape, source, target);
        let byte_len = ty
            .bytes_for(entry.numel())
            .ok_or_else(|| QuantizeError::Convert {
                location: location.clone(),
                tensor: name.to_string(),
                ty: ty.name,
                detail: format!("{} elements do not fill whole blocks", entry.numel()),
            })?;
        plan.push(Planned {
            name: name.to_string(),
            shape: entry.shape.clone(),
            ty,
            byte_len,
        });
    }
    let metadata = vec![
        (
            ARCHITECTURE_KEY.to_string(),
            MetaValue::Str(architecture.to_string()),
        ),
        (
            "general.quantization_version".to_string(),
            MetaValue::UInt(QUANTIZATION_VERSION),
        ),
        (
            "general.file_type".to_string(),
            MetaValue::UInt(target.file_type().into()),
        ),
    ];
    let headers: Vec<TensorHeader<'_>> = plan
        .iter()
        .map(|p| TensorHeader {
            name: &p.name,
            ggml_dims: p.shape.iter().rev().map(|&d| d as u64).collect(),
            type_id: p.ty.id,
            byte_len: p.byte_len,
        })
        .collect();
    // The first conversion error, kept apart from I/O errors so the message names the tensor.
    let mut failure = None;
    let written = write_atomically_with(out, |file| {
        write_header(file, &metadata, &headers)?;
        for planned in &plan {
            let bytes = match convert(store, planned) {
                Ok(bytes) => bytes,
                Err(e) => {
                    failure = Some(e);
                    return Err(io::Error::other("conversion failed"));
                }
            };
            write_tensor_data(file, &bytes)?;
        }
        Ok(())
    });
    if let Some(failure) = failure {
        return Err(failure);
    }
    written?;
    let mut by_type = BTreeMap::new();
    for planned in &plan {
        *by_type.entry(planned.ty.name).or_insert(0) += 1;
    }
    Ok(QuantizeReport {
        tensors: plan.len(),
        parameters: plan
            .iter()
            .map(|p| p.shape.iter().product::<usize>() as u64)
            .sum(),
        by_type,
        data_bytes: plan.iter().map(|p| p.byte_len as u64).sum(),
    })
}

/// One tensor's bytes in its planned type.
fn convert(store: &TensorStore, planned: &Planned) -> Result<Vec<u8>, QuantizeError> {
    let error = |detail: String| QuantizeError::Convert {
        location: store.location().to_path_buf(),
        tensor: planned.name.clone(),
        ty: planned.ty.name,
        detail,
    };
    let tensor = store.load(&planned.name, Some(&planned.shape), &Device::Cpu)?;
    let bytes = tensor
        .to_dtype(DType::F32)
        .and_then(|t| QTensor::quantize(&t, planned.ty.candle))
        .and_then(|q| q.data().map(std::borrow::Cow::into_owned))
        .map_err(|e| error(e.to_string()))?;
    if bytes.len() != planned.byte_len {
        return Err(error(format!(
            "{} bytes came out where {} were planned",
            bytes.len(),
            planned.byte_len
        )));
    }
    Ok(bytes)
}
