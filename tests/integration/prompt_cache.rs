//! Text encoders are loaded only for prompts not yet embedded, and freed after encoding when
//! the memory policy says so.

use crate::common::{fixture_model, fixtures};
use hidream_studio::pipelines::{
    ComputeDType, DeviceChoice, EncoderMemory, GenerateSettings, HiDreamModels, ModelSelection,
    Preset, Silent, generate,
};
use hidream_studio::schedulers::ShiftMode;

pub(crate) fn settings(prompt: &str, seed: u64) -> GenerateSettings {
    GenerateSettings {
        models: ModelSelection {
            model: fixture_model("dev-mixed-dtypes"),
            llama: fixtures().join("llama-3.1-tiny"),
            dtype: ComputeDType::F32,
            device: DeviceChoice::Cpu,
            transformer: None,
            placement: hidream_studio::settings::PlacementChoice::default(),
        },
        prompt: prompt.into(),
        negative_prompt: None,
        preset: Preset::Fast,
        steps: Some(3),
        guidance: None,
        shift: None,
        shift_mode: ShiftMode::Dynamic,
        width: 64,
        height: 64,
        base_resolution: 64,
        seed,
    }
}

#[test]
fn dropped_encoders_are_reloaded_only_for_new_prompts() {
    let first = settings("a red circle", 1);
    let mut models = HiDreamModels::load(&first.models, EncoderMemory::Drop).unwrap();
    let a = generate(&mut models, &first, None, &mut Silent).unwrap();
    assert_eq!(models.encoder_loads(), 1);
    assert!(!models.encoders_loaded(), "freed after encoding");

    // Same prompt, another seed: embeddings come from the cache.
    let b = generate(&mut models, &settings("a red circle", 2), None, &mut Silent).unwrap();
    assert_eq!(models.encoder_loads(), 1);
    assert_ne!(a.image, b.image);

    generate(
        &mut models,
        &settings("a blue square", 1),
        None,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(models.encoder_loads(), 2);

    // The cached embedding is the one a fresh encoder computes: same seed, same image.
    let mut fresh = HiDreamModels::load(&first.models, EncoderMemory::Keep).unwrap();
    let again = generate(&mut fresh, &first, None, &mut Silent).unwrap();
    assert_eq!(again.image, a.image);
}

#[test]
fn kept_encoders_load_once() {
    let s = settings("a red circle", 1);
    let mut models = HiDreamModels::load(&s.models, EncoderMemory::Keep).unwrap();
    for prompt in ["one", "two", "three"] {
        generate(&mut models, &settings(prompt, 1), None, &mut Silent).unwrap();
    }
    assert_eq!(models.encoder_loads(), 1);
    assert!(models.encoders_loaded());
}

#[test]
fn encoders_one_at_a_time_compute_what_all_four_together_do() {
    let job = settings("a red circle", 1);
    let mut together = HiDreamModels::load(&job.models, EncoderMemory::Keep).unwrap();
    let expected = generate(&mut together, &job, None, &mut Silent).unwrap();

    for memory in [
        EncoderMemory::OneAtATime,
        EncoderMemory::OneAtATimeWithoutTransformer,
    ] {
        let mut models = HiDreamModels::load(&job.models, memory).unwrap();
        let got = generate(&mut models, &job, None, &mut Silent).unwrap();
        assert!(!models.encoders_loaded(), "{memory:?}: none is kept");
        assert_eq!(models.encoder_loads(), 1, "{memory:?}");
        let diff = (&got.final_latents - &expected.final_latents)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0, "{memory:?}");
        // A cached prompt needs no encoder.
        generate(&mut models, &settings("a red circle", 2), None, &mut Silent).unwrap();
        assert_eq!(models.encoder_loads(), 1, "{memory:?}");
    }
}
