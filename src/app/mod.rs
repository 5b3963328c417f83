//! The studio window. Each panel is its own type whose `ui` draws it and answers with an
//! [`Action`]; [`StudioApp`] composes them, sends jobs to the engine and files the results in
//! the history.
//!
//! The app's `impl` is split by concern: `logic.rs` takes in what happened (engine events,
//! dropped files, shortcuts) in eframe's `logic` hook, before anything is drawn; `ui.rs`
//! draws; `handle.rs` carries out the panels' actions; `submit.rs` turns the controls into
//! jobs. The UI thread never waits on model work: jobs go to the engine thread over a channel
//! and their events are drained once per frame (the engine requests a repaint after each one).

mod actions;
mod brush;
mod canvas;
mod chat;
mod chat_items;
mod chat_panel;
mod class_model;
mod class_panel;
mod compare_view;
mod config;
mod dialogs;
mod downloads;
mod edit_panel;
mod editor;
mod export;
mod first_run;
mod gallery_filter;
mod gallery_handle;
mod gallery_select;
mod gallery_view;
mod generate_panel;
mod handle;
mod history_panel;
mod jobs;
mod layout;
mod logic;
mod model_bar;
mod models_view;
mod queue;
mod queue_view;
mod start_image;
mod submit;
mod ui;
mod widgets;

use std::path::PathBuf;
use std::process::ExitCode;

use egui::Ui;
use image::RgbImage;

pub use actions::Action;
pub use brush::Brush;
pub use brush::BrushMask;
pub use canvas::Canvas;
pub use chat_panel::{Attached, ChatItem, ChatPanel, MESSAGE_REQUEST};
pub use class_panel::ClassPanel;
pub use config::{HiditFile, ModelFolders, ModelSlot, StudioConfig, StudioPaths, UseBundled};
pub use dialogs::Dialogs;
pub(crate) use dialogs::NativeDialogs;
pub use dialogs::ScriptedDialogs;
pub use edit_panel::EditPanel;
pub use editor::Editor;

pub use generate_panel::GeneratePanel;
pub use generate_panel::PROMPT_REQUEST;
pub use generate_panel::SeedMode;
pub use generate_panel::SizeChoice;

pub use jobs::JobPhase;
pub use jobs::PendingJob;
pub use layout::PanelWidths;
pub use queue::QueueEntry;
pub use start_image::{StartImage, StartPanel};

use class_model::ClassModelCache;
use first_run::FirstRunView;
use gallery_view::GalleryView;
use history_panel::{HistoryPanel, unreadable_note};
use layout::{CONTROLS_RANGE, HISTORY_RANGE, SteadyPanel};
use model_bar::ModelBar;
use models_view::ModelsView;
use queue::JobQueue;

use crate::engine::{Engine, JobId};
use crate::hub::HubClient;
use crate::pipelines::{HiDreamBackend, Preset};
use crate::preview::{LatentFrame, PreviewRenderer};
use crate::store::{History, HistoryEntry};
use crate::weights::HubCache;

/// Everything the window needs from outside.
pub struct StudioOptions {
    pub paths: StudioPaths,
    pub cache: Option<HubCache>,
    pub dialogs: Box<dyn Dialogs>,
    /// Models used for every slot the configuration leaves empty: the bundled Shapes models
    /// (and Shapes Hi-DiT, once bundled), so a fresh install makes pictures at once. Empty: the first-run screen asks for models.
    pub bundled: ModelFolders,
    /// The hub the models view downloads from (HF_ENDPOINT and HF_TOKEN in the window).
    pub hub: HubClient,
}

/// Which controls the right panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Generate,
    Edit,
    /// A class-conditional image from a Hi-DiT model.
    Class,
    /// A conversation with the agent, which makes and changes pictures.
    Chat,
}

/// What the canvas shows in edit mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EditView {
    /// The image being edited, with the mask.
    Source,
    /// The entry selected in the history (the last result).
    Selected,
}

/// The image an edit starts from.
struct EditSource {
    path: PathBuf,
    /// The history entry it is, if any: the result's parent.
    entry: Option<i64>,
    image: RgbImage,
}

/// A line in the status area.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub text: String,
    pub is_error: bool,
}

