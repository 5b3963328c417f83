//! `hidream-studio parity`: every reference fixture (tests/fixtures/CASE) through the library's
//! pipelines with the reference's noise, on any device and dtype, and the final latents'
//! distance to the reference's — the numbers the parity tests check on the CPU, for the GPU.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Tensor};
use clap::Args;
use hidream_studio::pipelines::edit::{
    EditModelChoice, EditModels, EditSettings, RefineModel, edit,
};
use hidream_studio::pipelines::{
    ComputeDType, DeviceChoice, EncoderMemory, GenerateSettings, HiDreamModels, ModelSelection,
    NoiseInput, Preset, Silent, generate,
};
use hidream_studio::schedulers::ShiftMode;
use hidream_studio::settings::UserValues;
use hidream_studio::weights::read_json;

/// The parity tests' bound (tests/integration/generate_parity.rs, edit_parity.rs): the
/// reference is float32 too, so only summation order differs.
pub const F32_TOLERANCE: f64 = 1e-4;

/// The bound in bf16 (and f16), looser because bf16 keeps 8 significant bits (each rounding is
/// off by up to 2⁻⁹ ≈ 2e-3 of the value):
/// - one forward of the reference transformer itself, in bf16, is 1.2e-2 to 5.5e-2 away from
///   its f32 result on these tiny fixtures (their `dit.step0.out_bf16`, printed in the
///   "ref bf16 s0" column);
/// - the samplers add the model outputs with weights Δσ that sum to 1 (and Flash re-noises,
///   shrinking older errors), so without guidance the final latents move by about one
///   forward's relative error; classifier-free guidance multiplies it by up to g (5 for the
///   Full fixtures), because g·(cond − uncond) is a difference of two rounded outputs: up to
///   5 × 2.5e-2 ≈ 0.13 for full-square;
/// - 0.25 leaves 2× headroom over that for our different rounding order while a real bug
///   (a wrong sign, block, routing or schedule) moves the latents by O(1).
///
/// Unmeasured so far: candle 0.11's CPU backend has no bf16 matmul, so the first GPU run of
/// tools/gpu/check.sh is the first measurement; tighten this to about 2× what it shows.
pub const BF16_TOLERANCE: f64 = 0.25;

#[derive(Args)]
pub struct ParityArgs {
    /// Fixture folders (tests/fixtures/CASE holding case.json and reference.safetensors), or a
    /// folder holding them (tests/fixtures runs every case in it).
    #[arg(required = true)]
    fixtures: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    #[arg(long, value_enum, default_value_t = ComputeDType::F32)]
    dtype: ComputeDType,
    /// Pass bound on the relative error (default: 1e-4 in f32, 0.25 in bf16 and f16).
    #[arg(long)]
    tolerance: Option<f64>,
    /// Print one JSON object per fixture, then a summary object.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print a markdown table (for reports such as tools/gpu/check.sh's).
    #[arg(long)]
    markdown: bool,
}

/// One fixture's outcome.
struct Outcome {
    case: String,
    kind: &'static str,
    steps: usize,
    /// ‖ours − ref‖₂ / ‖ref‖₂ over the final latents (the tests' metric).
    rel_l2: f64,
    /// max |ours − ref| / max |ref|.
    rel_max: f64,
    /// The reference transformer's own bf16 drift at the first step, where the fixture has it.
    reference_bf16_step0: Option<f64>,
    seconds: f64,
}

