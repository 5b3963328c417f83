//! Class mode in the window, driven by labels: the tiny Hi-DiT fixture chosen in the models
//! view, a class found by typing in the search, the result in the history with its settings,
//! in its PNG, reused and exported; what the window says when there is no model or a broken
//! one; and the Hi-DiT job on the engine (steps, cancellation, the cached model).

use std::path::{Path, PathBuf};
use std::time::Duration;

use candle_core::Device;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use hidream_studio::app::{Mode, ScriptedDialogs, SeedMode, StudioApp};
use hidream_studio::engine::{Engine, Event};
use hidream_studio::models::hidit::Mode as Sampler;
use hidream_studio::pipelines::hidit::{
    HiditFiles, HiditModels, HiditRecord, HiditSettings, MAX_STEPS, generate,
};
use hidream_studio::pipelines::{DeviceChoice, HiDreamBackend, HiditJob, Job, JobOutput, Silent};
use hidream_studio::store::{EntryKind, StoredRecord, read_stored_record};

use super::studio_window::{run_until, type_prompt};
use crate::common::window::{Window, dirs_with_models, paths};
use crate::common::{copy_dir, fixtures};

/// The fixture's ten classes, named (its args.json has no names of its own).
const NAMES: [&str; 10] = [
    "red circle",
    "green circle",
    "blue circle",
    "yellow circle",
    "red square",
    "green square",
    "blue square",
    "yellow square",
    "red star",
    "blue star",
];

fn vae() -> PathBuf {
    fixtures().join("hidit/files/vae/tiny-vae.pt")
}

fn stats() -> PathBuf {
    fixtures().join("hidit/files/vae/tiny-vae-latents-stats.pt")
}

/// A copy of the fixture experiment folder under `root` with `names` as its `class_names`.
fn experiment_with_names(root: &Path, names: Option<&[&str]>) -> PathBuf {
    let exp = root.join("exp");
    copy_dir(&fixtures().join("hidit/model"), &exp);
    if let Some(names) = names {
        let path = exp.join("args.json");
        let mut args: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        args["class_names"] = serde_json::json!(names);
        std::fs::write(&path, serde_json::to_string_pretty(&args).unwrap()).unwrap();
    }
    exp
}

/// Chooses the experiment folder, VAE and statistics in the models view, as the dialogs
/// answer, and goes back to class mode.
fn choose_hidit_files(harness: &mut Harness<'static, StudioApp>, with_files: bool) {
    harness.get_by_label("Models").click();
    harness.run_ok();
    harness.get_by_label("Choose experiment folder…").click();
    harness.run_ok();
    if with_files {
        harness.get_by_label("Choose VAE file…").click();
        harness.run_ok();
        harness.get_by_label("Choose statistics file…").click();
        harness.run_ok();
    }
    harness.get_by_label("Done").click();
    harness.run_ok();
    harness.get_by_label("Class to image").click();
    harness.run_ok();
}

/// Clicks Generate and waits for the job to end (filed or failed).
fn generate_and_wait(harness: &mut Harness<'static, StudioApp>) {
    harness.get_by_label("Generate").click();
    harness.run_ok();
    run_until(harness, Duration::from_mins(2), "the class job", |app| {
        app.pending_jobs().is_empty()
    });
}

fn error_text(app: &StudioApp) -> String {
    let messages = app.messages();
    messages.iter().rev().find(|m| m.is_error).map_or_else(
        || panic!("no error shown: {messages:?}"),
        |m| m.text.clone(),
    )
}

fn hidit_record(record: &StoredRecord) -> &HiditRecord {
    match record {
        StoredRecord::Hidit(r) => r,
        other => panic!("expected a Hi-DiT record, got {other:?}"),
    }
}

