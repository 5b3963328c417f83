//! What the studio remembers between runs: the model folders, compute choices and panel
//! widths, as JSON in the config folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Mode;
use super::editor::Editor;
use super::layout::PanelWidths;
use crate::pipelines::{ComputeDType, DeviceChoice, Preset};
use crate::store::write_atomically;
use crate::weights::HubCache;

/// Where the studio keeps its files.
#[derive(Debug, Clone)]
pub struct StudioPaths {
    /// `config.json`.
    pub config_dir: PathBuf,
    /// The history database, images and thumbnails, brushed masks.
    pub data_dir: PathBuf,
}

impl StudioPaths {
    /// The platform's folders (`~/.config/hidream-studio`, `~/.local/share/hidream-studio` on
    /// Linux).
    pub fn platform() -> Option<Self> {
        let dirs = directories::ProjectDirs::from("ai", "HiDream Studio", "hidream-studio")?;
        Some(Self {
            config_dir: dirs.config_dir().to_path_buf(),
            data_dir: dirs.data_dir().to_path_buf(),
        })
    }

    pub(crate) fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.json")
    }
}

/// The folders of every model the studio can use; `None` is "not chosen".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelFolders {
    pub i1_full: Option<PathBuf>,
    pub i1_dev: Option<PathBuf>,
    pub i1_fast: Option<PathBuf>,
    pub e1_full: Option<PathBuf>,
    pub e1_1: Option<PathBuf>,
    pub llama: Option<PathBuf>,
    /// GGUF transformers used instead of the I1 snapshots' own weights (quantised files).
    pub i1_full_gguf: Option<PathBuf>,
    pub i1_dev_gguf: Option<PathBuf>,
    pub i1_fast_gguf: Option<PathBuf>,
    /// Class mode's Hi-DiT model: a REPA-E experiment folder (args.json, checkpoints/).
    pub hidit: Option<PathBuf>,
    /// Its autoencoder; unset: the one args.json's `vae_ckpt` names, else the checkpoint's own.
    pub hidit_vae: Option<PathBuf>,
    /// Its latent statistics; unset: the `-latents-stats` file beside the autoencoder.
    pub hidit_latents_stats: Option<PathBuf>,
    /// Chat mode's agent: a Llama chat model folder. Bundled: `shapes-agent`, named even when
    /// it is missing so the chat can say where it belongs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<PathBuf>,
}

/// One of the files of class mode's Hi-DiT model, for the models view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HiditFile {
    /// The experiment folder.
    Folder,
    Vae,
    LatentsStats,
}

/// One configurable model slot, for the models view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelSlot {
    I1Full,
    I1Dev,
    I1Fast,
    Editor(Editor),
    Llama,
}

impl ModelSlot {
    pub const ALL: [ModelSlot; 6] = [
        Self::I1Full,
        Self::I1Dev,
        Self::I1Fast,
        Self::Editor(Editor::E1Full),
        Self::Editor(Editor::E1_1),
        Self::Llama,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::I1Full => "HiDream-I1-Full",
            Self::I1Dev => "HiDream-I1-Dev",
            Self::I1Fast => "HiDream-I1-Fast",
            Self::Editor(editor) => editor.label(),
            Self::Llama => "Llama-3.1-8B-Instruct",
        }
    }

    /// The Hugging Face repository the slot's weights come from.
    pub fn repo_id(self) -> &'static str {
        match self {
            Self::I1Full => "HiDream-ai/HiDream-I1-Full",
            Self::I1Dev => "HiDream-ai/HiDream-I1-Dev",
            Self::I1Fast => "HiDream-ai/HiDream-I1-Fast",
            Self::Editor(editor) => editor.repo_id(),
            Self::Llama => "meta-llama/Llama-3.1-8B-Instruct",
        }
    }

    pub(crate) fn for_preset(preset: Preset) -> Self {
        match preset {
            Preset::Full => Self::I1Full,
            Preset::Dev => Self::I1Dev,
            Preset::Fast => Self::I1Fast,
        }
    }
}

