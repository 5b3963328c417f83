//! Checking a checkpoint against the tensors a model asks for, before loading any of them, so
//! a mismatched checkpoint fails with a list of what differs instead of at the first tensor.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
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
    let held = |name: &str| {
        store.entry(name).map(|(entry, _)| Held {
            shape: entry.shape.clone(),
            float: entry.dtype.loads_as_float(),
            dtype: entry.dtype.name().to_string(),
        })
    };
    match mismatch_details(requested, held, store.names(), ignored) {
        None => Ok(()),
        Some(details) => Err(WeightsError::Mismatch {
            location: store.location().to_path_buf(),
            expected: requested.len(),
            found: store.len(),
            details,
        }),
    }
}

/// What a checkpoint holds under one name, for [`mismatch_details`].
pub(crate) struct Held {
    pub shape: Vec<usize>,
    /// Whether the stored dtype loads as floats.
    pub float: bool,
    /// The stored dtype's name, for the message.
    pub dtype: String,
}

/// The differences between what a model asks for (`requested`) and a checkpoint (`held` by
/// name; `names`: all it holds), as the indented groups of a mismatch message; `None` when they
/// agree. `ignored`: checkpoint tensors the model knowingly leaves unread (exact names, or
/// prefixes ending in `.`).
pub(crate) fn mismatch_details<'a>(
    requested: &[(String, Vec<usize>)],
    held: impl Fn(&str) -> Option<Held>,
    names: impl Iterator<Item = &'a str>,
    ignored: &[&str],
) -> Option<String> {
    let mut missing = Vec::new();
    let mut wrong_shape = Vec::new();
    let mut wrong_dtype = Vec::new();
    for (name, shape) in requested {
        let Some(entry) = held(name) else {
            missing.push(name.clone());
            continue;
        };
        if &entry.shape != shape {
            wrong_shape.push(format!(
                "{name}: checkpoint {:?}, config {:?}",
                entry.shape, shape
            ));
        }
        if !entry.float {
            wrong_dtype.push(format!("{name}: {}", entry.dtype));
        }
    }
    let wanted: HashSet<&str> = requested.iter().map(|(n, _)| n.as_str()).collect();
    let mut unexpected: Vec<String> = names
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
        return None;
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
    Some(details)
}
