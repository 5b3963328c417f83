//! The models view: which folder each model comes from, whether it is usable, and how to fix
//! it when it is not.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use egui::{Color32, DragValue, RichText, Ui};

use super::actions::Action;
use super::class_model::ClassModelState;
use super::config::{HiditFile, ModelFolders, ModelSlot, StudioConfig};
use super::downloads::Downloads;
use crate::hub::HubClient;
use crate::models::ComponentKind;
use crate::pipelines::edit::recognise;
use crate::pipelines::{ComputeDType, DeviceChoice};
use crate::weights::{HubCache, Snapshot};

/// Whether a slot's folder can be used.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SlotStatus {
    NotSet,
    Ready,
    Problem(String),
}

pub(crate) struct ModelsView {
    /// Checked once per (slot, folder, base or GGUF transformer) and kept: checking reads
    /// files.
    checked: HashMap<(ModelSlot, PathBuf, Option<PathBuf>), SlotStatus>,
    downloads: Downloads,
}

impl ModelsView {
    pub fn new(hub: HubClient) -> Self {
        Self {
            checked: HashMap::new(),
            downloads: Downloads::new(hub),
        }
    }

    pub fn status(&mut self, slot: ModelSlot, config: &StudioConfig) -> SlotStatus {
        let Some(folder) = config.models.get(slot) else {
            return SlotStatus::NotSet;
        };
        let base = matches!(slot, ModelSlot::Editor(_))
            .then(|| config.models.i1_full.clone())
            .flatten();
        let gguf = config.models.transformer_file(slot).map(Path::to_path_buf);
        let other = base.clone().or_else(|| gguf.clone());
        self.checked
            .entry((slot, folder.to_path_buf(), other))
            .or_insert_with(|| match check(slot, folder, base.as_deref()) {
                SlotStatus::Ready => gguf.map_or(SlotStatus::Ready, |g| check_gguf(folder, &g)),
                status => status,
            })
            .clone()
    }

    pub(crate) fn downloads_mut(&mut self) -> &mut Downloads {
        &mut self.downloads
    }

    /// Forgets the checks, so changed folders are looked at again.
    pub(crate) fn recheck(&mut self) {
        self.checked.clear();
    }

