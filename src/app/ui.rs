//! Drawing the window: the top bar, the status area, the history, the controls and the
//! canvas. Each part answers with at most one [`Action`], carried out once it is drawn.

use egui::Ui;

use super::actions::Action;
use super::chat_panel::ChatContext;
use super::config::ModelSlot;
use super::model_bar::ModelChoice;
use super::queue_view::queue_ui;
use super::{EditView, Mode, StudioApp};

impl StudioApp {
    /// Draws the whole window. Returns whether the studio itself (history, controls, canvas)
    /// was shown, rather than the first-run screen or the models view.
    pub(super) fn window_ui(&mut self, ui: &mut Ui) -> bool {
        let ctx = ui.ctx().clone();
        egui::Panel::top("top-bar").show(ui, |ui| self.top_bar_ui(ui));
        let action = egui::Panel::bottom("status")
            .resizable(false)
            .show(ui, |ui| self.status_ui(ui))
            .inner;
        self.handle_some(&ctx, action);

        if !self.config.models.any_image_model()
            && !self.bundled.any_image_model()
            && !self.show_models
        {
            let action = egui::CentralPanel::default()
                .show(ui, |ui| self.first_run.ui(ui))
                .inner;
            self.handle_some(&ctx, action);
            return false;
        }
        if self.show_models {
            let action = egui::CentralPanel::default()
                .show(ui, |ui| self.models_ui(ui))
                .inner;
            self.handle_some(&ctx, action);
            return false;
        }

        if self.gallery.open {
            egui::CentralPanel::default().show(ui, |ui| self.gallery_ui(ui));
            return false;
        }
        let (action, history_width) = self.history_side.show(ui, |ui| {
            self.history_panel.ui(ui, &self.entries, self.selected)
        });
        self.handle_some(&ctx, action);
        // The chat has no controls: it takes the middle and the right.
        let (action, controls_width) = if self.mode == Mode::Chat {
            (None, None)
        } else {
            // A copy, since the controls borrow the whole app; written back once drawn.
            let mut controls_side = self.controls_side;
            let shown = controls_side.show(ui, |ui| self.controls_ui(ui));
            self.controls_side = controls_side;
            shown
        };
        self.handle_some(&ctx, action);
        if history_width.is_some() || controls_width.is_some() {
            let panels = &mut self.config.panels;
            panels.history = history_width.unwrap_or(panels.history);
            panels.controls = controls_width.unwrap_or(panels.controls);
            if let Err(e) = self.config.save(&self.paths) {
                self.error(format!("{e:#}"));
            }
        }
        if self.mode == Mode::Chat {
            let action = egui::CentralPanel::default()
                .show(ui, |ui| self.chat_ui(ui))
                .inner;
            self.handle_some(&ctx, action);
        } else {
            egui::CentralPanel::default().show(ui, |ui| self.canvas_ui(ui));
        }
        true
    }

    fn chat_ui(&mut self, ui: &mut Ui) -> Option<Action> {
        let status = self
            .chat
            .turn
            .and_then(|id| self.jobs.iter().find(|j| j.id == id))
            .map(super::jobs::PendingJob::status_line);
        let cx = ChatContext {
            status: status.as_deref(),
            has_selection: self.selected.is_some(),
        };
        self.chat.ui(ui, &cx)
    }

    fn handle_some(&mut self, ctx: &egui::Context, action: Option<Action>) {
        if let Some(action) = action {
            self.handle(ctx, action);
        }
    }

