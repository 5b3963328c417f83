//! The weights of one model component: a single safetensors file or a sharded set behind a
//! `*.safetensors.index.json`, with a candle `VarBuilder` backend that reports problems in terms
//! of files and tensors.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::backend::{Request, TensorSource, var_builder_over};
use super::error::{Result, WeightsError};
use super::gguf::{GgufFile, t5};
use super::json::read_json;
use super::safetensors_file::StoredDtype;
use super::safetensors_file::{SafetensorsFile, TensorEntry};
use super::weights_file::WeightsFile;
use crate::models::QuantizedSource;
use candle_core::quantized::QTensor;

/// File names diffusers and transformers write, most specific first.
const INDEX_NAMES: [&str; 2] = [
    "diffusion_pytorch_model.safetensors.index.json",
    "model.safetensors.index.json",
];
const SINGLE_NAMES: [&str; 2] = ["diffusion_pytorch_model.safetensors", "model.safetensors"];

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

/// All tensors of one component, memory-mapped.
#[derive(Debug)]
pub struct TensorStore {
    /// The folder (or file) the user's model lives in, used in messages.
    location: PathBuf,
    files: Vec<WeightsFile>,
    by_name: HashMap<String, usize>,
}

impl TensorStore {
    /// Opens the weights in a component folder, sharded or not.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        if let Some(index) = find_weights_file(dir, &INDEX_NAMES, ".safetensors.index.json")? {
            return Self::open_index(&index);
        }
        if let Some(single) = find_weights_file(dir, &SINGLE_NAMES, ".safetensors")? {
            if is_numbered_shard(&single) {
                return Err(index_missing(dir, &[single]));
            }
            return Self::open_file(&single);
        }
        let shards = numbered_shards(dir)?;
        if !shards.is_empty() {
            return Err(index_missing(dir, &shards));
        }
        Err(WeightsError::NoWeights {
            dir: dir.to_path_buf(),
        })
    }

    pub(crate) fn open_file(path: &Path) -> Result<Self> {
        Ok(Self::of_one_file(WeightsFile::Safetensors(
            SafetensorsFile::open(path)?,
        )))
    }

    /// Opens a GGUF file holding the weights of a model of `architecture` (its
    /// `general.architecture`, such as `hidream`). A file that names no architecture is taken
    /// on trust: the tensor check that follows tells whether it fits.
    pub fn open_gguf(path: &Path, architecture: &str) -> Result<Self> {
        let store = Self::open_gguf_any(path)?;
        let file = store.gguf_architecture();
        // ComfyUI-GGUF takes `t5` files as T5 encoders too.
        let alias = architecture == t5::ARCHITECTURES[0] && file == Some(t5::ARCHITECTURES[1]);
        if let Some(found) = file
            && found != architecture
            && !alias
        {
            return Err(WeightsError::GgufArchitecture {
                path: path.to_path_buf(),
                found: format!("a `{found}` model"),
                expected: format!("a `{architecture}` model"),
            });
        }
        Ok(store)
    }

    /// Opens a GGUF file whatever model it holds (for describing it).
    pub fn open_gguf_any(path: &Path) -> Result<Self> {
        Ok(Self::of_one_file(WeightsFile::Gguf(GgufFile::open(path)?)))
    }

    /// `general.architecture` of a GGUF store.
    pub fn gguf_architecture(&self) -> Option<&str> {
        match self.files.as_slice() {
            [WeightsFile::Gguf(file)] => file.architecture(),
            _ => None,
        }
    }

    /// Opens a component's weights: a folder (as [`Self::open_dir`]), a `.gguf` file of a model
    /// of `gguf_architecture`, or a single `.safetensors` file.
    pub fn open_path(path: &Path, gguf_architecture: &str) -> Result<Self> {
        if path.is_dir() {
            return Self::open_dir(path);
        }
        let is_gguf = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        if is_gguf {
            Self::open_gguf(path, gguf_architecture)
        } else {
            Self::open_file(path)
        }
    }

    /// The GGUF file that stands in for a component folder's weights: only when `dir` holds
    /// no safetensors weights at all, the one `*.gguf` in `dir`, else the one beside it (in
    /// the snapshot's root). An intact folder is never swapped for a GGUF, and two candidates
    /// are not guessed between.
    pub fn gguf_standing_in(dir: &Path) -> Option<PathBuf> {
        let files = |dir: &Path| -> Vec<PathBuf> {
            let Ok(listing) = std::fs::read_dir(dir) else {
                return Vec::new();
            };
            listing
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        };
        let named = |paths: &[PathBuf], suffix: &str| -> Vec<PathBuf> {
            paths
                .iter()
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().to_ascii_lowercase().ends_with(suffix))
                })
                .cloned()
                .collect()
        };
        let here = files(dir);
        if !named(&here, ".safetensors").is_empty()
            || !named(&here, ".safetensors.index.json").is_empty()
        {
            return None;
        }
        let single = |mut found: Vec<PathBuf>| (found.len() == 1).then(|| found.pop()).flatten();
        single(named(&here, ".gguf")).or_else(|| single(named(&files(dir.parent()?), ".gguf")))
    }

    fn of_one_file(file: WeightsFile) -> Self {
        let by_name = file.tensors().keys().map(|k| (k.clone(), 0)).collect();
        Self {
            location: file.path().to_path_buf(),
            files: vec![file],
            by_name,
        }
    }

    /// Opens every shard an index names and checks that the index and the shards agree.
    pub(crate) fn open_index(index_path: &Path) -> Result<Self> {
        let index: ShardIndex = read_json(index_path, "safetensors index")?;
        let dir = index_path.parent().unwrap_or(Path::new("."));
        let shard_names: BTreeSet<&String> = index.weight_map.values().collect();
        let mut files = Vec::with_capacity(shard_names.len());
        let mut file_of_shard = HashMap::new();
        for shard in shard_names {
            let path = dir.join(shard);
            // `exists` follows symlinks, so a Hugging Face cache entry whose blob is gone counts
            // as missing, which is what it is.
            if !path.exists() {
                return Err(WeightsError::ShardMissing {
                    index: index_path.to_path_buf(),
                    dir: dir.to_path_buf(),
                    shard: shard.clone(),
                });
            }
            file_of_shard.insert(shard.clone(), files.len());
            files.push(WeightsFile::Safetensors(SafetensorsFile::open(&path)?));
        }
        let mut by_name = HashMap::new();
        for (tensor, shard) in &index.weight_map {
            let file_idx = file_of_shard[shard];
            if files[file_idx].entry(tensor).is_none() {
                return Err(WeightsError::IndexEntryMissing {
                    index: index_path.to_path_buf(),
                    shard: files[file_idx].path().to_path_buf(),
                    tensor: tensor.clone(),
                });
            }
            by_name.insert(tensor.clone(), file_idx);
        }
        Ok(Self {
            location: dir.to_path_buf(),
            files,
            by_name,
        })
    }

    /// The folder or file this store was opened from.
    pub fn location(&self) -> &Path {
        &self.location
    }

    pub fn shard_count(&self) -> usize {
        self.files.len()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The stored dtype, shape and file of a tensor.
    pub fn entry(&self, name: &str) -> Option<(&TensorEntry, &Path)> {
        let file = &self.files[*self.by_name.get(name)?];
        Some((file.entry(name)?, file.path()))
    }

    pub(crate) fn parameter_count(&self) -> u64 {
        self.entries().map(|(_, e)| e.numel() as u64).sum()
    }

    /// How many tensors are stored in each dtype, by user-facing dtype name.
    pub fn dtype_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for (_, entry) in self.entries() {
            *counts.entry(entry.dtype.name()).or_insert(0) += 1;
        }
        counts
    }

    pub(crate) fn bytes_on_disk(&self) -> u64 {
        self.files.iter().map(WeightsFile::file_size).sum()
    }

    fn entries(&self) -> impl Iterator<Item = (&str, &TensorEntry)> {
        self.by_name.iter().filter_map(|(name, &idx)| {
            let entry = self.files[idx].entry(name)?;
            Some((name.as_str(), entry))
        })
    }

    /// Loads a tensor in its stored dtype. With `expected`, a different shape is an error that
    /// names both shapes.
    pub fn load(&self, name: &str, expected: Option<&[usize]>, device: &Device) -> Result<Tensor> {
        let idx = *self
            .by_name
            .get(name)
            .ok_or_else(|| WeightsError::TensorMissing {
                tensor: name.to_string(),
                location: self.location.clone(),
            })?;
        let file = &self.files[idx];
        if let (Some(expected), Some(entry)) = (expected, file.entry(name))
            && entry.shape != expected
        {
            return Err(WeightsError::ShapeMismatch {
                file: file.path().to_path_buf(),
                tensor: name.to_string(),
                expected: expected.to_vec(),
                found: entry.shape.clone(),
            });
        }
        file.load(name, device)
    }

    /// A candle `VarBuilder` over these weights: every tensor is converted to `dtype` on
    /// `device` as it is requested.
    pub fn into_var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        var_builder_over(self, dtype, device)
    }
}

