//! The edit controls: instruction, editing model, its two guidance strengths and the brush.

use std::path::PathBuf;

use egui::{RichText, Slider, TextEdit, Ui};

use super::actions::Action;
use super::brush::{Brush, BrushMask};
use super::editor::Editor;
use super::queue_view::batch_ui;
use super::widgets::{example_hint, label_with_surprise, submit_button};
use crate::pipelines::edit::EditRecord;
use crate::weights::StudioManifest;

pub struct EditPanel {
    pub instruction: String,
    pub editor: Editor,
    /// "Instruction following".
    pub guidance: f64,
    /// "Image preservation".
    pub image_guidance: f64,
    pub brush: Brush,
    /// Edits per click (seeds counting up from the seed).
    pub batch: u32,
    /// Instructions the editor in use can carry out (its manifest's): the placeholder and
    /// "Surprise me".
    examples: Vec<String>,
    /// The editor folder `examples` were read from.
    examples_for: Option<PathBuf>,
}

impl Default for EditPanel {
    fn default() -> Self {
        let editor = Editor::E1_1;
        let (guidance, image_guidance) = editor.default_guidance();
        Self {
            instruction: String::new(),
            editor,
            guidance,
            image_guidance,
            brush: Brush::default(),
            batch: 1,
            examples: Vec::new(),
            examples_for: None,
        }
    }
}

impl EditPanel {
    pub(crate) fn set_editor(&mut self, editor: Editor) {
        self.editor = editor;
        (self.guidance, self.image_guidance) = editor.default_guidance();
    }

    /// Reads the example instructions of the editor folder in use when it changes.
    pub(crate) fn note_model(&mut self, folder: Option<PathBuf>) {
        if self.examples_for == folder {
            return;
        }
        self.examples = folder
            .as_deref()
            .and_then(|f| StudioManifest::read(f).ok().flatten())
            .map_or_else(Vec::new, |m| m.examples);
        self.examples_for = folder;
    }

    pub(crate) fn apply_record(&mut self, record: &EditRecord) {
        self.instruction.clone_from(&record.settings.instruction);
        self.editor = record.resolved.form.into();
        self.guidance = record.resolved.guidance;
        self.image_guidance = record.resolved.image_guidance;
    }

    /// Draws the controls. `source` names the image being edited, if any.
    pub fn ui(
        &mut self,
        ui: &mut Ui,
        source: Option<&str>,
        mask: Option<&mut BrushMask>,
        can_edit: bool,
    ) -> Option<Action> {
        let mut action = None;
        ui.horizontal(|ui| {
            ui.label("Image");
            match source {
                Some(name) => ui.monospace(name),
                None => ui.weak("pick one in the history, or open a file"),
            };
        });
        if ui.button("Open image…").clicked() {
            action = Some(Action::OpenImage);
        }
        ui.add_space(6.0);

        let (label, _) =
            label_with_surprise(ui, "Instruction", &self.examples, &mut self.instruction);
        ui.add(
            TextEdit::multiline(&mut self.instruction)
                .hint_text(example_hint(&self.examples, "make the sky stormy"))
                .desired_rows(3)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);

        ui.horizontal(|ui| {
            ui.label("Model");
            for editor in [Editor::E1_1, Editor::E1Full] {
                if ui
                    .selectable_label(self.editor == editor, editor.name())
                    .clicked()
                    && self.editor != editor
                {
                    self.set_editor(editor);
                }
            }
        });
        ui.add(Slider::new(&mut self.guidance, 1.0..=10.0).text("instruction following"))
            .on_hover_text("How strongly the instruction is followed (guidance)");
        ui.add(Slider::new(&mut self.image_guidance, 1.0..=10.0).text("image preservation"))
            .on_hover_text("How closely the rest of the image is kept (image guidance)");
        ui.add_space(6.0);

        ui.label(RichText::new("Mask").strong());
        ui.weak("Paint where the image may change; unpainted, the whole image may change.");
        ui.add(Slider::new(&mut self.brush.radius, 1.0..=200.0).text("brush size"));
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.brush.eraser, false, "Brush");
            ui.selectable_value(&mut self.brush.eraser, true, "Eraser");
        });
        if let Some(mask) = mask {
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(mask.can_undo(), egui::Button::new("Undo"))
                    .clicked()
                {
                    mask.undo();
                }
                if ui
                    .add_enabled(mask.can_redo(), egui::Button::new("Redo"))
                    .clicked()
                {
                    mask.redo();
                }
                if ui.button("Clear mask").clicked() {
                    mask.clear();
                }
            });
        }
        batch_ui(ui, &mut self.batch);
        ui.add_space(8.0);
        if submit_button(ui, "Apply edit", can_edit && source.is_some()) {
            action = Some(Action::Edit);
        }
        action
    }
}