    pub fn ui(
        &mut self,
        ui: &mut Ui,
        config: &mut StudioConfig,
        bundled: &ModelFolders,
        class_model: &ClassModelState,
        cache: Option<&HubCache>,
    ) -> Option<Action> {
        let mut action = None;
        ui.label(
            "Choose the folder of each model you have downloaded. Every HiDream model also \
             needs Llama-3.1-8B-Instruct.",
        );
        ui.add_space(6.0);
        for slot in ModelSlot::ALL {
            ui.group(|ui| {
                ui.set_width(ui.available_width());
                ui.horizontal(|ui| {
                    ui.label(RichText::new(slot.label()).strong());
                    if ui.button("Choose…").clicked() {
                        action = Some(Action::ChooseModel(slot));
                    }
                    if config.models.get(slot).is_some() && ui.button("Clear").clicked() {
                        action = Some(Action::ClearModel(slot));
                    }
                });
                match config.models.get(slot) {
                    Some(folder) => ui.monospace(folder.display().to_string()),
                    None => ui.weak("not set"),
                };
                if let Some(chosen) = transformer_file_ui(ui, slot, config) {
                    action = Some(chosen);
                }
                match self.status(slot, config) {
                    SlotStatus::Ready => {
                        ui.colored_label(Color32::from_rgb(80, 170, 90), "ready");
                    }
                    SlotStatus::Problem(problem) => {
                        ui.colored_label(ui.visuals().error_fg_color, problem);
                    }
                    SlotStatus::NotSet if bundled.get(slot).is_some() => {
                        ui.weak(
                            "using the bundled Shapes model: a small model of the same \
                             architecture, trained on pictures of coloured shapes",
                        );
                    }
                    SlotStatus::NotSet => {
                        ui.weak(missing_hint(slot));
                    }
                }
            });
        }
        if let Some(chosen) = hidit_ui(ui, config, bundled, class_model) {
            action = Some(chosen);
        }
        ui.add_space(6.0);
        if cache.is_some()
            && ui
                .button("Find in the Hugging Face cache")
                .on_hover_text("Fills every empty slot whose model is in the local cache")
                .clicked()
        {
            action = Some(Action::FindInCache);
        }
        ui.add_space(10.0);
        ui.horizontal(|ui| {
            ui.label("Device");
            let mut changed = ui
                .selectable_value(&mut config.device, DeviceChoice::Cpu, "CPU")
                .changed();
            let cuda = ui.add_enabled(
                cfg!(feature = "cuda"),
                egui::Button::selectable(config.device == DeviceChoice::Cuda, "CUDA"),
            );
            if cuda.clicked() {
                config.device = DeviceChoice::Cuda;
                changed = true;
            }
            cuda.on_disabled_hover_text(
                "this build has no CUDA support (build with --features cuda)",
            );
            ui.separator();
            ui.label("Precision");
            for (dtype, name) in [
                (None, "automatic"),
                (Some(ComputeDType::F32), "f32"),
                (Some(ComputeDType::Bf16), "bf16"),
                (Some(ComputeDType::F16), "f16"),
            ] {
                changed |= ui
                    .selectable_value(&mut config.dtype, dtype, name)
                    .changed();
            }
            if changed {
                action = Some(Action::ModelSettingsChanged);
            }
        });
        ui.horizontal(|ui| {
            let label = ui.label("Base resolution");
            if ui
                .add(
                    DragValue::new(&mut config.base_resolution)
                        .range(16..=4096)
                        .suffix(" px"),
                )
                .labelled_by(label.id)
                .on_hover_text("The models' native size: 1024 for the released HiDream models")
                .changed()
            {
                action = Some(Action::ModelSettingsChanged);
            }
        });
        ui.add_space(10.0);
        ui.separator();
        if let Some(done) = self.downloads.ui(ui, cache) {
            action = Some(done);
        }
        action
    }
}

/// Class mode's model: a Hi-DiT (or REPA-E) experiment folder, and the autoencoder and latent
/// statistics when the defaults do not find them.
fn hidit_ui(
    ui: &mut Ui,
    config: &StudioConfig,
    bundled: &ModelFolders,
    model: &ClassModelState,
) -> Option<Action> {
    let mut action = None;
    let models = &config.models;
    ui.group(|ui| {
        ui.set_width(ui.available_width());
        ui.horizontal(|ui| {
            ui.label(RichText::new("Hi-DiT (class to image)").strong());
            if ui.button("Choose experiment folder…").clicked() {
                action = Some(Action::ChooseHidit(HiditFile::Folder));
            }
            if models.hidit.is_some() && ui.button("Clear").clicked() {
                action = Some(Action::ClearHidit(HiditFile::Folder));
            }
        });
        match &models.hidit {
            Some(folder) => ui.monospace(folder.display().to_string()),
            None if bundled.hidit.is_some() => {
                ui.weak("using the bundled Shapes Hi-DiT: a small model trained on pictures of coloured shapes")
            }
            None => ui.weak(
                "not set: choose a REPA-E or Hi-DiT experiment folder (args.json and \
                 checkpoints/) to draw images of its classes",
            ),
        };
        if models.hidit.is_some() {
            for (file, what, default, choose) in [
                (
                    HiditFile::Vae,
                    "Autoencoder",
                    "default: args.json's vae_ckpt, else the checkpoint's own",
                    "Choose VAE file…",
                ),
                (
                    HiditFile::LatentsStats,
                    "Latent statistics",
                    "default: the -latents-stats file beside the autoencoder",
                    "Choose statistics file…",
                ),
            ] {
                ui.horizontal(|ui| {
                    ui.label(what);
                    match models.hidit_file(file) {
                        Some(path) => {
                            ui.monospace(path.display().to_string());
                            if ui.button("Use default").clicked() {
                                action = Some(Action::ClearHidit(file));
                            }
                        }
                        None => {
                            ui.weak(default);
                        }
                    }
                    if ui.button(choose).clicked() {
                        action = Some(Action::ChooseHidit(file));
                    }
                });
            }
        }
        match model {
            ClassModelState::Ready(model) => {
                ui.colored_label(
                    Color32::from_rgb(80, 170, 90),
                    format!("ready: {}", model.summary),
                );
            }
            ClassModelState::Problem(problem) => {
                ui.colored_label(ui.visuals().error_fg_color, problem);
            }
            ClassModelState::NotSet => {}
        }
    });
    action
}

