//! The history panel: every result, newest first, with its thumbnail.

use std::collections::HashMap;
use std::path::Path;

use egui::{ColorImage, TextureHandle, Ui};

use super::actions::Action;
use super::canvas::result_texture_options;
use crate::store::{EntryKind, HistoryEntry, UnreadableEntry};

/// Thumbnails are drawn at most this many points wide.
const THUMB_POINTS: f32 = 72.0;

#[derive(Default)]
pub(crate) struct HistoryPanel {
    /// `None`: the thumbnail file could not be read (drawn as a placeholder).
    thumbnails: HashMap<i64, Option<TextureHandle>>,
}

impl HistoryPanel {
    pub(crate) fn forget(&mut self, id: i64) {
        self.thumbnails.remove(&id);
    }

    pub fn ui(
        &mut self,
        ui: &mut Ui,
        entries: &[HistoryEntry],
        selected: Option<i64>,
    ) -> Option<Action> {
        ui.heading("History");
        if entries.is_empty() {
            ui.weak("Results appear here.");
            return None;
        }
        let mut action = None;
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                for entry in entries {
                    if let Some(a) = self.entry_ui(ui, entry, selected == Some(entry.id)) {
                        action = Some(a);
                    }
                    ui.separator();
                }
            });
        action
    }

    fn entry_ui(&mut self, ui: &mut Ui, entry: &HistoryEntry, selected: bool) -> Option<Action> {
        let mut action = None;
        let texture = self
            .thumbnails
            .entry(entry.id)
            .or_insert_with(|| {
                load_thumbnail(
                    ui.ctx(),
                    format!("thumbnail:{}", entry.id),
                    &entry.thumbnail_path,
                )
            })
            .clone();
        ui.horizontal(|ui| {
            let size = fitted_size(texture.as_ref(), THUMB_POINTS);
            let response = match &texture {
                Some(t) => ui.add(
                    egui::Image::new((t.id(), size))
                        .sense(egui::Sense::click())
                        .alt_text(format!("Result {}", entry.id)),
                ),
                None => ui.add_sized(size, egui::Button::new("?")),
            };
            if selected {
                ui.painter().rect_stroke(
                    response.rect.expand(2.0),
                    2.0,
                    egui::Stroke::new(2.0, ui.visuals().selection.bg_fill),
                    egui::StrokeKind::Outside,
                );
            }
            if response.clicked() {
                action = Some(Action::Select(entry.id));
            }
            ui.vertical(|ui| {
                let kind = match entry.kind {
                    EntryKind::Generate => "",
                    EntryKind::Edit => "edit: ",
                    EntryKind::Class => "class: ",
                };
                let prompt = if entry.prompt.trim().is_empty() {
                    "(unconditional)".to_string()
                } else {
                    shorten(&entry.prompt, 60)
                };
                let title = format!("{kind}{prompt}");
                if ui
                    .selectable_label(selected, title)
                    .on_hover_text(&entry.prompt)
                    .clicked()
                {
                    action = Some(Action::Select(entry.id));
                }
                ui.weak(format!("seed {}", entry.seed()));
                ui.horizontal_wrapped(|ui| {
                    if ui.small_button("Reuse settings").clicked() {
                        action = Some(Action::ReuseSettings(entry.id));
                    }
                    if ui.small_button("Edit this").clicked() {
                        action = Some(Action::EditThis(entry.id));
                    }
                    if ui.small_button("Export…").clicked() {
                        action = Some(Action::Export(entry.id));
                    }
                    if ui.small_button("Delete").clicked() {
                        action = Some(Action::Delete(entry.id));
                    }
                });
            });
        });
        action
    }
}

/// The note shown when rows of the history cannot be read: which, why, and that they are kept.
pub(crate) fn unreadable_note(unreadable: &[UnreadableEntry]) -> Option<String> {
    let first = unreadable.first()?;
    let why = format!("entry {}: {}", first.id, first.reason);
    Some(match unreadable.len() {
        1 => format!(
            "1 history entry could not be read and is not shown in History ({why}). It stays \
             in the database untouched; a newer HiDream Studio may read it."
        ),
        n => format!(
            "{n} history entries could not be read and are not shown in History (the first, \
             {why}). They stay in the database untouched; a newer HiDream Studio may read them."
        ),
    })
}

/// A thumbnail file as a texture named `name`; `None` when it cannot be read.
pub(crate) fn load_thumbnail(
    ctx: &egui::Context,
    name: String,
    path: &Path,
) -> Option<TextureHandle> {
    let image = image::open(path).ok()?.to_rgb8();
    let size = [image.width() as usize, image.height() as usize];
    let color = ColorImage::from_rgb(size, image.as_raw());
    Some(ctx.load_texture(name, color, result_texture_options()))
}

/// The size a thumbnail is drawn at: its longer side `points` long (a square placeholder
/// without one).
pub(crate) fn fitted_size(texture: Option<&TextureHandle>, points: f32) -> egui::Vec2 {
    texture.map_or(egui::vec2(points, points), |t| {
        let [w, h] = t.size();
        let scale = points / w.max(h).max(1) as f32;
        egui::vec2(w as f32 * scale, h as f32 * scale)
    })
}

fn shorten(text: &str, max_chars: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() <= max_chars && !text.contains('\n') {
        line.to_string()
    } else {
        let cut: String = line.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_counts_the_unreadable_rows_and_names_the_first() {
        assert_eq!(unreadable_note(&[]), None);
        let rows = [
            UnreadableEntry {
                id: 7,
                reason: "its row is damaged".into(),
            },
            UnreadableEntry {
                id: 3,
                reason: "its settings record does not parse".into(),
            },
        ];
        let note = unreadable_note(&rows).unwrap_or_default();
        assert!(
            note.starts_with("2 history entries could not be read and are not shown"),
            "{note}"
        );
        assert!(note.contains("entry 7: its row is damaged"), "{note}");
        assert!(note.contains("They stay in the database"), "{note}");
    }
}
