//! The studio window. Each panel is its own type with a `ui` method; [`StudioApp`] composes
//! them, sends jobs to the engine and files the results in the history.
//!
//! The UI thread never waits on model work: jobs go to the engine thread over a channel and
//! their events are drained once per frame (the engine requests a repaint after each one).

mod brush;
mod canvas;
mod config;
mod dialogs;
mod edit_panel;
mod export;
mod first_run;
mod generate_panel;
mod history_panel;
mod jobs;
mod models_view;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use egui::{Key, KeyboardShortcut, Modifiers, RichText, Ui};
use image::RgbImage;

pub use brush::{Brush, BrushMask};
pub use config::{ModelFolders, ModelSlot, StudioConfig, StudioPaths};
pub use dialogs::{Dialogs, NativeDialogs, ScriptedDialogs};
pub use edit_panel::{EditPanel, EditVariant};
pub use export::{ExportFormat, export_entry};
pub use generate_panel::{GeneratePanel, SeedMode, SizeChoice, preset_summary};
pub use jobs::{JobPhase, PendingJob};

pub use canvas::Canvas;
use edit_panel::EditAction;
use first_run::{FirstRunAction, FirstRunView};
use history_panel::{HistoryAction, HistoryPanel, unreadable_note};
use models_view::{ModelsAction, ModelsView};

use crate::engine::{Engine, Event, JobId};
use crate::pipelines::edit::{EditSettings, RefineModel, check_settings, read_rgb};
use crate::pipelines::{
    EditJob, GenerateJob, GenerateSettings, HiDreamBackend, Job, JobOutput, ModelSelection, Preset,
    find_llama,
};
use crate::preview::{LatentFrame, PreviewRenderer};
use crate::schedulers::ShiftMode;
use crate::store::{History, HistoryEntry, StoredRecord, read_stored_record, write_atomically};
use crate::weights::{HubCache, StudioManifest};

/// Everything the window needs from outside.
pub struct StudioOptions {
    pub paths: StudioPaths,
    pub cache: Option<HubCache>,
    pub dialogs: Box<dyn Dialogs>,
    /// Models used for every slot the configuration leaves empty: the bundled Shapes models,
    /// so a fresh install makes pictures at once. Empty: the first-run screen asks for models.
    pub bundled: ModelFolders,
}

