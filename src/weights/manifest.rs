//! `studio.json`: what a model bundled with the studio adds to the real snapshot layout (the
//! toy scale's own settings and its training record). Real snapshots have none.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Result, read_json};

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StudioManifest {
    pub name: String,
    /// The side of the square whose area images are made at.
    pub base_resolution: u32,
    /// Tokens each text encoder sees (the released models use 128).
    pub max_sequence_length: usize,
    /// The sampling values the model was made for, where the preset's (made for the released
    /// models) do not suit it.
    #[serde(default)]
    pub defaults: Option<ManifestDefaults>,
    /// Prompts (edit instructions, for an editor) the model can draw, in its training
    /// captions' words: the studio's placeholders and "Surprise me" draw from them.
    #[serde(default)]
    pub examples: Vec<String>,
    /// The Llama folder, relative to the snapshot.
    #[serde(default)]
    pub llama: Option<PathBuf>,
    /// How the model was trained, as recorded by the trainer.
    #[serde(default)]
    pub training: serde_json::Value,
    /// What ShapesEval measured on the shipped model (its JSON line).
    #[serde(default)]
    pub scores: serde_json::Value,
    /// The transformer's GGUF (standing in for its safetensors) is dequantised once at load
    /// rather than layer by layer at each use: the bundled models are stored as Q8_0 to keep
    /// the download small, and at their size dequantising every step would cost more than the
    /// step's matrix products.
    #[serde(default)]
    pub dequantize_at_load: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct ManifestDefaults {
    pub steps: usize,
    pub guidance: f64,
    pub shift: f64,
    /// Editing models: the image guidance of the three-way guidance.
    #[serde(default)]
    pub image_guidance: Option<f64>,
    /// Editing models: the share of steps refined with text alone. The Shapes editor has none:
    /// its instructions ("remove the red circle") are no descriptions to draw from.
    #[serde(default)]
    pub refine_strength: Option<f64>,
}

impl StudioManifest {
    pub const FILE: &'static str = "studio.json";

    /// The snapshot's manifest, `None` when it has none (every real snapshot).
    pub fn read(snapshot: &Path) -> Result<Option<Self>> {
        let path = snapshot.join(Self::FILE);
        if !path.is_file() {
            return Ok(None);
        }
        read_json(&path, "bundled model manifest").map(Some)
    }

    pub(crate) fn llama_dir(&self, snapshot: &Path) -> Option<PathBuf> {
        self.llama.as_ref().map(|rel| snapshot.join(rel))
    }
}

/// The folder of the models bundled with the studio: `$HIDREAM_STUDIO_MODELS`, else an
/// `assets/models` beside the executable or up to three folders above it (an installed copy, a
/// `cargo run`), else the source tree's.
pub(crate) fn bundled_models_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HIDREAM_STUDIO_MODELS") {
        return Some(PathBuf::from(dir));
    }
    let beside_exe = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .skip(1)
            .take(4)
            .map(|dir| dir.join("assets").join("models"))
            .find(|dir| dir.is_dir())
    });
    beside_exe.or_else(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets")
            .join("models");
        source.is_dir().then_some(source)
    })
}

/// The bundled snapshot of one Shapes model (`shapes-i1-full`, `shapes-e1.1`, ...), if present.
pub fn bundled_model(name: &str) -> Option<PathBuf> {
    let dir = bundled_models_dir()?.join(name);
    dir.join(super::MODEL_INDEX).is_file().then_some(dir)
}

/// Where a bundled model named `name` belongs, whether or not it is there (so a missing one
/// can be named).
pub fn bundled_folder(name: &str) -> Option<PathBuf> {
    bundled_models_dir().map(|dir| dir.join(name))
}

/// The bundled chat model `name` (`shapes-agent`), if present: a Hugging Face causal-LM folder,
/// recognised by its config.json.
pub fn bundled_chat_model(name: &str) -> Option<PathBuf> {
    let dir = bundled_folder(name)?;
    dir.join("config.json").is_file().then_some(dir)
}

/// The bundled experiment folder of a Hi-DiT model (`shapes-hidit`), if present: REPA-E's
/// layout, recognised by its args.json.
pub fn bundled_experiment(name: &str) -> Option<PathBuf> {
    let dir = bundled_models_dir()?.join(name);
    dir.join("args.json").is_file().then_some(dir)
}
