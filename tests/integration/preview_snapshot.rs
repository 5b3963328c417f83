//! The canvas draws a running job's preview through the wgpu paint callback. The estimate is
//! a real one: step 3 of 6 of the fixture model, captured from the pipeline's progress
//! reports (a live job would reach a different step on every run; the snapshot must not).

use crate::common::{fixture_model, fixtures};
use candle_core::Tensor;
use egui_kittest::Harness;
use hidream_studio::app::Canvas;
use hidream_studio::engine::Cancelled;
use hidream_studio::pipelines::{
    ComputeDType, DeviceChoice, EncoderMemory, GenerateSettings, HiDreamModels, ModelSelection,
    Preset, Progress, generate,
};
use hidream_studio::preview::{LatentFrame, PreviewRenderer, render_cpu};
use hidream_studio::schedulers::ShiftMode;

/// Keeps the estimate of one step.
struct Capture {
    step: usize,
    x0: Option<Tensor>,
}

impl Progress for Capture {
    fn stage(&mut self, _: &str) -> Result<(), Cancelled> {
        Ok(())
    }

    fn step(&mut self, step: usize, _: usize, x0: Option<Tensor>) -> Result<(), Cancelled> {
        if step == self.step {
            self.x0 = x0;
        }
        Ok(())
    }
}

fn mid_generation_estimate() -> Tensor {
    let selection = ModelSelection {
        model: fixture_model("full-square"),
        llama: fixtures().join("llama-3.1-tiny"),
        dtype: ComputeDType::F32,
        device: DeviceChoice::Cpu,
        transformer: None,
        placement: hidream_studio::settings::PlacementChoice::default(),
    };
    let mut models = HiDreamModels::load(&selection, EncoderMemory::Keep).unwrap();
    let settings = GenerateSettings {
        models: selection,
        prompt: "a red circle to the left of a blue square".into(),
        negative_prompt: None,
        preset: Preset::Full,
        steps: Some(6),
        guidance: None,
        shift: None,
        shift_mode: ShiftMode::Dynamic,
        width: 64,
        height: 64,
        base_resolution: 64,
        seed: 11,
        init: None,
    };
    let mut capture = Capture { step: 3, x0: None };
    generate(&mut models, &settings, None, &mut capture).unwrap();
    capture.x0.expect("step 3 reports its estimate")
}

struct PreviewApp {
    canvas: Canvas,
    frame: LatentFrame,
}

impl eframe::App for PreviewApp {
    fn ui(&mut self, ui: &mut egui::Ui, _: &mut eframe::Frame) {
        egui::CentralPanel::default().show(ui, |ui| {
            self.canvas.ui(
                ui,
                None,
                Some("Generate: a red circle · step 3 of 6"),
                Some(&self.frame),
            );
        });
    }
}

#[test]
fn canvas_shows_the_preview_mid_generation() {
    let frame = LatentFrame::from_tensor(&mid_generation_estimate(), 1).unwrap();
    // The shader's output is the CPU reference's, so the snapshot shows the reference mapping.
    let reference = render_cpu(&frame.latent, frame.size, (64, 64)).unwrap();
    assert!(reference.pixels().any(|p| p != reference.get_pixel(0, 0)));
    let mut harness = Harness::builder()
        .with_size(egui::vec2(480.0, 400.0))
        .wgpu()
        .build_eframe(|cc| {
            let render_state = cc
                .wgpu_render_state
                .as_ref()
                .expect("the wgpu harness gives the app a render state");
            PreviewRenderer::install(render_state);
            PreviewApp {
                canvas: Canvas::default(),
                frame,
            }
        });
    harness.run_ok();
    harness.snapshot("preview_mid_generation");
}
