//! The Queue list under the controls: the running job with its progress and Cancel, then the
//! waiting ones, each with Up, Down and Remove. Also the Batch count the panels share.

use egui::{DragValue, RichText, Ui};

use super::actions::Action;
use super::jobs::PendingJob;
use super::queue::{JobQueue, MAX_BATCH, QueueEntry};
use super::submit::short;

/// Draws the list; nothing when no job is running or waiting.
pub(crate) fn queue_ui(ui: &mut Ui, running: &[PendingJob], queue: &JobQueue) -> Option<Action> {
    let waiting = queue.waiting();
    if running.is_empty() && waiting.is_empty() {
        return None;
    }
    let mut action = None;
    ui.separator();
    ui.horizontal(|ui| {
        let count = running.len() + waiting.len();
        ui.label(RichText::new(format!("Queue ({count})")).strong());
        if ui.small_button("Cancel all").clicked() {
            action = Some(Action::CancelAll);
        }
    });
    for job in running {
        ui.horizontal(|ui| {
            if ui
                .small_button("×")
                .on_hover_text("Cancel this job")
                .clicked()
            {
                action = Some(Action::Cancel(job.id));
            }
            // Truncated, not wider than the panel: a long prompt would be clipped mid-word.
            ui.add(egui::Label::new(short(&job.title)).truncate())
                .on_hover_text(&job.title);
        });
        // Its own line, so a long title never hides how far it is.
        ui.add(egui::ProgressBar::new(job.fraction()).text(job.status_line()));
    }
    let rest = queue.current_remaining();
    if rest > 0 {
        ui.weak(format!("then {rest} more of this batch"));
    }
    let last = waiting.len().saturating_sub(1);
    for (index, entry) in waiting.iter().enumerate() {
        if let Some(asked) = waiting_row_ui(ui, entry, index > 0, index < last) {
            action = Some(asked);
        }
    }
    action
}

/// One waiting entry: its title (with the batch size) and its buttons.
fn waiting_row_ui(
    ui: &mut Ui,
    entry: &QueueEntry,
    can_go_up: bool,
    can_go_down: bool,
) -> Option<Action> {
    let mut action = None;
    ui.horizontal(|ui| {
        let key = entry.key;
        if ui
            .add_enabled(can_go_up, egui::Button::new("Up").small())
            .on_hover_text("Run this one earlier")
            .clicked()
        {
            action = Some(Action::MoveQueued { key, up: true });
        }
        if ui
            .add_enabled(can_go_down, egui::Button::new("Down").small())
            .on_hover_text("Run this one later")
            .clicked()
        {
            action = Some(Action::MoveQueued { key, up: false });
        }
        if ui
            .small_button("Remove")
            .on_hover_text("Take it out of the queue; it will not run")
            .clicked()
        {
            action = Some(Action::RemoveQueued(key));
        }
        // The image count first: a long title is cut at the panel's edge.
        let line = if entry.total > 1 {
            format!("{}× {}", entry.total, short(&entry.title))
        } else {
            short(&entry.title)
        };
        ui.add(egui::Label::new(line).truncate())
            .on_hover_text(&entry.title);
    });
    action
}

/// The Batch count: how many images one click makes, seeds counting up from the seed.
pub(crate) fn batch_ui(ui: &mut Ui, batch: &mut u32) {
    ui.horizontal(|ui| {
        let label = ui.label("Batch");
        ui.add(DragValue::new(batch).range(1..=MAX_BATCH))
            .labelled_by(label.id)
            .on_hover_text("Images per click, with seeds seed, seed + 1, …");
        ui.label(if *batch == 1 { "image" } else { "images" });
    });
}
