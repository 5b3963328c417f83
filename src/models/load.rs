//! Loading a model component from its folder: open the weights, check every tensor name and
//! shape against what the model asks for, then build it in the requested dtype and device.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use super::linear::{QuantizedSource, with_quantized};
use crate::weights::{
    TensorStore, WeightsError, check_tensors, requested_tensors, var_builder_over,
};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Weights(#[from] WeightsError),

    #[error(transparent)]
    Lora(#[from] crate::models::hidream::LoraError),

    #[error("{what} in {dir}: {cause}")]
    Build {
        what: &'static str,
        dir: PathBuf,
        cause: Box<candle_core::Error>,
    },
}

/// Builds a model from the weights in `dir`. `build` is called twice: once on free placeholder
/// tensors to learn every name and shape it needs (checked against the checkpoint as a whole,
/// so all mismatches are reported together), then on the real weights.
pub(crate) fn load_checked<T>(
    dir: &Path,
    what: &'static str,
    dtype: DType,
    device: &Device,
    build: impl Fn(VarBuilder<'_>) -> candle_core::Result<T>,
) -> Result<T, LoadError> {
    load_checked_ignoring(dir, what, dtype, device, &[], build)
}

/// As [`load_checked`], for checkpoints that also hold tensors the model knowingly leaves
/// unread (`ignored`: exact names, or prefixes ending in `.`), such as Llama's `lm_head.weight`.
pub(crate) fn load_checked_ignoring<T>(
    dir: &Path,
    what: &'static str,
    dtype: DType,
    device: &Device,
    ignored: &[&str],
    build: impl Fn(VarBuilder<'_>) -> candle_core::Result<T>,
) -> Result<T, LoadError> {
    let store = TensorStore::open_dir(dir)?;
    check_and_build(store, dir, what, ignored, build, |store| {
        Ok(weights_of(store, dtype, device))
    })
}

/// What becomes of a quantised GGUF's layers at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantizedLayers {
    /// They keep their blocks and are dequantised at each use (see `models::linear`): the
    /// memory of the file, not of the dense model.
    Kept,
    /// They are dequantised once, at load: for small models, whose matrix products cost less
    /// than dequantising their weights at every step.
    Dequantized,
}

/// As [`load_checked`], with the weights at `weights`: a folder, a safetensors file, or a GGUF
/// file whose `general.architecture` must be `gguf_architecture`.
pub(crate) fn load_checked_from<T>(
    weights: &Path,
    (gguf_architecture, layers): (&str, QuantizedLayers),
    (what, ignored): (&'static str, &[&str]),
    dtype: DType,
    device: &Device,
    build: impl Fn(VarBuilder<'_>) -> candle_core::Result<T>,
) -> Result<T, LoadError> {
    let store = TensorStore::open_path(weights, gguf_architecture)?;
    check_and_build(store, weights, what, ignored, build, |store| {
        Ok(match layers {
            QuantizedLayers::Kept => weights_of(store, dtype, device),
            QuantizedLayers::Dequantized => store.into_var_builder(dtype, device).into(),
        })
    })
}

/// The weights a model is built from; a quantised GGUF's layers keep their blocks (see
/// `models::linear`) and the rest loads densely.
fn weights_of(store: TensorStore, dtype: DType, device: &Device) -> Weights {
    if !store.holds_quantized() {
        return store.into_var_builder(dtype, device).into();
    }
    let store = Arc::new(store);
    Weights {
        vb: var_builder_over(store.clone(), dtype, device),
        quantized: Some(store),
    }
}

/// What a model is built from: its `VarBuilder`, and the source of the weights that stay
/// quantised when the checkpoint is a quantised GGUF.
pub(crate) struct Weights {
    vb: VarBuilder<'static>,
    quantized: Option<Arc<dyn QuantizedSource>>,
}

impl From<VarBuilder<'static>> for Weights {
    fn from(vb: VarBuilder<'static>) -> Self {
        Self {
            vb,
            quantized: None,
        }
    }
}

/// As [`load_checked`], with the weights read through `backend` (a LoRA merge, say), which is
/// handed the checked store.
pub(crate) fn load_checked_through<T>(
    dir: &Path,
    what: &'static str,
    backend: impl FnOnce(TensorStore) -> Result<VarBuilder<'static>, LoadError>,
    build: impl Fn(VarBuilder<'_>) -> candle_core::Result<T>,
) -> Result<T, LoadError> {
    let store = TensorStore::open_dir(dir)?;
    check_and_build(store, dir, what, &[], build, |store| {
        backend(store).map(Weights::from)
    })
}

fn check_and_build<T>(
    store: TensorStore,
    dir: &Path,
    what: &'static str,
    ignored: &[&str],
    build: impl Fn(VarBuilder<'_>) -> candle_core::Result<T>,
    backend: impl FnOnce(TensorStore) -> Result<Weights, LoadError>,
) -> Result<T, LoadError> {
    let build_error = |cause| LoadError::Build {
        what,
        dir: dir.to_path_buf(),
        cause: Box::new(cause),
    };
    let requested = requested_tensors(&build).map_err(build_error)?;
    check_tensors(&store, &requested, ignored)?;
    let Weights { vb, quantized } = backend(store)?;
    match quantized {
        Some(source) => with_quantized(source, || build(vb)),
        None => build(vb),
    }
    .map_err(build_error)
}