/// Which controls the right panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Generate,
    Edit,
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
    generate: GeneratePanel,
    edit: EditPanel,
    edit_source: Option<EditSource>,
    mask: Option<BrushMask>,
    canvas: Canvas,
    history_panel: HistoryPanel,
    models_view: ModelsView,
    first_run: FirstRunView,
    jobs: Vec<PendingJob>,
    messages: Vec<Message>,
    gpu_previews: bool,
    /// The running job's latest clean-image estimate.
    preview: Option<(JobId, LatentFrame)>,
    /// The preset and model whose defaults the controls show (a bundled model has its own).
    defaults_shown_for: Option<(Preset, Option<PathBuf>)>,
    preview_versions: u64,
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
        } = options;
        let mut messages = Vec::new();
        let (config, config_problem) = StudioConfig::load(&paths);
        if let Some(problem) = config_problem {
            messages.push(Message {
                text: problem,
                is_error: true,
            });
        }
        let (history, entries) = match History::open(&paths.data_dir) {
            Ok(history) => {
                let entries = match history.listing() {
                    Ok(listing) => {
                        if let Some(text) = unreadable_note(&listing.unreadable) {
                            messages.push(Message {
                                text,
                                is_error: true,
                            });
                        }
                        listing.entries
                    }
                    Err(e) => {
                        messages.push(Message {
                            text: format!("could not read the history: {e}"),
                            is_error: true,
                        });
                        Vec::new()
                    }
                };
                (Some(history), entries)
            }
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
        Self {
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
            generate: GeneratePanel::default(),
            edit: EditPanel::default(),
            edit_source: None,
            mask: None,
            canvas: Canvas::default(),
            history_panel: HistoryPanel::default(),
            models_view: ModelsView::default(),
            first_run,
            jobs: Vec::new(),
            messages,
            gpu_previews,
            preview: None,
            preview_versions: 0,
            defaults_shown_for: None,
        }
    }

    /// After a preset switch, or when the preset's model changes, shows the model's own
    /// defaults if its manifest has them (the preset's are already shown otherwise).
    fn show_model_defaults(&mut self) {
        let preset = self.generate.preset;
        let model = self.model_for(ModelSlot::for_preset(preset));
        let key = Some((preset, model.clone()));
        if self.defaults_shown_for == key {
            return;
        }
        self.defaults_shown_for = key;
        if let Some(defaults) = model
            .and_then(|m| StudioManifest::read(&m).ok().flatten())
            .and_then(|m| m.defaults)
        {
            self.generate.set_model_defaults(defaults);
        }
    }

    // ----- read access, for tests and scripting -----

    pub fn history_entries(&self) -> &[HistoryEntry] {
        &self.entries
    }

    pub fn pending_jobs(&self) -> &[PendingJob] {
        &self.jobs
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

    pub fn edit_panel(&self) -> &EditPanel {
        &self.edit
    }

    pub fn generate_panel_mut(&mut self) -> &mut GeneratePanel {
        &mut self.generate
    }

    pub fn edit_panel_mut(&mut self) -> &mut EditPanel {
        &mut self.edit
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

    // ----- actions -----

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

    fn save_config(&mut self) {
        if let Err(e) = self.config.save(&self.paths) {
            self.error(format!("{e:#}"));
        }
        self.models_view.recheck();
    }

    /// The folder for a slot: the configured one, else the bundled one.
    fn model_for(&self, slot: ModelSlot) -> Option<PathBuf> {
        self.config
            .models
            .get(slot)
            .or_else(|| self.bundled.get(slot))
            .map(Path::to_path_buf)
    }

    /// A bundled model's own base resolution (its manifest's), else the configured one.
    fn base_resolution_for(&self, model: &Path) -> u32 {
        StudioManifest::read(model)
            .ok()
            .flatten()
            .map_or(self.config.base_resolution, |m| m.base_resolution)
    }

    /// The Llama folder: a bundled model's own, else the configured one, else next to the
    /// model or in the cache.
    fn llama_for(&self, model: &Path) -> Result<PathBuf, String> {
        if let Some(own) = StudioManifest::read(model)
            .ok()
            .flatten()
            .and_then(|m| m.llama_dir(model))
        {
            return Ok(own);
        }
        match &self.config.models.llama {
            Some(llama) => Ok(llama.clone()),
            None => find_llama(None, model, self.cache.as_ref())
                .map_err(|e| format!("{e:#}. Choose the Llama-3.1-8B-Instruct folder in Models.")),
        }
    }

    fn submit_generate(&mut self) {
        let slot = ModelSlot::for_preset(self.generate.preset);
        let Some(model) = self.model_for(slot) else {
            self.error(format!(
                "No folder is set for {}: open Models and choose it (or pick another preset).",
                slot.label()
            ));
            return;
        };
        let llama = match self.llama_for(&model) {
            Ok(llama) => llama,
            Err(e) => return self.error(e),
        };
        let (width, height) = self.generate.requested_size();
        let base_resolution = self.base_resolution_for(&model);
        let uses_guidance = self.generate.uses_guidance();
        let settings = GenerateSettings {
            models: ModelSelection {
                model,
                llama,
                dtype: self.config.dtype(),
                device: self.config.device,
            },
            prompt: self.generate.prompt.clone(),
            negative_prompt: uses_guidance.then(|| self.generate.negative_prompt.clone()),
            preset: self.generate.preset,
            steps: Some(self.generate.steps),
            guidance: Some(self.generate.guidance),
            shift: Some(self.generate.shift),
            shift_mode: ShiftMode::Dynamic,
            width,
            height,
            base_resolution,
            seed: self.generate.take_seed(),
        };
        if let Err(e) = settings.resolve(8) {
            return self.error(format!("Cannot generate: {e}"));
        }
        let title = format!("Generate: {}", short(&settings.prompt));
        let id = self.engine.submit(Job::Generate(GenerateJob {
            settings,
            noise: None,
        }));
        self.jobs.push(PendingJob::new(id, title, None));
    }

    fn submit_edit(&mut self) {
        let Some(source) = &self.edit_source else {
            return self
                .error("Pick the image to edit first: select it in the history or open a file.");
        };
        let slot = match self.edit.variant {
            EditVariant::E1_1 => ModelSlot::E1_1,
            EditVariant::E1Full => ModelSlot::E1Full,
        };
        let Some(model) = self.model_for(slot) else {
            return self.error(format!(
                "No folder is set for {}: open Models and choose it.",
                slot.label()
            ));
        };
        let base_model = self.model_for(ModelSlot::I1Full);
        let base_resolution = Some(self.base_resolution_for(&model)).filter(|&base| base != 1024);
        let llama = match self.llama_for(base_model.as_deref().unwrap_or(&model)) {
            Ok(llama) => llama,
            Err(e) => return self.error(e),
        };
        let image = source.path.clone();
        let parent = source.entry;
        let mask = match self.write_mask() {
            Ok(mask) => mask,
            Err(e) => return self.error(e),
        };
        // A bundled editor's own steps, shift and refine share (the Shapes editor does not
        // refine); real snapshots have no manifest and keep the form's values.
        let model_defaults = StudioManifest::read(&model)
            .ok()
            .flatten()
            .and_then(|m| m.defaults);
        let settings = EditSettings {
            model,
            base_model,
            form: None,
            llama,
            dtype: self.config.dtype(),
            device: self.config.device,
            image,
            instruction: self.edit.instruction.clone(),
            description: None,
            negative_prompt: None,
            mask,
            guidance: Some(self.edit.guidance),
            image_guidance: Some(self.edit.image_guidance),
            clip_cfg_norm: true,
            refine_strength: model_defaults.and_then(|d| d.refine_strength),
            refine_model: RefineModel::Reference,
            steps: model_defaults.map(|d| d.steps),
            shift: model_defaults.map(|d| d.shift),
            // The released editors have their own working sizes (E1.1 1024², E1-Full 768²);
            // a smaller base resolution marks small models, which work at that size.
            base_resolution,
            seed: self.generate.take_seed(),
        };
        if let Err(e) = check_settings(&settings) {
            return self.error(format!("Cannot edit: {e}"));
        }
        let title = format!("Edit: {}", short(&settings.instruction));
        let id = self.engine.submit(Job::Edit(EditJob {
            settings,
            noise: None,
        }));
        self.jobs.push(PendingJob::new(id, title, parent));
    }

    /// Writes the brushed mask as a PNG in the data folder (kept: the edit's record names it);
    /// `None` when nothing is painted.
    fn write_mask(&self) -> Result<Option<PathBuf>, String> {
        let Some(mask) = self.mask.as_ref().filter(|m| !m.is_empty()) else {
            return Ok(None);
        };
        let dir = self.paths.data_dir.join("masks");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("could not create {}: {e}", dir.display()))?;
        let Some(image) = mask.to_image() else {
            return Err("internal error: the mask has the wrong size".into());
        };
        let mut bytes = Vec::new();
        image
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .map_err(|e| format!("could not encode the mask: {e}"))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let path = dir.join(format!("{stamp}-{}.png", self.jobs.len()));
        write_atomically(&path, &bytes)
            .map_err(|e| format!("could not write the mask {}: {e}", path.display()))?;
        Ok(Some(path))
    }

    fn cancel_running(&mut self) {
        if let Some(job) = self.jobs.iter().find(|j| j.is_running()) {
            self.engine.cancel(job.id);
        }
    }

    /// Applies every event the engine has sent since the last frame.
    fn poll_events(&mut self, ctx: &egui::Context) {
        // Only the newest estimate of a frame is shown; older ones are dropped unconverted.
        let mut newest_preview = None;
        while let Some(event) = self.engine.try_next_event() {
            let id = event.id();
            let event_ends_job = event.is_terminal();
            match event {
                Event::Queued { .. } => {}
                Event::Loading { what, .. } => {
                    self.job_mut(id, |j| j.phase = JobPhase::Loading(what));
                }
                Event::Started { .. } => self.job_mut(id, PendingJob::started),
                Event::Stage { stage, .. } => {
                    self.job_mut(id, |j| j.phase = JobPhase::Running(stage));
                }
                Event::Step {
                    step,
                    total,
                    preview,
                    ..
                } => {
                    self.job_mut(id, |j| j.step(step, total));
                    if let Some(x0) = preview {
                        newest_preview = Some((id, x0));
                    }
                }
                Event::Finished {
                    output, elapsed, ..
                } => {
                    let job = self.take_job(id);
                    self.file_result(ctx, output, job.and_then(|j| j.parent));
                    self.info(format!("Done in {:.1} s.", elapsed.as_secs_f64()));
                }
                Event::Failed { error, .. } => {
                    let title = self.take_job(id).map_or_else(String::new, |j| j.title);
                    self.error(format!("{title} failed: {error}"));
                }
                Event::Cancelled { .. } => {
                    let title = self.take_job(id).map_or_else(String::new, |j| j.title);
                    self.info(format!("{title}: cancelled."));
                }
            }
            if self.preview.as_ref().is_some_and(|(job, _)| *job == id) && event_ends_job {
                self.preview = None;
            }
        }
        if let Some((id, x0)) = newest_preview
            && self.gpu_previews
            && self.jobs.iter().any(|j| j.id == id)
        {
            match LatentFrame::from_tensor(&x0, self.preview_versions + 1) {
                Ok(frame) => {
                    self.preview_versions += 1;
                    self.preview = Some((id, frame));
                }
                Err(e) => tracing::warn!("a preview could not be read: {e}"),
            }
        }
    }

    /// Shows `frame` as the running job's preview (what the engine's step events do); for
    /// scripted runs and snapshot tests that need a fixed estimate.
    pub fn show_preview(&mut self, job: JobId, frame: LatentFrame) {
        self.preview = Some((job, frame));
    }

    fn job_mut(&mut self, id: JobId, change: impl FnOnce(&mut PendingJob)) {
        if let Some(job) = self.jobs.iter_mut().find(|j| j.id == id) {
            change(job);
        }
    }

    fn take_job(&mut self, id: JobId) -> Option<PendingJob> {
        let index = self.jobs.iter().position(|j| j.id == id)?;
        Some(self.jobs.remove(index))
    }

    /// Keeps a finished job's image in the history and shows it.
    fn file_result(&mut self, ctx: &egui::Context, output: JobOutput, parent: Option<i64>) {
        let (image, record) = match output {
            JobOutput::Generation(g) => (g.image, StoredRecord::Generation(Box::new(g.record))),
            JobOutput::Edit(e) => {
                for warning in &e.record.warnings {
                    self.info(format!("Edit: {warning}"));
                }
                (e.image, StoredRecord::Edit(Box::new(e.record)))
            }
        };
        let Some(history) = self.history.as_mut() else {
            self.canvas.show(ctx, "unsaved result", &image);
            return self.error("The result could not be kept: the history is not available.");
        };
        match history.add(&image, &record, parent) {
            Ok(entry) => {
                let id = entry.id;
                self.entries.insert(0, entry);
                self.selected = Some(id);
                self.canvas.show(ctx, &format!("entry:{id}"), &image);
                if self.mode == Mode::Edit {
                    self.edit_view = EditView::Selected;
                }
            }
            Err(e) => {
                self.canvas.show(ctx, "unsaved result", &image);
                self.error(format!("The result could not be kept: {e}"));
            }
        }
    }

    fn entry(&self, id: i64) -> Option<&HistoryEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    fn select(&mut self, ctx: &egui::Context, id: i64) {
        let Some(path) = self.entry(id).map(|e| e.image_path.clone()) else {
            return;
        };
        match read_rgb(&path) {
            Ok(image) => {
                self.selected = Some(id);
                self.canvas.show(ctx, &format!("entry:{id}"), &image);
                if self.mode == Mode::Edit {
                    self.edit_view = EditView::Selected;
                }
            }
            Err(e) => self.error(format!("Cannot show this result: {e}")),
        }
    }

    fn set_edit_source(&mut self, path: PathBuf, entry: Option<i64>) {
        match read_rgb(&path) {
            Ok(image) => {
                self.mask = Some(BrushMask::new(image.width(), image.height()));
                self.edit_source = Some(EditSource { path, entry, image });
                self.mode = Mode::Edit;
                self.edit_view = EditView::Source;
            }
            Err(e) => self.error(format!("Cannot edit this image: {e}")),
        }
    }

    fn history_action(&mut self, ctx: &egui::Context, action: HistoryAction) {
        match action {
            HistoryAction::Select(id) => self.select(ctx, id),
            HistoryAction::ReuseSettings(id) => {
                let Some(record) = self.entry(id).map(|e| e.record.clone()) else {
                    return;
                };
                self.apply_record(&record);
            }
            HistoryAction::EditThis(id) => {
                if let Some(path) = self.entry(id).map(|e| e.image_path.clone()) {
                    self.set_edit_source(path, Some(id));
                }
            }
            HistoryAction::Export(id) => self.export(id),
            HistoryAction::Delete(id) => self.delete(id),
        }
    }

    fn apply_record(&mut self, record: &StoredRecord) {
        match record {
            StoredRecord::Generation(r) => {
                self.generate.apply_record(r);
                // The record's values stand; a model's defaults must not replace them.
                let preset = self.generate.preset;
                self.defaults_shown_for =
                    Some((preset, self.model_for(ModelSlot::for_preset(preset))));
                self.mode = Mode::Generate;
            }
            StoredRecord::Edit(r) => {
                self.edit.apply_record(r);
                self.generate.seed = r.settings.seed;
                self.generate.seed_mode = SeedMode::Fixed;
                let source = r.settings.image.clone();
                if source.is_file() {
                    let parent = self
                        .entries
                        .iter()
                        .find(|e| e.image_path == source)
                        .map(|e| e.id);
                    self.set_edit_source(source, parent);
                }
                self.mode = Mode::Edit;
            }
        }
    }

    fn export(&mut self, id: i64) {
        let Some(entry) = self.entry(id).cloned() else {
            return;
        };
        let Some(path) = self.dialogs.save_image(&export::suggested_name(&entry)) else {
            return;
        };
        match export_entry(&entry, &path) {
            Ok(written) => self.info(format!("Exported to {}.", written.display())),
            Err(e) => self.error(format!("Export failed: {e:#}")),
        }
    }

    fn delete(&mut self, id: i64) {
        let Some(history) = self.history.as_mut() else {
            return;
        };
        match history.delete(id) {
            Ok(()) => {
                self.entries.retain(|e| e.id != id);
                self.history_panel.forget(id);
                for e in &mut self.entries {
                    if e.parent == Some(id) {
                        e.parent = None;
                    }
                }
                if self.selected == Some(id) {
                    self.selected = None;
                    self.canvas.clear();
                }
            }
            Err(e) => self.error(format!("Could not delete: {e}")),
        }
    }

    /// A studio PNG dropped on the window brings back its settings; any other image becomes the
    /// image to edit.
    fn dropped_files(&mut self, ctx: &egui::Context) {
        let dropped = ctx.input(|i| i.raw.dropped_files.clone());
        for file in dropped {
            let path = file.path().to_path_buf();
            let bytes = match file.bytes() {
                Ok(bytes) => bytes,
                Err(e) => {
                    self.error(format!(
                        "Cannot read the dropped file {}: {e}",
                        path.display()
                    ));
                    continue;
                }
            };
            match read_stored_record(&bytes) {
                Ok(Some(record)) => {
                    self.apply_record(&record);
                    self.info(format!("Loaded the settings of {}.", path.display()));
                }
                Ok(None) if image::guess_format(&bytes).is_ok() => {
                    self.set_edit_source(path, None);
                }
                Ok(None) => self.error(format!(
                    "{} is not an image HiDream Studio can use.",
                    path.display()
                )),
                // Said, never silently turned into the image to edit: the user dropped it for
                // its settings.
                Err(e) => self.error(format!(
                    "The settings in {} cannot be read, so nothing was loaded: {e:#}. To edit \
                     the picture itself, choose it with Open image… in Edit.",
                    path.display()
                )),
            }
        }
    }

    /// Takes this frame's Ctrl+Enter (so a multiline text box does not see it) and Esc.
    /// Returns whether to submit; the caller submits after drawing, once the text boxes have
    /// taken the characters typed in the same frame.
    fn shortcuts(&mut self, ctx: &egui::Context) -> bool {
        let submit = ctx.input_mut(|i| {
            i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::Enter))
        });
        if ctx.input_mut(|i| i.consume_key(Modifiers::NONE, Key::Escape)) {
            self.cancel_running();
        }
        submit
    }

    fn submit(&mut self) {
        match self.mode {
            Mode::Generate => self.submit_generate(),
            Mode::Edit => self.submit_edit(),
        }
    }

    fn models_action(&mut self, action: ModelsAction) {
        match action {
            ModelsAction::Choose(slot) => {
                if let Some(folder) = self
                    .dialogs
                    .pick_folder(&format!("Choose the {} folder", slot.label()))
                {
                    self.config.models.set(slot, Some(folder));
                    self.save_config();
                }
            }
            ModelsAction::Clear(slot) => {
                self.config.models.set(slot, None);
                self.save_config();
            }
            ModelsAction::FindInCache => self.fill_from_cache(),
            ModelsAction::Changed => self.save_config(),
        }
    }

    fn fill_from_cache(&mut self) {
        let Some(cache) = self.cache.clone() else {
            return;
        };
        let filled = self.config.models.fill_from_cache(&cache);
        if filled.is_empty() {
            self.info("No further models were found in the Hugging Face cache.");
        } else {
            let names: Vec<_> = filled.iter().map(|s| s.label()).collect();
            self.info(format!("From the cache: {}.", names.join(", ")));
            self.save_config();
        }
    }

    // ----- drawing -----

    fn top_bar_ui(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.heading("HiDream Studio");
            ui.separator();
            ui.selectable_value(&mut self.mode, Mode::Generate, "Text to image");
            ui.selectable_value(&mut self.mode, Mode::Edit, "Edit image");
            ui.separator();
            if ui.selectable_label(self.show_models, "Models").clicked() {
                self.show_models = !self.show_models;
            }
        });
    }

    fn status_ui(&mut self, ui: &mut Ui) {
        if let Some(job) = self.jobs.iter().find(|j| j.is_running()) {
            ui.horizontal(|ui| {
                ui.label(&job.title);
                ui.add(
                    egui::ProgressBar::new(job.fraction())
                        .text(job.status_line())
                        .desired_width(ui.available_width() - 90.0),
                );
                if ui.button("Cancel").on_hover_text("Esc").clicked() {
                    self.engine.cancel(job.id);
                }
            });
        }
        let mut dismiss = None;
        for (i, message) in self.messages.iter().enumerate() {
            ui.horizontal(|ui| {
                if ui.small_button("×").on_hover_text("Dismiss").clicked() {
                    dismiss = Some(i);
                }
                if message.is_error {
                    ui.colored_label(ui.visuals().error_fg_color, &message.text);
                } else {
                    ui.label(&message.text);
                }
            });
        }
        if let Some(i) = dismiss {
            self.messages.remove(i);
        }
    }

    fn queue_ui(&mut self, ui: &mut Ui) {
        if self.jobs.is_empty() {
            return;
        }
        ui.separator();
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("Queue ({})", self.jobs.len())).strong());
            if ui.small_button("Cancel all").clicked() {
                self.engine.cancel_all();
            }
        });
        for job in &self.jobs {
            ui.horizontal(|ui| {
                if ui
                    .small_button("×")
                    .on_hover_text("Cancel this job")
                    .clicked()
                {
                    self.engine.cancel(job.id);
                }
                ui.label(short(&job.title));
                ui.weak(job.status_line());
            });
        }
    }

    fn controls_ui(&mut self, ui: &mut Ui) {
        egui::ScrollArea::vertical().show(ui, |ui| {
            match self.mode {
                Mode::Generate => {
                    if self
                        .generate
                        .ui(ui, self.config.base_resolution, self.history.is_some())
                    {
                        self.submit_generate();
                    }
                }
                Mode::Edit => {
                    let name = self.edit_source.as_ref().map(|s| {
                        s.path.file_name().map_or_else(
                            || s.path.display().to_string(),
                            |n| n.to_string_lossy().into_owned(),
                        )
                    });
                    let action = self.edit.ui(
                        ui,
                        name.as_deref(),
                        self.mask.as_mut(),
                        self.history.is_some(),
                    );
                    ui.add_space(4.0);
                    ui.collapsing("Seed", |ui| self.generate.seed_ui(ui));
                    match action {
                        EditAction::Edit => self.submit_edit(),
                        EditAction::OpenImage => {
                            if let Some(path) = self.dialogs.pick_image() {
                                self.set_edit_source(path, None);
                            }
                        }
                        EditAction::None => {}
                    }
                }
            }
            self.queue_ui(ui);
        });
    }

    fn canvas_ui(&mut self, ui: &mut Ui) {
        let running = self.jobs.iter().find(|j| j.is_running());
        let status = running.map(|j| format!("{} · {}", j.title, j.status_line()));
        let preview = self
            .preview
            .as_ref()
            .filter(|(id, _)| running.is_some_and(|j| j.id == *id))
            .map(|(_, frame)| frame.clone());
        if self.mode == Mode::Edit && self.edit_source.is_some() {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut self.edit_view, EditView::Source, "Source and mask");
                ui.add_enabled_ui(self.selected.is_some(), |ui| {
                    ui.selectable_value(&mut self.edit_view, EditView::Selected, "Result");
                });
            });
        }
        let brushing = self.mode == Mode::Edit && self.edit_view == EditView::Source;
        if brushing && let Some(source) = &self.edit_source {
            let key = format!("source:{}", source.path.display());
            self.canvas.show(ui.ctx(), &key, &source.image);
            let brush = self.edit.brush;
            self.canvas.ui(
                ui,
                self.mask.as_mut().map(|m| (m, brush)),
                status.as_deref(),
                None,
            );
            return;
        }
        // Back from the source view: show the selection again.
        if let Some(id) = self.selected
            && self.canvas.shown_key() != Some(format!("entry:{id}").as_str())
        {
            self.select(ui.ctx(), id);
        }
        self.canvas
            .ui(ui, None, status.as_deref(), preview.as_ref());
    }
}

