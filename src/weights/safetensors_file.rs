//! One memory-mapped `.safetensors` file with a validated header.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype as StDtype, SafeTensorError, SafeTensors};

use super::error::{Result, WeightsError};
use super::gguf::GgmlType;
use super::mapped_file::{MappedFile, map};

/// Where one tensor lives inside its file.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub dtype: StoredDtype,
    pub shape: Vec<usize>,
    /// Byte range of the data: inside the data section for safetensors (after the header),
    /// in the whole file for GGUF.
    pub data: std::ops::Range<usize>,
}

impl TensorEntry {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A safetensors file mapped into memory, its header validated.
#[derive(Debug)]
pub(crate) struct SafetensorsFile {
    pub file: MappedFile,
    data_start: usize,
}

impl SafetensorsFile {
    pub fn open(path: &Path) -> Result<Self> {
        let mmap = map(path)?;
        let (header_len, metadata) =
            SafeTensors::read_metadata(&mmap).map_err(|e| describe_header_error(path, &mmap, e))?;
        let data_start = 8 + header_len;
        let tensors = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let entry = TensorEntry {
                    dtype: StoredDtype::Safetensors(info.dtype),
                    shape: info.shape.clone(),
                    data: info.data_offsets.0..info.data_offsets.1,
                };
                (name, entry)
            })
            .collect();
        Ok(Self {
            file: MappedFile {
                path: path.to_path_buf(),
                mmap,
                tensors,
            },
            data_start,
        })
    }

    /// Copies a tensor out of the map in its stored dtype, checking that it is one we compute
    /// with (f32, f16, bf16).
    pub fn load(&self, name: &str, device: &Device) -> Result<Tensor> {
        let entry = self.file.entry(name)?;
        let dtype =
            entry
                .dtype
                .safetensors_float()
                .ok_or_else(|| WeightsError::UnsupportedDtype {
                    file: self.file.path.clone(),
                    tensor: name.to_string(),
                    dtype: entry.dtype.name().to_string(),
                })?;
        let start = self.data_start + entry.data.start;
        let end = self.data_start + entry.data.end;
        let bytes = &self.file.mmap[start..end];
        Tensor::from_raw_buffer(bytes, dtype, &entry.shape, device)
            .map_err(|e| self.file.load_error(name, e))
    }
}

/// How a tensor is stored: a safetensors dtype, or a ggml type inside a GGUF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredDtype {
    Safetensors(StDtype),
    Ggml(GgmlType),
}

impl StoredDtype {
    /// The name users see in `info` and in messages: PyTorch's spelling for safetensors
    /// (`float16`), ggml's for GGUF (`Q8_0`, `BF16`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Safetensors(dtype) => dtype_name(dtype),
            Self::Ggml(ty) => ty.name,
        }
    }

    /// Whether loading yields floats: a float safetensors dtype, or any ggml type we read
    /// (quantised ones are dequantised).
    pub fn loads_as_float(self) -> bool {
        match self {
            Self::Safetensors(dtype) => float_dtype(dtype).is_some(),
            Self::Ggml(_) => true,
        }
    }

    fn safetensors_float(self) -> Option<DType> {
        match self {
            Self::Safetensors(dtype) => float_dtype(dtype),
            Self::Ggml(_) => None,
        }
    }
}

/// The candle dtype for a stored floating-point dtype we can compute with.
pub(crate) fn float_dtype(dtype: StDtype) -> Option<DType> {
    match dtype {
        StDtype::F32 => Some(DType::F32),
        StDtype::F16 => Some(DType::F16),
        StDtype::BF16 => Some(DType::BF16),
        _ => None,
    }
}

/// The short lower-case name users see in `info` (same spelling as PyTorch where one exists).
pub(crate) fn dtype_name(dtype: StDtype) -> &'static str {
    match dtype {
        StDtype::BOOL => "bool",
        StDtype::U8 => "uint8",
        StDtype::I8 => "int8",
        StDtype::I16 => "int16",
        StDtype::U16 => "uint16",
        StDtype::I32 => "int32",
        StDtype::U32 => "uint32",
        StDtype::I64 => "int64",
        StDtype::U64 => "uint64",
        StDtype::F16 => "float16",
        StDtype::BF16 => "bfloat16",
        StDtype::F32 => "float32",
        StDtype::F64 => "float64",
        StDtype::F8_E4M3 => "float8_e4m3",
        StDtype::F8_E5M2 => "float8_e5m2",
        _ => "an unknown type",
    }
}

/// Turns the safetensors crate's terse header errors into a message about this file. A short
/// file is by far the most common cause (an interrupted download), so it gets its own wording.
fn describe_header_error(path: &Path, bytes: &[u8], err: SafeTensorError) -> WeightsError {
    let len = bytes.len();
    let corrupt = |detail: String| WeightsError::CorruptHeader {
        path: path.to_path_buf(),
        detail,
    };
    let truncated = |detail: String| WeightsError::Truncated {
        path: path.to_path_buf(),
        detail,
    };
    match err {
        SafeTensorError::HeaderTooSmall => truncated(format!(
            "the file is {len} bytes, shorter than the 8-byte header length every safetensors \
             file starts with"
        )),
        SafeTensorError::InvalidHeaderLength | SafeTensorError::HeaderTooLarge => {
            let declared = bytes
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes);
            if declared > 100_000_000 {
                corrupt(format!(
                    "the header claims to be {declared} bytes long, which no safetensors file \
                     has"
                ))
            } else {
                truncated(format!(
                    "the header is declared as {declared} bytes but the file holds only {len} \
                     bytes"
                ))
            }
        }
        SafeTensorError::MetadataIncompleteBuffer => match declared_data_end(bytes) {
            Some(expected) if expected > len => truncated(format!(
                "the header describes {expected} bytes of data but the file holds only {len}"
            )),
            Some(expected) => corrupt(format!(
                "the file has {} bytes after the last tensor, which no safetensors writer \
                 leaves",
                len - expected
            )),
            None => corrupt("the tensor data does not match the header".to_string()),
        },
        SafeTensorError::InvalidHeader(e) => corrupt(format!("the header is not UTF-8 text ({e})")),
        SafeTensorError::InvalidHeaderDeserialization(e) => {
            corrupt(format!("the header is not valid JSON ({e})"))
        }
        SafeTensorError::InvalidOffset(name) => corrupt(format!(
            "tensor `{name}` has data offsets that overlap or leave gaps"
        )),
        other => corrupt(other.to_string()),
    }
}

/// Where the header says the data section ends, read without full validation (only used to
/// explain an error).
fn declared_data_end(bytes: &[u8]) -> Option<usize> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    let end = header
        .as_object()?
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0) as usize;
    Some(8 + n + end)
}