#[test]
fn a_searched_class_is_drawn_filed_reused_and_exported() {
    let root = tempfile::tempdir().unwrap();
    let paths = paths(root.path());
    let exp = experiment_with_names(root.path(), Some(&NAMES));
    let exported = root.path().join("exported.png");
    let dialogs = ScriptedDialogs {
        folders: vec![exp.clone()],
        weight_files: vec![vae(), stats()],
        save_paths: vec![exported.clone()],
        ..Default::default()
    };
    let mut harness = Window::new(&paths).dialogs(dialogs).build();
    harness.run_ok();
    // A fresh install without bundled models: the first-run screen, until a model is chosen.
    harness.get_by_label("Choose model folders…");
    choose_hidit_files(&mut harness, true);
    assert_eq!(harness.state().mode(), Mode::Class);
    let config = harness.state().config().models.clone();
    assert_eq!(
        (config.hidit, config.hidit_vae, config.hidit_latents_stats),
        (Some(exp.clone()), Some(vae()), Some(stats()))
    );

    type_prompt(&mut harness, "Search classes", "blue sq");
    harness.get_by_label("blue square").click();
    harness.run_ok();
    assert_eq!(harness.state().class_panel().class, Some(6));
    harness.get_by_label("blue square (label 6)");
    {
        let app = harness.state_mut();
        let panel = app.class_panel_mut();
        panel.steps = 4;
        panel.sampler = Sampler::Sde;
        panel.cfg_scale = 2.5;
        panel.guidance_low = 0.1;
        panel.guidance_high = 0.7;
        app.generate_panel_mut().seed_mode = SeedMode::Fixed;
        app.generate_panel_mut().seed = 31;
    }
    generate_and_wait(&mut harness);
    let entries = harness.state().history_entries().to_vec();
    assert_eq!(entries.len(), 1, "{:?}", harness.state().messages());
    let entry = &entries[0];
    assert_eq!(entry.kind, EntryKind::Class);
    assert_eq!(entry.prompt, "blue square");
    harness.get_by_label("class: blue square");
    let record = hidit_record(&entry.record).clone();
    let s = &record.settings;
    assert_eq!(
        (s.class, s.steps, s.mode, s.cfg_scale, s.seed),
        (6, 4, Sampler::Sde, 2.5, 31)
    );
    assert_eq!((s.guidance_low, s.guidance_high), (0.1, 0.7));
    assert_eq!(record.class_name.as_deref(), Some("blue square"));
    assert_eq!(record.files.model, exp);
    assert_eq!(record.files.vae, Some(vae()));
    assert_eq!(record.files.latents_stats, Some(stats()));
    assert_eq!(record.noise, "seed");
    assert_eq!((record.width, record.height), (64, 64));

    // The PNG carries the record, and its pixels are the pipeline's for these settings.
    let bytes = std::fs::read(&entry.image_path).unwrap();
    assert_eq!(
        read_stored_record(&bytes).unwrap(),
        Some(entry.record.clone())
    );
    let models = HiditModels::load(&record.files, &Device::Cpu).unwrap();
    let direct = generate(&models, s, None, &mut Silent).unwrap();
    let filed = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(
        filed, direct.image,
        "the window runs the pipeline as the command does"
    );

    // Export keeps the record.
    harness.get_by_label("Export…").click();
    harness.run_ok();
    let exported_bytes = std::fs::read(&exported).unwrap();
    assert_eq!(
        read_stored_record(&exported_bytes).unwrap(),
        Some(entry.record.clone())
    );
    drop(harness);

    // A second window reads the entry back and "Reuse settings" restores the class controls.
    let mut second = Window::new(&paths).build();
    second.run_ok();
    assert_eq!(second.state().history_entries(), entries.as_slice());
    second.get_by_label("Reuse settings").click();
    second.run_ok();
    let app = second.state();
    assert_eq!(app.mode(), Mode::Class);
    let panel = app.class_panel();
    assert_eq!(
        (panel.class, panel.steps, panel.sampler, panel.cfg_scale),
        (Some(6), 4, Sampler::Sde, 2.5)
    );
    assert_eq!((panel.guidance_low, panel.guidance_high), (0.1, 0.7));
    let seed = app.generate_panel();
    assert_eq!((seed.seed, seed.seed_mode), (31, SeedMode::Fixed));
}