fn missing_hint(slot: ModelSlot) -> String {
    let repo = slot.repo_id();
    match slot {
        ModelSlot::Llama => format!(
            "download {repo} (`hf download {repo}`); when not set, the model's text_encoder_4 \
             folder or the Hugging Face cache is used"
        ),
        _ => format!("download {repo} (`hf download {repo}`) and choose its folder"),
    }
}

/// The GGUF transformer line of an I1 slot: the file in use instead of the snapshot's weights.
fn transformer_file_ui(ui: &mut Ui, slot: ModelSlot, config: &StudioConfig) -> Option<Action> {
    if !matches!(
        slot,
        ModelSlot::I1Full | ModelSlot::I1Dev | ModelSlot::I1Fast
    ) {
        return None;
    }
    let mut action = None;
    ui.horizontal(|ui| {
        ui.label("Transformer");
        if let Some(file) = config.models.transformer_file(slot) {
            ui.monospace(file.display().to_string());
            if ui.button("Use the snapshot's").clicked() {
                action = Some(Action::ClearTransformerFile(slot));
            }
        } else {
            ui.weak("the snapshot's own weights");
            if ui
                .button("Choose GGUF…")
                .on_hover_text(
                    "A quantised transformer (such as city96's HiDream-I1 GGUF files) to use \
                     with this snapshot's text encoders and VAE",
                )
                .clicked()
            {
                action = Some(Action::ChooseTransformerFile(slot));
            }
        }
    });
    action
}

/// Whether a GGUF transformer fits the snapshot's transformer config.
fn check_gguf(folder: &Path, gguf: &Path) -> SlotStatus {
    let config_dir = match Snapshot::open(folder).and_then(|s| s.component_dir("transformer")) {
        Ok(dir) => dir,
        Err(e) => return SlotStatus::Problem(e.to_string()),
    };
    match ComponentKind::check_transformer_file(&config_dir, gguf) {
        Ok(()) => SlotStatus::Ready,
        Err(e) => SlotStatus::Problem(format!(
            "{e} (choose the GGUF made from this model, or use the snapshot's weights)"
        )),
    }
}

fn check(slot: ModelSlot, folder: &Path, base: Option<&Path>) -> SlotStatus {
    if !folder.exists() {
        return SlotStatus::Problem(format!(
            "{} does not exist (moved or deleted?): choose the folder again",
            folder.display()
        ));
    }
    let problem = match slot {
        ModelSlot::I1Full | ModelSlot::I1Dev | ModelSlot::I1Fast => {
            Snapshot::open(folder).err().map(|e| e.to_string())
        }
        ModelSlot::Editor(_) => recognise(folder, base, None).err().map(|e| {
            format!("{e} (E1 models take their text encoders and VAE from HiDream-I1-Full)")
        }),
        ModelSlot::Llama => ["config.json", "tokenizer.json"]
            .iter()
            .find(|f| !folder.join(f).is_file())
            .map(|f| format!("{f} is missing: is this the Llama-3.1-8B-Instruct folder?")),
    };
    match problem {
        Some(p) => SlotStatus::Problem(p),
        None => SlotStatus::Ready,
    }
}