impl TensorStore {
    /// Whether any tensor is block-quantised (a quantised GGUF).
    pub(crate) fn holds_quantized(&self) -> bool {
        self.entries().any(|(_, e)| match e.dtype {
            StoredDtype::Ggml(ty) => ty.is_quantized(),
            StoredDtype::Safetensors(_) => false,
        })
    }
}

impl QuantizedSource for TensorStore {
    fn quantized(
        &self,
        name: &str,
        shape: &[usize],
        device: &Device,
    ) -> Option<candle_core::Result<QTensor>> {
        let file = &self.files[*self.by_name.get(name)?];
        match file {
            WeightsFile::Gguf(gguf) => gguf.quantized(name, shape, device),
            WeightsFile::Safetensors(_) => None,
        }
    }
}

impl TensorSource for TensorStore {
    fn tensor(&self, request: Request<'_>) -> candle_core::Result<Tensor> {
        self.load(request.name, request.dims(), request.device)
            .map_err(candle_core::Error::wrap)?
            .to_dtype(request.dtype)
    }

    fn holds(&self, name: &str) -> bool {
        self.contains(name)
    }
}

/// The weights file in `dir`: one of the standard names, else the only file with `suffix`.
fn find_weights_file(dir: &Path, names: &[&str], suffix: &str) -> Result<Option<PathBuf>> {
    for name in names {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(Some(path));
        }
    }
    let listing = std::fs::read_dir(dir).map_err(|e| WeightsError::io(dir, e))?;
    let mut candidates = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| WeightsError::io(dir, e))?;
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(suffix) {
            candidates.push(entry.path());
        }
    }
    // Several unrelated files (fp16 and fp32 variants, say) are ambiguous: let the caller report
    // that no standard weights exist rather than guess.
    Ok(if candidates.len() == 1 {
        candidates.pop()
    } else {
        None
    })
}

/// `model-00001-of-00004.safetensors` and the like: one part of a sharded set, never a whole
/// checkpoint on its own.
fn is_numbered_shard(path: &Path) -> bool {
    let Some(stem) = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".safetensors"))
    else {
        return false;
    };
    let mut parts = stem.rsplit('-');
    let total = parts.next();
    let of = parts.next();
    let part = parts.next();
    let is_number =
        |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    of == Some("of") && is_number(total) && is_number(part)
}

fn numbered_shards(dir: &Path) -> Result<Vec<PathBuf>> {
    let listing = std::fs::read_dir(dir).map_err(|e| WeightsError::io(dir, e))?;
    let mut shards = Vec::new();
    for entry in listing {
        let path = entry.map_err(|e| WeightsError::io(dir, e))?.path();
        if is_numbered_shard(&path) {
            shards.push(path);
        }
    }
    shards.sort();
    Ok(shards)
}

fn index_missing(dir: &Path, shards: &[PathBuf]) -> WeightsError {
    let names: Vec<String> = shards
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    WeightsError::IndexMissing {
        dir: dir.to_path_buf(),
        shards: names.join(", "),
    }
}
