//! PyTorch `torch.save` files (`.pt`, `.pth`, `.ckpt`) without Python: the zip archive torch
//! has written since 1.6, its `data.pkl` run by our own pickle machine ([`pickle`]), and each
//! tensor copied out of its storage entry under `data/`.
//!
//! REPA-E's checkpoints are a dict `{model, ema, opt, args, steps}` whose `args` is a pickled
//! `argparse.Namespace` and whose `opt` is an optimizer's state: objects a tensor reader does
//! not need, recorded and skipped rather than refused (candle's `pickle` module reads only
//! dicts of tensors and says little about what went wrong, hence this reader).

mod pickle;
mod storage;
mod value;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use zip::ZipArchive;

use pickle::PickleError;
use storage::{candle_dtype, materialise, torch_dtype};
use value::{TensorRef, Value, to_json};

/// Everything that can be wrong with a `.pt` file, each naming the file (and entry or tensor)
/// and saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum PtError {
    #[error("{path}: cannot read: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error(
        "{path}: not a PyTorch checkpoint (a torch.save zip archive): it looks like {found}; \
         give the `.pt` file itself"
    )]
    NotTorch { path: PathBuf, found: String },

    #[error(
        "{path}: saved in PyTorch's legacy format (before 1.6, or with \
         _use_new_zipfile_serialization=False), which is not read here; re-save it in Python: \
         torch.save(torch.load(\"{path}\", weights_only=False), \"new.pt\")"
    )]
    Legacy { path: PathBuf },

    #[error(
        "{path}: truncated or damaged ({detail}); the download or copy was interrupted: delete \
         the file and fetch it again"
    )]
    Truncated { path: PathBuf, detail: String },

    #[error("{path}: not a valid torch.save file: {detail}; fetch it again")]
    Corrupt { path: PathBuf, detail: String },

    #[error("{path}: {detail}, which this reader does not support; {hint}")]
    Unsupported {
        path: PathBuf,
        detail: String,
        hint: &'static str,
    },

    #[error(
        "{path}: has no `{key}` entry (it holds: {present}); this is not the kind of \
         checkpoint expected here, or it was saved without `{key}`"
    )]
    KeyMissing {
        path: PathBuf,
        key: String,
        present: String,
    },

    #[error("{path}: {what} is {found}, not a dict of tensors (a state dict); {hint}")]
    NotAStateDict {
        path: PathBuf,
        what: String,
        found: String,
        hint: String,
    },

    #[error(
        "{path}: tensor `{tensor}` is stored as torch.{dtype}, which HiDream Studio cannot read; \
         convert it to float32 in Python (tensor.float()) and save again"
    )]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },

    #[error("{path}: tensor `{tensor}` cannot be read: {detail}; fetch the file again")]
    Tensor {
        path: PathBuf,
        tensor: String,
        detail: String,
    },
}

/// The format a file's first bytes show, for choosing a reader and for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    TorchZip,
    TorchLegacy,
    Safetensors,
    Gguf,
    Other(&'static str),
}

/// The start of a legacy torch.save file: a pickled magic number 0x1950a86a20f9469cfc6c.
const LEGACY: [u8; 14] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];

/// Looks at the first bytes of `path`.
pub fn sniff(path: &Path) -> Result<FileKind, PtError> {
    let io = |cause| PtError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let mut head = Vec::with_capacity(16);
    File::open(path)
        .map_err(io)?
        .take(16)
        .read_to_end(&mut head)
        .map_err(io)?;
    let kind = if head.starts_with(b"PK\x03\x04") {
        FileKind::TorchZip
    } else if head.starts_with(&LEGACY) {
        FileKind::TorchLegacy
    } else if head.starts_with(b"GGUF") {
        FileKind::Gguf
    } else if head.len() > 8 && head[8] == b'{' {
        FileKind::Safetensors
    } else if head.starts_with(b"\x89PNG") {
        FileKind::Other("a PNG image")
    } else if head.starts_with(b"\xff\xd8\xff") {
        FileKind::Other("a JPEG image")
    } else if head.first() == Some(&b'{') {
        FileKind::Other("a JSON file")
    } else if head.is_empty() {
        FileKind::Other("an empty file")
    } else if head.starts_with(b"\x80") {
        FileKind::Other("a plain Python pickle (not a torch.save archive)")
    } else {
        FileKind::Other("a file of an unknown format")
    };
    Ok(kind)
}

