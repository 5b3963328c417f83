//! The top bar's model line: which model the current mode uses (bundled or a folder the user
//! set), its size on disk, dtype and device, and a switcher where both a bundled model and a
//! configured folder exist.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use egui::Ui;

use crate::info::human_bytes;
use crate::weights::StudioManifest;

/// What the bar shows for one mode.
pub(crate) struct ModelChoice<'a> {
    /// The slot's name ("HiDream-I1-Full", "Hi-DiT"), for a configured folder.
    pub slot_label: &'static str,
    pub configured: Option<&'a Path>,
    pub bundled: Option<&'a Path>,
    /// The mode is switched to the bundled model (used only while both exist).
    pub use_bundled: bool,
    /// "f32 · CPU".
    pub compute: String,
}

impl ModelChoice<'_> {
    /// The folder the mode's jobs use and whether it is the bundled one.
    fn in_use(&self) -> Option<(&Path, bool)> {
        match (self.configured, self.bundled) {
            (Some(_), Some(bundled)) if self.use_bundled => Some((bundled, true)),
            (Some(folder), _) => Some((folder, false)),
            (None, Some(bundled)) => Some((bundled, true)),
            (None, None) => None,
        }
    }
}

/// A folder's name and size, read once: walking a 47 GB snapshot every frame would stall it.
#[derive(Default)]
pub(crate) struct ModelBar {
    read: HashMap<PathBuf, (String, Option<u64>)>,
}

impl ModelBar {
    /// Draws the line; answers the new "use bundled" choice when the user switches.
    pub fn ui(&mut self, ui: &mut Ui, choice: &ModelChoice<'_>) -> Option<bool> {
        let Some((folder, is_bundled)) = choice.in_use() else {
            ui.weak("no model set for this mode");
            return None;
        };
        let bundled_name = choice.bundled.map(|b| self.name(b, choice.slot_label));
        let folder_name = choice.configured.map(|c| {
            let short = c.file_name().map_or_else(
                || c.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            format!("{} (folder {short})", choice.slot_label)
        });
        let shown = if is_bundled {
            bundled_name.clone()
        } else {
            folder_name.clone()
        }
        .unwrap_or_default();
        let mut switched = None;
        match (bundled_name, folder_name) {
            (Some(bundled_name), Some(folder_name)) => {
                let mut use_bundled = is_bundled;
                egui::ComboBox::from_label("Model")
                    .selected_text(&shown)
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut use_bundled, true, bundled_name);
                        ui.selectable_value(&mut use_bundled, false, folder_name);
                    });
                if use_bundled != is_bundled {
                    switched = Some(use_bundled);
                }
            }
            _ => {
                ui.label(format!("Model: {shown}"))
                    .on_hover_text(folder.display().to_string());
            }
        }
        let size = self
            .read(folder, choice.slot_label)
            .1
            .map_or_else(|| "size unknown".to_string(), human_bytes);
        ui.weak(format!("{size} · {}", choice.compute));
        switched
    }

    /// A bundled model's name as its manifest gives it ("Shapes I1-Full (bundled)").
    fn name(&mut self, folder: &Path, slot_label: &str) -> String {
        format!("{} (bundled)", self.read(folder, slot_label).0)
    }

    fn read(&mut self, folder: &Path, slot_label: &str) -> &(String, Option<u64>) {
        self.read.entry(folder.to_path_buf()).or_insert_with(|| {
            let name = StudioManifest::read(folder)
                .ok()
                .flatten()
                .map_or_else(|| fallback_name(folder, slot_label), |m| m.name);
            (name, size_on_disk(folder))
        })
    }
}

/// A model without a manifest: the bundled Hi-DiT is named by its folder ("shapes-hidit").
fn fallback_name(folder: &Path, slot_label: &str) -> String {
    match folder.file_name().map(|n| n.to_string_lossy()) {
        Some(name) if name.starts_with("shapes-") => format!("Shapes {slot_label}"),
        Some(name) => name.into_owned(),
        None => slot_label.to_string(),
    }
}

/// The bytes of every file under `folder`, links followed (a Hugging Face snapshot's files
/// are links into its blobs); `None` when it cannot be listed.
fn size_on_disk(folder: &Path) -> Option<u64> {
    let mut total = 0;
    let mut pending = vec![folder.to_path_buf()];
    // A bound on folders walked, against a link that loops back to a parent.
    let mut folders = 0;
    while let Some(dir) = pending.pop() {
        folders += 1;
        if folders > 10_000 {
            return None;
        }
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => pending.push(path),
                Ok(meta) => total += meta.len(),
                // A dangling link: an unfinished download; its bytes are not there.
                Err(_) => {}
            }
        }
    }
    Some(total)
}
