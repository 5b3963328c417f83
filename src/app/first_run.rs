use egui::{RichText, Ui};

use super::actions::Action;
use crate::weights::{CachedModel, HubCache};

/// What the window shows before any model is configured: which HiDream snapshots are already
/// in the Hugging Face cache and how to get the rest.
pub(crate) struct FirstRunView {
    cache_root: Option<std::path::PathBuf>,
    found: Vec<CachedModel>,
}

impl FirstRunView {
    pub fn new(cache: Option<&HubCache>) -> Self {
        let found = cache
            .map(|c| {
                c.models()
                    .into_iter()
                    .filter(|m| is_relevant(&m.repo_id))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            cache_root: cache.map(|c| c.root().to_path_buf()),
            found,
        }
    }

    pub fn ui(&mut self, ui: &mut Ui) -> Option<Action> {
        let mut action = None;
        ui.heading("Welcome to HiDream Studio");
        ui.add_space(8.0);
        ui.label("No model is configured yet.");
        ui.add_space(8.0);
        match &self.cache_root {
            Some(root) => {
                ui.label(format!(
                    "Models found in the Hugging Face cache ({}):",
                    root.display()
                ));
                if self.found.is_empty() {
                    ui.label(RichText::new("none").italics());
                }
                for model in &self.found {
                    ui.monospace(format!(
                        "{}  →  {}",
                        model.repo_id,
                        model.snapshot.display()
                    ));
                }
                if !self.found.is_empty() && ui.button("Use the models from the cache").clicked() {
                    action = Some(Action::StartFromCache);
                }
            }
            None => {
                ui.label(
                    "No Hugging Face cache folder could be found (HF_HOME and HOME are unset).",
                );
            }
        }
        ui.add_space(12.0);
        ui.label(
            "To use HiDream-I1, download a snapshot (HiDream-ai/HiDream-I1-Full, -Dev or -Fast) \
             and meta-llama/Llama-3.1-8B-Instruct: Models has a Download button for each, and \
             `hidream-studio download REPO` does the same on the command line. Folders you \
             already have can be chosen there too; `hidream-studio info FOLDER` checks one.",
        );
        ui.add_space(8.0);
        if ui.button("Choose model folders…").clicked() {
            action = Some(Action::ShowModels);
        }
        action
    }
}

/// HiDream snapshots and the Llama text encoder they need.
fn is_relevant(repo_id: &str) -> bool {
    let lower = repo_id.to_ascii_lowercase();
    lower.contains("hidream") || lower.contains("llama-3.1-8b-instruct")
}