/// The dtype and shape of one saved tensor, known without reading its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtTensorInfo {
    /// PyTorch's name of the dtype (`float32`, `int64`, …; `other` for storages this reader
    /// does not know).
    pub dtype: &'static str,
    pub shape: Vec<usize>,
    /// Bytes of the tensor's own elements (0 for an unknown dtype).
    pub bytes: u64,
    /// The archive entry of its storage, and that storage's bytes: tensors may share one.
    pub storage: (String, u64),
}

impl PtTensorInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An opened `torch.save` archive: its pickle, run, and the zip to copy storages from.
pub struct PtFile {
    path: PathBuf,
    zip: ZipArchive<BufReader<File>>,
    /// The archive's top folder (`archive/` for current torch, the file stem for older ones).
    prefix: String,
    root: Value,
}

impl std::fmt::Debug for PtFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PtFile")
            .field("path", &self.path)
            .field("root", &self.root.kind())
            .finish_non_exhaustive()
    }
}

impl PtFile {
    /// Opens `path` and runs its pickle; tensor data is only read by [`Self::state_dict`].
    pub fn open(path: &Path) -> Result<Self, PtError> {
        let p = || path.to_path_buf();
        match sniff(path)? {
            FileKind::TorchZip => {}
            FileKind::TorchLegacy => return Err(PtError::Legacy { path: p() }),
            FileKind::Safetensors => {
                return Err(PtError::NotTorch {
                    path: p(),
                    found: "a safetensors file".into(),
                });
            }
            FileKind::Gguf => {
                return Err(PtError::NotTorch {
                    path: p(),
                    found: "a GGUF file".into(),
                });
            }
            FileKind::Other(found) => {
                return Err(PtError::NotTorch {
                    path: p(),
                    found: found.into(),
                });
            }
        }
        let file = File::open(path).map_err(|cause| PtError::Io { path: p(), cause })?;
        let zip = ZipArchive::new(BufReader::new(file)).map_err(|e| PtError::Truncated {
            path: p(),
            detail: format!("its zip directory cannot be read: {e}"),
        })?;
        let names: Vec<String> = zip
            .file_names()
            .filter_map(|n| n.ok().map(std::borrow::Cow::into_owned))
            .collect();
        let Some(pkl) = names.iter().find(|n| n.ends_with("data.pkl")).cloned() else {
            let found = if names.iter().any(|n| n.ends_with("constants.pkl")) {
                "a TorchScript archive (torch.jit.save); load it in Python and torch.save its \
                 state_dict()"
            } else {
                "a zip archive without the data.pkl torch.save writes"
            };
            return Err(PtError::NotTorch {
                path: p(),
                found: found.into(),
            });
        };
        let prefix = pkl.trim_end_matches("data.pkl").to_string();
        let mut file = Self {
            path: p(),
            zip,
            prefix,
            root: Value::None,
        };
        if let Ok(order) = file.entry("byteorder")
            && order.trim_ascii() == b"big"
        {
            return Err(PtError::Unsupported {
                path: p(),
                detail: "it was saved on a big-endian machine".into(),
                hint: "re-save it on a little-endian (x86 or ARM) machine",
            });
        }
        let data = file.entry("data.pkl")?;
        file.root = pickle::load(&data).map_err(|e| match e {
            PickleError::Truncated => PtError::Truncated {
                path: p(),
                detail: "data.pkl ends early".into(),
            },
            PickleError::Malformed(detail) => PtError::Corrupt {
                path: p(),
                detail: format!("data.pkl: {detail}"),
            },
            PickleError::Unsupported(detail) => PtError::Unsupported {
                path: p(),
                detail,
                hint: "re-save the checkpoint with plain torch.save in Python",
            },
        })?;
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes of the archive entry `name` (relative to the top folder).
    fn entry(&mut self, name: &str) -> Result<Vec<u8>, PtError> {
        let full = format!("{}{name}", self.prefix);
        let path = self.path.clone();
        let mut entry = self.zip.by_name(&full).map_err(|e| match e {
            zip::result::ZipError::FileNotFound => PtError::Corrupt {
                path: path.clone(),
                detail: format!("the archive has no entry `{full}`"),
            },
            zip::result::ZipError::CompressionMethodNotSupported(_) => PtError::Unsupported {
                path: path.clone(),
                detail: format!("entry `{full}` is compressed"),
                hint: "torch.save stores entries uncompressed: re-save the file with torch.save",
            },
            other => PtError::Truncated {
                path: path.clone(),
                detail: format!("entry `{full}`: {other}"),
            },
        })?;
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| PtError::Truncated {
                path,
                detail: format!("entry `{full}`: {e}"),
            })?;
        Ok(bytes)
    }

