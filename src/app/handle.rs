//! What each [`Action`] does: the one place where the panels' requests change the window,
//! the history, the configuration or the engine.

use std::path::PathBuf;

use super::actions::Action;
use super::brush::BrushMask;
use super::config::{HiditFile, ModelSlot};
use super::export::{self, export_entry};
use super::generate_panel::SeedMode;
use super::{EditSource, EditView, Mode, StudioApp};
use crate::pipelines::edit::read_rgb;
use crate::store::{HistoryEntry, StoredRecord};
use crate::weights::StudioManifest;

impl StudioApp {
    /// Carries out what a panel asked for this frame.
    pub(super) fn handle(&mut self, ctx: &egui::Context, action: Action) {
        match action {
            Action::Generate => self.submit_generate(),
            Action::Edit => self.submit_edit(),
            Action::GenerateClass => self.submit_class(),
            Action::OpenImage => {
                if let Some(path) = self.dialogs.pick_image() {
                    self.set_edit_source(path, None);
                }
            }
            Action::StartFromSelected => {
                let selected = self.selected;
                if let Some((id, path)) =
                    selected.and_then(|id| Some((id, self.entry(id)?.image_path.clone())))
                {
                    self.set_start_image(path, Some(id));
                }
            }
            Action::OpenStartImage => {
                if let Some(path) = self.dialogs.pick_image() {
                    self.set_start_image(path, None);
                }
            }
            Action::SendMessage => self.send_message(),
            Action::AttachFile => self.attach_file(),
            Action::AttachSelected => self.attach_selected(),
            Action::Detach => self.chat.attached = None,
            Action::StopTurn => self.stop_turn(),
            Action::NewConversation => self.new_conversation(),
            Action::Cancel(id) => {
                self.engine.cancel(id);
            }
            Action::CancelAll => {
                self.queue.clear();
                self.engine.cancel_all();
            }
            Action::RemoveQueued(key) => {
                if let Some(title) = self.queue.remove(key) {
                    self.info(format!("{title}: removed from the queue."));
                }
            }
            Action::MoveQueued { key, up } => self.queue.move_entry(key, up),
            Action::Dismiss(index) => {
                if index < self.messages.len() {
                    self.messages.remove(index);
                }
            }
            Action::Select(id) => self.select(ctx, id),
            Action::ReuseSettings(id) => {
                if let Some(record) = self.entry(id).map(|e| e.record.clone()) {
                    self.apply_record(&record);
                }
            }
            Action::EditThis(id) => {
                if let Some(path) = self.entry(id).map(|e| e.image_path.clone()) {
                    self.set_edit_source(path, Some(id));
                }
            }
            Action::Export(id) => self.export(id),
            Action::Delete(id) => self.delete(id),
            Action::ChooseModel(slot) => {
                if let Some(folder) = self
                    .dialogs
                    .pick_folder(&format!("Choose the {} folder", slot.label()))
                {
                    self.config.models.set(slot, Some(folder));
                    self.save_config();
                }
            }
            Action::ClearModel(slot) => {
                self.config.models.set(slot, None);
                self.save_config();
            }
            Action::ChooseTransformerFile(slot) => {
                let title = format!("Choose a GGUF transformer for {}", slot.label());
                if let Some(file) = self.dialogs.pick_gguf(&title) {
                    self.config.models.set_transformer_file(slot, Some(file));
                    self.save_config();
                }
            }
            Action::ClearTransformerFile(slot) => {
                self.config.models.set_transformer_file(slot, None);
                self.save_config();
            }
            Action::ChooseHidit(file) => {
                let picked = match file {
                    HiditFile::Folder => self.dialogs.pick_folder(
                        "Choose the Hi-DiT experiment folder (args.json, checkpoints/)",
                    ),
                    HiditFile::Vae => self.dialogs.pick_weights("Choose the Hi-DiT autoencoder"),
                    HiditFile::LatentsStats => self
                        .dialogs
                        .pick_weights("Choose the autoencoder's latent statistics"),
                };
                if let Some(path) = picked {
                    self.config.models.set_hidit_file(file, Some(path));
                    self.save_config();
                }
            }
            Action::ClearHidit(file) => {
                self.config.models.set_hidit_file(file, None);
                self.save_config();
            }
            Action::FindInCache => self.fill_from_cache(),
            Action::ModelSettingsChanged => self.save_config(),
            Action::ShowModels => self.show_models = true,
            Action::StartFromCache => {
                self.fill_from_cache();
                self.show_models = true;
            }
        }
    }