pub fn run(args: &ParityArgs) -> anyhow::Result<ExitCode> {
    let cases = expand(&args.fixtures)?;
    let tolerance = args.tolerance.unwrap_or(match args.dtype {
        ComputeDType::F32 => F32_TOLERANCE,
        ComputeDType::Bf16 | ComputeDType::F16 => BF16_TOLERANCE,
    });
    // Make sure f32 means f32: with this on, cuBLAS may run f32 products on TF32 tensor cores
    // (10-bit mantissa), which alone is a 1e-3 error. candle's default is off; set it anyway so
    // nothing earlier in the process can have turned it on. A no-op without CUDA.
    candle_core::cuda::set_gemm_reduced_precision_f32(false);
    // (Without the cuda feature candle's stand-in answers "on"; the CPU has no TF32.)
    let tf32 = cfg!(feature = "cuda")
        && args.device == DeviceChoice::Cuda
        && candle_core::cuda::gemm_reduced_precision_f32();
    let format = if args.json {
        Format::Json
    } else if args.markdown {
        Format::Markdown
    } else {
        Format::Table
    };
    let setting = format!(
        "{} in {} (TF32 {}), tolerance {tolerance:e} on ‖ours − ref‖₂/‖ref‖₂ of the final latents",
        args.device.name(),
        args.dtype.name(),
        if tf32 { "on" } else { "off" }
    );
    match format {
        Format::Table => {
            println!("parity on {setting}");
            println!(
                "{:<22} {:<5} {:>5} {:>11} {:>11} {:>12} {:>7}  result",
                "case", "kind", "steps", "rel L2", "rel max", "ref bf16 s0", "seconds"
            );
        }
        Format::Markdown => {
            println!(
                "| case | kind | steps | rel. L2 error | rel. max error | reference's own bf16 \
                 drift, step 0 | seconds | result |"
            );
            println!("|---|---|---:|---:|---:|---:|---:|---|");
        }
        Format::Json => {}
    }
    let mut failed = 0;
    for dir in &cases {
        let name = case_name(dir);
        let result = run_case(dir, args.device, args.dtype);
        let pass = result.as_ref().is_ok_and(|o| o.rel_l2 <= tolerance);
        failed += usize::from(!pass);
        let verdict = if pass { "pass" } else { "FAIL" };
        let line = match (&result, format) {
            (Ok(o), Format::Json) => serde_json::json!({
                "case": o.case, "kind": o.kind, "steps": o.steps,
                "device": args.device.name(), "dtype": args.dtype.name(), "tf32": tf32,
                "rel_l2": o.rel_l2, "rel_max": o.rel_max,
                "reference_bf16_step0": o.reference_bf16_step0,
                "tolerance": tolerance, "pass": pass, "seconds": o.seconds,
            })
            .to_string(),
            (Ok(o), Format::Table) => table_row(&cells(o, verdict)),
            (Ok(o), Format::Markdown) => markdown_row(&cells(o, verdict)),
            (Err(error), Format::Json) => serde_json::json!({
                "case": name, "device": args.device.name(), "dtype": args.dtype.name(),
                "error": format!("{error:#}"), "pass": false,
            })
            .to_string(),
            // One line: candle appends a backtrace when RUST_BACKTRACE is set.
            (Err(error), Format::Table) => format!("{name:<22} ERROR: {}", first_line(error)),
            (Err(error), Format::Markdown) => {
                let error = first_line(error).replace('|', "\\|");
                format!("| {name} | | | | | | | ERROR: {error} |")
            }
        };
        println!("{line}");
    }
    let passed = cases.len() - failed;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({
                "summary": true, "device": args.device.name(), "dtype": args.dtype.name(),
                "tf32": tf32, "cases": cases.len(), "failed": failed, "tolerance": tolerance,
            })
        ),
        Format::Table => println!("{passed} of {} cases passed", cases.len()),
        Format::Markdown => println!("\n{passed} of {} cases passed: {setting}.", cases.len()),
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Clone, Copy)]
enum Format {
    Table,
    Json,
    Markdown,
}

/// A result's cells, in the column order of both headers.
fn cells(o: &Outcome, verdict: &str) -> [String; 8] {
    [
        o.case.clone(),
        o.kind.to_string(),
        o.steps.to_string(),
        format!("{:.3e}", o.rel_l2),
        format!("{:.3e}", o.rel_max),
        drift(o.reference_bf16_step0),
        format!("{:.1}", o.seconds),
        verdict.to_string(),
    ]
}

/// Columns padded to the table header's widths (text left, numbers right).
fn table_row(cells: &[String; 8]) -> String {
    let [case, kind, steps, l2, max, drift, seconds, verdict] = cells;
    format!(
        "{case:<22} {kind:<5} {steps:>5} {l2:>11} {max:>11} {drift:>12} {seconds:>7}  {verdict}"
    )
}

fn markdown_row(cells: &[String; 8]) -> String {
    format!("| {} |", cells.join(" | "))
}

