//! GGUF files: the single-file, block-quantised format of ggml, in which the HiDream community
//! publishes quantised transformers (city96/HiDream-I1-*-gguf, made with ComfyUI-GGUF's tools).
//!
//! What ComfyUI-GGUF's loader honours, we honour (ComfyUI-GGUF `loader.py` at 795e451):
//! - tensor names are the checkpoint's own (for HiDream the diffusers names), optionally all
//!   under `model.diffusion_model.`, which is then stripped;
//! - `general.architecture` names the model (`hidream`);
//! - `comfy.gguf.orig_shape.NAME` (an array of i32) restores the shape of a tensor that was
//!   stored flattened to rows of 256 so that it could be K-quantised;
//! - shapes are stored innermost dimension first and read reversed (PyTorch order).
//!
//! Quantised tensors are dequantised to f32 as they load (candle's ggml dequantisers), then
//! converted to the compute dtype like any other weight.

mod header;
pub mod llama_cpp;
pub mod t5;
mod types;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::quantized::QTensor;
use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::{DType, Device, Tensor};

pub use header::MetaValue;
pub use types::{GgmlType, LOADABLE, loadable_names};
pub use writer::{TensorHeader, write_header, write_tensor_data};

use super::error::{Result, WeightsError};
use super::mapped_file::{MappedFile, map};
use super::safetensors_file::{StoredDtype, TensorEntry};
use header::{HeaderError, RawTensor};

/// The prefix ComfyUI's full checkpoints put before the diffusion model's tensors.
pub const COMFY_PREFIX: &str = "model.diffusion_model.";
/// The metadata key prefix that restores a reshaped tensor's shape.
pub const ORIG_SHAPE_KEY: &str = "comfy.gguf.orig_shape.";
pub const ARCHITECTURE_KEY: &str = "general.architecture";

/// A GGUF file's metadata and the names of its tensors as stored (llama.cpp's own names):
/// what a model packed into one file (config, tokenizer, chat template) is rebuilt from.
pub fn read_metadata(path: &Path) -> Result<(BTreeMap<String, MetaValue>, Vec<String>)> {
    let mmap = map(path)?;
    let header = header::parse(&mmap).map_err(|e| header_error(path, e))?;
    let names = header.tensors.into_iter().map(|t| t.name).collect();
    Ok((header.metadata, names))
}

fn header_error(path: &Path, e: HeaderError) -> WeightsError {
    match e {
        HeaderError::NotGguf => WeightsError::NotGguf {
            path: path.to_path_buf(),
        },
        HeaderError::Truncated(detail) => WeightsError::Truncated {
            path: path.to_path_buf(),
            detail,
        },
        HeaderError::Corrupt(detail) => WeightsError::CorruptGguf {
            path: path.to_path_buf(),
            detail,
        },
    }
}

