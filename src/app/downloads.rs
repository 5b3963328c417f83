//! The models view's downloads: one row per known model with a Download button, and while
//! it runs a progress bar with speed and time left, Pause and Cancel. Each download runs on
//! its own thread and reports over a channel; the view reads the channel every frame.
//!
//! Pausing stops the thread and keeps the partial blob (`….incomplete`); the view finds such
//! blobs again after a restart and offers to resume them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, TryRecvError};
use egui::{Color32, RichText, Ui};

use super::actions::Action;
use crate::hub::cache::{CacheRepo, INCOMPLETE};
use crate::hub::known::{KNOWN_REPOS, KnownRepo};
use crate::hub::{DownloadOptions, DownloadProgress, HubClient, HubError, download};
use crate::weights::HubCache;

enum Event {
    Progress(DownloadProgress),
    Finished(Result<PathBuf, HubError>),
}

/// A download running on its thread.
struct Running {
    cancel: Arc<AtomicBool>,
    /// Cancel rather than pause: delete the partial blobs once the thread has stopped.
    discard: bool,
    events: Receiver<Event>,
    latest: Option<DownloadProgress>,
}

/// What a row shows when nothing runs for it.
#[derive(Debug, Clone, PartialEq)]
enum Settled {
    /// Looked at the cache: complete, partly there (bytes kept), or absent.
    InCache(PathBuf),
    Partial(u64),
    Absent,
    Failed(String),
}

pub(crate) struct Downloads {
    client: HubClient,
    running: HashMap<usize, Running>,
    /// Per row, read from the cache once (and again after each download), not every frame.
    settled: HashMap<usize, Settled>,
}

impl Downloads {
    pub fn new(client: HubClient) -> Self {
        Self {
            client,
            running: HashMap::new(),
            settled: HashMap::new(),
        }
    }

    /// Shows `progress` in the row labelled `label` as if its download were running, though
    /// nothing runs (Pause and Cancel then do nothing). For the snapshot of a download in
    /// progress, whose speed and time left would differ on every real run. False for an
    /// unknown label.
    pub fn show_progress(&mut self, label: &str, progress: DownloadProgress) -> bool {
        let Some(row) = KNOWN_REPOS.iter().position(|k| k.label == label) else {
            return false;
        };
        self.running.insert(
            row,
            Running {
                cancel: Arc::new(AtomicBool::new(false)),
                discard: false,
                events: crossbeam_channel::never(),
                latest: Some(progress),
            },
        );
        true
    }

    pub fn any_running(&self) -> bool {
        !self.running.is_empty()
    }

