//! Generate mode's "Start from image": image-to-image and inpainting with the I1 models. The
//! start image is a history result or a file; Strength says how much of it may change, and
//! the editor's brush paints where it may (white = repaint), so masks work without an E1 model.

use std::path::PathBuf;

use egui::{RichText, Slider, Ui};
use image::RgbImage;

use super::StudioApp;
use super::actions::Action;
use super::brush::{Brush, BrushMask, brush_controls};
use crate::pipelines::edit::read_rgb;
use crate::settings::InitImage;

/// Strength when a start image is first chosen: the image's layout stays, its details change.
pub const DEFAULT_STRENGTH: f64 = 0.75;

/// The chosen start image and its mask.
pub struct StartImage {
    pub path: PathBuf,
    /// The history entry it is, if any.
    pub entry: Option<i64>,
    pub image: RgbImage,
    pub mask: BrushMask,
}

/// The "Start from image" section of the generate controls.
pub struct StartPanel {
    pub start: Option<StartImage>,
    pub strength: f64,
    /// The canvas shows the start image with the brush instead of the selected result.
    pub painting: bool,
}

impl Default for StartPanel {
    fn default() -> Self {
        Self {
            start: None,
            strength: DEFAULT_STRENGTH,
            painting: false,
        }
    }
}

impl StartPanel {
    /// Draws the section; `brush` is the editor's, `has_selection` whether a result is
    /// selected in the history.
    pub fn ui(&mut self, ui: &mut Ui, brush: &mut Brush, has_selection: bool) -> Option<Action> {
        let mut action = None;
        ui.label(RichText::new("Start from image").strong());
        ui.horizontal(|ui| {
            if ui
                .add_enabled(has_selection, egui::Button::new("Use selected result"))
                .on_hover_text("Start from the result selected in the history")
                .clicked()
            {
                action = Some(Action::StartFromSelected);
            }
            if ui.button("Open start image…").clicked() {
                action = Some(Action::OpenStartImage);
            }
        });
        let Some(start) = &mut self.start else {
            ui.weak("None: the image is drawn from noise.");
            return action;
        };
        let name = start.path.file_name().map_or_else(
            || start.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        ui.horizontal(|ui| {
            ui.add(egui::Label::new(format!("From {name}")).truncate());
            if ui.button("Remove start image").clicked() {
                self.start = None;
                self.painting = false;
            }
        });
        let Some(start) = &mut self.start else {
            return action;
        };
        ui.add(Slider::new(&mut self.strength, 0.01..=1.0).text("Strength"))
            .on_hover_text(
                "How much may change: low keeps the start image, 1 redraws it (outside a mask)",
            );
        ui.checkbox(&mut self.painting, "Paint mask on the canvas")
            .on_hover_text("Show the start image on the canvas and brush where it may change");
        ui.weak("Paint where the image may change; unpainted, all of it may change.");
        brush_controls(ui, brush, Some(&mut start.mask));
        action
    }
}

impl StudioApp {
    /// Makes `path` the start image (a history entry's, or a file) and shows it for painting.
    pub(super) fn set_start_image(&mut self, path: PathBuf, entry: Option<i64>) {
        match read_rgb(&path) {
            Ok(image) => {
                let mask = BrushMask::new(image.width(), image.height());
                self.start.start = Some(StartImage {
                    path,
                    entry,
                    image,
                    mask,
                });
                self.start.painting = true;
            }
            Err(e) => self.error(format!("Cannot start from this image: {e}")),
        }
    }

    /// "Reuse settings" of an image-to-image result: its start image and strength again (the
    /// mask starts empty: brush it again). Without one, the next job starts from noise.
    pub(super) fn restore_start_image(&mut self, init: Option<&InitImage>) {
        self.start = StartPanel::default();
        if let Some(init) = init {
            let entry = self
                .entries
                .iter()
                .find(|e| e.image_path == init.image)
                .map(|e| e.id);
            self.set_start_image(init.image.clone(), entry);
            self.start.strength = init.strength;
            self.start.painting = false;
        }
    }

    /// The start image of the next job, its brushed mask written to a file.
    pub(super) fn init_image(&self) -> Result<Option<InitImage>, String> {
        let Some(start) = &self.start.start else {
            return Ok(None);
        };
        Ok(Some(InitImage {
            image: start.path.clone(),
            strength: self.start.strength,
            mask: self.write_mask(Some(&start.mask))?,
        }))
    }

    /// The canvas in Generate mode while painting: the start image under the brush. False
    /// when there is nothing to paint on (the canvas then shows the selection as usual).
    pub(super) fn start_canvas_ui(&mut self, ui: &mut Ui, status: Option<&str>) -> bool {
        if !self.start.painting {
            return false;
        }
        let Some(start) = &mut self.start.start else {
            return false;
        };
        let key = format!("start:{}", start.path.display());
        self.canvas.show(ui.ctx(), &key, &start.image);
        let brush = self.edit.brush;
        self.canvas
            .ui(ui, Some((&mut start.mask, brush)), status, None);
        true
    }

    pub fn start_panel(&self) -> &StartPanel {
        &self.start
    }

    pub fn start_panel_mut(&mut self) -> &mut StartPanel {
        &mut self.start
    }
}