    fn entry(&self, id: i64) -> Option<&HistoryEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    pub(super) fn select(&mut self, ctx: &egui::Context, id: i64) {
        let Some(path) = self.entry(id).map(|e| e.image_path.clone()) else {
            return;
        };
        match read_rgb(&path) {
            Ok(image) => {
                self.selected = Some(id);
                // The canvas shows the result, not the start image's mask.
                self.start.painting = false;
                self.canvas.show(ctx, &format!("entry:{id}"), &image);
                if self.mode == Mode::Edit {
                    self.edit_view = EditView::Selected;
                }
            }
            Err(e) => self.error(format!("Cannot show this result: {e}")),
        }
    }

    pub(super) fn set_edit_source(&mut self, path: PathBuf, entry: Option<i64>) {
        match read_rgb(&path) {
            Ok(image) => {
                self.mask = Some(BrushMask::new(image.width(), image.height()));
                self.edit_source = Some(EditSource { path, entry, image });
                self.mode = Mode::Edit;
                self.edit_view = EditView::Source;
            }
            Err(e) => self.error(format!("Cannot edit this image: {e}")),
        }
    }

    pub(super) fn apply_record(&mut self, record: &StoredRecord) {
        match record {
            StoredRecord::Generation(r) => {
                self.generate.apply_record(r);
                self.restore_start_image(r.settings.init.as_ref());
                // The record's values stand; a model's defaults must not replace them.
                let preset = self.generate.preset;
                let model = self.model_for(ModelSlot::for_preset(preset));
                let manifest = model
                    .as_deref()
                    .and_then(|m| StudioManifest::read(m).ok().flatten());
                self.note_model(manifest.as_ref());
                self.defaults_shown_for = Some((preset, model));
                self.mode = Mode::Generate;
            }
            StoredRecord::Edit(r) => {
                self.edit.apply_record(r);
                // The record's values stand; the editor's defaults must not replace them.
                let folder = self.model_for(ModelSlot::Editor(self.edit.editor));
                self.edit.note_model_keeping_values(folder);
                self.generate.seed = r.settings.seed;
                self.generate.seed_mode = SeedMode::Fixed;
                let source = r.settings.image.clone();
                if source.is_file() {
                    let parent = self
                        .entries
                        .iter()
                        .find(|e| e.image_path == source)
                        .map(|e| e.id);
                    self.set_edit_source(source, parent);
                }
                self.mode = Mode::Edit;
            }
            StoredRecord::Hidit(r) => {
                self.class.apply_record(r);
                self.generate.seed = r.settings.seed;
                self.generate.seed_mode = SeedMode::Fixed;
                self.mode = Mode::Class;
            }
        }
    }

    fn export(&mut self, id: i64) {
        let Some(entry) = self.entry(id).cloned() else {
            return;
        };
        let Some(path) = self.dialogs.save_image(&export::suggested_name(&entry)) else {
            return;
        };
        match export_entry(&entry, &path) {
            Ok(written) => self.info(format!("Exported to {}.", written.display())),
            Err(e) => self.error(format!("Export failed: {e:#}")),
        }
    }

    fn delete(&mut self, id: i64) {
        let Some(history) = self.history.as_mut() else {
            return;
        };
        match history.delete(id) {
            Ok(()) => {
                self.entries.retain(|e| e.id != id);
                self.history_panel.forget(id);
                for e in &mut self.entries {
                    if e.parent == Some(id) {
                        e.parent = None;
                    }
                }
                if self.selected == Some(id) {
                    self.selected = None;
                    self.canvas.clear();
                }
            }
            Err(e) => self.error(format!("Could not delete: {e}")),
        }
    }

    fn save_config(&mut self) {
        if let Err(e) = self.config.save(&self.paths) {
            self.error(format!("{e:#}"));
        }
        self.models_view.recheck();
        self.class_model.forget();
    }

    fn fill_from_cache(&mut self) {
        let Some(cache) = self.cache.clone() else {
            return;
        };
        let filled = self.config.models.fill_from_cache(&cache);
        if filled.is_empty() {
            self.info("No further models were found in the Hugging Face cache.");
        } else {
            let names: Vec<_> = filled.iter().map(|s| s.label()).collect();
            self.info(format!("From the cache: {}.", names.join(", ")));
            self.save_config();
        }
    }
}