/// One GGUF file, memory-mapped, its header checked against the file's length.
#[derive(Debug)]
pub(crate) struct GgufFile {
    pub file: MappedFile,
    architecture: Option<String>,
    /// The stored shape (PyTorch order) of tensors whose `orig_shape` differs from it.
    stored_shapes: HashMap<String, Vec<usize>>,
    /// llama.cpp Llama files: the projections whose rows llama.cpp reordered, with the number
    /// of heads to undo it over (see [`llama_cpp`]).
    permuted: HashMap<String, usize>,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let mmap = map(path)?;
        let header = header::parse(&mmap).map_err(|e| header_error(path, e))?;
        let corrupt = |detail: String| WeightsError::CorruptGguf {
            path: path.to_path_buf(),
            detail,
        };
        let architecture = match header.metadata.get(ARCHITECTURE_KEY) {
            None => None,
            Some(value) => Some(
                value
                    .as_str()
                    .ok_or_else(|| corrupt(format!("`{ARCHITECTURE_KEY}` is not a string")))?
                    .to_string(),
            ),
        };
        let llama_heads = match architecture.as_deref() {
            Some(llama_cpp::ARCHITECTURE) => {
                Some(llama_cpp::head_counts(&header.metadata).ok_or_else(|| {
                    corrupt("a llama GGUF without `llama.attention.head_count`".to_string())
                })?)
            }
            _ => None,
        };
        let mut permuted = HashMap::new();
        let prefixed = header
            .tensors
            .iter()
            .any(|t| t.name.starts_with(COMFY_PREFIX));
        let mut tensors = HashMap::new();
        let mut stored_shapes = HashMap::new();
        for raw in &header.tensors {
            let name = if prefixed {
                // As ComfyUI-GGUF: in a prefixed file, tensors outside the prefix (a VAE or
                // text encoder bundled in the same checkpoint) are not the model's.
                let Some(name) = raw.name.strip_prefix(COMFY_PREFIX) else {
                    continue;
                };
                name.to_string()
            } else if architecture
                .as_deref()
                .is_some_and(|a| t5::ARCHITECTURES.contains(&a))
            {
                t5::transformers_name(&raw.name)
            } else if let Some((heads, kv_heads)) = llama_heads {
                let name = llama_cpp::transformers_name(&raw.name);
                if let Some(h) = llama_cpp::permuted_heads(&name, heads, kv_heads) {
                    permuted.insert(name.clone(), h);
                }
                name
            } else {
                raw.name.clone()
            };
            let (entry, stored) = describe(raw, &header, mmap.len() as u64, path)?;
            if let Some(stored) = stored {
                stored_shapes.insert(name.clone(), stored);
            }
            if tensors.insert(name.clone(), entry).is_some() {
                return Err(corrupt(format!("tensor `{name}` is stored twice")));
            }
        }
        Ok(Self {
            file: MappedFile {
                path: path.to_path_buf(),
                mmap,
                tensors,
            },
            architecture,
            stored_shapes,
            permuted,
        })
    }

    /// `general.architecture`, when the file names one.
    pub fn architecture(&self) -> Option<&str> {
        self.architecture.as_deref()
    }

    /// Loads a tensor: float types in their stored dtype, quantised ones dequantised to f32.
    pub fn load(&self, name: &str, device: &Device) -> Result<Tensor> {
        let entry = self.file.entry(name)?;
        let StoredDtype::Ggml(ty) = entry.dtype else {
            return Err(self.file.load_error(name, "not a GGUF tensor"));
        };
        // `describe` checked the range against the file's length.
        let bytes = &self.file.mmap[entry.data.clone()];
        let load_error = |e: candle_core::Error| self.file.load_error(name, e);
        let float = match ty.candle {
            candle_core::quantized::GgmlDType::F32 => Some(DType::F32),
            candle_core::quantized::GgmlDType::F16 => Some(DType::F16),
            candle_core::quantized::GgmlDType::BF16 => Some(DType::BF16),
            _ => None,
        };
        let tensor = if let Some(dtype) = float {
            Tensor::from_raw_buffer(bytes, dtype, &entry.shape, device)
        } else {
            let stored = self.stored_shapes.get(name).unwrap_or(&entry.shape);
            qtensor_from_ggml(ty.candle, bytes, stored.clone(), device)
                .and_then(|q| q.dequantize(device))
                .and_then(|t| t.reshape(entry.shape.as_slice()))
        };
        match self.permuted.get(name) {
            Some(&heads) => tensor.and_then(|t| llama_cpp::unpermute(&t, heads)),
            None => tensor,
        }
        .map_err(load_error)
    }
}

impl GgufFile {
    /// A block-quantised tensor as stored, when it is one and its stored shape is `shape`
    /// (a tensor flattened for quantisation, with an `orig_shape`, loads densely instead).
    pub fn quantized(
        &self,
        name: &str,
        shape: &[usize],
        device: &Device,
    ) -> Option<candle_core::Result<QTensor>> {
        let entry = self.file.tensors.get(name)?;
        let StoredDtype::Ggml(ty) = entry.dtype else {
            return None;
        };
        // Reordered rows (llama.cpp's query and key projections) load densely, reordered back.
        if !ty.is_quantized()
            || entry.shape != shape
            || self.stored_shapes.contains_key(name)
            || self.permuted.contains_key(name)
        {
            return None;
        }
        Some(qtensor_from_ggml(
            ty.candle,
            &self.file.mmap[entry.data.clone()],
            entry.shape.clone(),
            device,
        ))
    }
}

