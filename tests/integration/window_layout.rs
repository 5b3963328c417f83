//! The window's layout holds still: the side panels keep their width when results and jobs
//! arrive, a width the user drags is remembered across restarts, results are drawn crisp when
//! magnified, and Generate without a prompt asks for one.

use std::time::Duration;

use egui::TextureFilter;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use hidream_studio::app::{PROMPT_REQUEST, PanelWidths, StudioApp, StudioConfig};

use super::studio_window::{generate_one, generation_record, run_until, type_prompt};
use crate::common::window::{Window, dirs_with_models};

/// The canvas's left and right edges: where the history ends and the controls begin.
fn canvas_edges(harness: &Harness<'_, StudioApp>) -> (f32, f32) {
    let rect = harness.get_by_label("Canvas").rect();
    (rect.min.x, rect.max.x)
}

#[test]
fn the_side_panels_keep_their_width_when_a_result_arrives() {
    let dirs = dirs_with_models();
    let mut harness = Window::new(&dirs.paths).build();
    harness.run_ok();
    let before = canvas_edges(&harness);
    let prompt_before = harness.get_by_label("Prompt").rect();

    // The job's queue line and the result's history row are both wider than the panels.
    generate_one(&mut harness, 3);
    harness.run_ok();
    assert_eq!(canvas_edges(&harness), before, "the panels changed width");
    assert_eq!(harness.get_by_label("Prompt").rect(), prompt_before);

    // Both places that show the result sample it nearest when magnified, linear when shrunk.
    let textures: Vec<_> = harness
        .ctx
        .tex_manager()
        .read()
        .allocated()
        .map(|(_, meta)| (meta.name.clone(), meta.options))
        .collect();
    for prefix in ["canvas:entry:", "thumbnail:"] {
        let (name, options) = textures
            .iter()
            .find(|(name, _)| name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} texture among {textures:?}"));
        assert_eq!(
            (options.magnification, options.minification),
            (TextureFilter::Nearest, TextureFilter::Linear),
            "{name}"
        );
    }
}

#[test]
fn a_dragged_panel_width_survives_a_restart() {
    let dirs = dirs_with_models();
    let mut harness = Window::new(&dirs.paths).build();
    harness.run_ok();
    let (left, right) = canvas_edges(&harness);

    // Drag the controls' edge 100 points to the left, as with the mouse. The edge is the
    // panel's outer side, its default width from the window's right.
    let edge = 1280.0 - PanelWidths::default().controls;
    let y = 400.0;
    harness.hover_at(egui::pos2(edge, y));
    harness.run_ok();
    harness.drag_at(egui::pos2(edge, y));
    harness.run_ok();
    for x in [edge - 30.0, edge - 70.0, edge - 100.0] {
        harness.hover_at(egui::pos2(x, y));
        harness.run_ok();
    }
    harness.drop_at(egui::pos2(edge - 100.0, y));
    harness.run_ok();
    let dragged = canvas_edges(&harness);
    assert_eq!(
        dragged,
        (left, right - 100.0),
        "only the controls' edge moves"
    );
    let (saved, problem) = StudioConfig::load(&dirs.paths);
    assert_eq!(problem, None);
    assert_eq!(
        saved.panels,
        PanelWidths {
            controls: PanelWidths::default().controls + 100.0,
            ..PanelWidths::default()
        }
    );
    drop(harness);

    let mut restarted = Window::new(&dirs.paths).build();
    restarted.run_ok();
    assert_eq!(canvas_edges(&restarted), dragged);
}

#[test]
fn generate_without_a_prompt_asks_for_one_and_submits_nothing() {
    let dirs = dirs_with_models();
    let mut harness = Window::new(&dirs.paths).build();
    harness.run_ok();
    assert!(harness.query_by_label(PROMPT_REQUEST).is_none());

    // Blank counts as empty.
    type_prompt(&mut harness, "Prompt", "  \n ");
    harness.get_by_label("Generate").click();
    harness.run_ok();
    harness.get_by_label(PROMPT_REQUEST);
    assert!(harness.state().pending_jobs().is_empty());
    assert!(
        harness.state().messages().is_empty(),
        "said by the prompt box, not in the status area: {:?}",
        harness.state().messages()
    );

    // Typing a prompt takes the request away.
    type_prompt(&mut harness, "Prompt", "a red circle");
    assert!(harness.query_by_label(PROMPT_REQUEST).is_none());
}

#[test]
fn unconditional_submits_with_an_empty_prompt() {
    let dirs = dirs_with_models();
    let mut harness = Window::new(&dirs.paths).build();
    harness.state_mut().generate_panel_mut().steps = 2;
    harness.run_ok();
    // A prompt typed before the choice is not sent.
    type_prompt(&mut harness, "Prompt", "a red circle");
    harness.get_by_label("Unconditional (no prompt)").click();
    harness.run_ok();
    assert!(
        harness
            .get_by_label("Prompt")
            .accesskit_node()
            .is_disabled(),
        "the prompt box is not used"
    );
    harness.get_by_label("Generate").click();
    harness.run_ok();
    assert!(harness.query_by_label(PROMPT_REQUEST).is_none());
    let jobs = harness.state().pending_jobs();
    assert_eq!(jobs.len(), 1, "messages: {:?}", harness.state().messages());
    assert_eq!(jobs[0].title, "Generate (unconditional)");
    run_until(&mut harness, Duration::from_mins(5), "the result", |app| {
        !app.history_entries().is_empty()
    });
    assert_eq!(generation_record(harness.state()).settings.prompt, "");
}
