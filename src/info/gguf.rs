//! `info` on a GGUF file: its architecture, its tensors grouped by ggml type (count,
//! parameters, bytes) and what it can run on.

use std::collections::BTreeMap;
use std::path::Path;

use super::{ComponentReport, ComponentStatus, FolderReport, WeightsSummary};
use crate::models::hidream::GGUF_ARCHITECTURE;
use crate::weights::{self, StoredDtype, TensorStore};

/// Reads a GGUF file's header (not its tensors) and describes it.
pub(super) fn inspect_gguf(path: &Path) -> weights::Result<FolderReport> {
    // Any architecture opens here: `info` describes a foreign file rather than refusing it.
    let store = TensorStore::open_gguf_any(path)?;
    let architecture = store.gguf_architecture().map(str::to_string);
    let mut groups: BTreeMap<&'static str, WeightsSummary> = BTreeMap::new();
    let mut quantised = false;
    for name in store.names() {
        let Some((entry, _)) = store.entry(name) else {
            continue;
        };
        let StoredDtype::Ggml(ty) = entry.dtype else {
            continue;
        };
        quantised |= ty.is_quantized();
        let group = groups.entry(ty.name).or_insert_with(|| WeightsSummary {
            shards: 1,
            tensors: 0,
            parameters: 0,
            bytes: 0,
            shared_bytes: 0,
            dtypes: BTreeMap::from([(ty.name, 0)]),
        });
        group.tensors += 1;
        group.parameters += entry.numel() as u64;
        group.bytes += entry.data.len() as u64;
        *group.dtypes.entry(ty.name).or_insert(0) += 1;
    }
    let components = groups
        .into_iter()
        .map(|(ty, summary)| ComponentReport {
            name: format!("{ty} tensors"),
            class: ty.to_string(),
            status: ComponentStatus::Ok,
            weights: Some(summary),
            files: Vec::new(),
        })
        .collect();
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    match architecture.as_deref() {
        Some(GGUF_ARCHITECTURE) => notes.push(
            "a HiDream transformer: use it with `generate --model SNAPSHOT --transformer FILE` \
             (the snapshot gives its config.json, text encoders and VAE)"
                .to_string(),
        ),
        Some(other) => problems.push(format!(
            "a GGUF of a `{other}` model: HiDream Studio loads `{GGUF_ARCHITECTURE}` \
             transformers"
        )),
        None => notes.push(
            "the file names no architecture; loading checks its tensors against the model"
                .to_string(),
        ),
    }
    if quantised {
        notes.push(
            "runs on the CPU and on CUDA: quantised layers stay quantised in memory and are \
             dequantised to the compute dtype one layer at a time as they run"
                .to_string(),
        );
    }
    Ok(FolderReport {
        path: path.to_path_buf(),
        kind: "GGUF file",
        class_name: architecture.unwrap_or_else(|| "(no architecture)".to_string()),
        written_by: None,
        components,
        problems,
        notes,
    })
}
