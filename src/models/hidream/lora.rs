//! A PEFT LoRA file such as `HiDream-E1-Full.safetensors`, merged into the transformer's weights
//! as they are loaded: `W' = W + scale · B·A` for every adapted linear, plus the plain tensors
//! the file replaces outright (how https://github.com/HiDream-ai/HiDream-E1/blob/f6f0631e9b621fa113f74d3b2e2cf2bc5314ef10/inference.py#L28-L45
//! loads it: PEFT adapters, then `load_state_dict(strict=False)` for the non-LoRA keys).
//!
//! Names follow PEFT's wrapped-module layout: `<module>.lora_A.default.weight` [r, in],
//! `<module>.lora_B.default.weight` [out, r] (the `.default` adapter name may be absent), and
//! `<module>.base_layer.weight` for a plain tensor of a wrapped linear.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::weights::{Request, TensorSource, TensorStore, WeightsError, var_builder_over};

#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error(transparent)]
    Weights(#[from] WeightsError),

    #[error(
        "{path}: holds no LoRA tensors (names ending in .lora_A[.default].weight); it is not a \
         LoRA file"
    )]
    NotLora { path: PathBuf },

    #[error(
        "{path}: `{module}` has a lora_{present} tensor but no lora_{absent}; the file is incomplete"
    )]
    Unpaired {
        path: PathBuf,
        module: String,
        present: char,
        absent: char,
    },

    #[error(
        "{path}: `{name}` targets a tensor the base transformer ({base}) does not have; this \
         LoRA was made for another model"
    )]
    UnknownTarget {
        path: PathBuf,
        name: String,
        base: PathBuf,
    },

    #[error(
        "{path}: `{name}` has shape {found:?} but the base transformer's tensor is {expected:?}; \
         this LoRA was made for another model"
    )]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("{path}: cannot read `{name}`: {detail}")]
    Read {
        path: PathBuf,
        name: String,
        detail: String,
    },
}

/// Low-rank deltas and replacement tensors, in f32 on the CPU.
#[derive(Debug)]
pub(crate) struct LoraWeights {
    path: PathBuf,
    /// Target tensor name (`<module>.weight`) → (A [r, in], B [out, r]).
    deltas: BTreeMap<String, (Tensor, Tensor)>,
    /// Target tensor name → replacement.
    plain: BTreeMap<String, Tensor>,
    scale: f64,
}

impl LoraWeights {
    /// Whether `path` is a safetensors file with LoRA tensors (for recognising `--model`).
    pub(crate) fn is_lora_file(path: &Path) -> bool {
        TensorStore::open_file(path).is_ok_and(|s| s.names().any(|n| split_lora_name(n).is_some()))
    }

    /// Reads the file. PEFT state dicts do not carry `lora_alpha`; HiDream-E1-Full was trained
    /// with alpha = r, so the scale is 1 unless an `adapter_config.json` beside the file says
    /// otherwise.
    pub fn read(path: &Path) -> Result<Self, LoraError> {
        let store = TensorStore::open_file(path)?;
        let load = |name: &str| -> Result<Tensor, LoraError> {
            store
                .load(name, None, &Device::Cpu)
                .and_then(|t| {
                    t.to_dtype(DType::F32)
                        .map_err(|e| WeightsError::TensorLoad {
                            file: path.to_path_buf(),
                            tensor: name.to_string(),
                            detail: e.to_string(),
                        })
                })
                .map_err(LoraError::from)
        };
        let mut halves: BTreeMap<String, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
        let mut plain = BTreeMap::new();
        for name in store.names() {
            match split_lora_name(name) {
                Some((target, 'A')) => halves.entry(target).or_default().0 = Some(load(name)?),
                Some((target, _)) => halves.entry(target).or_default().1 = Some(load(name)?),
                None => {
                    plain.insert(name.replace(".base_layer.", "."), load(name)?);
                }
            }
        }
        if halves.is_empty() {
            return Err(LoraError::NotLora {
                path: path.to_path_buf(),
            });
        }
        let mut deltas = BTreeMap::new();
        for (target, pair) in halves {
            let module = target.trim_end_matches(".weight").to_string();
            match pair {
                (Some(a), Some(b)) => {
                    deltas.insert(target, (a, b));
                }
                (Some(_), None) => return Err(unpaired(path, module, 'A', 'B')),
                (None, _) => return Err(unpaired(path, module, 'B', 'A')),
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            deltas,
            plain,
            scale: adapter_scale(path).unwrap_or(1.0),
        })
    }

