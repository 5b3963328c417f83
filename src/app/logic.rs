//! What happened since the last frame, taken in by eframe's `logic` hook before anything is
//! drawn: the engine's events, files dropped on the window and the window-wide shortcuts.

use egui::{Key, KeyboardShortcut, Modifiers};

use super::jobs::{JobPhase, PendingJob};
use super::{EditView, Mode, StudioApp};
use crate::engine::{Event, JobId};
use crate::pipelines::JobOutput;
use crate::preview::LatentFrame;
use crate::store::{StoredRecord, read_stored_record};

use super::submit::class_words;

impl StudioApp {
    /// The UI thread's time for the previous frame while a job runs, for measuring that jobs
    /// and previews leave the window responsive (HIDREAM_LOG=hidream_studio::frame=debug).
    pub(super) fn log_frame_time(&self, frame: &eframe::Frame) {
        if let Some(cpu) = frame.info().cpu_usage
            && self.jobs.iter().any(PendingJob::is_running)
        {
            tracing::debug!(target: "hidream_studio::frame", ui_ms = cpu * 1e3, preview = self.preview.is_some());
        }
    }

    /// Applies every event the engine has sent since the last frame.
    pub(super) fn poll_events(&mut self, ctx: &egui::Context) {
        // Only the newest estimate of a frame is shown; older ones are dropped unconverted.
        let mut newest_preview = None;
        while let Some(event) = self.engine.try_next_event() {
            let id = event.id();
            let event_ends_job = event.is_terminal();
            match event {
                Event::Partial {
                    output: JobOutput::Agent(update),
                    ..
                } => self.agent_update(update),
                // Only agent turns report along the way.
                Event::Queued { .. } | Event::Partial { .. } => {}
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
                Event::Failed { error, setting, .. } => {
                    let job = self.take_job(id);
                    let unmade = self.end_queued(id);
                    let class_job = job.as_ref().is_some_and(|j| j.class_job);
                    let title = job.map_or_else(String::new, |j| j.title);
                    let error = setting.map_or(error, |s| s.for_window());
                    let error = if class_job {
                        class_words(&error)
                    } else {
                        error
                    };
                    self.turn_lost(id, format!("The turn failed: {error}"), true);
                    self.error(format!("{title} failed: {error}{}", batch_rest(unmade)));
                }
                Event::Cancelled { .. } => {
                    let title = self.take_job(id).map_or_else(String::new, |j| j.title);
                    let unmade = self.end_queued(id);
                    self.turn_lost(id, "Stopped before the agent answered.".into(), false);
                    self.info(format!("{title}: cancelled{}.", batch_rest(unmade)));
                }
            }
            if self.preview.as_ref().is_some_and(|(job, _)| *job == id) && event_ends_job {
                self.preview = None;
            }
        }
        // The engine is idle once the last job ended: the queue's next one goes out.
        self.start_next_job();
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
                for warning in &e.warnings {
                    self.info(format!("Edit: {}", warning.for_window()));
                }
                (e.image, StoredRecord::Edit(Box::new(e.record)))
            }
            JobOutput::Hidit(h) => (h.image, StoredRecord::Hidit(Box::new(h.record))),
            // Filed by the engine thread as they are made (see `agent_update`).
            JobOutput::Agent(update) => return self.agent_update(update),
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

    /// A studio PNG dropped on the window brings back its settings; any other image becomes the
    /// image to edit.
    pub(super) fn dropped_files(&mut self, ctx: &egui::Context) {
        // Taken, not copied: while the window is hidden eframe runs `logic` on the last shown
        // frame's input, and a drop must be handled once.
        let dropped = ctx.input_mut(|i| std::mem::take(&mut i.raw.dropped_files));
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
    /// The submission waits until after drawing, once the text boxes have taken the characters
    /// typed in the same frame.
    pub(super) fn shortcuts(&mut self, ctx: &egui::Context) {
        if ctx.input_mut(|i| {
            i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::Enter))
        }) {
            self.submit_after_drawing = true;
        }
        if ctx.input_mut(|i| i.consume_key(Modifiers::NONE, Key::Escape)) {
            self.cancel_running();
        }
    }
}

/// What a failed or cancelled image leaves of its batch, for the status line.
fn batch_rest(unmade: usize) -> String {
    match unmade {
        0 => String::new(),
        1 => " (the last image of its batch is not made)".into(),
        n => format!(" (the {n} images left of its batch are not made)"),
    }
}
