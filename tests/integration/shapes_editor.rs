//! The bundled Shapes E1.1 editor, end to end through the Rust editing pipeline at its
//! manifest's settings, scored by ShapesEval's edit check (the instruction carried out, the
//! rest of the picture kept).

use hidream_studio::pipelines::edit::{EditModelChoice, EditModels, EditSettings, edit};
use hidream_studio::pipelines::{ComputeDType, DeviceChoice, EncoderMemory, Silent, find_llama};
use hidream_studio::settings::UserValues;
use hidream_studio::shapes::{EditKind, Rgb, check_edit, prompts};
use hidream_studio::weights::{StudioManifest, bundled_model};

/// The mean edit score over ShapesEval's fixed edits of `kind` (seed 0).
fn mean_score(kind: EditKind) -> f64 {
    let model = bundled_model("shapes-e1.1").expect("assets/models/shapes-e1.1 is missing");
    let manifest = StudioManifest::read(&model).unwrap().unwrap();
    let defaults = manifest.defaults.unwrap();
    let size = manifest.base_resolution as usize;
    let dir = tempfile::tempdir().unwrap();
    let specs: Vec<_> = prompts::edits(size)
        .into_iter()
        .filter(|s| s.kind == kind)
        .collect();
    let mut loaded = None;
    let mut total = 0.0;
    for (i, spec) in specs.iter().enumerate() {
        let image = dir.path().join(format!("source-{i}.png"));
        spec.source.render(size).to_image().save(&image).unwrap();
        let models = EditModelChoice::new(
            model.clone(),
            find_llama(None, &model, None).unwrap(),
            ComputeDType::F32,
            DeviceChoice::Cpu,
        );
        // The model's own values, as the window, `edit` and `eval --edits` use them.
        let values = UserValues {
            steps: Some(defaults.steps),
            guidance: Some(defaults.guidance),
            image_guidance: defaults.image_guidance,
            shift: Some(defaults.shift),
            refine_strength: defaults.refine_strength,
            base_resolution: Some(manifest.base_resolution),
        };
        let settings = EditSettings::new(models, image, spec.instruction.clone(), &values, 0);
        let models = loaded.get_or_insert_with(|| {
            EditModels::load(&settings.models, EncoderMemory::Keep).unwrap()
        });
        let result = edit(models, &settings, None, &mut Silent).unwrap();
        let score = check_edit(spec, &Rgb::from_image(&result.image));
        eprintln!("{:?} {:?}: {score:?}", kind, spec.instruction);
        total += score.score;
    }
    total / specs.len() as f64
}

// The bar is 0.8 for every kind tested here. The shipped editor measures (ShapesEval,
// 2 seeds, README) 0.953 on recolours, 0.959 on removals, 0.916 on moves and 1.0 on background
// changes; these tests use seed 0 alone.

#[test]
fn the_editor_moves_an_object_and_keeps_the_rest() {
    let score = mean_score(EditKind::Move);
    assert!(score >= 0.8, "move: mean score {score:.3}");
}

#[test]
fn the_editor_changes_the_background_and_keeps_the_objects() {
    let score = mean_score(EditKind::Background);
    assert!(score >= 0.8, "background: mean score {score:.3}");
}

#[test]
fn the_editor_removes_the_named_object_and_keeps_the_other() {
    let score = mean_score(EditKind::Remove);
    assert!(score >= 0.8, "remove: mean score {score:.3}");
}

/// "make the red circle purple": the named object takes the new colour, the other object and
/// the background keep theirs. Ignoring the instruction scores 0 (not carried out), and so does
/// painting both objects.
#[test]
fn the_editor_recolours_one_object_and_keeps_the_rest() {
    let score = mean_score(EditKind::Recolour);
    assert!(score >= 0.8, "recolour: mean score {score:.3}");
}

fn eval_edits(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
        .args(["eval", "--edits"])
        .args(args)
        .output()
        .unwrap()
}

/// Four steps keep the run short; the other overrides must be accepted with --edits.
#[test]
fn eval_edits_runs_only_the_named_kinds() {
    let out = eval_edits(&[
        "--kinds",
        "background",
        "--seeds",
        "1",
        "--limit",
        "1",
        "--steps",
        "4",
        "--guidance",
        "2",
        "--image-guidance",
        "1.2",
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    let json: serde_json::Value = serde_json::from_str(report.lines().last().unwrap()).unwrap();
    assert_eq!(json["edits"], 1, "{report}");
    let kinds: Vec<_> = json["scores"].as_object().unwrap().keys().collect();
    assert_eq!(kinds, ["background"], "{report}");
}

#[test]
fn eval_edits_names_the_kinds_when_given_an_unknown_one() {
    let out = eval_edits(&["--kinds", "recolour,recolor"]);
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        error.contains("\"recolor\"") && error.contains("recolour, remove, add, move, background"),
        "{error}"
    );
}

/// Zero pictures would print an empty report that exits 0 and reads as a finished evaluation.
#[test]
fn eval_refuses_zero_seeds_or_prompts() {
    for args in [["--seeds", "0"], ["--limit", "0"]] {
        for edits in [false, true] {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hidream-studio"));
            command.arg("eval").args(args);
            if edits {
                command.arg("--edits");
            }
            let out = command.output().unwrap();
            let error = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} edits {edits}: {error}");
            assert!(
                error.contains(args[0]) && error.contains("at least 1"),
                "{error}"
            );
        }
    }
}