fn first_line(error: &anyhow::Error) -> String {
    format!("{error:#}")
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn drift(value: Option<f64>) -> String {
    value.map_or("–".to_string(), |d| format!("{d:.3e}"))
}

/// The fixture folders named, a folder of fixtures standing for every case in it (sorted).
fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut cases = Vec::new();
    for path in paths {
        if path.join("case.json").is_file() {
            cases.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).with_context(|| {
            format!(
                "{}: not a fixture folder (no case.json) and not a readable folder of fixtures",
                path.display()
            )
        })?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("case.json").is_file() && p.join("reference.safetensors").is_file())
            .collect();
        if found.is_empty() {
            anyhow::bail!(
                "{}: holds no fixture (a folder with case.json and reference.safetensors); pass \
                 tests/fixtures or one of its cases",
                path.display()
            );
        }
        found.sort();
        cases.extend(found);
    }
    Ok(cases)
}

fn case_name(dir: &Path) -> String {
    dir.file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into())
}

fn run_case(dir: &Path, device: DeviceChoice, dtype: ComputeDType) -> anyhow::Result<Outcome> {
    let case: serde_json::Value = read_json(&dir.join("case.json"), "fixture case")?;
    let reference_path = dir.join("reference.safetensors");
    let reference = candle_core::safetensors::load(&reference_path, &candle_core::Device::Cpu)
        .with_context(|| format!("{}: cannot read the reference", reference_path.display()))?;
    let expected = tensor(&reference, "latents.final", &reference_path)?;
    let started = Instant::now();
    let (kind, steps, latents) = if case.get("form").is_some() {
        let settings = edit_settings(dir, &case, device, dtype)?;
        let noise = NoiseInput::read(&reference_path)?;
        let memory = EncoderMemory::default_for(device);
        let mut models = EditModels::load(&settings.models, memory)?;
        let result = edit(&mut models, &settings, Some(&noise), &mut Silent)?;
        ("edit", result.record.resolved.steps, result.final_latents)
    } else {
        let settings = generate_settings(dir, &case, device, dtype)?;
        let noise = NoiseInput {
            latents: tensor(&reference, "latents.init", &reference_path)?.clone(),
            step_noise: reference.get("step_noise").cloned(),
            pixel_noise: None,
            pixel_step_noise: None,
        };
        let memory = EncoderMemory::default_for(device);
        let mut models = HiDreamModels::load(&settings.models, memory)?;
        let result = generate(&mut models, &settings, Some(&noise), &mut Silent)?;
        ("t2i", result.record.resolved.steps, result.final_latents)
    };
    let seconds = started.elapsed().as_secs_f64();
    let reference_bf16_step0 = match (
        reference.get("dit.step0.out_bf16"),
        reference.get("dit.out"),
    ) {
        (Some(bf16), Some(all)) => Some(rel_l2(bf16, &all.get(0)?)?),
        _ => None,
    };
    Ok(Outcome {
        case: case_name(dir),
        kind,
        steps,
        rel_l2: rel_l2(&latents, expected)?,
        rel_max: rel_max(&latents, expected)?,
        reference_bf16_step0,
        seconds,
    })
}

fn tensor<'a>(
    tensors: &'a HashMap<String, Tensor>,
    name: &str,
    file: &Path,
) -> anyhow::Result<&'a Tensor> {
    tensors.get(name).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: has no `{name}`; regenerate the fixture with tools/fixtures/",
            file.display()
        )
    })
}

fn str_field<'a>(case: &'a serde_json::Value, field: &str, dir: &Path) -> anyhow::Result<&'a str> {
    case[field].as_str().ok_or_else(|| missing(field, dir))
}

fn f64_field(case: &serde_json::Value, field: &str, dir: &Path) -> anyhow::Result<f64> {
    case[field].as_f64().ok_or_else(|| missing(field, dir))
}

fn u64_field(case: &serde_json::Value, field: &str, dir: &Path) -> anyhow::Result<u64> {
    case[field].as_u64().ok_or_else(|| missing(field, dir))
}

fn missing(field: &str, dir: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: `{field}` is missing or has the wrong type; regenerate the fixture with tools/fixtures/",
        dir.join("case.json").display()
    )
}

