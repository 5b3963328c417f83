//! `hidream-studio info`: what a model folder holds and what is wrong with it, so a user can
//! check a 47 GB download before loading it.

mod gguf;
mod hidit;
mod render;
pub(crate) use render::human_bytes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::models::ComponentKind;
use crate::weights::{self, ComponentSpec, MODEL_INDEX, Snapshot, TensorStore, WeightsError};

/// Components every HiDream pipeline needs in its own folder.
const HIDREAM_REQUIRED: [&str; 9] = [
    "scheduler",
    "text_encoder",
    "text_encoder_2",
    "text_encoder_3",
    "tokenizer",
    "tokenizer_2",
    "tokenizer_3",
    "transformer",
    "vae",
];
/// Llama-3.1-8B-Instruct is named in model_index.json but not shipped in the official
/// repositories: it is loaded from its own folder (`--llama`).
const LLAMA_COMPONENTS: [&str; 2] = ["text_encoder_4", "tokenizer_4"];

/// Files a snapshot's root may hold besides components (model cards, licences, images).
fn is_incidental_root_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name == MODEL_INDEX
        // A bundled model's own settings and training record.
        || name == crate::weights::StudioManifest::FILE
        || lower.starts_with("license")
        || lower.starts_with("notice")
        || lower.starts_with('.')
        || [".md", ".txt", ".png", ".jpg", ".jpeg", ".webp", ".gif"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

#[derive(Debug, Clone, Serialize)]
pub struct FolderReport {
    pub path: PathBuf,
    /// "diffusers pipeline" or "transformers model".
    pub kind: &'static str,
    /// The pipeline or model class.
    pub class_name: String,
    /// The library version that wrote the folder, when it says.
    pub written_by: Option<String>,
    pub components: Vec<ComponentReport>,
    /// What prevents using the folder as it is.
    pub problems: Vec<String>,
    /// What a user should know but is not an error.
    pub notes: Vec<String>,
}

impl FolderReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub(crate) fn total_parameters(&self) -> u64 {
        self.components
            .iter()
            .filter_map(|c| c.weights.as_ref())
            .map(|w| w.parameters)
            .sum()
    }

    pub(crate) fn total_bytes(&self) -> u64 {
        self.components
            .iter()
            .filter_map(|c| c.weights.as_ref())
            .map(|w| w.bytes - w.shared_bytes)
            .sum()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentReport {
    pub name: String,
    pub class: String,
    pub status: ComponentStatus,
    /// For components with weights.
    pub weights: Option<WeightsSummary>,
    /// For tokenizers and schedulers: the files that define them.
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WeightsSummary {
    pub shards: usize,
    pub tensors: usize,
    pub parameters: u64,
    pub bytes: u64,
    /// Of `bytes`, those in storages an earlier component of the same file already holds
    /// (a REPA-E checkpoint whose `model` and `ema` share tensors): counted once in the total.
    #[serde(skip_serializing_if = "is_zero")]
    pub shared_bytes: u64,
    /// Tensor count per stored dtype.
    pub dtypes: BTreeMap<&'static str, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum ComponentStatus {
    Ok,
    /// Named in model_index.json but loaded from elsewhere by design (Llama).
    External,
    Missing,
    Broken(String),
}

/// Inspects a model folder: a diffusers pipeline snapshot (model_index.json) or a single
/// transformers/diffusers model folder (config.json), such as Llama-3.1-8B-Instruct, a GGUF
/// file, a REPA-E experiment folder (Hi-DiT), or a `.pt` / safetensors weights file.
pub fn inspect(path: &Path) -> weights::Result<FolderReport> {
    if path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        return gguf::inspect_gguf(path);
    }
    if hidit::is_experiment(path) {
        return Ok(hidit::inspect_experiment(path));
    }
    if path.is_file() {
        return Ok(hidit::inspect_file(path));
    }
    if path.join(MODEL_INDEX).is_file() {
        return Ok(inspect_pipeline(&Snapshot::open(path)?));
    }
    if path.join("config.json").is_file() {
        return inspect_model_folder(path);
    }
    Err(WeightsError::NotAModelFolder {
        dir: path.to_path_buf(),
    })
}

fn inspect_pipeline(snapshot: &Snapshot) -> FolderReport {
    let index = snapshot.index();
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let is_hidream = index.class_name.starts_with("HiDream");
    if !is_hidream {
        notes.push(format!(
            "{} is not a HiDream pipeline; HiDream Studio runs HiDreamImagePipeline snapshots",
            index.class_name
        ));
    }

    let mut components = Vec::new();
    for (name, spec) in &index.components {
        let report = inspect_component(snapshot.root(), name, spec);
        match &report.status {
            ComponentStatus::Missing => problems.push(format!(
                "{name}/ is missing: model_index.json lists it as {}; the download is \
                 incomplete, fetch the `{name}/` folder again",
                spec.class_or_unknown()
            )),
            ComponentStatus::Broken(why) => problems.push(format!("{name}/: {why}")),
            ComponentStatus::External => notes.push(format!(
                "{name} ({}) is not bundled, as in the official repositories: give the \
                 Llama-3.1-8B-Instruct folder with --llama",
                spec.class_or_unknown()
            )),
            ComponentStatus::Ok => {}
        }
        components.push(report);
    }
    if is_hidream {
        for required in HIDREAM_REQUIRED {
            if !index.components.contains_key(required) {
                problems.push(format!(
                    "model_index.json does not list `{required}`, which every HiDream pipeline \
                     needs"
                ));
            }
        }
    }
    notes.extend(unexpected_entries(snapshot.root(), &index.components));
    FolderReport {
        path: snapshot.root().to_path_buf(),
        kind: "diffusers pipeline",
        class_name: index.class_name.clone(),
        written_by: index
            .diffusers_version
            .as_ref()
            .map(|v| format!("diffusers {v}")),
        components,
        problems,
        notes,
    }
}

fn inspect_component(root: &Path, name: &str, spec: &ComponentSpec) -> ComponentReport {
    let class = spec.class_or_unknown().to_string();
    let dir = root.join(name);
    let mut report = ComponentReport {
        name: name.to_string(),
        class: class.clone(),
        status: ComponentStatus::Ok,
        weights: None,
        files: Vec::new(),
    };
    if !dir.is_dir() {
        report.status = if LLAMA_COMPONENTS.contains(&name) {
            ComponentStatus::External
        } else {
            ComponentStatus::Missing
        };
        return report;
    }
    if name.starts_with("tokenizer") || class.contains("Tokenizer") {
        check_files(&mut report, &dir, tokenizer_files(&class));
    } else if name.starts_with("scheduler") || class.contains("Scheduler") {
        check_files(&mut report, &dir, &[&["scheduler_config.json"]]);
    } else {
        inspect_weights(&mut report, &dir);
    }
    report
}

/// Alternatives of file sets that define a tokenizer of `class` (any one set is enough).
fn tokenizer_files(class: &str) -> &'static [&'static [&'static str]] {
    if class.starts_with("CLIPTokenizer") {
        &[&["vocab.json", "merges.txt"], &["tokenizer.json"]]
    } else if class.starts_with("T5Tokenizer") {
        &[&["spiece.model"], &["tokenizer.json"]]
    } else {
        &[&["tokenizer.json"]]
    }
}

fn check_files(report: &mut ComponentReport, dir: &Path, alternatives: &[&[&str]]) {
    let present = |f: &&str| dir.join(f).is_file();
    if let Some(set) = alternatives.iter().find(|set| set.iter().all(present)) {
        report.files = set.iter().map(std::string::ToString::to_string).collect();
    } else {
        let wanted: Vec<String> = alternatives.iter().map(|set| set.join(" + ")).collect();
        report.status = ComponentStatus::Broken(format!(
            "no {} files: expected {}",
            report.class,
            wanted.join(" or ")
        ));
    }
}

fn inspect_weights(report: &mut ComponentReport, dir: &Path) {
    let config = dir.join("config.json");
    if !config.is_file() {
        report.status = ComponentStatus::Broken("config.json is missing".into());
    } else if let Err(e) = weights::read_json::<serde_json::Value>(&config, "model config") {
        report.status = ComponentStatus::Broken(e.to_string());
    }
    let gguf = ComponentKind::from_class(&report.class)
        .and_then(|kind| kind.gguf_standing_in(dir))
        .map(|(file, _)| file);
    let store = match &gguf {
        Some(file) => {
            let shown = file
                .strip_prefix(dir.parent().unwrap_or(dir))
                .unwrap_or(file);
            report.files.push(shown.display().to_string());
            TensorStore::open_gguf_any(file)
        }
        None => TensorStore::open_dir(dir),
    };
    match store {
        Ok(store) => report.weights = Some(summarise(&store)),
        Err(e) if report.status == ComponentStatus::Ok => {
            report.status = ComponentStatus::Broken(e.to_string());
        }
        Err(_) => {}
    }
    // What loading will do: the config read into the model's own settings, then every tensor
    // name, shape and dtype compared with what the model asks for.
    if report.status == ComponentStatus::Ok
        && let Some(kind) = ComponentKind::from_class(&report.class)
        && let Err(e) = kind.check(dir)
    {
        report.status = ComponentStatus::Broken(e.to_string());
    }
}

// serde's `skip_serializing_if` hands the field over by reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn summarise(store: &TensorStore) -> WeightsSummary {
    WeightsSummary {
        shards: store.shard_count(),
        tensors: store.len(),
        parameters: store.parameter_count(),
        bytes: store.bytes_on_disk(),
        shared_bytes: 0,
        dtypes: store.dtype_counts(),
    }
}

/// Root entries that belong to no listed component.
fn unexpected_entries(root: &Path, components: &BTreeMap<String, ComponentSpec>) -> Vec<String> {
    let Ok(listing) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    // A root GGUF standing in for the transformer's weights is named in the transformer's row.
    let transformer_gguf = TensorStore::gguf_standing_in(&root.join("transformer"));
    let mut notes: Vec<String> = listing
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let is_dir = entry.path().is_dir();
            if name.starts_with('.') || components.contains_key(&name) {
                return None;
            }
            if is_dir {
                Some(format!(
                    "unexpected folder {name}/: model_index.json does not name it, so it is \
                     ignored"
                ))
            } else if transformer_gguf.as_ref() == Some(&entry.path()) {
                None
            } else if !is_incidental_root_file(&name) {
                Some(format!("unexpected file {name}: it is ignored"))
            } else {
                None
            }
        })
        .collect();
    notes.sort();
    notes
}

