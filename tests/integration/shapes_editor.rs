//! The bundled Shapes E1.1 editor, end to end through the Rust editing pipeline at its
//! manifest's settings, scored by ShapesEval's edit check (the instruction carried out, the
//! rest of the picture kept).

use hidream_studio::pipelines::edit::{EditModels, EditSettings, RefineModel, edit};
use hidream_studio::pipelines::{ComputeDType, DeviceChoice, EncoderMemory, Silent, find_llama};
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
        let settings = EditSettings {
            model: model.clone(),
            base_model: None,
            form: None,
            llama: find_llama(None, &model, None).unwrap(),
            dtype: ComputeDType::F32,
            device: DeviceChoice::Cpu,
            image,
            instruction: spec.instruction.clone(),
            description: None,
            negative_prompt: None,
            mask: None,
            // The model's own values, as the window, `edit` and `eval --edits` use them.
            guidance: Some(defaults.guidance),
            image_guidance: defaults.image_guidance,
            clip_cfg_norm: true,
            refine_strength: defaults.refine_strength,
            refine_model: RefineModel::Reference,
            steps: Some(defaults.steps),
            shift: Some(defaults.shift),
            base_resolution: Some(manifest.base_resolution),
            seed: 0,
        };
        let models = loaded.get_or_insert_with(|| {
            EditModels::load(&settings.model_choice(), EncoderMemory::Keep).unwrap()
        });
        let result = edit(models, &settings, None, &mut Silent).unwrap();
        let score = check_edit(spec, &Rgb::from_image(&result.image));
        eprintln!("{:?} {:?}: {score:?}", kind, spec.instruction);
        total += score.score;
    }
    total / specs.len() as f64
}

// The shipped editor measures 0.999 on moves, 0.991 on background changes and 0.752 on
// removals (ShapesEval, 2 seeds, README); the bar is 0.8. It does not yet recolour
// (0.0), so that is not claimed here.

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

/// Below the 0.8 (which the editor does not reach yet), above what ignoring the
/// instruction or the source gives (0 either way: the object stays, or the other one drifts).
#[test]
fn the_editor_removes_the_named_object_most_of_the_time() {
    let score = mean_score(EditKind::Remove);
    assert!(score >= 0.6, "remove: mean score {score:.3}");
}
