//! `hidream-studio bench pipeline`: the whole HiDream-I1 pipeline — CLIP-L, CLIP-G, T5-XXL,
//! Llama-3.1-8B, the 17 B transformer and the FLUX autoencoder at their real sizes, with seeded
//! random weights (drawn on the GPU with `--device cuda`) — through the library's own
//! `generate`, timed and measured per stage as `generate --json` reports them.
//!
//! The tokenizers are the fixtures' (tests/fixtures): they only turn the prompt into ids, and
//! every encoder pads to 128 tokens whatever the ids, so the cost is the real one.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device};
use clap::Args;
use hidream_studio::device_memory::PeakTracker;
use hidream_studio::models::hidream::HiDreamTransformer;
use hidream_studio::models::text::{
    ClipConfig, ClipTextEncoder, LlamaEncoder, MAX_SEQUENCE_LENGTH, PromptTokenizer, T5Encoder,
    TextEncoders,
};
use hidream_studio::models::vae::AutoencoderKl;
use hidream_studio::pipelines::{
    ComputeDType, DeviceChoice, EncoderMemory, GenerateSettings, HiDreamModels, ModelSelection,
    Preset, Silent, generate,
};
use hidream_studio::placement::ModelConfigs;
use hidream_studio::quantize::QuantTarget;
use hidream_studio::schedulers::ShiftMode;
use hidream_studio::weights::{Snapshot, random_var_builder};

