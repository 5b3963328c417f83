//! The gallery: the history as a grid of thumbnails, searched and filtered, with favourites,
//! a selection that export, delete and compare act on, and keyboard navigation (arrows move,
//! Space selects, Enter opens in the canvas, Delete deletes).
//!
//! The view only draws and answers with a [`GalleryAction`]; `gallery_handle.rs` carries it out
//! (the history, the files, the undo of a delete).

use std::collections::{HashMap, HashSet};

use egui::{Key, Modifiers, Rect, RichText, Sense, TextureHandle, Ui, Vec2};

use super::compare_view::CompareView;
use super::gallery_filter::{DateRange, GalleryFilter, entry_model, kind_label, models_of};
use super::gallery_handle::PendingDelete;
use super::gallery_select::{ClickKind, Selection};
use super::history_panel::load_thumbnail;
use crate::store::{EntryKind, HistoryEntry};

/// A tile's side, in points. Thumbnails are at most 192 pixels: drawn this size they are
/// magnified at most 1:1 on a 1.5× screen, and the bundled models' 64-pixel ones stay crisp
/// (nearest sampling, as on the canvas).
const TILE: f32 = 128.0;
const GAP: f32 = 8.0;

/// What the user asked of the gallery this frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GalleryAction {
    SetFavourite(i64, bool),
    /// Show this entry on the canvas and leave the gallery.
    Open(i64),
    Export(Vec<i64>),
    Delete(Vec<i64>),
    Undo,
    Close,
}

/// The gallery's state between frames.
#[derive(Default)]
pub(crate) struct GalleryView {
    pub(crate) open: bool,
    filter: GalleryFilter,
    selection: Selection,
    /// Starred entries, as the history keeps them (read when the gallery opens).
    pub(crate) favourites: HashSet<i64>,
    /// `None`: the thumbnail could not be read (drawn as a placeholder).
    thumbnails: HashMap<i64, Option<TextureHandle>>,
    compare: Option<CompareView>,
    /// Tiles per row as last drawn, for Up and Down.
    columns: usize,
    /// Entries deleted and not yet removed, which Undo brings back.
    pub(crate) deleted: Option<PendingDelete>,
}

impl GalleryView {
    pub(crate) fn forget(&mut self, id: i64) {
        self.thumbnails.remove(&id);
        self.favourites.remove(&id);
    }

