//! The mask the user brushes on the canvas: one byte per image pixel (255 = edit here), with
//! undo and redo per stroke.

use egui::Pos2;
use image::GrayImage;

/// How many strokes can be undone. Each undo state is a full copy of the mask (1 MB at
/// 1024²), so this bounds the memory.
const UNDO_DEPTH: usize = 40;

pub struct BrushMask {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    undo: Vec<Vec<u8>>,
    redo: Vec<Vec<u8>>,
    last_point: Option<Pos2>,
    /// Bumped on every change, so the canvas knows when to re-upload its overlay.
    pub version: u64,
}

/// Brush settings, shown in the edit panel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Brush {
    /// In image pixels.
    pub radius: f32,
    pub eraser: bool,
}

impl Default for Brush {
    fn default() -> Self {
        Self {
            radius: 24.0,
            eraser: false,
        }
    }
}

impl BrushMask {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            pixels: vec![0; width as usize * height as usize],
            undo: Vec::new(),
            redo: Vec::new(),
            last_point: None,
            version: 0,
        }
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    pub fn is_empty(&self) -> bool {
        self.pixels.iter().all(|&p| p == 0)
    }

    /// Paints from the previous point of the stroke to `point` (image pixels); the first call
    /// of a stroke saves the undo state.
    pub fn paint(&mut self, point: Pos2, brush: Brush) {
        let from = if let Some(p) = self.last_point {
            p
        } else {
            self.undo.push(self.pixels.clone());
            if self.undo.len() > UNDO_DEPTH {
                self.undo.remove(0);
            }
            self.redo.clear();
            point
        };
        let value = if brush.eraser { 0 } else { 255 };
        // Dabs half a radius apart make a continuous line at any drag speed.
        let distance = from.distance(point);
        let spacing = (brush.radius * 0.5).max(0.5);
        let dabs = (distance / spacing).ceil().max(1.0) as usize;
        for i in 0..=dabs {
            let t = i as f32 / dabs as f32;
            self.dab(from.lerp(point, t), brush.radius, value);
        }
        self.last_point = Some(point);
        self.version += 1;
    }

    pub(crate) fn end_stroke(&mut self) {
        self.last_point = None;
    }

    fn dab(&mut self, centre: Pos2, radius: f32, value: u8) {
        let r2 = radius * radius;
        let x0 = (centre.x - radius).floor().max(0.0) as u32;
        let y0 = (centre.y - radius).floor().max(0.0) as u32;
        let x1 = ((centre.x + radius).ceil().max(0.0) as u32).min(self.width);
        let y1 = ((centre.y + radius).ceil().max(0.0) as u32).min(self.height);
        for y in y0..y1 {
            for x in x0..x1 {
                let dx = x as f32 + 0.5 - centre.x;
                let dy = y as f32 + 0.5 - centre.y;
                if dx * dx + dy * dy <= r2 {
                    self.pixels[(y * self.width + x) as usize] = value;
                }
            }
        }
    }

    pub(crate) fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub(crate) fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    pub(crate) fn undo(&mut self) {
        if let Some(previous) = self.undo.pop() {
            self.redo
                .push(std::mem::replace(&mut self.pixels, previous));
            self.version += 1;
        }
    }

    pub(crate) fn redo(&mut self) {
        if let Some(next) = self.redo.pop() {
            self.undo.push(std::mem::replace(&mut self.pixels, next));
            self.version += 1;
        }
    }

    /// Clears the mask; undoable.
    pub fn clear(&mut self) {
        if self.is_empty() {
            return;
        }
        self.undo.push(std::mem::take(&mut self.pixels));
        self.pixels = vec![0; self.width as usize * self.height as usize];
        self.redo.clear();
        self.version += 1;
    }

    /// White where the edit may change the image.
    pub fn to_image(&self) -> Option<GrayImage> {
        GrayImage::from_raw(self.width, self.height, self.pixels.clone())
    }
}

/// The brush's size and mode, and the mask's undo, redo and clear: the edit controls' and
/// the start image's.
pub(crate) fn brush_controls(ui: &mut egui::Ui, brush: &mut Brush, mask: Option<&mut BrushMask>) {
    ui.add(egui::Slider::new(&mut brush.radius, 1.0..=200.0).text("brush size"));
    ui.horizontal(|ui| {
        ui.selectable_value(&mut brush.eraser, false, "Brush");
        ui.selectable_value(&mut brush.eraser, true, "Eraser");
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strokes_undo_and_redo() {
        let mut mask = BrushMask::new(32, 16);
        let brush = Brush {
            radius: 3.0,
            eraser: false,
        };
        mask.paint(Pos2::new(4.0, 8.0), brush);
        mask.paint(Pos2::new(28.0, 8.0), brush);
        mask.end_stroke();
        // The line is continuous between the two points.
        assert!((4..28).all(|x| mask.pixels()[8 * 32 + x] == 255));
        assert_eq!(mask.pixels()[0], 0);
        let painted = mask.pixels().to_vec();
        mask.paint(
            Pos2::new(16.0, 8.0),
            Brush {
                radius: 2.0,
                eraser: true,
            },
        );
        mask.end_stroke();
        assert_eq!(mask.pixels()[8 * 32 + 16], 0);
        mask.undo();
        assert_eq!(mask.pixels(), painted.as_slice());
        mask.undo();
        assert!(mask.is_empty());
        mask.redo();
        assert_eq!(mask.pixels(), painted.as_slice());
        mask.clear();
        assert!(mask.is_empty());
        mask.undo();
        assert_eq!(mask.pixels(), painted.as_slice());
    }
}