/// `case.json` → the settings `generate` gets in tests/integration/generate_parity.rs.
fn generate_settings(
    dir: &Path,
    case: &serde_json::Value,
    device: DeviceChoice,
    dtype: ComputeDType,
) -> anyhow::Result<GenerateSettings> {
    let shift = f64_field(case, "shift", dir)?;
    let preset = match str_field(case, "scheduler", dir)? {
        "flow_unipc" => Preset::Full,
        _ if shift == 6.0 => Preset::Dev,
        _ => Preset::Fast,
    };
    Ok(GenerateSettings {
        models: ModelSelection {
            model: dir.join("model"),
            llama: dir.join(str_field(case, "llama", dir)?),
            dtype,
            device,
            transformer: None,
            placement: hidream_studio::settings::PlacementChoice::default(),
        },
        prompt: str_field(case, "prompt", dir)?.to_string(),
        negative_prompt: case["negative_prompt"].as_str().map(str::to_string),
        preset,
        steps: Some(u64_field(case, "steps", dir)? as usize),
        guidance: Some(f64_field(case, "guidance", dir)?),
        shift: Some(shift),
        shift_mode: ShiftMode::Dynamic,
        width: u64_field(case, "width", dir)? as u32,
        height: u64_field(case, "height", dir)? as u32,
        base_resolution: u64_field(case, "base_resolution", dir)? as u32,
        seed: u64_field(case, "seed", dir)?,
        init: None,
    })
}

/// `case.json` → the settings `edit` gets in tests/integration/edit_parity.rs.
fn edit_settings(
    dir: &Path,
    case: &serde_json::Value,
    device: DeviceChoice,
    dtype: ComputeDType,
) -> anyhow::Result<EditSettings> {
    let fixtures = dir.parent().unwrap_or(Path::new("."));
    let name = str_field(case, "name", dir)?;
    let own = case["model_case"].as_str().unwrap_or(name);
    let form = str_field(case, "form", dir)?;
    let model = match form {
        "e1-full-lora" => fixtures.join(own),
        _ => fixtures.join(own).join("model"),
    };
    // The merged form carries its own components; the others take them from the base.
    let base_model = match form {
        "e1-full-merged" => None,
        _ => Some(dir.join(str_field(case, "base_model", dir)?)),
    };
    let refine_model: RefineModel = serde_json::from_value(case["refine_model"].clone())
        .map_err(|_| missing("refine_model", dir))?;
    let models = EditModelChoice {
        base_model,
        refine_model,
        ..EditModelChoice::new(
            model,
            dir.join(str_field(case, "llama", dir)?),
            dtype,
            device,
        )
    };
    let values = UserValues {
        steps: Some(u64_field(case, "steps", dir)? as usize),
        guidance: Some(f64_field(case, "guidance", dir)?),
        image_guidance: Some(f64_field(case, "image_guidance", dir)?),
        shift: None,
        refine_strength: Some(f64_field(case, "refine_strength", dir)?),
        base_resolution: Some(u64_field(case, "base_resolution", dir)? as u32),
    };
    let instruction = str_field(case, "instruction", dir)?.to_string();
    let seed = u64_field(case, "seed", dir)?;
    Ok(EditSettings {
        description: case["description"].as_str().map(str::to_string),
        negative_prompt: Some(str_field(case, "negative_prompt", dir)?.to_string()),
        clip_cfg_norm: case["clip_cfg_norm"].as_bool().unwrap_or(true),
        ..EditSettings::new(models, dir.join("source.png"), instruction, &values, seed)
    })
}

/// ‖a − b‖₂ / ‖b‖₂ in f64, as tests/integration/common.rs `rel_err`.
fn rel_l2(actual: &Tensor, expected: &Tensor) -> anyhow::Result<f64> {
    let (a, b) = values(actual, expected)?;
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>();
    let norm = b.iter().map(|y| y * y).sum::<f64>();
    Ok((diff / norm).sqrt())
}

/// max |a − b| / max |b|.
fn rel_max(actual: &Tensor, expected: &Tensor) -> anyhow::Result<f64> {
    let (a, b) = values(actual, expected)?;
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let norm = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    Ok(diff / norm)
}

fn values(actual: &Tensor, expected: &Tensor) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    if actual.dims() != expected.dims() {
        anyhow::bail!(
            "our final latents are {:?} but the reference's are {:?}",
            actual.dims(),
            expected.dims()
        );
    }
    let flat = |t: &Tensor| -> anyhow::Result<Vec<f64>> {
        Ok(t.to_device(&candle_core::Device::Cpu)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?)
    };
    Ok((flat(actual)?, flat(expected)?))
}