#[test]
fn no_model_or_a_broken_one_is_said_in_the_window() {
    let dirs = dirs_with_models();
    let root = tempfile::tempdir().unwrap();
    // args.json that does not parse.
    let damaged = root.path().join("damaged");
    copy_dir(&fixtures().join("hidit/model"), &damaged);
    std::fs::write(damaged.join("args.json"), "{ not json").unwrap();
    // A checkpoint cut in half: args.json reads, the engine fails to load it.
    let truncated = experiment_with_names(root.path(), None);
    let checkpoint = truncated.join("checkpoints/0000100.pt");
    let bytes = std::fs::read(&checkpoint).unwrap();
    std::fs::write(&checkpoint, &bytes[..bytes.len() / 2]).unwrap();
    let dialogs = ScriptedDialogs {
        folders: vec![damaged.clone(), truncated.clone()],
        weight_files: vec![vae(), stats()],
        ..Default::default()
    };
    let mut harness = Window::new(&dirs.paths).dialogs(dialogs).build();
    harness.run_ok();

    // No model: the panel says so, and Generate says what to do.
    harness.get_by_label("Class to image").click();
    harness.run_ok();
    harness.get_by_label_contains("No Hi-DiT model is set");
    generate_and_wait(&mut harness);
    let e = error_text(harness.state());
    assert!(
        e.contains("No Hi-DiT model is set") && e.contains("Models"),
        "{e}"
    );

    // A folder whose args.json is damaged: the models view and the panel name the file.
    choose_hidit_files(&mut harness, false);
    harness.get_by_label_contains("The Hi-DiT model cannot be used");
    generate_and_wait(&mut harness);
    let e = error_text(harness.state());
    assert!(
        e.contains(&damaged.join("args.json").display().to_string()),
        "{e}"
    );

    // A truncated checkpoint: the job fails with the file's name, the window keeps running.
    choose_hidit_files(&mut harness, true);
    harness.state_mut().clear_messages();
    generate_and_wait(&mut harness);
    let e = error_text(harness.state());
    assert!(e.contains("Choose a class first"), "{e}");
    type_prompt(&mut harness, "Search classes", "3");
    harness.get_by_label("class 3").click();
    harness.run_ok();
    harness.state_mut().class_panel_mut().steps = 2;
    generate_and_wait(&mut harness);
    let e = error_text(harness.state());
    assert!(
        e.starts_with("Class: class 3 failed") && e.contains("0000100.pt"),
        "{e}"
    );
    assert!(harness.state().history_entries().is_empty());

    // Settings the sampler refuses are worded with the window's labels, not the flags.
    {
        let panel = harness.state_mut().class_panel_mut();
        panel.guidance_low = 0.8;
        panel.guidance_high = 0.2;
    }
    harness.state_mut().clear_messages();
    harness.get_by_label("Generate").click();
    harness.run_ok();
    let e = error_text(harness.state());
    assert!(
        e.contains("Guidance from") && e.contains("Guidance to") && !e.contains("--"),
        "{e}"
    );
    assert!(harness.state().pending_jobs().is_empty());
}

/// A Hi-DiT job for the fixture with `steps` ODE steps.
fn engine_job(steps: usize) -> HiditJob {
    HiditJob {
        files: HiditFiles {
            model: fixtures().join("hidit/model"),
            checkpoint: None,
            vae: Some(vae()),
            latents_stats: None,
        },
        settings: HiditSettings {
            class: 2,
            steps,
            mode: Sampler::Ode,
            cfg_scale: 1.0,
            guidance_low: 0.0,
            guidance_high: 1.0,
            seed: 5,
            tau: None,
            latent_only: false,
        },
        device: DeviceChoice::Cpu,
    }
}

#[test]
fn the_engine_reports_each_step_cancels_and_keeps_the_model_loaded() {
    let mut engine = Engine::spawn(HiDreamBackend::default());
    let next = |engine: &Engine<HiDreamBackend>| {
        engine
            .next_event_timeout(Duration::from_mins(1))
            .expect("an event within a minute")
    };
    // Long enough to be cancelled while running.
    let long = engine.submit(Job::Hidit(engine_job(MAX_STEPS)));
    let mut loaded = false;
    loop {
        match next(&engine) {
            Event::Loading { what, .. } => {
                assert!(what.contains("Hi-DiT"), "{what}");
                loaded = true;
            }
            Event::Step { step: 2, total, .. } => {
                assert_eq!(total, MAX_STEPS);
                assert!(engine.cancel(long));
            }
            Event::Cancelled { id } => {
                assert_eq!(id, long);
                break;
            }
            Event::Finished { .. } => panic!("the long job finished before its cancel"),
            Event::Failed { error, .. } => panic!("{error}"),
            _ => {}
        }
    }
    assert!(loaded);
    // The next jobs on the same files reuse the model: no Loading, one Step per step. The
    // load is reported once, by the first job that finishes on it.
    let mut load_ms = Vec::new();
    for _ in 0..2 {
        let id = engine.submit(Job::Hidit(engine_job(3)));
        let mut steps = Vec::new();
        let output = loop {
            match next(&engine) {
                Event::Loading { .. } => panic!("the cached model was loaded again"),
                Event::Step { step, .. } => steps.push(step),
                Event::Finished {
                    id: done, output, ..
                } => {
                    assert_eq!(done, id);
                    break output;
                }
                Event::Failed { error, .. } => panic!("{error}"),
                Event::Cancelled { .. } => panic!("cancelled"),
                _ => {}
            }
        };
        assert_eq!(steps, vec![1, 2, 3]);
        let JobOutput::Hidit(generation) = output else {
            panic!("expected a Hi-DiT output");
        };
        assert_eq!(generation.record.settings.class, 2);
        let t = &generation.record.timings;
        assert!(t.total_ms >= t.load_ms + t.decode_ms, "{t:?}");
        load_ms.push(t.load_ms);
    }
    assert!(load_ms[0] > 0.0 && load_ms[1] == 0.0, "{load_ms:?}");
}
