//! The edit controls: instruction, editing model, its two guidance strengths and the brush.

use std::path::PathBuf;

use egui::{RichText, Slider, TextEdit, Ui};

use super::actions::Action;
use super::brush::{Brush, BrushMask, brush_controls};
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

    /// When the editor folder in use changes: reads its example instructions, and shows its
    /// own guidance values (a bundled model's manifest) or else the editor's built-in ones.
    pub(crate) fn note_model(&mut self, folder: Option<PathBuf>) {
        if self.examples_for == folder {
            return;
        }
        let manifest = folder
            .as_deref()
            .and_then(|f| StudioManifest::read(f).ok().flatten());
        (self.guidance, self.image_guidance) = self.editor.default_guidance();
        if let Some(defaults) = manifest.as_ref().and_then(|m| m.defaults) {
            self.guidance = defaults.guidance;
            self.image_guidance = defaults.image_guidance.unwrap_or(self.image_guidance);
        }
        self.examples = manifest.map_or_else(Vec::new, |m| m.examples);
        self.examples_for = folder;
    }

    /// Like [`Self::note_model`], but the values on the controls (a record's) stay.
    pub(crate) fn note_model_keeping_values(&mut self, folder: Option<PathBuf>) {
        let values = (self.guidance, self.image_guidance);
        self.note_model(folder);
        (self.guidance, self.image_guidance) = values;
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
        brush_controls(ui, &mut self.brush, mask);
        batch_ui(ui, &mut self.batch);
        ui.add_space(8.0);
        if submit_button(ui, "Apply edit", can_edit && source.is_some()) {
            action = Some(Action::Edit);
        }
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder_with_manifest(defaults: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let manifest = format!(
            r#"{{"name": "Test editor", "base_resolution": 64, "max_sequence_length": 24,
                "defaults": {defaults}, "examples": ["make the red circle blue"]}}"#
        );
        std::fs::write(dir.path().join(StudioManifest::FILE), manifest).unwrap();
        dir
    }

    #[test]
    fn an_editor_folder_shows_its_own_guidance_and_a_record_keeps_its_values() {
        let own = folder_with_manifest(
            r#"{"steps": 20, "guidance": 4.5, "shift": 3.0, "image_guidance": 2.5}"#,
        );
        let mut panel = EditPanel::default();
        panel.note_model(Some(own.path().to_path_buf()));
        assert_eq!((panel.guidance, panel.image_guidance), (4.5, 2.5));
        assert_eq!(panel.examples, ["make the red circle blue"]);

        // A folder without a manifest (a real snapshot) goes back to the built-in values.
        let real = tempfile::tempdir().unwrap();
        panel.note_model(Some(real.path().to_path_buf()));
        assert_eq!(
            (panel.guidance, panel.image_guidance),
            Editor::E1_1.default_guidance()
        );

        // A record's values stay when its editor folder is noted.
        (panel.guidance, panel.image_guidance) = (7.0, 6.0);
        panel.note_model_keeping_values(Some(own.path().to_path_buf()));
        assert_eq!((panel.guidance, panel.image_guidance), (7.0, 6.0));
    }
}