    /// Checks every target against the base checkpoint, so a LoRA for another model fails
    /// before anything is built.
    pub(crate) fn check_against(&self, base: &TensorStore) -> Result<(), LoraError> {
        let shape_of = |name: &str| -> Result<Vec<usize>, LoraError> {
            base.entry(name)
                .map(|(e, _)| e.shape.clone())
                .ok_or_else(|| LoraError::UnknownTarget {
                    path: self.path.clone(),
                    name: name.to_string(),
                    base: base.location().to_path_buf(),
                })
        };
        for (target, (a, b)) in &self.deltas {
            let expected = shape_of(target)?;
            let found = vec![b.dim(0).unwrap_or(0), a.dim(1).unwrap_or(0)];
            if expected != found || a.dim(0).ok() != b.dim(1).ok() {
                return Err(LoraError::Shape {
                    path: self.path.clone(),
                    name: target.clone(),
                    expected,
                    found: [b.dims(), a.dims()].concat(),
                });
            }
        }
        for (name, t) in &self.plain {
            let expected = shape_of(name)?;
            if expected != t.dims() {
                return Err(LoraError::Shape {
                    path: self.path.clone(),
                    name: name.clone(),
                    expected,
                    found: t.dims().to_vec(),
                });
            }
        }
        Ok(())
    }
}

/// Which parts of a LoRA file apply on top of the base weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoraUse {
    /// The low-rank deltas and the replacement tensors: the editing model.
    Full,
    /// Only the replacement tensors: what the official E1-Full script refines with (its
    /// adapters are switched off, but the replaced tensors stay in place).
    PlainOnly,
}

/// A `VarBuilder` over `base` with `lora` applied (merged in f32, then cast to `dtype`).
pub(crate) fn merged_var_builder(
    base: TensorStore,
    lora: std::sync::Arc<LoraWeights>,
    lora_use: LoraUse,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    let merged = MergedBackend {
        base,
        lora,
        lora_use,
    };
    var_builder_over(merged, dtype, device)
}

struct MergedBackend {
    base: TensorStore,
    lora: std::sync::Arc<LoraWeights>,
    lora_use: LoraUse,
}

impl MergedBackend {
    fn merged(
        &self,
        name: &str,
        shape: Option<&[usize]>,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Some(replacement) = self.lora.plain.get(name) {
            return replacement.to_device(device);
        }
        let base = self
            .base
            .load(name, shape, device)
            .map_err(candle_core::Error::wrap)?;
        match (self.lora_use, self.lora.deltas.get(name)) {
            (LoraUse::Full, Some((a, b))) => {
                let delta = (b.matmul(a)? * self.lora.scale)?.to_device(device)?;
                base.to_dtype(DType::F32)? + delta
            }
            _ => Ok(base),
        }
    }
}

impl TensorSource for MergedBackend {
    fn tensor(&self, request: Request<'_>) -> candle_core::Result<Tensor> {
        self.merged(request.name, request.dims(), request.device)?
            .to_dtype(request.dtype)
    }

    fn holds(&self, name: &str) -> bool {
        self.base.contains(name)
    }
}

/// `x.lora_A.default.weight` → (`x.weight`, 'A'); likewise for B and without `.default`.
fn split_lora_name(name: &str) -> Option<(String, char)> {
    for (half, tag) in [('A', ".lora_A."), ('B', ".lora_B.")] {
        if let Some(at) = name.find(tag) {
            let rest = &name[at + tag.len()..];
            if rest == "weight" || rest.ends_with(".weight") {
                return Some((format!("{}.weight", &name[..at]), half));
            }
        }
    }
    None
}

fn unpaired(path: &Path, module: String, present: char, absent: char) -> LoraError {
    LoraError::Unpaired {
        path: path.to_path_buf(),
        module,
        present,
        absent,
    }
}

/// `lora_alpha / r` from an `adapter_config.json` next to the file, if there is one.
fn adapter_scale(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path.parent()?.join("adapter_config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let alpha = value.get("lora_alpha")?.as_f64()?;
    let r = value.get("r")?.as_f64()?;
    (r > 0.0).then_some(alpha / r)
}

#[cfg(test)]
mod tests {
    use super::split_lora_name;

    #[test]
    fn peft_names() {
        assert_eq!(
            split_lora_name("a.attn1.to_q.lora_A.default.weight"),
            Some(("a.attn1.to_q.weight".into(), 'A'))
        );
        assert_eq!(
            split_lora_name("final_layer.linear.lora_B.weight"),
            Some(("final_layer.linear.weight".into(), 'B'))
        );
        assert_eq!(split_lora_name("x_embedder.proj.weight"), None);
    }
}