    fn top_bar_ui(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.heading("HiDream Studio");
            ui.separator();
            ui.selectable_value(&mut self.mode, Mode::Generate, "Text to image");
            ui.selectable_value(&mut self.mode, Mode::Edit, "Edit image");
            ui.selectable_value(&mut self.mode, Mode::Class, "Class to image");
            ui.selectable_value(&mut self.mode, Mode::Chat, "Chat");
            ui.separator();
            if ui.selectable_label(self.show_models, "Models").clicked() {
                self.show_models = !self.show_models;
            }
            if ui.selectable_label(self.gallery.open, "Gallery").clicked() {
                self.toggle_gallery();
            }
            ui.separator();
            self.model_line_ui(ui);
        });
    }

    /// Which model the current mode uses, with the switch between bundled and configured.
    fn model_line_ui(&mut self, ui: &mut Ui) {
        let models = &self.config.models;
        let (slot_label, configured, bundled) = match self.mode {
            Mode::Class => (
                "Hi-DiT",
                models.hidit.as_deref(),
                self.bundled.hidit.as_deref(),
            ),
            // A configured agent replaces the bundled one (there is no switch between them).
            Mode::Chat => (
                "agent",
                models.agent.as_deref(),
                models
                    .agent
                    .is_none()
                    .then_some(self.bundled.agent.as_deref())
                    .flatten(),
            ),
            mode => {
                let slot = if mode == Mode::Edit {
                    ModelSlot::Editor(self.edit.editor)
                } else {
                    ModelSlot::for_preset(self.generate.preset)
                };
                (slot.label(), models.get(slot), self.bundled.get(slot))
            }
        };
        let choice = ModelChoice {
            slot_label,
            configured,
            bundled,
            use_bundled: self.config.use_bundled.get(self.mode),
            compute: format!(
                "{} · {}",
                self.config.dtype().name(),
                self.config.device.name()
            ),
        };
        if let Some(use_bundled) = self.model_bar.ui(ui, &choice) {
            self.config.use_bundled.set(self.mode, use_bundled);
            if let Err(e) = self.config.save(&self.paths) {
                self.error(format!("{e:#}"));
            }
        }
    }

    fn status_ui(&self, ui: &mut Ui) -> Option<Action> {
        let mut action = None;
        if let Some(job) = self.jobs.iter().find(|j| j.is_running()) {
            ui.horizontal(|ui| {
                ui.label(&job.title);
                ui.add(
                    egui::ProgressBar::new(job.fraction())
                        .text(job.status_line())
                        .desired_width(ui.available_width() - 90.0),
                );
                if ui.button("Cancel").on_hover_text("Esc").clicked() {
                    action = Some(Action::Cancel(job.id));
                }
            });
        }
        for (i, message) in self.messages.iter().enumerate() {
            ui.horizontal(|ui| {
                if ui.small_button("×").on_hover_text("Dismiss").clicked() {
                    action = Some(Action::Dismiss(i));
                }
                if message.is_error {
                    ui.colored_label(ui.visuals().error_fg_color, &message.text);
                } else {
                    ui.label(&message.text);
                }
            });
        }
        action
    }

    fn models_ui(&mut self, ui: &mut Ui) -> Option<Action> {
        ui.horizontal(|ui| {
            ui.heading("Models");
            if ui.button("Done").clicked() {
                self.show_models = false;
            }
        });
        ui.add_space(6.0);
        egui::ScrollArea::vertical()
            .show(ui, |ui| {
                let class_model = self.class_model.get(&self.config.models, &self.bundled);
                self.models_view.ui(
                    ui,
                    &mut self.config,
                    &self.bundled,
                    class_model,
                    self.cache.as_ref(),
                )
            })
            .inner
    }

    fn controls_ui(&mut self, ui: &mut Ui) -> Option<Action> {
        egui::ScrollArea::vertical()
            .show(ui, |ui| {
                let action = match self.mode {
                    Mode::Generate => {
                        let (start, brush) = (&mut self.start, &mut self.edit.brush);
                        let selected = self.selected.is_some();
                        self.generate.ui(
                            ui,
                            self.config.base_resolution,
                            self.history.is_some(),
                            |ui| start.ui(ui, brush, selected),
                        )
                    }
                    Mode::Edit => {
                        let name = self.edit_source.as_ref().map(|s| {
                            s.path.file_name().map_or_else(
                                || s.path.display().to_string(),
                                |n| n.to_string_lossy().into_owned(),
                            )
                        });
                        let action = self.edit.ui(
                            ui,
                            name.as_deref(),
                            self.mask.as_mut(),
                            self.history.is_some(),
                        );
                        ui.add_space(4.0);
                        ui.collapsing("Seed", |ui| self.generate.seed_ui(ui));
                        action
                    }
                    // Drawn in the middle instead (see `window_ui`).
                    Mode::Chat => None,
                    Mode::Class => {
                        let in_use = self.config.models_in_use(&self.bundled);
                        let model = self.class_model.get(&in_use, &self.bundled);
                        let seed = &mut self.generate;
                        self.class
                            .ui(ui, model, self.history.is_some(), |ui| seed.seed_ui(ui))
                    }
                };
                action.or(queue_ui(ui, &self.jobs, &self.queue))
            })
            .inner
    }

    fn canvas_ui(&mut self, ui: &mut Ui) {
        let running = self.jobs.iter().find(|j| j.is_running());
        let status = running.map(|j| format!("{} · {}", j.title, j.status_line()));
        let preview = self
            .preview
            .as_ref()
            .filter(|(id, _)| running.is_some_and(|j| j.id == *id))
            .map(|(_, frame)| frame.clone());
        if self.mode == Mode::Edit && self.edit_source.is_some() {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut self.edit_view, EditView::Source, "Source and mask");
                ui.add_enabled_ui(self.selected.is_some(), |ui| {
                    ui.selectable_value(&mut self.edit_view, EditView::Selected, "Result");
                });
            });
        }
        if self.mode == Mode::Generate
            && preview.is_none()
            && self.start_canvas_ui(ui, status.as_deref())
        {
            return;
        }
        let brushing = self.mode == Mode::Edit && self.edit_view == EditView::Source;
        if brushing && let Some(source) = &self.edit_source {
            let key = format!("source:{}", source.path.display());
            self.canvas.show(ui.ctx(), &key, &source.image);
            let brush = self.edit.brush;
            self.canvas.ui(
                ui,
                self.mask.as_mut().map(|m| (m, brush)),
                status.as_deref(),
                None,
            );
            return;
        }
        // Back from the source view: show the selection again.
        if let Some(id) = self.selected
            && self.canvas.shown_key() != Some(format!("entry:{id}").as_str())
        {
            self.select(ui.ctx(), id);
        }
        self.canvas
            .ui(ui, None, status.as_deref(), preview.as_ref());
    }
}
