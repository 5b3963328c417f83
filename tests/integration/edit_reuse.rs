//! Loaded editing models can run job after job: a refine stage that swapped in another
//! transformer must not leak into the next job's editing stage.

use crate::common::{fixtures, rel_err};
use hidream_studio::pipelines::edit::{EditModels, EditSettings, RefineModel, edit};
use hidream_studio::pipelines::{ComputeDType, DeviceChoice, EncoderMemory, NoiseInput, Silent};

#[test]
fn a_second_job_after_a_refine_stage_gives_the_same_result() {
    let case = fixtures().join("edit-e1full-lora");
    let settings = EditSettings {
        model: case.clone(),
        base_model: Some(fixtures().join("full-square/model")),
        form: None,
        llama: fixtures().join("llama-3.1-tiny"),
        dtype: ComputeDType::F32,
        device: DeviceChoice::Cpu,
        image: case.join("source.png"),
        instruction: "make the circle blue".into(),
        description: None,
        negative_prompt: None,
        mask: None,
        guidance: None,
        image_guidance: None,
        clip_cfg_norm: true,
        refine_strength: Some(0.5),
        refine_model: RefineModel::Reference,
        steps: Some(4),
        shift: None,
        base_resolution: Some(64),
        seed: 5,
    };
    let noise = NoiseInput::read(&case.join("reference.safetensors")).unwrap();
    let mut models = EditModels::load(&settings.model_choice(), EncoderMemory::Keep).unwrap();
    let first = edit(&mut models, &settings, Some(&noise), &mut Silent).unwrap();
    let second = edit(&mut models, &settings, Some(&noise), &mut Silent).unwrap();
    assert_eq!(first.record.resolved.refine_from_step, 2);
    let err = rel_err(&first.final_latents, &second.final_latents);
    assert!(err < 1e-6, "the second job differs by {err:.3e}");
}