impl eframe::App for StudioApp {
    fn ui(&mut self, ui: &mut Ui, frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        // The UI thread's time for the previous frame while a job runs, for measuring that
        // jobs and previews leave the window responsive (HIDREAM_LOG=hidream_studio::frame=debug).
        if let Some(cpu) = frame.info().cpu_usage
            && self.jobs.iter().any(PendingJob::is_running)
        {
            tracing::debug!(target: "hidream_studio::frame", ui_ms = cpu * 1e3, preview = self.preview.is_some());
        }
        self.poll_events(&ctx);
        self.show_model_defaults();
        self.dropped_files(&ctx);
        let submit = self.shortcuts(&ctx);

        egui::Panel::top("top-bar").show(ui, |ui| self.top_bar_ui(ui));
        egui::Panel::bottom("status")
            .resizable(false)
            .show(ui, |ui| self.status_ui(ui));

        if !self.config.models.any_image_model()
            && !self.bundled.any_image_model()
            && !self.show_models
        {
            egui::CentralPanel::default().show(ui, |ui| match self.first_run.ui(ui) {
                Some(FirstRunAction::UseCache) => {
                    self.fill_from_cache();
                    self.show_models = true;
                }
                Some(FirstRunAction::ChooseFolders) => self.show_models = true,
                None => {}
            });
            return;
        }
        if self.show_models {
            egui::CentralPanel::default().show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.heading("Models");
                    if ui.button("Done").clicked() {
                        self.show_models = false;
                    }
                });
                ui.add_space(6.0);
                let has_cache = self.cache.is_some();
                let action = egui::ScrollArea::vertical()
                    .show(ui, |ui| {
                        self.models_view
                            .ui(ui, &mut self.config, &self.bundled, has_cache)
                    })
                    .inner;
                if let Some(action) = action {
                    self.models_action(action);
                }
            });
            return;
        }

        egui::Panel::left("history")
            .default_size(300.0)
            .min_size(260.0)
            .show(ui, |ui| {
                let entries = std::mem::take(&mut self.entries);
                let action = self.history_panel.ui(ui, &entries, self.selected);
                self.entries = entries;
                if let Some(action) = action {
                    self.history_action(&ctx, action);
                }
            });
        egui::Panel::right("controls")
            .default_size(340.0)
            .min_size(300.0)
            .max_size(420.0)
            .show(ui, |ui| self.controls_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| self.canvas_ui(ui));
        if submit {
            self.submit();
        }
    }
}

/// The first line of a prompt, shortened for lists.
fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > 48 {
        format!("{}…", line.chars().take(48).collect::<String>())
    } else {
        line.to_string()
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
                },
            )))
        }),
    )
    .map_err(|e| anyhow::anyhow!("could not open the studio window: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
