//! Two results compared: side by side, or one over the other with a vertical divider the user
//! drags (the left image shows left of it, the right image right of it).

use egui::{Color32, Pos2, Rect, Sense, Stroke, TextureHandle, Ui, Vec2};

use super::canvas::result_texture_options;
use crate::pipelines::edit::read_rgb;
use crate::store::HistoryEntry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CompareMode {
    SideBySide,
    Slider,
}

/// One of the two images: its texture, or why it cannot be shown.
type Loaded = Result<TextureHandle, String>;

pub(crate) struct CompareView {
    ids: [i64; 2],
    images: Option<[Loaded; 2]>,
    mode: CompareMode,
    /// Where the divider is, as a fraction of the width from the left.
    divider: f32,
}

impl CompareView {
    pub(crate) fn new(left: i64, right: i64) -> Self {
        Self {
            ids: [left, right],
            images: None,
            mode: CompareMode::SideBySide,
            divider: 0.5,
        }
    }

    pub(crate) fn ui(&mut self, ui: &mut Ui, entries: &[HistoryEntry]) {
        let ctx = ui.ctx().clone();
        let ids = self.ids;
        let [left, right] = self
            .images
            .get_or_insert_with(|| ids.map(|id| load(&ctx, entries, id)));
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.mode, CompareMode::SideBySide, "Side by side");
            ui.selectable_value(&mut self.mode, CompareMode::Slider, "Slider");
            if self.mode == CompareMode::Slider {
                ui.add(egui::Slider::new(&mut self.divider, 0.0..=1.0).text("Divider"));
            }
        });
        ui.horizontal(|ui| {
            ui.label(format!("Left: result {}", ids[0]));
            ui.separator();
            ui.label(format!("Right: result {}", ids[1]));
        });
        let (left, right) = match (left, right) {
            (Ok(l), Ok(r)) => (l.clone(), r.clone()),
            (Err(e), _) | (_, Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e.as_str());
                return;
            }
        };
        let area = ui.available_rect_before_wrap();
        match self.mode {
            CompareMode::SideBySide => {
                let half = Vec2::new((area.width() - 8.0) / 2.0, area.height());
                let left_rect = Rect::from_min_size(area.min, half);
                let right_rect = Rect::from_min_size(area.min + Vec2::new(half.x + 8.0, 0.0), half);
                image_in(
                    ui,
                    &left,
                    left_rect,
                    format!("Left image, result {}", ids[0]),
                );
                image_in(
                    ui,
                    &right,
                    right_rect,
                    format!("Right image, result {}", ids[1]),
                );
            }
            CompareMode::Slider => self.slider_ui(ui, &left, &right, area),
        }
    }

    /// The right image over the left one, clipped to the right of the divider.
    fn slider_ui(&mut self, ui: &mut Ui, left: &TextureHandle, right: &TextureHandle, area: Rect) {
        let response = ui.allocate_rect(area, Sense::click_and_drag());
        response.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::Image, true, "Comparison slider")
        });
        let at = fit(left.size_vec2(), area);
        if let Some(pointer) = response.interact_pointer_pos()
            && at.width() > 0.0
        {
            self.divider = ((pointer.x - at.left()) / at.width()).clamp(0.0, 1.0);
        }
        let painter = ui.painter_at(area);
        let full = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
        painter.image(left.id(), at, full, Color32::WHITE);
        let x = at.left() + at.width() * self.divider;
        let right_part = Rect::from_min_max(Pos2::new(x, at.top()), at.max);
        let uv = Rect::from_min_max(Pos2::new(self.divider, 0.0), Pos2::new(1.0, 1.0));
        painter.image(right.id(), right_part, uv, Color32::WHITE);
        painter.line_segment(
            [Pos2::new(x, at.top()), Pos2::new(x, at.bottom())],
            Stroke::new(2.0, ui.visuals().strong_text_color()),
        );
    }
}

/// `image` fitted into `rect`, centred.
fn image_in(ui: &mut Ui, image: &TextureHandle, rect: Rect, label: String) {
    let response = ui.allocate_rect(rect, Sense::hover());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, &label));
    let full = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
    ui.painter_at(rect).image(
        image.id(),
        fit(image.size_vec2(), rect),
        full,
        Color32::WHITE,
    );
}

/// The largest rectangle of `size`'s shape that fits in `rect`, centred.
fn fit(size: Vec2, rect: Rect) -> Rect {
    let scale = (rect.size() / size.max(Vec2::splat(1.0)))
        .min_elem()
        .max(0.0);
    Rect::from_center_size(rect.center(), size * scale)
}

fn load(ctx: &egui::Context, entries: &[HistoryEntry], id: i64) -> Loaded {
    let entry = entries
        .iter()
        .find(|e| e.id == id)
        .ok_or_else(|| format!("Result {id} is no longer in the history."))?;
    let image = read_rgb(&entry.image_path).map_err(|e| format!("Cannot show result {id}: {e}"))?;
    let size = [image.width() as usize, image.height() as usize];
    let color = egui::ColorImage::from_rgb(size, image.as_raw());
    Ok(ctx.load_texture(format!("compare:{id}"), color, result_texture_options()))
}
