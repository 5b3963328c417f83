//! Small pieces the panels share.

use egui::{DragValue, Response, Ui};

use crate::rng::fresh_seed;

/// One row of a two-column grid: a label and the number it names. The label is the value's
/// accessible name, so a screen reader (and a test) finds the value by it.
pub(crate) fn value_row(ui: &mut Ui, label: &str, value: DragValue<'_>) -> Response {
    let label = ui.label(label);
    let response = ui.add(value).labelled_by(label.id);
    ui.end_row();
    response
}

/// A text box's label with, where the model lists example prompts, a "Surprise me" that
/// puts one of them (another than the one there) in `text`. Returns the label, which names
/// the box, and whether the text was replaced.
pub(crate) fn label_with_surprise(
    ui: &mut Ui,
    label: &str,
    examples: &[String],
    text: &mut String,
) -> (Response, bool) {
    ui.horizontal(|ui| {
        let label = ui.label(label);
        let clicked = !examples.is_empty()
            && ui
                .small_button("Surprise me")
                .on_hover_text("An example this model can draw")
                .clicked();
        let others: Vec<&String> = examples.iter().filter(|e| *e != text).collect();
        let pick = usize::try_from(fresh_seed())
            .ok()
            .and_then(|n| others.get(n % others.len().max(1)));
        match pick {
            Some(pick) if clicked => {
                text.clone_from(pick);
                (label, true)
            }
            _ => (label, false),
        }
    })
    .inner
}

/// The placeholder of a text box: the model's first example, else `generic`.
pub(crate) fn example_hint<'a>(examples: &'a [String], generic: &'a str) -> &'a str {
    examples.first().map_or(generic, String::as_str)
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
