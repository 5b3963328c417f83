//! The edit controls: instruction, editing model, its two guidance strengths and the brush.

use egui::{RichText, Slider, TextEdit, Ui};

use super::brush::{Brush, BrushMask};
use crate::pipelines::edit::{EditForm, EditRecord};
use crate::settings::FormDefaults;

/// Which editing model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditVariant {
    E1Full,
    E1_1,
}

impl EditVariant {
    pub fn name(self) -> &'static str {
        match self {
            Self::E1Full => "E1-Full",
            Self::E1_1 => "E1.1",
        }
    }

    /// The official scripts' (instruction, image) guidance, as the pipeline applies them.
    pub fn default_guidance(self) -> (f64, f64) {
        let form = match self {
            Self::E1Full => EditForm::E1FullLora,
            Self::E1_1 => EditForm::E1_1,
        };
        let d = FormDefaults::of(form);
        (d.guidance, d.image_guidance)
    }
}

/// What the user asked for in the panel this frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditAction {
    None,
    Edit,
    OpenImage,
}

pub struct EditPanel {
    pub instruction: String,
    pub variant: EditVariant,
    /// "Instruction following".
    pub guidance: f64,
    /// "Image preservation".
    pub image_guidance: f64,
    pub brush: Brush,
}

impl Default for EditPanel {
    fn default() -> Self {
        let variant = EditVariant::E1_1;
        let (guidance, image_guidance) = variant.default_guidance();
        Self {
            instruction: String::new(),
            variant,
            guidance,
            image_guidance,
            brush: Brush::default(),
        }
    }
}

impl EditPanel {
    pub fn set_variant(&mut self, variant: EditVariant) {
        self.variant = variant;
        (self.guidance, self.image_guidance) = variant.default_guidance();
    }

    pub fn apply_record(&mut self, record: &EditRecord) {
        self.instruction = record.settings.instruction.clone();
        self.variant = match record.resolved.form {
            EditForm::E1_1 => EditVariant::E1_1,
            _ => EditVariant::E1Full,
        };
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
    ) -> EditAction {
        let mut action = EditAction::None;
        ui.horizontal(|ui| {
            ui.label("Image");
            match source {
                Some(name) => ui.monospace(name),
                None => ui.weak("pick one in the history, or open a file"),
            };
        });
        if ui.button("Open image…").clicked() {
            action = EditAction::OpenImage;
        }
        ui.add_space(6.0);

        let label = ui.label("Instruction");
        ui.add(
            TextEdit::multiline(&mut self.instruction)
                .hint_text("make the sky stormy")
                .desired_rows(3)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);

        ui.horizontal(|ui| {
            ui.label("Model");
            for variant in [EditVariant::E1_1, EditVariant::E1Full] {
                if ui
                    .selectable_label(self.variant == variant, variant.name())
                    .clicked()
                    && self.variant != variant
                {
                    self.set_variant(variant);
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
        ui.add_space(8.0);
        let edit = ui
            .add_enabled(
                can_edit && source.is_some(),
                egui::Button::new(RichText::new("Apply edit").strong())
                    .min_size(egui::vec2(ui.available_width(), 28.0)),
            )
            .on_hover_text("Ctrl+Enter");
        if edit.clicked() {
            action = EditAction::Edit;
        }
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_panel_starts_from_the_pipeline_defaults() {
        let e1_1 = FormDefaults::of(EditForm::E1_1);
        let full = FormDefaults::of(EditForm::E1FullLora);
        assert_eq!(EditVariant::E1_1.default_guidance(), (3.0, 1.5));
        assert_eq!(
            EditVariant::E1_1.default_guidance(),
            (e1_1.guidance, e1_1.image_guidance)
        );
        assert_eq!(
            EditVariant::E1Full.default_guidance(),
            (full.guidance, full.image_guidance)
        );
    }
}