impl ModelFolders {
    pub fn get(&self, slot: ModelSlot) -> Option<&Path> {
        match slot {
            ModelSlot::I1Full => self.i1_full.as_deref(),
            ModelSlot::I1Dev => self.i1_dev.as_deref(),
            ModelSlot::I1Fast => self.i1_fast.as_deref(),
            ModelSlot::Editor(Editor::E1Full) => self.e1_full.as_deref(),
            ModelSlot::Editor(Editor::E1_1) => self.e1_1.as_deref(),
            ModelSlot::Llama => self.llama.as_deref(),
        }
    }

    pub fn set(&mut self, slot: ModelSlot, folder: Option<PathBuf>) {
        let field = match slot {
            ModelSlot::I1Full => &mut self.i1_full,
            ModelSlot::I1Dev => &mut self.i1_dev,
            ModelSlot::I1Fast => &mut self.i1_fast,
            ModelSlot::Editor(Editor::E1Full) => &mut self.e1_full,
            ModelSlot::Editor(Editor::E1_1) => &mut self.e1_1,
            ModelSlot::Llama => &mut self.llama,
        };
        *field = folder;
    }

    /// The GGUF transformer chosen for a slot's snapshot (the I1 slots take one).
    pub fn transformer_file(&self, slot: ModelSlot) -> Option<&Path> {
        match slot {
            ModelSlot::I1Full => self.i1_full_gguf.as_deref(),
            ModelSlot::I1Dev => self.i1_dev_gguf.as_deref(),
            ModelSlot::I1Fast => self.i1_fast_gguf.as_deref(),
            ModelSlot::Editor(_) | ModelSlot::Llama => None,
        }
    }

    pub fn set_transformer_file(&mut self, slot: ModelSlot, file: Option<PathBuf>) {
        let field = match slot {
            ModelSlot::I1Full => &mut self.i1_full_gguf,
            ModelSlot::I1Dev => &mut self.i1_dev_gguf,
            ModelSlot::I1Fast => &mut self.i1_fast_gguf,
            ModelSlot::Editor(_) | ModelSlot::Llama => return,
        };
        *field = file;
    }

    /// Whether any image model is chosen (otherwise the first-run screen shows).
    pub(crate) fn any_image_model(&self) -> bool {
        self.hidit.is_some()
            || ModelSlot::ALL
                .iter()
                .any(|&s| s != ModelSlot::Llama && self.get(s).is_some())
    }

    pub fn hidit_file(&self, file: HiditFile) -> Option<&Path> {
        match file {
            HiditFile::Folder => self.hidit.as_deref(),
            HiditFile::Vae => self.hidit_vae.as_deref(),
            HiditFile::LatentsStats => self.hidit_latents_stats.as_deref(),
        }
    }

    /// Sets one of the Hi-DiT files; a new folder forgets the files chosen for the old one.
    pub fn set_hidit_file(&mut self, file: HiditFile, path: Option<PathBuf>) {
        match file {
            HiditFile::Folder => {
                if path != self.hidit {
                    self.hidit_vae = None;
                    self.hidit_latents_stats = None;
                }
                self.hidit = path;
            }
            HiditFile::Vae => self.hidit_vae = path,
            HiditFile::LatentsStats => self.hidit_latents_stats = path,
        }
    }

    /// The Shapes models bundled with the studio, in the slots they stand in for.
    pub fn bundled() -> Self {
        let get = |name: &str| crate::weights::bundled_model(name);
        Self {
            i1_full: get("shapes-i1-full"),
            i1_dev: get("shapes-i1-dev"),
            i1_fast: get("shapes-i1-fast"),
            e1_full: None,
            e1_1: get("shapes-e1.1"),
            hidit: crate::weights::bundled_experiment("shapes-hidit"),
            agent: crate::weights::bundled_folder("shapes-agent"),
            ..Self::default()
        }
    }

