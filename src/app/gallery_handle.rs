//! What the gallery's actions do: favourites in the history, opening a result on the canvas,
//! exporting and deleting the selection.
//!
//! A delete only hides the entries at first: the gallery offers Undo, and the rows and files
//! are removed once [`UNDO_WINDOW`] has passed or the window closes. A stray Delete key never
//! loses a result, and a crash meanwhile leaves the entries in the history.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use egui::Ui;

use super::StudioApp;
use super::export::{export_entry, suggested_name};
use super::gallery_view::GalleryAction;
use crate::store::HistoryEntry;

/// How long a delete can be undone.
pub(crate) const UNDO_WINDOW: Duration = Duration::from_secs(20);

/// Entries deleted in the gallery, hidden until the undo window passes.
pub(crate) struct PendingDelete {
    entries: Vec<HistoryEntry>,
    at: Instant,
}

impl StudioApp {
    /// Shows or hides the gallery; on opening, the favourites are read from the history.
    pub(super) fn toggle_gallery(&mut self) {
        self.gallery.open = !self.gallery.open;
        if !self.gallery.open {
            return;
        }
        self.show_models = false;
        if let Some(history) = &self.history {
            match history.favourites() {
                Ok(favourites) => self.gallery.favourites = favourites,
                Err(e) => self.error(format!("The favourites cannot be read: {e}")),
            }
        }
    }

    /// Draws the gallery in `ui` and carries out what was asked.
    pub(super) fn gallery_ui(&mut self, ui: &mut Ui) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let undo = self.gallery.deleted.as_ref().map(|d| d.entries.len());
        if let Some(action) = self.gallery.ui(ui, &self.entries, undo, now_ms) {
            self.handle_gallery(ui.ctx(), action);
        }
    }

    fn handle_gallery(&mut self, ctx: &egui::Context, action: GalleryAction) {
        match action {
            GalleryAction::SetFavourite(id, favourite) => {
                let Some(history) = self.history.as_mut() else {
                    return self.error("Favourites cannot be kept: the history is not available.");
                };
                match history.set_favourite(id, favourite) {
                    Ok(()) if favourite => _ = self.gallery.favourites.insert(id),
                    Ok(()) => _ = self.gallery.favourites.remove(&id),
                    Err(e) => self.error(format!("The favourite could not be kept: {e}")),
                }
            }
            GalleryAction::Open(id) => {
                self.gallery.open = false;
                self.select(ctx, id);
            }
            GalleryAction::Export(ids) => self.export_selected(&ids),
            GalleryAction::Delete(ids) => self.hide_deleted(&ids),
            GalleryAction::Undo => self.undo_delete(),
            GalleryAction::Close => self.gallery.open = false,
        }
    }

    /// One result: the save dialog, as the history's Export. Several: a folder, each under its
    /// suggested name (made unique).
    fn export_selected(&mut self, ids: &[i64]) {
        let entries: Vec<HistoryEntry> = self
            .entries
            .iter()
            .filter(|e| ids.contains(&e.id))
            .cloned()
            .collect();
        let targets = match &entries[..] {
            [] => return,
            [one] => match self.dialogs.save_image(&suggested_name(one)) {
                Some(path) => vec![(one, path)],
                None => return,
            },
            many => {
                let title = format!("Choose a folder for the {} results", many.len());
                let Some(folder) = self.dialogs.pick_folder(&title) else {
                    return;
                };
                many.iter()
                    .map(|e| (e, unused_path(&folder, &suggested_name(e), e.id)))
                    .collect()
            }
        };
        let mut written = 0;
        for (entry, path) in targets {
            match export_entry(entry, &path) {
                Ok(_) => written += 1,
                Err(e) => self.error(format!("Export of result {} failed: {e:#}", entry.id)),
            }
        }
        match written {
            0 => {}
            1 => self.info("Exported 1 result."),
            n => self.info(format!("Exported {n} results.")),
        }
    }

    /// Takes `ids` out of the lists, to be deleted when the undo window passes. An earlier
    /// delete still pending joins this one, so Undo brings back both.
    fn hide_deleted(&mut self, ids: &[i64]) {
        let (deleted, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| ids.contains(&e.id));
        self.entries = kept;
        if deleted.is_empty() {
            return;
        }
        if self.selected.is_some_and(|s| ids.contains(&s)) {
            self.selected = None;
            self.canvas.clear();
        }
        let mut entries = self
            .gallery
            .deleted
            .take()
            .map_or_else(Vec::new, |d| d.entries);
        entries.extend(deleted);
        self.gallery.deleted = Some(PendingDelete {
            entries,
            at: Instant::now(),
        });
    }

    fn undo_delete(&mut self) {
        if let Some(deleted) = self.gallery.deleted.take() {
            self.entries.extend(deleted.entries);
            // Newest first, as the history lists them.
            self.entries.sort_by_key(|e| std::cmp::Reverse(e.id));
        }
    }

    /// Called every frame: deletes for good what the undo window has passed for.
    pub(super) fn gallery_tick(&mut self, ctx: &egui::Context) {
        if let Some(deleted) = &self.gallery.deleted {
            match UNDO_WINDOW.checked_sub(deleted.at.elapsed()) {
                Some(left) => ctx.request_repaint_after(left),
                None => self.commit_deleted(),
            }
        }
    }

    /// Removes the pending delete's rows and files from the history.
    pub(super) fn commit_deleted(&mut self) {
        let Some(deleted) = self.gallery.deleted.take() else {
            return;
        };
        let Some(history) = self.history.as_mut() else {
            return;
        };
        let mut failed = Vec::new();
        for entry in deleted.entries {
            let id = entry.id;
            match history.delete(id) {
                Ok(()) => {
                    self.history_panel.forget(id);
                    self.gallery.forget(id);
                    for e in &mut self.entries {
                        if e.parent == Some(id) {
                            e.parent = None;
                        }
                    }
                }
                Err(e) => failed.push(format!("result {id}: {e}")),
            }
        }
        if !failed.is_empty() {
            self.error(format!("Could not delete {}", failed.join("; ")));
        }
    }
}

impl Drop for StudioApp {
    /// On exit a pending delete is carried out: the user asked for it and did not undo.
    fn drop(&mut self) {
        self.commit_deleted();
    }
}

/// `folder/name`, or `folder/stem-ID.ext` when a file of that name exists.
fn unused_path(folder: &Path, name: &str, id: i64) -> std::path::PathBuf {
    let path = folder.join(name);
    if !path.exists() {
        return path;
    }
    let stem = Path::new(name)
        .file_stem()
        .map_or_else(|| "hidream".into(), |s| s.to_string_lossy().into_owned());
    folder.join(format!("{stem}-{id}.png"))
}