/// A single model folder such as Llama-3.1-8B-Instruct: config.json, weights, maybe a tokenizer.
fn inspect_model_folder(dir: &Path) -> weights::Result<FolderReport> {
    let config: serde_json::Value = weights::read_json(&dir.join("config.json"), "model config")?;
    let class_name = config
        .get("architectures")
        .and_then(|a| a.get(0))
        .or_else(|| config.get("_class_name"))
        .and_then(|v| v.as_str())
        .unwrap_or("(unknown model class)")
        .to_string();
    let written_by = ["transformers_version", "_diffusers_version"]
        .iter()
        .find_map(|key| {
            let version = config.get(*key)?.as_str()?;
            Some(format!(
                "{} {version}",
                key.trim_start_matches('_').trim_end_matches("_version")
            ))
        });
    let mut model = ComponentReport {
        name: "(model)".into(),
        class: class_name.clone(),
        status: ComponentStatus::Ok,
        weights: None,
        files: Vec::new(),
    };
    inspect_weights(&mut model, dir);
    let mut problems = Vec::new();
    if let ComponentStatus::Broken(why) = &model.status {
        problems.push(why.clone());
    }
    let mut components = vec![model];
    if dir.join("tokenizer.json").is_file() || dir.join("tokenizer_config.json").is_file() {
        let mut tokenizer = ComponentReport {
            name: "(tokenizer)".into(),
            class: "tokenizer".into(),
            status: ComponentStatus::Ok,
            weights: None,
            files: Vec::new(),
        };
        check_files(&mut tokenizer, dir, &[&["tokenizer.json"]]);
        if let ComponentStatus::Broken(why) = &tokenizer.status {
            problems.push(format!("tokenizer: {why}"));
        }
        components.push(tokenizer);
    }
    Ok(FolderReport {
        path: dir.to_path_buf(),
        kind: "transformers model",
        class_name,
        written_by,
        components,
        problems,
        notes: Vec::new(),
    })
}