    /// Fills empty slots from the Hugging Face cache; returns the slots it filled.
    pub(crate) fn fill_from_cache(&mut self, cache: &HubCache) -> Vec<ModelSlot> {
        let mut filled = Vec::new();
        for slot in ModelSlot::ALL {
            if self.get(slot).is_some() {
                continue;
            }
            if let Ok(snapshot) = cache.snapshot(slot.repo_id(), None) {
                self.set(slot, Some(snapshot));
                filled.push(slot);
            }
        }
        filled
    }
}

/// Everything in `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StudioConfig {
    pub models: ModelFolders,
    pub device: DeviceChoice,
    /// Default: f32 on the CPU, bf16 on CUDA.
    pub dtype: Option<ComputeDType>,
    /// The models' native resolution (1024 for the released ones; small models use less).
    pub base_resolution: u32,
    /// The side panels' widths as the user left them.
    pub panels: PanelWidths,
    /// Modes that use the bundled model though a folder is set for them (the top bar's
    /// switcher): the folder stays set, so switching back needs no new choice.
    pub use_bundled: UseBundled,
}

/// Per mode, whether the bundled model is used rather than the configured folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UseBundled {
    pub generate: bool,
    pub edit: bool,
    pub class: bool,
}

impl UseBundled {
    pub fn get(&self, mode: Mode) -> bool {
        match mode {
            Mode::Generate => self.generate,
            Mode::Edit => self.edit,
            Mode::Class => self.class,
            // The chat's agent is a folder in config.json or the bundled one, never both.
            Mode::Chat => false,
        }
    }

    pub fn set(&mut self, mode: Mode, bundled: bool) {
        let field = match mode {
            Mode::Generate => &mut self.generate,
            Mode::Edit => &mut self.edit,
            Mode::Class => &mut self.class,
            Mode::Chat => return,
        };
        *field = bundled;
    }
}

impl Default for StudioConfig {
    fn default() -> Self {
        Self {
            models: ModelFolders::default(),
            device: if cfg!(feature = "cuda") {
                DeviceChoice::Cuda
            } else {
                DeviceChoice::Cpu
            },
            dtype: None,
            base_resolution: 1024,
            panels: PanelWidths::default(),
            use_bundled: UseBundled::default(),
        }
    }
}

impl StudioConfig {
    /// The folders jobs use: the configured ones, less those of modes switched to a bundled
    /// model that exists (their empty slots then fall back to it, as on a fresh install).
    pub fn models_in_use(&self, bundled: &ModelFolders) -> ModelFolders {
        let mut models = self.models.clone();
        let ub = self.use_bundled;
        if ub.generate {
            for slot in [ModelSlot::I1Full, ModelSlot::I1Dev, ModelSlot::I1Fast] {
                if bundled.get(slot).is_some() {
                    models.set(slot, None);
                    models.set_transformer_file(slot, None);
                }
            }
        }
        if ub.edit {
            for editor in [Editor::E1Full, Editor::E1_1] {
                if bundled.get(ModelSlot::Editor(editor)).is_some() {
                    models.set(ModelSlot::Editor(editor), None);
                }
            }
        }
        if ub.class && bundled.hidit.is_some() {
            models.set_hidit_file(HiditFile::Folder, None);
        }
        models
    }

    pub fn dtype(&self) -> ComputeDType {
        self.dtype.unwrap_or(match self.device {
            DeviceChoice::Cpu => ComputeDType::F32,
            DeviceChoice::Cuda => ComputeDType::Bf16,
        })
    }