    /// The download section; a finished download asks for the empty slots to be filled.
    pub fn ui(&mut self, ui: &mut Ui, cache: Option<&HubCache>) -> Option<Action> {
        let mut action = None;
        ui.label(RichText::new("Download from the Hugging Face hub").strong());
        let Some(cache) = cache else {
            ui.weak(
                "No Hugging Face cache folder could be found: set HF_HUB_CACHE (or HF_HOME) \
                 to download models here.",
            );
            return None;
        };
        ui.weak(format!(
            "Into {} from {}. Llama-3.1-8B-Instruct is gated: accept its licence on the hub \
             and set HF_TOKEN before starting the studio.",
            cache.root().display(),
            self.client.endpoint()
        ));
        if self.poll(cache) {
            action = Some(Action::FindInCache);
        }
        egui::Grid::new("downloads")
            .num_columns(3)
            .spacing([12.0, 6.0])
            .striped(true)
            .show(ui, |ui| {
                for (row, known) in KNOWN_REPOS.iter().enumerate() {
                    ui.label(known.label).on_hover_text(known.note);
                    ui.weak(format!("~{} GB", known.approx_bytes / 1_000_000_000));
                    ui.horizontal(|ui| self.row_ui(ui, row, known, cache));
                    ui.end_row();
                }
            });
        if self.any_running() {
            // Redraws as progress arrives (the thread also wakes the window).
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(250));
        }
        action
    }

    fn row_ui(&mut self, ui: &mut Ui, row: usize, known: &'static KnownRepo, cache: &HubCache) {
        if let Some(running) = self.running.get_mut(&row) {
            let (fraction, text) = running.latest.as_ref().map_or_else(
                || (0.0, "listing files…".to_string()),
                |p| (p.fraction(), p.summary()),
            );
            // The buttons come first so they stay put while the text after them changes.
            if running.discard {
                ui.weak("cancelling…");
            } else {
                let pause = named_button(ui, "Pause", known).clicked();
                let cancel = named_button(ui, "Cancel", known).clicked();
                running.discard = cancel;
                if pause || cancel {
                    running.cancel.store(true, Ordering::Relaxed);
                }
            }
            ui.add(
                egui::ProgressBar::new(fraction)
                    .desired_width(180.0)
                    .show_percentage(),
            );
            ui.label(text);
            return;
        }
        let settled = self
            .settled
            .entry(row)
            .or_insert_with(|| look_in_cache(cache, known))
            .clone();
        match settled {
            Settled::InCache(snapshot) => {
                ui.colored_label(Color32::from_rgb(80, 170, 90), "in the cache")
                    .on_hover_text(snapshot.display().to_string());
            }
            Settled::Partial(bytes) => {
                ui.label(format!("paused at {:.1} GB", bytes as f64 / 1e9));
                if named_button(ui, "Resume", known).clicked() {
                    self.start(row, known, cache, ui.ctx());
                }
                if named_button(ui, "Discard", known).clicked() {
                    discard_partials(cache, known);
                    self.settled.remove(&row);
                }
            }
            Settled::Absent => {
                if named_button(ui, "Download", known).clicked() {
                    self.start(row, known, cache, ui.ctx());
                }
            }
            Settled::Failed(message) => {
                ui.colored_label(ui.visuals().error_fg_color, message);
                if named_button(ui, "Retry", known).clicked() {
                    self.start(row, known, cache, ui.ctx());
                }
            }
        }
    }

    fn start(
        &mut self,
        row: usize,
        known: &'static KnownRepo,
        cache: &HubCache,
        ctx: &egui::Context,
    ) {
        let (sender, events) = crossbeam_channel::unbounded();
        let options = DownloadOptions {
            include: known.include.iter().map(|p| (*p).to_string()).collect(),
            ..DownloadOptions::default()
        };
        let cancel = options.cancel.clone();
        let client = self.client.clone();
        let cache = cache.clone();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("download {}", known.repo))
            .spawn(move || {
                let result = download(&client, &cache, known.repo, &options, &mut |p| {
                    // The view may be gone (window closed): then nobody listens.
                    let _ = sender.send(Event::Progress(p.clone()));
                    ctx.request_repaint();
                });
                let _ = sender.send(Event::Finished(result));
                ctx.request_repaint();
            });
        match spawned {
            Ok(_) => {
                self.settled.remove(&row);
                self.running.insert(
                    row,
                    Running {
                        cancel,
                        discard: false,
                        events,
                        latest: None,
                    },
                );
            }
            Err(e) => {
                self.settled.insert(
                    row,
                    Settled::Failed(format!("could not start the download thread: {e}")),
                );
            }
        }
    }

    /// Takes the threads' reports; true when a download completed this frame.
    fn poll(&mut self, cache: &HubCache) -> bool {
        let mut completed = false;
        let mut finished = Vec::new();
        for (&row, running) in &mut self.running {
            loop {
                match running.events.try_recv() {
                    Ok(Event::Progress(p)) => running.latest = Some(p),
                    Ok(Event::Finished(result)) => {
                        finished.push((row, result, running.discard));
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        finished.push((
                            row,
                            Err(HubError::BadListing {
                                url: String::new(),
                                message: "the download thread stopped unexpectedly".into(),
                            }),
                            running.discard,
                        ));
                        break;
                    }
                }
            }
        }
        for (row, result, discard) in finished {
            self.running.remove(&row);
            let known = &KNOWN_REPOS[row];
            let settled = match result {
                Ok(snapshot) => {
                    completed = true;
                    Settled::InCache(snapshot)
                }
                Err(HubError::Cancelled) if discard => {
                    discard_partials(cache, known);
                    look_in_cache(cache, known)
                }
                Err(HubError::Cancelled) => look_in_cache(cache, known),
                Err(e) => Settled::Failed(e.to_string()),
            };
            self.settled.insert(row, settled);
        }
        completed
    }
}

/// A button whose accessible name says which model it is for ("Download HiDream-I1-Dev"),
/// while it shows the verb only.
fn named_button(ui: &mut Ui, verb: &str, known: &KnownRepo) -> egui::Response {
    let response = ui.button(verb);
    let name = format!("{verb} {}", known.label);
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &name));
    response
}

/// Whether the model is in the cache: its snapshot at `main` holds a file the row's
/// patterns select (any file without patterns); else the bytes of partial blobs.
fn look_in_cache(cache: &HubCache, known: &KnownRepo) -> Settled {
    if let Ok(snapshot) = cache.snapshot(known.repo, Some("main")) {
        let patterns: Vec<glob::Pattern> = known
            .include
            .iter()
            .filter_map(|p| glob::Pattern::new(p).ok())
            .collect();
        let holds = std::fs::read_dir(&snapshot).is_ok_and(|listing| {
            listing.filter_map(Result::ok).any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                patterns.is_empty() || patterns.iter().any(|p| p.matches(&name))
            })
        });
        if holds {
            return Settled::InCache(snapshot);
        }
    }
    match CacheRepo::new(cache, known.repo).partial_bytes() {
        0 => Settled::Absent,
        bytes => Settled::Partial(bytes),
    }
}

/// Deletes the repository's partial blobs (Cancel, Discard).
fn discard_partials(cache: &HubCache, known: &KnownRepo) {
    let blobs = CacheRepo::new(cache, known.repo).dir().join("blobs");
    if let Ok(listing) = std::fs::read_dir(blobs) {
        for entry in listing.filter_map(Result::ok) {
            if entry.file_name().to_string_lossy().ends_with(INCOMPLETE) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
