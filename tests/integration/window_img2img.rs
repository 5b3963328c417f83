//! Image-to-image and inpainting in the window with the bundled Shapes I1 model, as a user
//! would: pick a result as the start image, set Strength, generate; brush a mask on the start
//! image and generate again.

use std::time::Duration;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use hidream_studio::app::StudioApp;
use hidream_studio::settings::InitImage;

use crate::common::window::{Window, brush_stroke, paths};
use crate::studio_window::{generation_record, run_until, type_prompt};

/// Clicks Generate and waits for one more history entry.
fn generate(harness: &mut Harness<'_, StudioApp>) {
    let before = harness.state().history_entries().len();
    harness.get_by_label("Generate").click();
    harness.run_ok();
    run_until(harness, Duration::from_mins(5), "the result", |app| {
        app.history_entries().len() > before
    });
}

#[test]
fn a_result_as_start_image_with_strength_and_a_brushed_mask() {
    let root = tempfile::tempdir().unwrap();
    let mut harness = Window::new(&paths(root.path())).bundled_models().build();
    harness.run_ok();
    type_prompt(
        &mut harness,
        "Prompt",
        "a red circle to the left of a blue square",
    );
    {
        let panel = harness.state_mut().generate_panel_mut();
        panel.seed_mode = hidream_studio::app::SeedMode::Fixed;
        panel.seed = 5;
        // The bundled model is small, but 50 steps three times is slow on a shared CPU.
        panel.steps = 8;
    }
    generate(&mut harness);
    let source = harness.state().history_entries()[0].clone();

    // The result is selected: start from it.
    harness.get_by_label("Use selected result").click();
    harness.run_ok();
    let start = harness
        .state()
        .start_panel()
        .start
        .as_ref()
        .map(|s| s.entry);
    assert_eq!(start, Some(Some(source.id)));
    // The Strength slider is shown (egui labels its handle and its value box alike).
    assert!(harness.get_all_by_label("Strength").next().is_some());
    harness.state_mut().start_panel_mut().strength = 0.5;
    generate(&mut harness);
    let entry = harness.state().history_entries()[0].clone();
    let record = generation_record(harness.state());
    assert_eq!(
        record.settings.init,
        Some(InitImage {
            image: source.image_path.clone(),
            strength: 0.5,
            mask: None,
        })
    );
    assert_eq!(
        entry.parent,
        Some(source.id),
        "the start image is the parent"
    );
    assert_eq!(record.timings.step_ms.len(), 4, "half of the 8 steps ran");

    // "Reuse settings" on a text-to-image result empties the start image; on this one it
    // brings the start image and strength back.
    harness.state_mut().start_panel_mut().strength = 0.9;
    harness
        .get_all_by_label("Reuse settings")
        .nth(1)
        .unwrap()
        .click();
    harness.run_ok();
    assert!(harness.state().start_panel().start.is_none());
    harness
        .get_all_by_label("Reuse settings")
        .next()
        .unwrap()
        .click();
    harness.run_ok();
    let restored = harness.state().start_panel();
    assert_eq!(restored.strength, 0.5);
    assert_eq!(
        restored.start.as_ref().map(|s| (s.path.clone(), s.entry)),
        Some((source.image_path.clone(), Some(source.id)))
    );

    // Back to the start image on the canvas, brush where it may change, generate.
    harness.get_by_label("Paint mask on the canvas").click();
    harness.run_ok();
    assert!(harness.state().start_panel().painting);
    harness.state_mut().edit_panel_mut().brush.radius = 4.0;
    let canvas = harness.get_by_label("Canvas").rect();
    let y = canvas.center().y;
    let from = egui::pos2(canvas.center().x - canvas.width() * 0.1, y);
    let to = egui::pos2(canvas.center().x + canvas.width() * 0.05, y);
    brush_stroke(&mut harness, from, to);
    let painted = {
        let start = harness.state().start_panel().start.as_ref().unwrap();
        assert!(
            !start.mask.is_empty(),
            "the stroke painted the start image's mask"
        );
        start.mask.to_image().unwrap()
    };
    let (w, h) = painted.dimensions();
    assert_eq!(painted.get_pixel(w / 2, h / 2).0, [255]);
    harness.state_mut().start_panel_mut().strength = 1.0;
    generate(&mut harness);
    let entry = harness.state().history_entries()[0].clone();
    let record = generation_record(harness.state());
    let init = record.settings.init.clone().expect("an image-to-image job");
    assert_eq!(init.strength, 1.0);
    let mask_file = init.mask.expect("the job carried the mask");
    let sent = image::open(&mask_file).unwrap().to_luma8();
    assert_eq!(sent, painted, "the mask sent is the mask brushed");

    // Pixels farther than the feather (σ = 1 px at 64², 3σ reach) plus one pixel of
    // rounding from any painted pixel are the start image's exactly: the final composite
    // puts them back, so no VAE round trip error remains there. Inside, the image changed.
    let result = image::open(&entry.image_path).unwrap().to_rgb8();
    let original = image::open(&source.image_path).unwrap().to_rgb8();
    assert_eq!(result.dimensions(), original.dimensions());
    let painted_at: Vec<(i64, i64)> = painted
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0[0] > 0)
        .map(|(x, y, _)| (i64::from(x), i64::from(y)))
        .collect();
    let (mut kept, mut far) = (0, 0);
    for (x, y, p) in result.enumerate_pixels() {
        let near = painted_at
            .iter()
            .any(|&(px, py)| (px - i64::from(x)).abs().max((py - i64::from(y)).abs()) <= 4);
        if !near {
            far += 1;
            kept += usize::from(p == original.get_pixel(x, y));
        }
    }
    assert!(
        far > (w * h / 2) as usize,
        "{far} pixels away from the stroke"
    );
    assert_eq!(
        kept, far,
        "every pixel away from the stroke is the start image's"
    );
    let changed = painted_at
        .iter()
        .filter(|&&(x, y)| {
            result.get_pixel(x as u32, y as u32) != original.get_pixel(x as u32, y as u32)
        })
        .count();
    assert!(changed > 0, "the brushed area was repainted");
}
