//! `hidream-studio eval`: ShapesEval on a Shapes model. Generates the fixed prompt set with
//! several seeds through the same engine the window uses, reads every picture back into
//! objects and prints accuracy per category, then one JSON line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use hidream_studio::engine::Engine;
use hidream_studio::pipelines::{
    ComputeDType, DeviceChoice, GenerateJob, GenerateSettings, HiDreamBackend, JobOutput,
    ModelSelection, Preset, find_llama,
};
use hidream_studio::schedulers::ShiftMode;
use hidream_studio::settings::UserValues;
use hidream_studio::shapes::{Category, Rgb, Tally, check_prompt, prompts, read};
use hidream_studio::weights::{StudioManifest, resolve_model_path};

use super::generate::bundled_shapes_model;
use super::job::wait_for;
use super::job_args::at_least_one;

#[derive(Args)]
pub struct EvalArgs {
    /// The model to evaluate. Default: the bundled Shapes model of --preset.
    #[arg(long)]
    pub(super) model: Option<String>,
    /// Sampling preset (its steps, guidance and scheduler). Default: guessed from the model's
    /// name, else full.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Seeds per prompt (0, 1, ...).
    #[arg(long, default_value_t = 2, value_parser = at_least_one::<u64>)]
    pub(super) seeds: u64,
    /// Evaluate only the first N prompts of the fixed set.
    #[arg(long, value_parser = at_least_one::<usize>)]
    pub(super) limit: Option<usize>,
    /// Override the preset's (with --edits: the editor manifest's) steps.
    #[arg(long)]
    pub(super) steps: Option<usize>,
    /// Override the preset's (with --edits: the editor manifest's) guidance.
    #[arg(long)]
    pub(super) guidance: Option<f64>,
    /// With --edits: override the editor manifest's image guidance.
    #[arg(long, requires = "edits")]
    pub(super) image_guidance: Option<f64>,
    /// With --edits: evaluate only these edit kinds (recolour, remove, add, move, background).
    #[arg(long, value_delimiter = ',', requires = "edits")]
    pub(super) kinds: Vec<String>,
    /// Write every generated picture here as `NNN-seed-S.png`.
    #[arg(long)]
    pub(super) out_dir: Option<PathBuf>,
    /// Evaluate an editor on ShapesEval's edit set instead (default model: the bundled
    /// shapes-e1.1).
    #[arg(long)]
    pub(crate) edits: bool,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let model = match &args.model {
        Some(model) => resolve_model_path(model, None)?,
        None => bundled_shapes_model(args.preset.unwrap_or(Preset::Full))?,
    };
    let manifest = StudioManifest::read(&model)?.with_context(|| {
        format!(
            "{} is not a Shapes model (it has no {}): ShapesEval checks pictures of the Shapes \
             world, which only the bundled models draw",
            model.display(),
            StudioManifest::FILE
        )
    })?;
    let preset = args
        .preset
        .or_else(|| {
            Preset::guess_from_name(&model.file_name().unwrap_or_default().to_string_lossy())
        })
        .unwrap_or(Preset::Full);
    let llama = find_llama(None, &model, None)?;
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut set = prompts::text_to_image();
    set.truncate(args.limit.unwrap_or(set.len()));
    let values = UserValues {
        steps: args.steps,
        guidance: args.guidance,
        ..UserValues::default()
    }
    .over(Some(&manifest));
    let base = manifest.base_resolution;
    let mut engine = Engine::spawn(HiDreamBackend::default());
    let started = Instant::now();
    let mut jobs = Vec::new();
    for (index, spec) in set.iter().enumerate() {
        for seed in 0..args.seeds {
            let settings = shapes_generate_settings(
                &ShapesGenerator {
                    model: model.clone(),
                    llama: llama.clone(),
                    preset,
                    values,
                    base,
                },
                spec.caption(),
                seed,
            );
            let id = engine.submit(
                GenerateJob {
                    settings,
                    noise: None,
                }
                .into(),
            );
            jobs.push((id, index, seed));
        }
    }
    let mut tally = Tally::default();
    let mut image_ms = Vec::new();
    for &(id, index, seed) in &jobs {
        let JobOutput::Generation(generation) = wait_for(&mut engine, id, |_| Ok(()))
            .with_context(|| format!("prompt {index}, seed {seed}"))?
        else {
            anyhow::bail!("prompt {index}: the engine answered with another kind of job");
        };
        image_ms.push(generation.record.timings.total_ms - generation.record.timings.load_ms);
        let picture = Rgb::from_image(&generation.image);
        tally.add(&check_prompt(&set[index], &read(&picture)));
        if let Some(dir) = &args.out_dir {
            let path = dir.join(format!("{index:03}-seed-{seed}.png"));
            generation
                .image
                .save(&path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    image_ms.sort_by(f64::total_cmp);
    let median_ms = image_ms.get(image_ms.len() / 2).copied().unwrap_or(0.0);
    print_table(&manifest.name, preset, &tally, jobs.len(), median_ms);
    let scores: serde_json::Map<String, serde_json::Value> = tally
        .accuracies()
        .into_iter()
        .map(|(c, acc, _)| (category_key(c), serde_json::json!(acc)))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "model": manifest.name,
            "preset": preset.name(),
            "prompts": set.len(),
            "seeds": args.seeds,
            "images": jobs.len(),
            "median_ms_per_image": median_ms,
            "wall_s": started.elapsed().as_secs_f64(),
            "scores": scores,
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// A bundled Shapes generator and the settings its jobs run with (its manifest's, on the CPU
/// in f32).
#[derive(Debug, Clone)]
pub(super) struct ShapesGenerator {
    pub model: PathBuf,
    pub llama: PathBuf,
    pub preset: Preset,
    pub values: UserValues,
    pub base: u32,
}

/// The settings of one picture of `generator` (also the agent's generate jobs).
pub(super) fn shapes_generate_settings(
    generator: &ShapesGenerator,
    prompt: String,
    seed: u64,
) -> GenerateSettings {
    let values = generator.values;
    GenerateSettings {
        models: ModelSelection {
            model: generator.model.clone(),
            llama: generator.llama.clone(),
            dtype: ComputeDType::F32,
            device: DeviceChoice::Cpu,
            transformer: None,
            placement: hidream_studio::settings::PlacementChoice::default(),
        },
        prompt,
        negative_prompt: None,
        preset: generator.preset,
        steps: values.steps,
        guidance: values.guidance,
        shift: values.shift,
        shift_mode: ShiftMode::Dynamic,
        width: generator.base,
        height: generator.base,
        base_resolution: generator.base,
        seed,
        init: None,
    }
}

fn category_key(c: Category) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| c.name().to_string())
}

fn print_table(name: &str, preset: Preset, tally: &Tally, images: usize, median_ms: f64) {
    println!(
        "ShapesEval: {name}, {} preset, {images} images, {median_ms:.0} ms per image (median, CPU)",
        preset.name()
    );
    println!("{:<28} {:>9} {:>7}", "category", "accuracy", "checks");
    for (category, accuracy, n) in tally.accuracies() {
        println!("{:<28} {:>9.3} {:>7}", category.name(), accuracy, n);
    }
}