/// The root of the window.
pub struct StudioApp {
    paths: StudioPaths,
    cache: Option<HubCache>,
    dialogs: Box<dyn Dialogs>,
    config: StudioConfig,
    engine: Engine<HiDreamBackend>,
    bundled: ModelFolders,
    history: Option<History>,
    entries: Vec<HistoryEntry>,
    selected: Option<i64>,
    mode: Mode,
    edit_view: EditView,
    show_models: bool,
    /// The gallery (shown instead of the studio while open) and its pending delete.
    gallery: GalleryView,
    generate: GeneratePanel,
    edit: EditPanel,
    class: ClassPanel,
    chat: ChatPanel,
    /// The conversation the chat panel shows, as the agent reads it.
    conversation: crate::agent::Conversation,
    /// Class mode's model as configured, read once per set of files.
    class_model: ClassModelCache,
    edit_source: Option<EditSource>,
    mask: Option<BrushMask>,
    /// Generate mode's start image (image-to-image), with its own mask.
    start: StartPanel,
    canvas: Canvas,
    history_panel: HistoryPanel,
    /// The side panels, whose widths change only when the user drags their edges.
    history_side: SteadyPanel,
    controls_side: SteadyPanel,
    models_view: ModelsView,
    /// The top bar's model line (folder names and sizes, read once).
    model_bar: ModelBar,
    first_run: FirstRunView,
    /// The jobs sent to the engine and not yet ended: one at a time, see `queue`.
    jobs: Vec<PendingJob>,
    /// What waits to be sent, in the user's order.
    queue: JobQueue,
    messages: Vec<Message>,
    gpu_previews: bool,
    /// The running job's latest clean-image estimate.
    preview: Option<(JobId, LatentFrame)>,
    /// The preset and model whose defaults the controls show (a bundled model has its own).
    defaults_shown_for: Option<(Preset, Option<PathBuf>)>,
    preview_versions: u64,
    /// Ctrl+Enter was pressed: submit once this frame's drawing has taken the typed text.
    submit_after_drawing: bool,
}

/// At most this many messages are kept on screen.
const MAX_MESSAGES: usize = 4;

impl StudioApp {
    pub fn new(cc: &eframe::CreationContext<'_>, options: StudioOptions) -> Self {
        let ctx = &cc.egui_ctx;
        // Previews are drawn by a wgpu paint callback; without wgpu (a test harness that does
        // not render) the canvas shows the job's status only.
        let gpu_previews = cc
            .wgpu_render_state
            .as_ref()
            .inspect(|rs| PreviewRenderer::install(rs))
            .is_some();
        let StudioOptions {
            paths,
            cache,
            dialogs,
            bundled,
            hub,
        } = options;
        let mut messages = Vec::new();
        let (config, config_problem) = StudioConfig::load(&paths);
        if let Some(problem) = config_problem {
            messages.push(Message {
                text: problem,
                is_error: true,
            });
        }
        let (history, entries) = match History::open_listed(&paths.data_dir) {
            Ok((history, listing)) => {
                if let Some(text) = unreadable_note(&listing.unreadable) {
                    messages.push(Message {
                        text,
                        is_error: true,
                    });
                }
                (Some(history), listing.entries)
            }
            // Damaged, newer, unlistable: the window neither shows nor writes it.
            Err(e) => {
                messages.push(Message {
                    text: format!("{e}. Results will not be kept this session."),
                    is_error: true,
                });
                (None, Vec::new())
            }
        };
        let repaint = ctx.clone();
        let engine = Engine::spawn_with_notifier(
            HiDreamBackend::default(),
            Box::new(move || repaint.request_repaint()),
        );
        let first_run = FirstRunView::new(cache.as_ref());
        let history_side = SteadyPanel::left("history", HISTORY_RANGE, config.panels.history);
        let controls_side = SteadyPanel::right("controls", CONTROLS_RANGE, config.panels.controls);
        let mut app = Self {
            paths,
            cache,
            dialogs,
            bundled,
            config,
            engine,
            history,
            entries,
            selected: None,
            mode: Mode::Generate,
            edit_view: EditView::Source,
            show_models: false,
            gallery: GalleryView::default(),
            generate: GeneratePanel::default(),
            edit: EditPanel::default(),
            class: ClassPanel::default(),
            chat: ChatPanel::default(),
            conversation: crate::agent::Conversation::new(),
            class_model: ClassModelCache::default(),
            edit_source: None,
            mask: None,
            start: StartPanel::default(),
            canvas: Canvas::default(),
            history_panel: HistoryPanel::default(),
            history_side,
            controls_side,
            models_view: ModelsView::new(hub),
            model_bar: ModelBar::default(),
            first_run,
            jobs: Vec::new(),
            queue: JobQueue::default(),
            messages,
            gpu_previews,
            preview: None,
            preview_versions: 0,
            defaults_shown_for: None,
            submit_after_drawing: false,
        };
        app.restore_conversation();
        app
    }