#[derive(Args)]
pub struct PipelineArgs {
    /// Sampling preset; repeat to run several on the same transformer and autoencoder.
    #[arg(long, value_enum, required = true)]
    preset: Vec<Preset>,
    /// Image side in pixels (square).
    #[arg(long, default_value_t = 1024)]
    size: u32,
    /// Denoising steps (default: the preset's: Full 50, Dev 28, Fast 16).
    #[arg(long)]
    steps: Option<usize>,
    /// Compute dtype. Default: f32 on the CPU, bf16 on CUDA.
    #[arg(long, value_enum)]
    dtype: Option<ComputeDType>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    /// A HiDream-I1 snapshot whose tokenizers (tokenizer, tokenizer_2, tokenizer_3) are used.
    #[arg(long, default_value = "tests/fixtures/full-square/model")]
    tokenizers: PathBuf,
    /// A folder with Llama's tokenizer.json.
    #[arg(long, default_value = "tests/fixtures/llama-3.1-tiny")]
    llama_tokenizer: PathBuf,
    /// Take every model's config from the --tokenizers snapshot and the --llama-tokenizer
    /// folder instead of the released models' (a quick run on the tiny fixtures, with --size
    /// 64).
    #[arg(long)]
    snapshot_configs: bool,
    /// The transformer's format: bf16/f16 dense, or the community GGUF recipe's quantised
    /// types (random blocks, dequantised at each use as a GGUF's are).
    #[arg(long, value_enum, default_value_t = QuantTarget::Bf16)]
    transformer_type: QuantTarget,
    /// Keep only the first N blocks on the GPU and stream the others from host memory, as
    /// the placement planner does when the transformer does not fit. Default: all resident.
    #[arg(long)]
    resident_blocks: Option<usize>,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object per preset.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &PipelineArgs) -> anyhow::Result<ExitCode> {
    let choice = args.device;
    let device = choice.device()?;
    let dtype = args.dtype.unwrap_or(match choice {
        DeviceChoice::Cpu => ComputeDType::F32,
        DeviceChoice::Cuda => ComputeDType::Bf16,
    });
    let mut memory = PeakTracker::new(&device);
    let baseline = memory.peak_bytes();

    let configs = if args.snapshot_configs {
        ModelConfigs::read(&Snapshot::open(&args.tokenizers)?, &args.llama_tokenizer)?
    } else {
        ModelConfigs::released()?
    };
    let started = Instant::now();
    let mut transformer = HiDreamTransformer::random(
        &configs.transformer,
        args.transformer_type,
        args.seed,
        dtype.dtype(),
        &device,
    )
    .context("building the random transformer")?;
    if let Some(resident) = args.resident_blocks {
        transformer = transformer
            .place(&device, resident)
            .context("moving the streamed blocks to host memory")?;
    }
    let vae = AutoencoderKl::new(
        &configs.vae,
        random_var_builder(args.seed.wrapping_add(1), dtype.dtype(), &device),
    )
    .context("building the random autoencoder")?;
    device.synchronize()?;
    let build_ms = ms(started);

    let selection = ModelSelection {
        model: args.tokenizers.clone(),
        llama: args.llama_tokenizer.clone(),
        dtype,
        device: choice,
        transformer: None,
        placement: hidream_studio::settings::PlacementChoice::default(),
    };
    for &preset in &args.preset {
        let started = Instant::now();
        let encoders = random_encoders(args, &configs, dtype.dtype(), &device)?;
        device.synchronize()?;
        let encoders_ms = ms(started);
        let mut models = HiDreamModels::from_parts(
            &selection,
            EncoderMemory::default_for(choice),
            transformer.clone(),
            vae.clone(),
            encoders,
        )?;
        let settings = GenerateSettings {
            models: selection.clone(),
            prompt: "a red circle to the left of a blue square, on white".into(),
            negative_prompt: None,
            preset,
            steps: args.steps,
            guidance: None,
            shift: None,
            shift_mode: ShiftMode::Dynamic,
            width: args.size,
            height: args.size,
            base_resolution: args.size,
            seed: 0,
            init: None,
        };
        memory.reset();
        let loaded = memory.peak_bytes();
        // The pipeline synchronises the device after every step and measures each stage's
        // peak GPU memory itself (`GenerationRecord::gpu_memory`), as for `generate --json`.
        let generation = generate(&mut models, &settings, None, &mut Silent)?;
        let record = &generation.record;
        let t = &record.timings;
        let mut steps: Vec<f64> = t.step_ms.iter().copied().filter(|&s| s > 0.0).collect();
        steps.sort_by(f64::total_cmp);
        let median_step_ms = steps.get(steps.len() / 2).copied().unwrap_or(f64::NAN);
        let resolved = &record.resolved;
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "bench": "pipeline", "preset": preset.name().to_ascii_lowercase(),
                    "steps": resolved.steps, "guidance": resolved.guidance,
                    "width": resolved.width, "height": resolved.height,
                    "device": choice.name(), "dtype": dtype.name(),
                    "transformer_type": args.transformer_type.name(),
                    "streamed_blocks": transformer.streamed_blocks(),
                    "build_transformer_vae_ms": build_ms, "build_encoders_ms": encoders_ms,
                    "encode_ms": t.encode_ms, "step_ms": t.step_ms,
                    "median_step_ms": median_step_ms, "decode_ms": t.decode_ms,
                    "total_ms": t.total_ms, "gpu_baseline_bytes": baseline,
                    "gpu_loaded_bytes": loaded, "gpu_memory": record.gpu_memory,
                })
            );
        } else {
            let gb = |b: Option<u64>| b.map_or("-".into(), |b| format!("{:.1} GB", b as f64 / 1e9));
            let memory = record.gpu_memory.clone().unwrap_or_default();
            println!(
                "{} {}×{}, {} steps ({} {}, transformer {}, {} blocks streamed): encode {:.0} ms, step {:.0} ms (median), decode {:.0} \
                 ms, total {:.1} s; peak GPU memory: encode {}, denoise {}, decode {}",
                preset.name(),
                resolved.width,
                resolved.height,
                resolved.steps,
                dtype.name(),
                choice.name(),
                args.transformer_type.name(),
                transformer.streamed_blocks(),
                t.encode_ms,
                median_step_ms,
                t.decode_ms,
                t.total_ms / 1e3,
                gb(memory.encode_peak_bytes),
                gb(memory.denoise_peak_bytes),
                gb(memory.decode_peak_bytes),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// CLIP-L, CLIP-G, T5-XXL and Llama-3.1-8B with seeded random weights, and the tokenizers.
fn random_encoders(
    args: &PipelineArgs,
    configs: &ModelConfigs,
    dtype: DType,
    device: &Device,
) -> anyhow::Result<TextEncoders> {
    let snapshot = Snapshot::open(&args.tokenizers)?;
    let max_len = MAX_SEQUENCE_LENGTH;
    let clip = |cfg: &ClipConfig, tokenizer: &str, seed: u64| -> anyhow::Result<_> {
        let tokenizer = PromptTokenizer::clip(&snapshot.component_dir(tokenizer)?, max_len)?;
        let mut cfg = cfg.clone();
        // Pool where this tokenizer ends the prompt, as the real CLIP does with its own.
        if let Some(end) = tokenizer.token_to_id("<|endoftext|>") {
            cfg.eos_token_id = end;
        }
        let model = ClipTextEncoder::new(&cfg, random_var_builder(seed, dtype, device))?;
        Ok((tokenizer, model))
    };
    let clip_l = clip(&configs.clip_l, "tokenizer", args.seed.wrapping_add(2))?;
    let clip_g = clip(&configs.clip_g, "tokenizer_2", args.seed.wrapping_add(3))?;
    let t5 = (
        PromptTokenizer::t5(&snapshot.component_dir("tokenizer_3")?, max_len)?,
        T5Encoder::new(
            &configs.t5,
            random_var_builder(args.seed.wrapping_add(4), dtype, device),
        )?,
    );
    let llama = (
        PromptTokenizer::llama(&args.llama_tokenizer, max_len)?,
        LlamaEncoder::new(
            &configs.llama,
            random_var_builder(args.seed.wrapping_add(5), dtype, device),
        )?,
    );
    Ok(TextEncoders::from_parts(clip_l, clip_g, t5, llama, device))
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
