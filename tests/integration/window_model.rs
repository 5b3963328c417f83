//! Which model runs, visibly: the top bar names the model the current mode uses with its
//! size, dtype and device, switches between the bundled model and a configured folder, and the
//! controls start from that model's own values and example prompts.

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use hidream_studio::app::{ModelFolders, StudioApp};
use hidream_studio::models::hidit::Mode as Sampler;

use crate::common::copy_dir;
use crate::common::window::{Window, dirs_with_models, paths};

/// The value a combo box shows (its selected text).
fn combo_value(harness: &Harness<'_, StudioApp>, label: &str) -> String {
    harness
        .get_by_label(label)
        .accesskit_node()
        .value()
        .unwrap_or_default()
}

/// The example prompts a bundled model's manifest lists.
fn examples(model: &str) -> Vec<String> {
    let path = ModelFolders::bundled()
        .i1_full
        .and_then(|full| full.parent().map(|p| p.join(model).join("studio.json")))
        .expect("the bundled models are in the source tree");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::from_value(manifest["examples"].clone()).unwrap()
}

#[test]
fn a_first_launch_shows_the_bundled_models_own_values() {
    let root = tempfile::tempdir().unwrap();
    let mut harness = Window::new(&paths(root.path())).bundled_models().build();
    harness.run_ok();

    harness.get_by_label("Model: Shapes I1-Full (bundled)");
    // Its size on disk (the transformer, encoders and VAE, in MB), dtype and device.
    let line = harness.get_by_label_contains(" MB · f32 · cpu");
    let node = line.accesskit_node();
    let line = node.label().or(node.value()).unwrap_or_default();
    assert!(line.starts_with(|c: char| c.is_ascii_digit()), "{line}");

    // The bundled Full's own values and size, not the released model's 1024² and guidance 5.
    assert_eq!(combo_value(&harness, "Size"), "64x64");
    harness.get_by_label("Full: 50 steps, UniPC, guidance 2, shift 3");
    let panel = harness.state().generate_panel();
    assert_eq!((panel.steps, panel.guidance, panel.shift), (50, 2.0, 3.0));

    // "Surprise me" fills the prompt with a caption the model was trained to draw.
    harness.get_by_label("Surprise me").click();
    harness.run_ok();
    let prompt = harness.state().generate_panel().prompt.clone();
    assert!(
        examples("shapes-i1-full").contains(&prompt),
        "{prompt:?} is none of the bundled Full's examples"
    );

    // Each preset and mode names its own model.
    harness.get_by_label("Dev").click();
    harness.run_ok();
    harness.get_by_label("Model: Shapes I1-Dev (bundled)");
    harness.get_by_label("Class to image").click();
    harness.run_ok();
    harness.get_by_label("Model: Shapes Hi-DiT (bundled)");
    harness.get_by_label("Edit image").click();
    harness.run_ok();
    harness.get_by_label("Model: Shapes E1.1 (bundled)");
    // The bundled editor's own guidance values (its manifest: 2 and 1.5), not E1.1's built-ins
    // (3 and 1.5).
    let edit = harness.state_mut().edit_panel_mut();
    assert_eq!((edit.guidance, edit.image_guidance), (2.0, 1.5));
    // The editor's own examples are instructions in its training words.
    harness.get_by_label("Surprise me").click();
    harness.run_ok();
    let instruction = harness.state_mut().edit_panel_mut().instruction.clone();
    assert!(
        examples("shapes-e1.1").contains(&instruction),
        "{instruction:?} is none of the bundled E1.1's examples"
    );
}

#[test]
fn the_switcher_picks_the_bundled_model_over_the_configured_folder_and_keeps_it() {
    let dirs = dirs_with_models();
    let mut harness = Window::new(&dirs.paths).bundled_models().build();
    harness.run_ok();
    // The configured fixture folder runs; its real-model defaults are shown.
    assert_eq!(
        combo_value(&harness, "Model"),
        "HiDream-I1-Full (folder model)"
    );
    assert_eq!(harness.state().generate_panel().guidance, 5.0);
    assert!(harness.query_by_label("Surprise me").is_none());

    harness.get_by_label("Model").click();
    harness.run_ok();
    harness.get_by_label("Shapes I1-Full (bundled)").click();
    harness.run_ok();
    assert!(harness.state().config().use_bundled.generate);
    assert_eq!(combo_value(&harness, "Model"), "Shapes I1-Full (bundled)");
    // The bundled model's values follow it; the folder stays set for switching back.
    assert_eq!(harness.state().generate_panel().guidance, 2.0);
    harness.get_by_label("Surprise me");
    assert!(harness.state().config().models.i1_full.is_some());
    drop(harness);

    let mut harness = Window::new(&dirs.paths).bundled_models().build();
    harness.run_ok();
    assert_eq!(combo_value(&harness, "Model"), "Shapes I1-Full (bundled)");
}

#[test]
fn class_mode_starts_from_the_model_s_own_defaults() {
    let bundled = ModelFolders::bundled();
    let source = bundled.hidit.clone().expect("the Shapes Hi-DiT is bundled");
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("shapes-hidit");
    copy_dir(&source, &folder);
    // Values unlike the panel's own (generate.py's 50 steps, ODE, 1.5 over [0, 1]), so the
    // test fails if they are not read.
    let classes = folder.join("classes.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&classes).unwrap()).unwrap();
    json["defaults"] = serde_json::json!({
        "mode": "sde", "num_steps": 20, "cfg_scale": 3.0,
        "guidance_low": 0.1, "guidance_high": 0.7
    });
    std::fs::write(&classes, json.to_string()).unwrap();

    let mut harness = Window::new(&paths(root.path()))
        .bundled(ModelFolders {
            hidit: Some(folder),
            ..bundled
        })
        .build();
    harness.run_ok();
    harness.get_by_label("Class to image").click();
    harness.run_ok();
    let panel = harness.state().class_panel();
    assert_eq!(
        (
            panel.sampler,
            panel.steps,
            panel.cfg_scale,
            panel.guidance_low,
            panel.guidance_high
        ),
        (Sampler::Sde, 20, 3.0, 0.1, 0.7)
    );
}