    // ----- read access, for tests and scripting -----

    pub fn history_entries(&self) -> &[HistoryEntry] {
        &self.entries
    }

    pub fn pending_jobs(&self) -> &[PendingJob] {
        &self.jobs
    }

    /// The jobs waiting for the engine, first to run first.
    pub fn waiting_jobs(&self) -> &[QueueEntry] {
        self.queue.waiting()
    }

    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    pub fn config(&self) -> &StudioConfig {
        &self.config
    }

    pub fn generate_panel(&self) -> &GeneratePanel {
        &self.generate
    }

    pub fn generate_panel_mut(&mut self) -> &mut GeneratePanel {
        &mut self.generate
    }

    pub fn edit_panel_mut(&mut self) -> &mut EditPanel {
        &mut self.edit
    }

    pub fn class_panel(&self) -> &ClassPanel {
        &self.class
    }

    pub fn class_panel_mut(&mut self) -> &mut ClassPanel {
        &mut self.class
    }

    /// Shows a download in progress in the Models view's row `label` without running one
    /// (for the snapshot of that screen); false when no known model has that label.
    pub fn show_download_progress(
        &mut self,
        label: &str,
        progress: crate::hub::DownloadProgress,
    ) -> bool {
        self.models_view
            .downloads_mut()
            .show_progress(label, progress)
    }

    pub fn chat_panel(&self) -> &ChatPanel {
        &self.chat
    }

    pub fn conversation(&self) -> &crate::agent::Conversation {
        &self.conversation
    }

    pub fn clear_messages(&mut self) {
        self.messages.clear();
    }

    pub fn mask(&self) -> Option<&BrushMask> {
        self.mask.as_ref()
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn selected(&self) -> Option<i64> {
        self.selected
    }

    // ----- the status area -----

    fn info(&mut self, text: impl Into<String>) {
        self.push_message(text.into(), false);
    }

    fn error(&mut self, text: impl Into<String>) {
        self.push_message(text.into(), true);
    }

    fn push_message(&mut self, text: String, is_error: bool) {
        if is_error {
            tracing::warn!("{text}");
        }
        self.messages.push(Message { text, is_error });
        if self.messages.len() > MAX_MESSAGES {
            self.messages.remove(0);
        }
    }
}

impl eframe::App for StudioApp {
    /// Takes in what happened since the last frame. eframe calls this before `ui`, and also
    /// while the window is hidden, so finished jobs are filed even when nobody looks.
    fn logic(&mut self, ctx: &egui::Context, frame: &mut eframe::Frame) {
        self.log_frame_time(frame);
        self.poll_events(ctx);
        self.show_model_defaults();
        self.dropped_files(ctx);
        self.shortcuts(ctx);
        self.gallery_tick(ctx);
    }

    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        // Taken every frame, so a Ctrl+Enter pressed on a screen without controls is dropped
        // rather than submitted later.
        let submit = std::mem::take(&mut self.submit_after_drawing);
        if self.window_ui(ui) && submit {
            self.submit();
        }
    }
}

/// Opens the studio window and returns when it is closed.
pub fn run_window(paths: Option<StudioPaths>) -> anyhow::Result<ExitCode> {
    let paths = paths.or_else(StudioPaths::platform).ok_or_else(|| {
        anyhow::anyhow!(
            "no home folder was found for the studio's settings and history; pass \
                 --data-dir and --config-dir"
        )
    })?;
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default()
            .with_title("HiDream Studio")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([640.0, 400.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    let cache = HubCache::from_env();
    eframe::run_native(
        "HiDream Studio",
        options,
        Box::new(move |cc| {
            Ok(Box::new(StudioApp::new(
                cc,
                StudioOptions {
                    paths,
                    cache,
                    dialogs: Box::new(NativeDialogs),
                    bundled: ModelFolders::bundled(),
                    hub: HubClient::from_env(),
                },
            )))
        }),
    )
    .map_err(|e| anyhow::anyhow!("could not open the studio window: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
