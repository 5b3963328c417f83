//! Small pieces the panels share.

use egui::{DragValue, Response, Ui};

/// One row of a two-column grid: a label and the number it names. The label is the value's
/// accessible name, so a screen reader (and a test) finds the value by it.
pub(crate) fn value_row(ui: &mut Ui, label: &str, value: DragValue<'_>) -> Response {
    let label = ui.label(label);
    let response = ui.add(value).labelled_by(label.id);
    ui.end_row();
    response
}

/// A panel's full-width main button (Generate, Apply edit), which Ctrl+Enter also presses.
/// Returns whether it was clicked.
pub(crate) fn submit_button(ui: &mut Ui, text: &str, enabled: bool) -> bool {
    ui.add_enabled(
        enabled,
        egui::Button::new(egui::RichText::new(text).strong())
            .min_size(egui::vec2(ui.available_width(), 28.0)),
    )
    .on_hover_text("Ctrl+Enter")
    .clicked()
}
