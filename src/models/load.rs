//! Loading a model component from its folder: open the weights, check every tensor name and
//! shape against what the model asks for, then build it in the requested dtype and device.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::weights::{TensorStore, WeightsError, check_tensors, requested_tensors};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Weights(#[from] WeightsError),

    #[error(transparent)]
    Lora(#[from] crate::models::hidream::LoraError),

    #[error("{what} in {dir}: {source}")]
    Build {
        what: &'static str,
        dir: PathBuf,
        #[source]
        source: Box<candle_core::Error>,
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
    load_checked_with(dir, what, ignored, build, |store| {
        Ok(store.into_var_builder(dtype, device))
    })
}

/// As [`load_checked`], with the weights at `weights`: a folder, a safetensors file, or a GGUF
/// file whose `general.architecture` must be `gguf_architecture`.
pub(crate) fn load_checked_from<T>(
    weights: &Path,
    gguf_architecture: &str,
    what: &'static str,
    dtype: DType,
    device: &Device,
    build: impl Fn(VarBuilder<'_>) -> candle_core::Result<T>,
) -> Result<T, LoadError> {
    let store = TensorStore::open_path(weights, gguf_architecture)?;
    check_and_build(store, weights, what, &[], build, |store| {
        Ok(store.into_var_builder(dtype, device))
    })
}

/// As [`load_checked`], with the weights read through `backend` (a LoRA merge, say), which is
/// handed the checked store.
pub(crate) fn load_checked_through<T>(
    dir: &Path,
    what: &'static str,
    backend: impl FnOnce(TensorStore) -> Result<VarBuilder<'static>, LoadError>,
    build: impl Fn(VarBuilder<'_>) -> candle_core::Result<T>,
) -> Result<T, LoadError> {
    load_checked_with(dir, what, &[], build, backend)
}

fn load_checked_with<T>(
    dir: &Path,
    what: &'static str,
    ignored: &[&str],
    build: impl Fn(VarBuilder<'_>) -> candle_core::Result<T>,
    backend: impl FnOnce(TensorStore) -> Result<VarBuilder<'static>, LoadError>,
) -> Result<T, LoadError> {
    check_and_build(
        TensorStore::open_dir(dir)?,
        dir,
        what,
        ignored,
        build,
        backend,
    )
}

fn check_and_build<T>(
    store: TensorStore,
    dir: &Path,
    what: &'static str,
    ignored: &[&str],
    build: impl Fn(VarBuilder<'_>) -> candle_core::Result<T>,
    backend: impl FnOnce(TensorStore) -> Result<VarBuilder<'static>, LoadError>,
) -> Result<T, LoadError> {
    let build_error = |source| LoadError::Build {
        what,
        dir: dir.to_path_buf(),
        source: Box::new(source),
    };
    let requested = requested_tensors(&build).map_err(build_error)?;
    check_tensors(&store, &requested, ignored)?;
    build(backend(store)?).map_err(build_error)
}
