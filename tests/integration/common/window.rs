//! The studio window under test, built one way for every window test: headless through
//! egui_kittest, on a data and a config folder of the test's own. What differs between tests
//! (the dialogs' answers, the bundled models, a renderer for snapshots) is a builder option.

use std::path::Path;

use egui_kittest::Harness;
use hidream_studio::app::{
    Editor, ModelFolders, ModelSlot, ScriptedDialogs, SeedMode, StudioApp, StudioConfig,
    StudioOptions, StudioPaths,
};
use hidream_studio::hub::HubClient;
use hidream_studio::weights::HubCache;

use super::fixtures;

/// A config and a data folder under `root`.
pub fn paths(root: &Path) -> StudioPaths {
    StudioPaths {
        config_dir: root.join("config"),
        data_dir: root.join("data"),
    }
}

/// Saves a configuration that names the fixture models (I1-Full, E1.1 and the tiny Llama) at
/// their 64-pixel base resolution.
pub fn configure_fixture_models(paths: &StudioPaths) {
    let mut config = StudioConfig::default();
    config.models.set(
        ModelSlot::I1Full,
        Some(fixtures().join("full-square/model")),
    );
    config.models.set(
        ModelSlot::Editor(Editor::E1_1),
        Some(fixtures().join("edit-e11/model")),
    );
    config
        .models
        .set(ModelSlot::Llama, Some(fixtures().join("llama-3.1-tiny")));
    config.base_resolution = 64;
    config.save(paths).unwrap();
}

/// A data and a config folder, removed with the value.
pub struct Dirs {
    _root: tempfile::TempDir,
    pub paths: StudioPaths,
}

/// Folders with the fixture models configured.
pub fn dirs_with_models() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let paths = paths(root.path());
    configure_fixture_models(&paths);
    Dirs { _root: root, paths }
}

/// How to build the window: by default 1280×800, no renderer, no bundled models, dialogs that
/// answer nothing.
pub struct Window {
    paths: StudioPaths,
    dialogs: ScriptedDialogs,
    bundled: ModelFolders,
    size: egui::Vec2,
    wgpu: bool,
    fixed_seed: Option<u64>,
    cache: Option<HubCache>,
    hub: HubClient,
    missing_glyphs: bool,
}

impl Window {
    pub fn new(paths: &StudioPaths) -> Self {
        Self {
            paths: paths.clone(),
            dialogs: ScriptedDialogs::default(),
            bundled: ModelFolders::default(),
            size: egui::vec2(1280.0, 800.0),
            wgpu: false,
            fixed_seed: None,
            cache: None,
            // Nothing listens here: a test that downloads names its own hub.
            hub: HubClient::new("http://127.0.0.1:9", None),
            missing_glyphs: false,
        }
    }

    /// The Hugging Face cache the window looks in and downloads into, and the hub it
    /// downloads from.
    pub fn hub(mut self, cache: HubCache, hub: HubClient) -> Self {
        self.cache = Some(cache);
        self.hub = hub;
        self
    }

    /// Draws characters no font has as boxes instead of failing: for text a model wrote at
    /// random (the chat fixture model's words are random tokens, bytes of UTF-8 included).
    pub fn allow_missing_glyphs(mut self) -> Self {
        self.missing_glyphs = true;
        self
    }

    /// What the file dialogs answer.
    pub fn dialogs(mut self, dialogs: ScriptedDialogs) -> Self {
        self.dialogs = dialogs;
        self
    }

    /// The bundled Shapes models fill every slot the configuration leaves empty, as in a
    /// fresh install.
    pub fn bundled_models(mut self) -> Self {
        self.bundled = ModelFolders::bundled();
        self
    }

    /// These folders stand in for the bundled models.
    pub fn bundled(mut self, bundled: ModelFolders) -> Self {
        self.bundled = bundled;
        self
    }

    /// For snapshot images: rendered with wgpu at 1200×720, the seed fixed at 42 before the
    /// first frame (the default seed is random; the screens must not be).
    /// The window's size in points.
    pub fn size(mut self, width: f32, height: f32) -> Self {
        self.size = egui::vec2(width, height);
        self
    }

    pub fn for_snapshots(mut self) -> Self {
        self.size = egui::vec2(1200.0, 720.0);
        self.wgpu = true;
        self.fixed_seed = Some(42);
        self
    }

    pub fn build(self) -> Harness<'static, StudioApp> {
        let Self {
            paths,
            dialogs,
            bundled,
            size,
            wgpu,
            fixed_seed,
            cache,
            hub,
            missing_glyphs,
        } = self;
        let mut builder = Harness::builder().with_size(size);
        if wgpu {
            builder = builder.wgpu();
        }
        if missing_glyphs {
            builder = builder.allow_missing_glyphs();
        }
        builder.build_eframe(move |cc| {
            let mut app = StudioApp::new(
                cc,
                StudioOptions {
                    paths,
                    cache,
                    dialogs: Box::new(dialogs),
                    bundled,
                    hub,
                },
            );
            if let Some(seed) = fixed_seed {
                app.generate_panel_mut().seed_mode = SeedMode::Fixed;
                app.generate_panel_mut().seed = seed;
            }
            app
        })
    }
}

/// Switches to editing and opens the image the scripted dialogs hold.
pub fn open_image_to_edit(harness: &mut Harness<'static, StudioApp>) {
    use egui_kittest::kittest::Queryable as _;
    harness.get_by_label("Edit image").click();
    harness.run_ok();
    harness.get_by_label("Open image…").click();
    harness.run_ok();
}
