//! The bundled Shapes models, end to end through the Rust pipelines, checked for meaning with
//! ShapesEval's reader: the colour and the place a prompt names are what the picture shows.

use std::path::PathBuf;

use hidream_studio::pipelines::{
    ComputeDType, DeviceChoice, EncoderMemory, GenerateSettings, HiDreamModels, ModelSelection,
    Preset, Silent, find_llama, generate,
};
use hidream_studio::schedulers::ShiftMode;
use hidream_studio::shapes::{Background, Category, Colour, Layout, Place, PromptSpec, Rgb, Shape};
use hidream_studio::shapes::{check_prompt, read};
use hidream_studio::weights::{StudioManifest, bundled_model};

fn bundled(preset: Preset) -> PathBuf {
    let name = format!("shapes-i1-{}", preset.name().to_ascii_lowercase());
    bundled_model(&name).unwrap_or_else(|| panic!("assets/models/{name} is missing"))
}

/// A job on the bundled model of `preset` with its own values, as the window and the command
/// line use them.
pub(crate) fn bundled_settings(preset: Preset, prompt: &str, seed: u64) -> GenerateSettings {
    let model = bundled(preset);
    let manifest = StudioManifest::read(&model).unwrap().unwrap();
    let (base, defaults) = (manifest.base_resolution, manifest.defaults.unwrap());
    GenerateSettings {
        models: ModelSelection {
            llama: find_llama(None, &model, None).unwrap(),
            model,
            dtype: ComputeDType::F32,
            device: DeviceChoice::Cpu,
            transformer: None,
            placement: hidream_studio::settings::PlacementChoice::default(),
        },
        prompt: prompt.to_string(),
        negative_prompt: None,
        preset,
        // The model's own values, as the window and the command line use them.
        steps: Some(defaults.steps),
        guidance: Some(defaults.guidance),
        shift: Some(defaults.shift),
        shift_mode: ShiftMode::Dynamic,
        width: base,
        height: base,
        base_resolution: base,
        seed,
        init: None,
    }
}

fn draw(preset: Preset, prompt: &str, seed: u64) -> Rgb {
    let settings = bundled_settings(preset, prompt, seed);
    let mut models = HiDreamModels::load(&settings.models, EncoderMemory::Keep).unwrap();
    let generation = generate(&mut models, &settings, None, &mut Silent).unwrap();
    Rgb::from_image(&generation.image)
}

/// ShapesEval's 30 single-object prompts: every colour at every place, both backgrounds.
fn single_prompts() -> Vec<PromptSpec> {
    hidream_studio::shapes::prompts::text_to_image()
        .into_iter()
        .filter(|p| matches!(p.layout, Layout::Single { .. }))
        .collect()
}

/// Generates each prompt (seeds 0 and 1) and counts the pictures whose largest object is at
/// the named place, and those whose largest object has the named colour.
fn place_and_colour_hits(preset: Preset) -> (usize, usize, usize, Vec<String>) {
    let prompts = single_prompts();
    let (mut places, mut colours, mut total) = (0, 0, 0);
    let mut misses = Vec::new();
    for spec in &prompts {
        for seed in 0..2 {
            let picture = draw(preset, &spec.caption(), seed);
            let checks = check_prompt(spec, &read(&picture));
            let ok = |category| checks.iter().any(|&(c, ok)| c == category && ok);
            total += 1;
            places += usize::from(ok(Category::SinglePosition));
            colours += usize::from(ok(Category::SingleColour));
            if !ok(Category::SingleColourPosition) {
                misses.push(format!("{} (seed {seed})", spec.caption()));
            }
        }
    }
    eprintln!(
        "{}: place {places} of {total}, colour {colours} of {total}",
        preset.name()
    );
    (places, colours, total, misses)
}

// The bar: colour and position each right on at least 90% of ShapesEval's
// single-object prompts (seeds 0 and 1), at each model's own steps and guidance. The shipped
// models measure 60 of 60 on both (README). A model that ignored the prompt would place an
// object right a fifth of the time and colour it right a sixth.
fn assert_meets_the_bar(preset: Preset) {
    let (places, colours, total, misses) = place_and_colour_hits(preset);
    assert!(
        places * 10 >= total * 9,
        "place {places} of {total}; missed: {misses:?}"
    );
    assert!(
        colours * 10 >= total * 9,
        "colour {colours} of {total}; missed: {misses:?}"
    );
}

#[test]
fn full_draws_the_named_colour_at_the_named_place() {
    assert_meets_the_bar(Preset::Full);
}

#[test]
fn dev_draws_the_named_colour_at_the_named_place() {
    assert_meets_the_bar(Preset::Dev);
}

#[test]
fn fast_draws_the_named_colour_at_the_named_place() {
    assert_meets_the_bar(Preset::Fast);
}

/// A fresh install: no configuration, no Hugging Face cache. The window opens on the bundled
/// models (no first-run screen) and a typed prompt becomes a picture that shows it.
#[test]
fn a_fresh_studio_draws_a_prompt_with_the_bundled_models() {
    use std::time::{Duration, Instant};

    use egui_kittest::kittest::Queryable;
    use hidream_studio::app::SeedMode;
    use hidream_studio::store::StoredRecord;

    use crate::common::window::{Window, paths};

    let root = tempfile::tempdir().unwrap();
    let mut harness = Window::new(&paths(root.path())).bundled_models().build();
    harness.run_ok();
    let spec = PromptSpec {
        layout: Layout::Single {
            colour: Colour::Blue,
            shape: Shape::Circle,
            place: Place::Right,
        },
        background: Background::White,
    };
    harness.get_by_label("Prompt").click();
    harness.run_ok();
    harness.get_by_label("Prompt").type_text(&spec.caption());
    harness.run_ok();
    harness.state_mut().generate_panel_mut().seed_mode = SeedMode::Fixed;
    harness.state_mut().generate_panel_mut().seed = 0;
    harness.get_by_label("Generate").click();
    let started = Instant::now();
    while harness.state().history_entries().is_empty() {
        assert!(
            started.elapsed() < Duration::from_mins(5),
            "no result after 300 s"
        );
        harness.run_ok();
        std::thread::sleep(Duration::from_millis(20));
    }
    let entry = harness.state().history_entries()[0].clone();
    let StoredRecord::Generation(record) = &entry.record else {
        panic!("expected a text-to-image record");
    };
    assert_eq!(record.settings.models.model, bundled(Preset::Full));
    assert_eq!((record.resolved.width, record.resolved.height), (64, 64));
    let picture = image::open(&entry.image_path).unwrap().to_rgb8();
    let checks = check_prompt(&spec, &read(&Rgb::from_image(&picture)));
    assert!(
        checks
            .iter()
            .any(|&(c, ok)| c == Category::SingleColourPosition && ok),
        "{checks:?}"
    );
}

/// `info` treats every bundled model like a downloaded snapshot: nothing missing or damaged.
#[test]
fn info_accepts_the_bundled_models() {
    let editor = bundled_model("shapes-e1.1").expect("assets/models/shapes-e1.1 is missing");
    for model in Preset::ALL.map(bundled).into_iter().chain([editor]) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
            .arg("info")
            .arg(&model)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{report}");
        assert!(!report.contains("unexpected"), "{report}");
    }
}
