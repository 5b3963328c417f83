//! The studio window. Each panel is its own type with a `ui` method; [`StudioApp`] composes them.

mod first_run;

use std::process::ExitCode;

use first_run::FirstRunView;

use crate::weights::HubCache;

/// The root of the window.
pub struct StudioApp {
    first_run: FirstRunView,
}

impl StudioApp {
    pub fn new(cache: Option<HubCache>) -> Self {
        Self {
            first_run: FirstRunView::new(cache),
        }
    }
}

impl eframe::App for StudioApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::CentralPanel::default().show(ui, |ui| self.first_run.ui(ui));
    }
}

/// Opens the studio window and returns when it is closed.
pub fn run_window() -> anyhow::Result<ExitCode> {
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default()
            .with_title("HiDream Studio")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([640.0, 400.0]),
        ..Default::default()
    };
    let cache = HubCache::from_env();
    eframe::run_native(
        "HiDream Studio",
        options,
        Box::new(move |_cc| Ok(Box::new(StudioApp::new(cache)))),
    )
    .map_err(|e| anyhow::anyhow!("could not open the studio window: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
