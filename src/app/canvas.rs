//! The central canvas: shows one image with zoom and pan, and takes brush strokes in edit mode.

use egui::{
    Color32, ColorImage, Pos2, Rect, Sense, Stroke, TextureFilter, TextureHandle, TextureOptions,
    Ui, Vec2,
};
use image::RgbImage;

use eframe::egui_wgpu;
use egui::emath::GuiRounding as _;

use super::brush::{Brush, BrushMask};
use crate::preview::{LatentFrame, PreviewCallback};

const MIN_ZOOM: f32 = 0.05;
const MAX_ZOOM: f32 = 32.0;
/// The mask overlay's colour where the user has painted.
const MASK_TINT: [u8; 4] = [255, 70, 70, 110];

/// How result images are sampled wherever they are drawn (canvas, history thumbnails). The
/// bundled models make 64×64 images shown many times larger: drawn larger than their pixels they
/// are sampled nearest, so each pixel stays a crisp square; drawn smaller (a large image fitted
/// to the canvas) they are sampled linearly, which blurs less than dropping pixels. The GPU picks
/// between the two per draw from the on-screen scale, so one texture serves both.
pub(crate) fn result_texture_options() -> TextureOptions {
    TextureOptions {
        magnification: TextureFilter::Nearest,
        minification: TextureFilter::Linear,
        ..TextureOptions::LINEAR
    }
}

pub struct Canvas {
    image: Option<ShownImage>,
    overlay: Option<(u64, TextureHandle)>,
    /// Screen points per image pixel when not fitting.
    zoom: f32,
    /// Offset of the image centre from the view centre, in screen points.
    pan: Vec2,
    fit: bool,
}

struct ShownImage {
    key: String,
    texture: TextureHandle,
    size: [usize; 2],
}

impl Default for Canvas {
    fn default() -> Self {
        Self {
            image: None,
            overlay: None,
            zoom: 1.0,
            pan: Vec2::ZERO,
            fit: true,
        }
    }
}

impl Canvas {
    /// Shows `image` under `key`; showing the same key again keeps the uploaded texture.
    pub fn show(&mut self, ctx: &egui::Context, key: &str, image: &RgbImage) {
        if self.image.as_ref().is_some_and(|i| i.key == key) {
            return;
        }
        let size = [image.width() as usize, image.height() as usize];
        let color = ColorImage::from_rgb(size, image.as_raw());
        let texture = ctx.load_texture(format!("canvas:{key}"), color, result_texture_options());
        self.image = Some(ShownImage {
            key: key.to_string(),
            texture,
            size,
        });
        self.overlay = None;
        self.fit = true;
        self.pan = Vec2::ZERO;
    }

    pub fn clear(&mut self) {
        self.image = None;
        self.overlay = None;
    }

    pub(crate) fn shown_key(&self) -> Option<&str> {
        self.image.as_ref().map(|i| i.key.as_str())
    }

