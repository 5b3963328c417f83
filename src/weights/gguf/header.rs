//! Reading a GGUF header (versions 2 and 3) from the bytes of a file: metadata and tensor
//! descriptions, every length checked against what the file holds.
//!
//! The layout (little-endian): magic `GGUF`, version u32, tensor count u64, metadata count u64,
//! the metadata (key string, value type u32, value), the tensor infos (name string, n_dims u32,
//! dims u64 × n_dims innermost first, type u32, offset u64 into the data section), then the
//! data section at the next multiple of `general.alignment` (32 when absent). Strings are a u64
//! length and UTF-8 bytes. This is the format of ggml's `docs/gguf.md` and of the `gguf`
//! Python package ComfyUI-GGUF writes with.

use std::collections::BTreeMap;

/// A metadata value. Integers of every width are widened; arrays keep their elements.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    UInt(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<MetaValue>),
}

impl MetaValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::Float(v) => Some(v),
            Self::UInt(v) => Some(v as f64),
            Self::Int(v) => Some(v as f64),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::UInt(v) => Some(v),
            Self::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

/// One tensor as the header describes it, before its type or shape are interpreted.
#[derive(Debug, Clone)]
pub struct RawTensor {
    pub name: String,
    /// ggml order: the innermost (contiguous) dimension first.
    pub dims: Vec<u64>,
    pub type_id: u32,
    /// Offset from the start of the data section.
    pub offset: u64,
}

#[derive(Debug)]
pub struct Header {
    pub metadata: BTreeMap<String, MetaValue>,
    pub tensors: Vec<RawTensor>,
    /// Where the data section starts in the file.
    pub data_start: u64,
}

/// What is wrong with a header: the file ends early, or its bytes make no sense.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    NotGguf,
    Truncated(String),
    Corrupt(String),
}

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's own limit (GGML_MAX_DIMS).
const MAX_DIMS: u32 = 4;
/// Arrays inside arrays are allowed by the format but never written by any tool we read.
const MAX_NESTING: usize = 2;

pub fn parse(bytes: &[u8]) -> Result<Header, HeaderError> {
    if bytes.len() < 4 || &bytes[..4] != MAGIC {
        return Err(HeaderError::NotGguf);
    }
    let mut r = Reader { bytes, pos: 4 };
    let version = r.u32("the version")?;
    if !(2..=3).contains(&version) {
        return Err(HeaderError::Corrupt(format!(
            "GGUF version {version} is not one this build reads (2 and 3 are)"
        )));
    }
    let tensor_count = r.u64("the tensor count")?;
    let kv_count = r.u64("the metadata count")?;
    // Every entry takes at least 13 bytes: refuse counts the file cannot hold before allocating.
    r.expect_room(
        tensor_count.saturating_add(kv_count).saturating_mul(13),
        || format!("the header declares {tensor_count} tensors and {kv_count} metadata entries"),
    )?;
    let mut metadata = BTreeMap::new();
    for _ in 0..kv_count {
        let key = r.string("a metadata key")?;
        let value_type = r.u32(&format!("the type of `{key}`"))?;
        let value = r.value(value_type, &key, 0)?;
        metadata.insert(key, value);
    }
    let mut tensors = Vec::with_capacity(usize::try_from(tensor_count).unwrap_or(0));
    for _ in 0..tensor_count {
        let name = r.string("a tensor name")?;
        let n_dims = r.u32(&format!("the rank of `{name}`"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(HeaderError::Corrupt(format!(
                "tensor `{name}` has {n_dims} dimensions (ggml allows 1 to {MAX_DIMS})"
            )));
        }
        let dims = (0..n_dims)
            .map(|_| r.u64(&format!("the shape of `{name}`")))
            .collect::<Result<Vec<_>, _>>()?;
        let type_id = r.u32(&format!("the type of `{name}`"))?;
        let offset = r.u64(&format!("the offset of `{name}`"))?;
        tensors.push(RawTensor {
            name,
            dims,
            type_id,
            offset,
        });
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() => a,
            _ => {
                return Err(HeaderError::Corrupt(format!(
                    "`general.alignment` is {v:?}, not a power of two"
                )));
            }
        },
    };
    let data_start = (r.pos as u64).div_ceil(alignment) * alignment;
    Ok(Header {
        metadata,
        tensors,
        data_start,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: u64, what: &str) -> Result<&[u8], HeaderError> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(HeaderError::Truncated(format!(
                "the file ends inside {what} (at byte {}, {n} bytes needed, {left} left)",
                self.pos
            )));
        }
        let start = self.pos;
        // `n <= left`, which is a usize.
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn expect_room(&self, n: u64, what: impl Fn() -> String) -> Result<(), HeaderError> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(HeaderError::Truncated(format!(
                "{}, which needs at least {n} bytes; the file has {left} left",
                what()
            )));
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], HeaderError> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, HeaderError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, HeaderError> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn string(&mut self, what: &str) -> Result<String, HeaderError> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        // Some writers end strings with NULs; the format says they are not terminated.
        let text = String::from_utf8_lossy(bytes);
        Ok(text.trim_end_matches('\0').to_string())
    }

    fn value(
        &mut self,
        value_type: u32,
        key: &str,
        depth: usize,
    ) -> Result<MetaValue, HeaderError> {
        let what = format!("the value of `{key}`");
        Ok(match value_type {
            0 => MetaValue::UInt(self.array::<1>(&what)?[0].into()),
            1 => MetaValue::Int(i8::from_le_bytes(self.array(&what)?).into()),
            2 => MetaValue::UInt(u16::from_le_bytes(self.array(&what)?).into()),
            3 => MetaValue::Int(i16::from_le_bytes(self.array(&what)?).into()),
            4 => MetaValue::UInt(self.u32(&what)?.into()),
            5 => MetaValue::Int(i32::from_le_bytes(self.array(&what)?).into()),
            6 => MetaValue::Float(f32::from_le_bytes(self.array(&what)?).into()),
            7 => MetaValue::Bool(self.array::<1>(&what)?[0] != 0),
            8 => MetaValue::Str(self.string(&what)?),
            9 => {
                if depth >= MAX_NESTING {
                    return Err(HeaderError::Corrupt(format!(
                        "`{key}` nests arrays deeper than any GGUF writer does"
                    )));
                }
                let element_type = self.u32(&what)?;
                let len = self.u64(&what)?;
                // Every element takes at least one byte.
                self.expect_room(len, || format!("`{key}` declares {len} elements"))?;
                let mut items = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                for _ in 0..len {
                    items.push(self.value(element_type, key, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::UInt(self.u64(&what)?),
            11 => MetaValue::Int(i64::from_le_bytes(self.array(&what)?)),
            12 => MetaValue::Float(f64::from_le_bytes(self.array(&what)?)),
            other => {
                return Err(HeaderError::Corrupt(format!(
                    "`{key}` has value type {other}, which GGUF does not define"
                )));
            }
        })
    }
}
