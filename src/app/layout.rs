//! Side panels whose width only the user changes. egui's panels grow to fit content that is
//! wider than they are (a long queue line, a wide result row) and keep the grown width, so the
//! controls moved under the pointer when the first result arrived. Here the contents are laid
//! out in the panel's width and clipped there; a drag on the panel's edge is the one thing that
//! changes it, and the new width goes to `config.json` with the other settings.

use egui::{Rangef, Ui, UiBuilder};
use serde::{Deserialize, Serialize};

/// The side panels' widths in points, margins included, as the user last left them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PanelWidths {
    /// The history, on the left.
    pub history: f32,
    /// The controls, on the right.
    pub controls: f32,
}

impl Default for PanelWidths {
    fn default() -> Self {
        Self {
            history: 300.0,
            controls: 340.0,
        }
    }
}

/// How wide the history may be dragged.
pub(crate) const HISTORY_RANGE: Rangef = Rangef {
    min: 260.0,
    max: 560.0,
};
/// How wide the controls may be dragged.
pub(crate) const CONTROLS_RANGE: Rangef = Rangef {
    min: 300.0,
    max: 560.0,
};

/// One side panel of steady width.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SteadyPanel {
    id: &'static str,
    left: bool,
    range: Rangef,
    /// The width shown last frame.
    width: f32,
    /// The width changed while a pointer button was down (the edge is being dragged).
    resized: bool,
}

impl SteadyPanel {
    pub(crate) fn left(id: &'static str, range: Rangef, width: f32) -> Self {
        Self::new(id, true, range, width)
    }

    pub(crate) fn right(id: &'static str, range: Rangef, width: f32) -> Self {
        Self::new(id, false, range, width)
    }

    fn new(id: &'static str, left: bool, range: Rangef, width: f32) -> Self {
        Self {
            id,
            left,
            range,
            // A hand-edited config.json may hold anything; NaN clamps to the minimum.
            width: if width.is_finite() {
                range.clamp(width)
            } else {
                range.min
            },
            resized: false,
        }
    }

    /// Draws the panel with `add_contents` laid out in its current width. Returns what the
    /// contents answer and, on the frame a drag of the edge ends, the new width to remember.
    pub(crate) fn show<R>(
        &mut self,
        ui: &mut Ui,
        add_contents: impl FnOnce(&mut Ui) -> R,
    ) -> (R, Option<f32>) {
        let panel = if self.left {
            egui::Panel::left(self.id)
        } else {
            egui::Panel::right(self.id)
        };
        let response = panel
            .size_range(self.range)
            .default_size(self.width)
            .resizable(true)
            .show(ui, |ui| {
                // The child is not allocated in the panel, so whatever it lays out (and
                // overflows) does not size the panel; the panel takes exactly its own rect.
                let rect = ui.available_rect_before_wrap();
                let mut contents = ui.new_child(
                    UiBuilder::new()
                        .max_rect(rect)
                        .layout(egui::Layout::top_down(egui::Align::Min)),
                );
                contents.set_clip_rect(rect.intersect(ui.clip_rect()));
                let answer = add_contents(&mut contents);
                ui.advance_cursor_after_rect(rect);
                answer
            });
        let width = response.response.rect.width();
        let dragging = ui.input(|i| i.pointer.any_down());
        if (width - self.width).abs() > 0.5 {
            self.width = width;
            self.resized |= dragging;
        }
        let finished = (self.resized && !dragging).then(|| {
            self.resized = false;
            self.width
        });
        (response.inner, finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_width_from_the_settings_file_is_kept_in_range() {
        assert_eq!(SteadyPanel::right("c", CONTROLS_RANGE, 9000.0).width, 560.0);
        assert_eq!(SteadyPanel::left("h", HISTORY_RANGE, 10.0).width, 260.0);
        assert_eq!(SteadyPanel::left("h", HISTORY_RANGE, f32::NAN).width, 260.0);
        assert_eq!(SteadyPanel::right("c", CONTROLS_RANGE, 400.0).width, 400.0);
    }
}
