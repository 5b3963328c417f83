//! Loaded editing models can run job after job: a refine stage that swapped in another
//! transformer must not leak into the next job's editing stage.

use crate::common::{fixtures, rel_err};
use hidream_studio::pipelines::edit::{EditModelChoice, EditModels, EditSettings, edit};
use hidream_studio::pipelines::{ComputeDType, DeviceChoice, EncoderMemory, NoiseInput, Silent};
use hidream_studio::settings::UserValues;

#[test]
fn a_second_job_after_a_refine_stage_gives_the_same_result() {
    let case = fixtures().join("edit-e1full-lora");
    let models = EditModelChoice {
        base_model: Some(fixtures().join("full-square/model")),
        ..EditModelChoice::new(
            case.clone(),
            fixtures().join("llama-3.1-tiny"),
            ComputeDType::F32,
            DeviceChoice::Cpu,
        )
    };
    let values = UserValues {
        refine_strength: Some(0.5),
        steps: Some(4),
        base_resolution: Some(64),
        ..UserValues::default()
    };
    let instruction = "make the circle blue".to_string();
    let settings = EditSettings::new(models, case.join("source.png"), instruction, &values, 5);
    let noise = NoiseInput::read(&case.join("reference.safetensors")).unwrap();
    let mut models = EditModels::load(&settings.models, EncoderMemory::Keep).unwrap();
    let first = edit(&mut models, &settings, Some(&noise), &mut Silent).unwrap();
    let second = edit(&mut models, &settings, Some(&noise), &mut Silent).unwrap();
    assert_eq!(first.record.resolved.refine_from_step, 2);
    let err = rel_err(&first.final_latents, &second.final_latents);
    assert!(err < 1e-6, "the second job differs by {err:.3e}");
}
