//! A diffusers pipeline snapshot: `model_index.json` plus one folder per component.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::error::{Result, WeightsError};
use super::json::read_json;
use super::tensor_store::TensorStore;

pub(crate) const MODEL_INDEX: &str = "model_index.json";

/// One entry of `model_index.json`: `"vae": ["diffusers", "AutoencoderKL"]`. Optional components
/// are written as `[null, null]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSpec {
    pub library: Option<String>,
    pub class: Option<String>,
}

impl ComponentSpec {
    pub(crate) fn class_or_unknown(&self) -> &str {
        self.class.as_deref().unwrap_or("(none)")
    }
}

/// `model_index.json`.
#[derive(Debug, Clone)]
pub struct ModelIndex {
    pub class_name: String,
    pub diffusers_version: Option<String>,
    pub components: BTreeMap<String, ComponentSpec>,
}

impl ModelIndex {
    pub fn read(path: &Path) -> Result<Self> {
        let value: serde_json::Value = read_json(path, "diffusers model index")?;
        let object = value.as_object().ok_or_else(|| WeightsError::JsonField {
            path: path.to_path_buf(),
            field: "(top level)".into(),
            problem: "must be a JSON object".into(),
        })?;
        let class_name = object
            .get("_class_name")
            .and_then(|v| v.as_str())
            .ok_or_else(|| WeightsError::JsonField {
                path: path.to_path_buf(),
                field: "_class_name".into(),
                problem: "is missing; every diffusers model_index.json names its pipeline class"
                    .into(),
            })?
            .to_string();
        let diffusers_version = object
            .get("_diffusers_version")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let mut components = BTreeMap::new();
        for (key, value) in object {
            if key.starts_with('_') {
                continue;
            }
            // Pipeline-level settings (booleans, numbers) share the file with components; only
            // two-element [library, class] arrays are components.
            let Some(pair) = value.as_array().filter(|a| a.len() == 2) else {
                continue;
            };
            components.insert(
                key.clone(),
                ComponentSpec {
                    library: pair[0].as_str().map(str::to_string),
                    class: pair[1].as_str().map(str::to_string),
                },
            );
        }
        Ok(Self {
            class_name,
            diffusers_version,
            components,
        })
    }
}

/// An opened pipeline snapshot folder.
#[derive(Debug, Clone)]
pub struct Snapshot {
    root: PathBuf,
    index: ModelIndex,
}

impl Snapshot {
    pub fn open(root: &Path) -> Result<Self> {
        let index_path = root.join(MODEL_INDEX);
        if !index_path.is_file() {
            return Err(WeightsError::NotAModelFolder {
                dir: root.to_path_buf(),
            });
        }
        Ok(Self {
            root: root.to_path_buf(),
            index: ModelIndex::read(&index_path)?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn index(&self) -> &ModelIndex {
        &self.index
    }

    /// The folder of a component that model_index.json lists and that is present on disk.
    pub fn component_dir(&self, component: &str) -> Result<PathBuf> {
        let spec = self.index.components.get(component).ok_or_else(|| {
            WeightsError::ComponentNotListed {
                snapshot: self.root.clone(),
                component: component.to_string(),
            }
        })?;
        let dir = self.root.join(component);
        if !dir.is_dir() {
            return Err(WeightsError::ComponentMissing {
                snapshot: self.root.clone(),
                component: component.to_string(),
                class: spec.class_or_unknown().to_string(),
                expected: dir,
            });
        }
        Ok(dir)
    }

    /// A component's `config.json`, parsed into the model's config type.
    pub fn component_config<T: DeserializeOwned>(&self, component: &str) -> Result<T> {
        read_json(
            &self.component_dir(component)?.join("config.json"),
            "model config",
        )
    }

    /// A component's weights, memory-mapped.
    pub fn component_weights(&self, component: &str) -> Result<TensorStore> {
        TensorStore::open_dir(&self.component_dir(component)?)
    }
}