    /// Reads the config; a missing file is the default. A damaged file is kept aside as
    /// `config.json.damaged` (never overwritten silently) and the default is used; the message
    /// says so.
    pub fn load(paths: &StudioPaths) -> (Self, Option<String>) {
        let path = paths.config_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Self::default(), None),
            Err(e) => {
                return (
                    Self::default(),
                    Some(format!(
                        "could not read the settings file {}: {e}; using defaults",
                        path.display()
                    )),
                );
            }
        };
        match serde_json::from_str(&text) {
            Ok(config) => (config, None),
            Err(e) => {
                let aside = path.with_extension("json.damaged");
                let kept = std::fs::rename(&path, &aside).is_ok();
                let where_ = if kept {
                    format!("it was kept as {}", aside.display())
                } else {
                    "it was left in place".to_string()
                };
                (
                    Self::default(),
                    Some(format!(
                        "the settings file {} is damaged ({e}); {where_} and the defaults are used",
                        path.display()
                    )),
                )
            }
        }
    }

    pub fn save(&self, paths: &StudioPaths) -> anyhow::Result<()> {
        let path = paths.config_file();
        std::fs::create_dir_all(&paths.config_dir).map_err(|e| {
            anyhow::anyhow!(
                "could not create the settings folder {}: {e}",
                paths.config_dir.display()
            )
        })?;
        let json = serde_json::to_string_pretty(self)?;
        write_atomically(&path, json.as_bytes())
            .map_err(|e| anyhow::anyhow!("could not save the settings to {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_config_is_kept_aside_and_defaults_used() {
        let dir = tempfile::tempdir().unwrap();
        let paths = StudioPaths {
            config_dir: dir.path().to_path_buf(),
            data_dir: dir.path().join("data"),
        };
        std::fs::write(paths.config_file(), "{ not json").unwrap();
        let (config, message) = StudioConfig::load(&paths);
        assert_eq!(config, StudioConfig::default());
        assert!(message.unwrap().contains("damaged"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("config.json.damaged")).unwrap(),
            "{ not json"
        );
    }

    #[test]
    fn config_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let paths = StudioPaths {
            config_dir: dir.path().join("cfg"),
            data_dir: dir.path().join("data"),
        };
        let mut config = StudioConfig::default();
        config.models.set(ModelSlot::I1Dev, Some("/m/dev".into()));
        config.base_resolution = 64;
        config.save(&paths).unwrap();
        assert_eq!(StudioConfig::load(&paths), (config, None));
    }

    #[test]
    fn a_mode_switched_to_bundled_leaves_only_its_own_slots_empty() {
        let mut config = StudioConfig::default();
        config.models.set(ModelSlot::I1Full, Some("/m/full".into()));
        config.models.set(ModelSlot::I1Dev, Some("/m/dev".into()));
        config.models.i1_full_gguf = Some("/m/full.gguf".into());
        config
            .models
            .set(ModelSlot::Editor(Editor::E1_1), Some("/m/e11".into()));
        config.use_bundled.set(Mode::Generate, true);
        // Only Full has a bundled stand-in: Dev keeps its folder.
        let bundled = ModelFolders {
            i1_full: Some("/b/full".into()),
            e1_1: Some("/b/e11".into()),
            ..ModelFolders::default()
        };
        let in_use = config.models_in_use(&bundled);
        assert_eq!(in_use.get(ModelSlot::I1Full), None);
        assert_eq!(in_use.transformer_file(ModelSlot::I1Full), None);
        assert_eq!(in_use.get(ModelSlot::I1Dev), Some(Path::new("/m/dev")));
        assert_eq!(
            in_use.get(ModelSlot::Editor(Editor::E1_1)),
            Some(Path::new("/m/e11")),
            "edit mode was not switched"
        );
        // The configuration itself keeps the folders, for switching back.
        assert_eq!(
            config.models.get(ModelSlot::I1Full),
            Some(Path::new("/m/full"))
        );
    }

    #[test]
    fn editor_slots_keep_their_config_keys() {
        let mut folders = ModelFolders::default();
        folders.set(ModelSlot::Editor(Editor::E1_1), Some("/m/e11".into()));
        folders.set(ModelSlot::Editor(Editor::E1Full), Some("/m/e1full".into()));
        assert_eq!(folders.e1_1.as_deref(), Some(Path::new("/m/e11")));
        assert_eq!(folders.e1_full.as_deref(), Some(Path::new("/m/e1full")));
        assert_eq!(
            ModelSlot::Editor(Editor::E1_1).label(),
            "HiDream-E1.1",
            "the models view names the slot as before"
        );
    }
}