    /// The top-level keys, when the file holds a dict (a checkpoint or a state dict).
    pub fn keys(&self) -> Vec<String> {
        match &self.root {
            Value::Dict(items) => items
                .borrow()
                .iter()
                .map(|(k, _)| match k {
                    Value::Str(s) => s.clone(),
                    other => format!("<{}>", other.kind()),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    fn get(&self, key: &str) -> Option<Value> {
        match &self.root {
            Value::Dict(items) => items
                .borrow()
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v.clone()),
            _ => None,
        }
    }

    /// What the top-level entry `key` holds, in words (`a dict`, `an argparse.Namespace`).
    pub fn entry_kind(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| v.kind())
    }

    /// Whether the top-level dict has `key`.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// An integer entry at the top level (`steps`).
    pub fn int(&self, key: &str) -> Option<i64> {
        self.get(key).as_ref().and_then(Value::as_int)
    }

    /// The fields of the `argparse.Namespace` (or plain dict) under `args`, as JSON.
    pub fn args_namespace(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let state = match self.get("args")? {
            Value::Object(o) => o.borrow().state.clone()?,
            dict @ Value::Dict(_) => dict,
            _ => return None,
        };
        match to_json(&state) {
            serde_json::Value::Object(map) => Some(map),
            _ => None,
        }
    }

    /// The tensors of the state dict at `key` (the whole file when `None`), by name, without
    /// reading their data.
    pub fn tensor_infos(&self, key: Option<&str>) -> Result<Vec<(String, PtTensorInfo)>, PtError> {
        self.tensor_refs(key)?
            .into_iter()
            .map(|(name, t)| {
                Ok((
                    name,
                    PtTensorInfo {
                        dtype: torch_dtype(&t.storage.class).map_or("other", |(name, _)| name),
                        bytes: torch_dtype(&t.storage.class).map_or(0, |(_, size)| {
                            (t.shape.iter().product::<usize>() * size) as u64
                        }),
                        shape: t.shape.clone(),
                        storage: (
                            t.storage.key.clone(),
                            torch_dtype(&t.storage.class)
                                .map_or(0, |(_, size)| (t.storage.numel * size) as u64),
                        ),
                    },
                ))
            })
            .collect()
    }

    /// Reads the state dict at `key` (the whole file when `None`): every tensor in its stored
    /// dtype, on the CPU.
    pub fn state_dict(&mut self, key: Option<&str>) -> Result<HashMap<String, Tensor>, PtError> {
        let refs = self.tensor_refs(key)?;
        // Storages are read once: several tensors may view one (REPA-E's latent statistics
        // are views of the EMA BatchNorm buffers). Each is dropped after its last tensor, so
        // a 2.7 GB state dict does not sit in memory twice.
        let mut uses: HashMap<String, usize> = HashMap::new();
        for (_, t) in &refs {
            *uses.entry(t.storage.key.clone()).or_insert(0) += 1;
        }
        let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
        let mut out = HashMap::with_capacity(refs.len());
        for (name, t) in refs {
            let dtype =
                candle_dtype(&t.storage.class).ok_or_else(|| PtError::UnsupportedDtype {
                    path: self.path.clone(),
                    tensor: name.clone(),
                    dtype: torch_dtype(&t.storage.class).map_or_else(
                        || t.storage.class.trim_end_matches("Storage").to_string(),
                        |(name, _)| name.to_string(),
                    ),
                })?;
            if !storages.contains_key(&t.storage.key) {
                let bytes = self.entry(&format!("data/{}", t.storage.key))?;
                storages.insert(t.storage.key.clone(), bytes);
            }
            let bytes = &storages[&t.storage.key];
            let tensor = materialise(&t, dtype, bytes).map_err(|detail| PtError::Tensor {
                path: self.path.clone(),
                tensor: name.clone(),
                detail,
            })?;
            out.insert(name, tensor);
            if let Some(left) = uses.get_mut(&t.storage.key) {
                *left -= 1;
                if *left == 0 {
                    storages.remove(&t.storage.key);
                }
            }
        }
        Ok(out)
    }

    /// What the top level holds, for messages: a checkpoint's entries, or "a plain state
    /// dict of N tensors".
    fn describe_entries(&self) -> String {
        if let Value::Dict(items) = &self.root {
            let items = items.borrow();
            if !items.is_empty() && items.iter().all(|(_, v)| matches!(v, Value::Tensor(_))) {
                return format!(
                    "a plain state dict of {} tensors: {}",
                    items.len(),
                    present_keys(&self.keys())
                );
            }
        }
        present_keys(&self.keys())
    }

    fn tensor_refs(&self, key: Option<&str>) -> Result<Vec<(String, TensorRef)>, PtError> {
        let (what, value) = match key {
            Some(key) => (
                format!("entry `{key}`"),
                self.get(key).ok_or_else(|| PtError::KeyMissing {
                    path: self.path.clone(),
                    key: key.to_string(),
                    present: self.describe_entries(),
                })?,
            ),
            None => ("the file".to_string(), self.root.clone()),
        };
        let not_state_dict = |found: String| {
            let keys = self.keys();
            let hint = if key.is_none() && !keys.is_empty() {
                format!(
                    "it is a checkpoint with entries {}: name the one that holds the weights",
                    present_keys(&keys)
                )
            } else {
                "this is not a file of model weights".to_string()
            };
            PtError::NotAStateDict {
                path: self.path.clone(),
                what: what.clone(),
                found,
                hint,
            }
        };
        let Value::Dict(items) = &value else {
            return Err(not_state_dict(value.kind()));
        };
        let tensors: Vec<(String, TensorRef)> = items
            .borrow()
            .iter()
            .filter_map(|(k, v)| match (k, v) {
                (Value::Str(name), Value::Tensor(t)) => Some((name.clone(), (**t).clone())),
                _ => None,
            })
            .collect();
        if tensors.is_empty() {
            return Err(not_state_dict("a dict without tensors".into()));
        }
        Ok(tensors)
    }
}

/// The top-level entries for a message: all of a checkpoint's, or a short sample of a plain
/// state dict's.
fn present_keys(keys: &[String]) -> String {
    const LISTED: usize = 8;
    match keys.len() {
        0 => "no named entries".into(),
        n if n <= LISTED => keys.join(", "),
        n => format!("{}, … ({n} in all)", keys[..LISTED].join(", ")),
    }
}

/// Reads the state dict at `key` of a `torch.save` file (the whole file when `None`), every
/// tensor in its stored dtype on the CPU.
pub fn read_state_dict(path: &Path, key: Option<&str>) -> Result<HashMap<String, Tensor>, PtError> {
    PtFile::open(path)?.state_dict(key)
}

/// The fields of the `argparse.Namespace` saved under `args` (REPA-E checkpoints), as JSON;
/// `None` when the file has no `args`.
pub fn read_args_namespace(
    path: &Path,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, PtError> {
    Ok(PtFile::open(path)?.args_namespace())
}