    /// Draws the gallery. `undo` is how many entries a pending delete would bring back.
    pub(crate) fn ui(
        &mut self,
        ui: &mut Ui,
        entries: &[HistoryEntry],
        undo: Option<usize>,
        now_ms: i64,
    ) -> Option<GalleryAction> {
        if let Some(compare) = &mut self.compare {
            let mut back = false;
            ui.horizontal(|ui| {
                ui.heading("Compare");
                back = ui.button("Back to gallery").clicked();
            });
            compare.ui(ui, entries);
            if back {
                self.compare = None;
            }
            return None;
        }
        let shown = self.filter.shown(entries, &self.favourites, now_ms);
        self.selection.retain_shown(&shown);
        let mut action = self.header_ui(ui, entries, undo);
        ui.separator();
        action = action.or_else(|| self.keyboard(ui, &shown));
        if shown.is_empty() {
            ui.weak(if entries.is_empty() {
                "Results appear here."
            } else {
                "Nothing matches the search and filters."
            });
            return action;
        }
        let by_id: HashMap<i64, &HistoryEntry> = entries.iter().map(|e| (e.id, e)).collect();
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                self.columns = ((ui.available_width() + GAP) / (TILE + GAP))
                    .floor()
                    .max(1.0) as usize;
                egui::Grid::new("gallery-grid")
                    .spacing([GAP, GAP])
                    .show(ui, |ui| {
                        for (i, id) in shown.iter().enumerate() {
                            if let Some(entry) = by_id.get(id)
                                && let Some(a) = self.tile_ui(ui, entry, &shown)
                            {
                                action = Some(a);
                            }
                            if (i + 1) % self.columns == 0 {
                                ui.end_row();
                            }
                        }
                    });
            });
        action
    }

    /// The search box, the filters and the buttons that act on the selection.
    fn header_ui(
        &mut self,
        ui: &mut Ui,
        entries: &[HistoryEntry],
        undo: Option<usize>,
    ) -> Option<GalleryAction> {
        let mut action = None;
        ui.horizontal(|ui| {
            ui.heading("Gallery");
            if ui.button("Close gallery").clicked() {
                action = Some(GalleryAction::Close);
            }
            ui.separator();
            let label = ui.label("Search");
            ui.add(
                egui::TextEdit::singleline(&mut self.filter.query)
                    .hint_text("words of the prompt")
                    .desired_width(200.0),
            )
            .labelled_by(label.id);
            ui.checkbox(&mut self.filter.favourites_only, "Favourites only");
        });
        ui.horizontal_wrapped(|ui| {
            let kinds = [
                (None, "All kinds"),
                (Some(EntryKind::Generate), kind_label(EntryKind::Generate)),
                (Some(EntryKind::Edit), kind_label(EntryKind::Edit)),
                (Some(EntryKind::Class), kind_label(EntryKind::Class)),
            ];
            for (kind, label) in kinds {
                ui.selectable_value(&mut self.filter.kind, kind, label);
            }
            ui.separator();
            for range in DateRange::ALL {
                ui.selectable_value(&mut self.filter.dates, range, range.label());
            }
            ui.separator();
            let model = self.filter.model.clone();
            egui::ComboBox::from_label("Made with")
                .selected_text(model.as_deref().unwrap_or("All models"))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.filter.model, None, "All models");
                    for m in models_of(entries) {
                        ui.selectable_value(&mut self.filter.model, Some(m.clone()), m);
                    }
                });
        });
        ui.horizontal(|ui| {
            let selected = self.selection.ids();
            ui.label(format!("{} selected", selected.len()));
            ui.add_enabled_ui(!selected.is_empty(), |ui| {
                if ui.button("Export selected…").clicked() {
                    action = Some(GalleryAction::Export(selected.clone()));
                }
                if ui
                    .button("Delete selected")
                    .on_hover_text("Delete")
                    .clicked()
                {
                    action = Some(GalleryAction::Delete(selected.clone()));
                }
            });
            ui.add_enabled_ui(selected.len() == 2, |ui| {
                if ui
                    .button("Compare")
                    .on_hover_text("Select two results to compare them")
                    .clicked()
                    && let [a, b] = selected[..]
                {
                    // The older on the left, as they were made.
                    self.compare = Some(CompareView::new(b, a));
                }
            });
            if let Some(n) = undo {
                ui.separator();
                let what = if n == 1 {
                    "1 result".to_string()
                } else {
                    format!("{n} results")
                };
                ui.label(format!("Deleted {what}."));
                if ui.button("Undo").clicked() {
                    action = Some(GalleryAction::Undo);
                }
            }
        });
        action
    }

    /// Arrows, Space, Enter and Delete, unless a text box (the search) takes the keys.
    fn keyboard(&mut self, ui: &Ui, shown: &[i64]) -> Option<GalleryAction> {
        if ui.ctx().text_edit_focused() {
            return None;
        }
        let columns = self.columns.max(1) as isize;
        let moves = [
            (Key::ArrowLeft, -1),
            (Key::ArrowRight, 1),
            (Key::ArrowUp, -columns),
            (Key::ArrowDown, columns),
        ];
        let mut action = None;
        ui.input_mut(|i| {
            for (key, by) in moves {
                if i.consume_key(Modifiers::NONE, key) {
                    self.selection.move_focus(by, shown);
                }
            }
            if i.consume_key(Modifiers::NONE, Key::Space) {
                self.selection.toggle_focused();
            }
            if i.consume_key(Modifiers::NONE, Key::Enter)
                && let Some(id) = self.selection.focus()
            {
                action = Some(GalleryAction::Open(id));
            }
            if i.consume_key(Modifiers::NONE, Key::Delete) && !self.selection.is_empty() {
                action = Some(GalleryAction::Delete(self.selection.ids()));
            }
        });
        action
    }

    /// One thumbnail with its star and a line of its prompt.
    fn tile_ui(
        &mut self,
        ui: &mut Ui,
        entry: &HistoryEntry,
        shown: &[i64],
    ) -> Option<GalleryAction> {
        let mut action = None;
        let id = entry.id;
        let texture = self
            .thumbnails
            .entry(id)
            .or_insert_with(|| {
                load_thumbnail(ui.ctx(), format!("gallery:{id}"), &entry.thumbnail_path)
            })
            .clone();
        let selected = self.selection.contains(id);
        let focused = self.selection.focus() == Some(id);
        ui.vertical(|ui| {
            ui.set_width(TILE);
            let (rect, response) = ui.allocate_exact_size(Vec2::splat(TILE), Sense::click());
            response.widget_info(|| {
                egui::WidgetInfo::selected(
                    egui::Role::Button,
                    true,
                    selected,
                    format!("Result {id}"),
                )
            });
            let painter = ui.painter_at(rect);
            painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
            match &texture {
                Some(t) => {
                    let size = t.size_vec2();
                    let fitted = size * (TILE / size.max_elem().max(1.0));
                    let at = Rect::from_center_size(rect.center(), fitted);
                    let uv = Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
                    painter.image(t.id(), at, uv, egui::Color32::WHITE);
                }
                None => {
                    painter.text(
                        rect.center(),
                        egui::Align2::CENTER_CENTER,
                        "?",
                        egui::FontId::proportional(24.0),
                        ui.visuals().weak_text_color(),
                    );
                }
            }
            if selected {
                let stroke = egui::Stroke::new(3.0, ui.visuals().selection.bg_fill);
                painter.rect_stroke(rect.shrink(1.5), 2.0, stroke, egui::StrokeKind::Inside);
            }
            if focused {
                let stroke = egui::Stroke::new(1.0, ui.visuals().strong_text_color());
                painter.rect_stroke(rect.shrink(5.0), 2.0, stroke, egui::StrokeKind::Inside);
            }
            if response.double_clicked() {
                action = Some(GalleryAction::Open(id));
            } else if response.clicked() {
                let kind = ClickKind::from_modifiers(ui.input(|i| i.modifiers));
                self.selection.click(id, kind, shown);
            }
            response.on_hover_text(format!(
                "{}\n{} · {} · seed {}",
                entry.prompt,
                kind_label(entry.kind),
                entry_model(entry),
                entry.seed()
            ));
            ui.horizontal(|ui| {
                let favourite = self.favourites.contains(&id);
                // Drawn, not a glyph: the bundled fonts have no star.
                let (rect, star) = ui.allocate_exact_size(Vec2::splat(16.0), Sense::click());
                paint_star(ui, rect, favourite, star.hovered());
                let star = star.on_hover_text(if favourite {
                    "Unstar"
                } else {
                    "Star as a favourite"
                });
                star.widget_info(|| {
                    egui::WidgetInfo::selected(
                        egui::Role::CheckBox,
                        true,
                        favourite,
                        format!("Favourite {id}"),
                    )
                });
                if star.clicked() {
                    action = Some(GalleryAction::SetFavourite(id, !favourite));
                }
                let prompt = if entry.prompt.trim().is_empty() {
                    "(unconditional)"
                } else {
                    entry.prompt.lines().next().unwrap_or("")
                };
                ui.add(egui::Label::new(RichText::new(prompt).small()).truncate());
            });
        });
        action
    }
}