    /// Draws the toolbar and the canvas. With `mask`, primary-button drags paint on it (pan
    /// with the secondary or middle button); otherwise any drag pans. `status` is drawn over
    /// the canvas (the running job).
    /// With `preview`, the running job's estimate is drawn (fitted) instead of the image.
    pub fn ui(
        &mut self,
        ui: &mut Ui,
        mask: Option<(&mut BrushMask, Brush)>,
        status: Option<&str>,
        preview: Option<&LatentFrame>,
    ) {
        self.toolbar_ui(ui);
        let rect = ui.available_rect_before_wrap();
        let response = ui.allocate_rect(rect, Sense::click_and_drag());
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "Canvas"));
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, ui.visuals().extreme_bg_color);

        if let Some(frame) = preview {
            let (w, h) = frame.size;
            let size = Vec2::new(w as f32, h as f32);
            let fitted = size * ((rect.size() / size).min_elem() * 0.98);
            let at = Rect::from_center_size(rect.center(), fitted)
                .round_to_pixels(ui.pixels_per_point());
            painter.add(egui_wgpu::Callback::new_paint_callback(
                at,
                PreviewCallback {
                    frame: frame.clone(),
                    size_points: at.size(),
                },
            ));
            if let Some(status) = status {
                Self::status_ui(ui, &painter, rect, status);
            }
            return;
        }

        let Some(image) = &self.image else {
            let text = status
                .unwrap_or("Nothing to show yet: generate an image or pick one from the history.");
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                text,
                egui::FontId::proportional(15.0),
                ui.visuals().weak_text_color(),
            );
            return;
        };
        let image_size = Vec2::new(image.size[0] as f32, image.size[1] as f32);
        let texture_id = image.texture.id();
        if self.fit {
            let fit = (rect.size() / image_size).min_elem() * 0.98;
            self.zoom = fit.clamp(MIN_ZOOM, MAX_ZOOM);
            self.pan = Vec2::ZERO;
        }
        self.zoom_and_pan(ui, &response, rect, mask.is_some());
        let image_rect = Rect::from_center_size(rect.center() + self.pan, image_size * self.zoom);
        let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
        painter.image(texture_id, image_rect, uv, Color32::WHITE);

        if let Some((mask, brush)) = mask {
            let to_image = |p: Pos2| ((p - image_rect.min) / self.zoom).to_pos2();
            let painting = response.dragged_by(egui::PointerButton::Primary);
            if painting && let Some(pointer) = response.interact_pointer_pos() {
                mask.paint(to_image(pointer), brush);
            }
            if response.drag_stopped() || !painting {
                mask.end_stroke();
            }
            self.overlay_ui(ui, &painter, mask, image_rect);
            if let Some(pointer) = response.hover_pos() {
                let colour = if brush.eraser {
                    Color32::LIGHT_BLUE
                } else {
                    Color32::from_rgb(255, 90, 90)
                };
                painter.circle_stroke(pointer, brush.radius * self.zoom, Stroke::new(1.5, colour));
            }
        }
        if let Some(status) = status {
            Self::status_ui(ui, &painter, rect, status);
        }
    }

    fn status_ui(ui: &Ui, painter: &egui::Painter, rect: Rect, status: &str) {
        painter.text(
            rect.center_top() + Vec2::new(0.0, 12.0),
            egui::Align2::CENTER_TOP,
            status,
            egui::FontId::proportional(14.0),
            ui.visuals().strong_text_color(),
        );
    }

    fn toolbar_ui(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            if ui
                .selectable_label(self.fit, "Fit")
                .on_hover_text("Fit the image to the canvas")
                .clicked()
            {
                self.fit = true;
            }
            if ui
                .selectable_label(!self.fit && self.zoom == 1.0, "1:1")
                .on_hover_text("One image pixel per screen point")
                .clicked()
            {
                self.fit = false;
                self.zoom = 1.0;
                self.pan = Vec2::ZERO;
            }
            if ui.button("−").on_hover_text("Zoom out").clicked() {
                self.fit = false;
                self.zoom = (self.zoom / 1.25).clamp(MIN_ZOOM, MAX_ZOOM);
            }
            if ui.button("+").on_hover_text("Zoom in").clicked() {
                self.fit = false;
                self.zoom = (self.zoom * 1.25).clamp(MIN_ZOOM, MAX_ZOOM);
            }
            if self.image.is_some() {
                ui.weak(format!("{:.0} %", self.zoom * 100.0));
            }
        });
    }

    /// Wheel zooms about the pointer; dragging pans (not with the primary button while
    /// brushing).
    fn zoom_and_pan(&mut self, ui: &Ui, response: &egui::Response, rect: Rect, brushing: bool) {
        if response.hovered() {
            let scroll = ui.input(|i| i.smooth_scroll_delta.y);
            if scroll != 0.0 {
                let factor = (scroll / 200.0).exp();
                let new_zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
                if let Some(pointer) = response.hover_pos() {
                    // Keep the image point under the pointer where it is.
                    let from_centre = pointer - (rect.center() + self.pan);
                    self.pan += from_centre - from_centre * (new_zoom / self.zoom);
                }
                self.zoom = new_zoom;
                self.fit = false;
            }
        }
        let panning = response.dragged_by(egui::PointerButton::Middle)
            || response.dragged_by(egui::PointerButton::Secondary)
            || (!brushing && response.dragged_by(egui::PointerButton::Primary));
        if panning {
            self.pan += response.drag_delta();
            self.fit = false;
        }
    }

    fn overlay_ui(&mut self, ui: &Ui, painter: &egui::Painter, mask: &BrushMask, at: Rect) {
        let stale = self
            .overlay
            .as_ref()
            .is_none_or(|(version, _)| *version != mask.version);
        if stale {
            let (w, h) = mask.size();
            let mut rgba = Vec::with_capacity(mask.pixels().len() * 4);
            for &m in mask.pixels() {
                if m > 0 {
                    rgba.extend_from_slice(&MASK_TINT);
                } else {
                    rgba.extend_from_slice(&[0, 0, 0, 0]);
                }
            }
            let image = ColorImage::from_rgba_unmultiplied([w as usize, h as usize], &rgba);
            let texture = ui
                .ctx()
                .load_texture("canvas:mask", image, TextureOptions::NEAREST);
            self.overlay = Some((mask.version, texture));
        }
        if let Some((_, texture)) = &self.overlay {
            let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
            painter.image(texture.id(), at, uv, Color32::WHITE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter a texture with `options` is sampled with when drawn at `scale` screen pixels
    /// per image pixel (the GPU sampler's rule: above one it magnifies).
    fn filter_at_scale(options: TextureOptions, scale: f32) -> TextureFilter {
        if scale > 1.0 {
            options.magnification
        } else {
            options.minification
        }
    }

    #[test]
    fn results_are_crisp_magnified_and_smooth_scaled_down() {
        let options = result_texture_options();
        // A 64×64 result fitted to a 600-point canvas at 1 pixel per point: about 9× larger.
        assert_eq!(
            filter_at_scale(options, 600.0 / 64.0),
            TextureFilter::Nearest
        );
        // A 1024×1024 result fitted to the same canvas.
        assert_eq!(
            filter_at_scale(options, 600.0 / 1024.0),
            TextureFilter::Linear
        );
        // The sampler's edges stay clamped, as with egui's default.
        assert_eq!(options.wrap_mode, TextureOptions::LINEAR.wrap_mode);
    }
}
