//! Checking a checkpoint against the tensors a model asks for, before loading any of them, so
//! a mismatched checkpoint fails with a list of what differs instead of at the first tensor.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::backend::{Request, TensorSource, var_builder_over};
use super::error::{Result, WeightsError};
use super::tensor_store::TensorStore;

/// How many differences a mismatch error lists before summarising the rest.
const LISTED: usize = 10;

type Requests = Arc<Mutex<Vec<(String, Vec<usize>)>>>;

/// A VarBuilder backend that hands out free zero tensors and remembers what was asked for.
struct Recorder {
    requested: Requests,
}

impl TensorSource for Recorder {
    fn tensor(&self, request: Request<'_>) -> candle_core::Result<Tensor> {
        let Some(shape) = request.shape else {
            candle_core::bail!(
                "`{}` was requested without a shape; the audit needs shapes",
                request.name
            )
        };
        self.requested
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((request.name.to_string(), shape.dims().to_vec()));
        // A broadcast scalar: no memory however large the shape.
        Tensor::zeros((), request.dtype, request.device)?.broadcast_as(shape)
    }

    fn holds(&self, _: &str) -> bool {
        true
    }
}

/// Every tensor (name, shape) a model constructor asks for, in request order, without loading
/// anything. `build` must only store what it gets (no arithmetic on weights).
pub fn requested_tensors<T>(
    build: impl FnOnce(VarBuilder<'_>) -> candle_core::Result<T>,
) -> candle_core::Result<Vec<(String, Vec<usize>)>> {
    let requested = Requests::default();
    let recorder = Recorder {
        requested: requested.clone(),
    };
    build(var_builder_over(recorder, DType::F32, &Device::Cpu))?;
    let requested = requested
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(requested)
}

/// Compares what a model asks for with what `store` holds: tensors missing from the
/// checkpoint, tensors of another shape or of a dtype that cannot be converted to floats, and
/// checkpoint tensors the model never reads.
pub(crate) fn check_tensors(
    store: &TensorStore,
    requested: &[(String, Vec<usize>)],
    ignored: &[&str],
) -> Result<()> {
    let held: HashMap<&str, (&[usize], Option<&str>)> = store
        .names()
        .filter_map(|name| {
            let (entry, _) = store.entry(name)?;
            let dtype = (!entry.dtype.loads_as_float()).then(|| entry.dtype.name());
            Some((name, (entry.shape.as_slice(), dtype)))
        })
        .collect();
    check_held(
        (store.location(), "its config.json"),
        &held,
        requested,
        ignored,
    )
}

/// As [`check_tensors`], for a state dict read into memory (a PyTorch `.pt` file) whose model
/// is described by `described_by` (say, "args.json's `vae` (f16d32)").
pub(crate) fn check_tensor_map(
    location: &Path,
    described_by: &str,
    tensors: &HashMap<String, Tensor>,
    requested: &[(String, Vec<usize>)],
    ignored: &[&str],
) -> Result<()> {
    let held: HashMap<&str, (&[usize], Option<&str>)> = tensors
        .iter()
        .map(|(name, t)| {
            let dtype = (!t.dtype().is_float()).then(|| t.dtype().as_str());
            (name.as_str(), (t.dims(), dtype))
        })
        .collect();
    check_held((location, described_by), &held, requested, ignored)
}

/// The comparison itself, over each held tensor's shape and, when it is not a float dtype,
/// that dtype's name (for listings known without loading, such as a `.pt` file's).
pub(crate) fn check_held(
    (location, described_by): (&Path, &str),
    held: &HashMap<&str, (&[usize], Option<&str>)>,
    requested: &[(String, Vec<usize>)],
    ignored: &[&str],
) -> Result<()> {
    let mut missing = Vec::new();
    let mut wrong_shape = Vec::new();
    let mut wrong_dtype = Vec::new();
    for (name, shape) in requested {
        let Some((found, dtype)) = held.get(name.as_str()) else {
            missing.push(name.clone());
            continue;
        };
        if found != shape {
            wrong_shape.push(format!("{name}: checkpoint {found:?}, config {shape:?}"));
        }
        if let Some(dtype) = dtype {
            wrong_dtype.push(format!("{name}: {dtype}"));
        }
    }
    let wanted: HashSet<&str> = requested.iter().map(|(n, _)| n.as_str()).collect();
    let mut unexpected: Vec<String> = held
        .keys()
        .copied()
        .filter(|n| !wanted.contains(n))
        .filter(|n| {
            !ignored
                .iter()
                .any(|i| n == i || (i.ends_with('.') && n.starts_with(i)))
        })
        .map(str::to_string)
        .collect();
    unexpected.sort();
    if missing.is_empty()
        && wrong_shape.is_empty()
        && wrong_dtype.is_empty()
        && unexpected.is_empty()
    {
        return Ok(());
    }
    let mut groups = BTreeMap::new();
    groups.insert("missing from the checkpoint", missing);
    groups.insert("shape differs", wrong_shape);
    groups.insert(
        "stored as integers or another non-float dtype (float32, float16 or bfloat16 expected)",
        wrong_dtype,
    );
    groups.insert("in the checkpoint but not used by this model", unexpected);
    let mut details = String::new();
    for (what, items) in groups.iter().filter(|(_, items)| !items.is_empty()) {
        let _ = write!(details, "\n  {} {what}:", items.len());
        for item in items.iter().take(LISTED) {
            let _ = write!(details, "\n    {item}");
        }
        if items.len() > LISTED {
            let _ = write!(details, "\n    … and {} more", items.len() - LISTED);
        }
    }
    Err(WeightsError::Mismatch {
        location: location.to_path_buf(),
        described_by: described_by.to_string(),
        expected: requested.len(),
        found: held.len(),
        details,
    })
}