/// `name` with each (from, to) part of `parts` replaced in order, as ComfyUI-GGUF's
/// `sd_map_replace` maps llama.cpp's names to transformers'.
fn renamed(name: &str, parts: &[(&str, &str)]) -> String {
    parts
        .iter()
        .fold(name.to_string(), |name, (from, to)| name.replace(from, to))
}

/// Checks one tensor description against the file and turns it into an entry (shape in
/// PyTorch order, after `orig_shape`), plus the stored shape when the two differ.
fn describe(
    raw: &RawTensor,
    header: &header::Header,
    file_len: u64,
    path: &Path,
) -> Result<(TensorEntry, Option<Vec<usize>>)> {
    let corrupt = |detail: String| WeightsError::CorruptGguf {
        path: path.to_path_buf(),
        detail,
    };
    let name = &raw.name;
    let ty = GgmlType::from_id(raw.type_id).ok_or_else(|| WeightsError::UnsupportedGgmlType {
        file: path.to_path_buf(),
        tensor: name.clone(),
        found: types::unloadable_name(raw.type_id),
        supported: loadable_names(),
    })?;
    let stored: Vec<usize> = raw
        .dims
        .iter()
        .rev()
        .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| corrupt(format!("tensor `{name}` has a dimension of {:?}", raw.dims)))?;
    let elements = stored
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| corrupt(format!("tensor `{name}` has {:?} elements", raw.dims)))?;
    let innermost = stored.last().copied().unwrap_or(1);
    let bytes = ty
        .bytes_for(elements)
        .filter(|_| innermost.is_multiple_of(ty.block_size()))
        .ok_or_else(|| {
            corrupt(format!(
                "tensor `{name}` ({} of shape {stored:?}) does not fill whole {}-element blocks",
                ty.name,
                ty.block_size()
            ))
        })?;
    let start = header.data_start.checked_add(raw.offset);
    let end = start.and_then(|s| s.checked_add(bytes as u64));
    let (Some(start), Some(end)) = (start, end) else {
        return Err(corrupt(format!(
            "tensor `{name}` has offset {}",
            raw.offset
        )));
    };
    if end > file_len {
        return Err(WeightsError::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "tensor `{name}` needs bytes {start}..{end} but the file has {file_len}"
            ),
        });
    }
    // candle reads the blocks in place as structs with 2-byte fields; GGUF aligns every
    // tensor's data (32 bytes by default), and a file that does not is not one to trust.
    if start % 8 != 0 {
        return Err(corrupt(format!(
            "tensor `{name}` starts at byte {start}, which is not aligned"
        )));
    }
    let shape = match header.metadata.get(&format!("{ORIG_SHAPE_KEY}{name}")) {
        None => None,
        Some(value) => Some(orig_shape(value, elements).ok_or_else(|| {
            corrupt(format!(
                "`{ORIG_SHAPE_KEY}{name}` is {value:?}, not a shape of {elements} elements"
            ))
        })?),
    };
    // usize <= u64 on every platform we build for; `end <= file_len` which came from a usize.
    let range = start as usize..end as usize;
    let entry = |shape: Vec<usize>| TensorEntry {
        dtype: StoredDtype::Ggml(ty),
        shape,
        data: range.clone(),
    };
    Ok(match shape {
        Some(shape) if shape != stored => (entry(shape), Some(stored)),
        _ => (entry(stored), None),
    })
}

fn orig_shape(value: &MetaValue, elements: usize) -> Option<Vec<usize>> {
    let MetaValue::Array(items) = value else {
        return None;
    };
    let shape: Vec<usize> = items
        .iter()
        .map(|v| v.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<_>>()?;
    let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
    (count == elements && !shape.is_empty()).then_some(shape)
}