/// A five-pointed star in `rect`: filled for a favourite, outlined otherwise.
fn paint_star(ui: &Ui, rect: Rect, filled: bool, hovered: bool) {
    let centre = rect.center();
    let outer = rect.width().min(rect.height()) / 2.0 - 1.0;
    let points: Vec<egui::Pos2> = (0..10)
        .map(|i| {
            let radius = if i % 2 == 0 { outer } else { outer * 0.45 };
            // From the top point, clockwise.
            let angle = std::f32::consts::PI * (i as f32 / 5.0 - 0.5);
            centre + radius * Vec2::angled(angle)
        })
        .collect();
    let colour = if filled {
        egui::Color32::from_rgb(240, 190, 40)
    } else if hovered {
        ui.visuals().strong_text_color()
    } else {
        ui.visuals().weak_text_color()
    };
    // Concave: egui fills convex shapes only, so the filled star is five triangles and a
    // pentagon.
    let painter = ui.painter();
    if filled {
        let inner: Vec<egui::Pos2> = points.iter().skip(1).step_by(2).copied().collect();
        painter.add(egui::Shape::convex_polygon(
            inner,
            colour,
            egui::Stroke::NONE,
        ));
        for i in (0..10).step_by(2) {
            let tri = vec![points[(i + 9) % 10], points[i], points[(i + 1) % 10]];
            painter.add(egui::Shape::convex_polygon(tri, colour, egui::Stroke::NONE));
        }
    }
    painter.add(egui::Shape::closed_line(
        points,
        egui::Stroke::new(1.2, colour),
    ));
}
