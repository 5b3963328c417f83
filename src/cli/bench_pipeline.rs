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
use hidream_studio::models::hidream::{Config, HiDreamTransformer};
use hidream_studio::models::text::{
    ClipConfig, ClipTextEncoder, LlamaConfig, LlamaEncoder, MAX_SEQUENCE_LENGTH, PromptTokenizer,
    T5Config, T5Encoder, TextEncoders,
};
use hidream_studio::models::vae::{AutoencoderKl, VaeConfig};
use hidream_studio::pipelines::{
    ComputeDType, DeviceChoice, EncoderMemory, GenerateSettings, HiDreamModels, ModelSelection,
    Preset, Silent, generate,
};
use hidream_studio::schedulers::ShiftMode;
use hidream_studio::weights::{Snapshot, random_var_builder, read_json};

/// The released models' configurations (the config.json files of
/// https://huggingface.co/HiDream-ai/HiDream-I1-Full and of Llama-3.1-8B-Instruct; CLIP's 248
/// positions are Long-CLIP's, any count ≥ 128 costs the same at 128 tokens).
const TRANSFORMER: &str = include_str!("../../tools/gpu/hidream-i1-transformer.json");
const CLIP_L: &str = r#"{"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
  "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 248,
  "projection_dim": 768, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05}"#;
const CLIP_G: &str = r#"{"vocab_size": 49408, "hidden_size": 1280, "intermediate_size": 5120,
  "num_hidden_layers": 32, "num_attention_heads": 20, "max_position_embeddings": 248,
  "projection_dim": 1280, "hidden_act": "gelu", "layer_norm_eps": 1e-05}"#;
const T5_XXL: &str = r#"{"vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240,
  "num_layers": 24, "num_heads": 64, "relative_attention_num_buckets": 32,
  "relative_attention_max_distance": 128, "layer_norm_epsilon": 1e-06,
  "feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu_new"}"#;
const LLAMA_3_1_8B: &str = r#"{"vocab_size": 128256, "hidden_size": 4096,
  "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
  "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}"#;
const FLUX_VAE: &str = r#"{"in_channels": 3, "out_channels": 3, "latent_channels": 16,
  "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "norm_num_groups": 32,
  "scaling_factor": 0.3611, "shift_factor": 0.1159, "use_quant_conv": false,
  "use_post_quant_conv": false, "mid_block_add_attention": true}"#;

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
        Configs::from_folders(args)?
    } else {
        Configs::released()?
    };
    let started = Instant::now();
    let transformer = HiDreamTransformer::new(
        &configs.transformer,
        random_var_builder(args.seed, dtype.dtype(), &device),
    )
    .context("building the random transformer")?;
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
                "{} {}×{}, {} steps ({} {}): encode {:.0} ms, step {:.0} ms (median), decode {:.0} \
                 ms, total {:.1} s; peak GPU memory: encode {}, denoise {}, decode {}",
                preset.name(),
                resolved.width,
                resolved.height,
                resolved.steps,
                dtype.name(),
                choice.name(),
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

/// The six models' configurations.
struct Configs {
    transformer: Config,
    vae: VaeConfig,
    clip_l: ClipConfig,
    clip_g: ClipConfig,
    t5: T5Config,
    llama: LlamaConfig,
}

impl Configs {
    fn released() -> anyhow::Result<Self> {
        let parse = |what: &str, text: &str| {
            serde_json::from_str::<serde_json::Value>(text)
                .with_context(|| format!("the built-in {what} config"))
        };
        let transformer: Config = serde_json::from_value(parse("transformer", TRANSFORMER)?)?;
        transformer.validate().map_err(|(field, problem)| {
            anyhow::anyhow!("built-in transformer config: {field} {problem}")
        })?;
        Ok(Self {
            transformer,
            vae: serde_json::from_value(parse("autoencoder", FLUX_VAE)?)?,
            clip_l: serde_json::from_value(parse("CLIP-L", CLIP_L)?)?,
            clip_g: serde_json::from_value(parse("CLIP-G", CLIP_G)?)?,
            t5: serde_json::from_value(parse("T5", T5_XXL)?)?,
            llama: serde_json::from_value(parse("Llama", LLAMA_3_1_8B)?)?,
        })
    }

    fn from_folders(args: &PipelineArgs) -> anyhow::Result<Self> {
        let snapshot = Snapshot::open(&args.tokenizers)?;
        let config = |component: &str| -> anyhow::Result<PathBuf> {
            Ok(snapshot.component_dir(component)?.join("config.json"))
        };
        Ok(Self {
            transformer: Config::from_file(&config("transformer")?)?,
            vae: read_json(&config("vae")?, "autoencoder config")?,
            clip_l: read_json(&config("text_encoder")?, "CLIP text encoder config")?,
            clip_g: read_json(&config("text_encoder_2")?, "CLIP text encoder config")?,
            t5: read_json(&config("text_encoder_3")?, "T5 encoder config")?,
            llama: read_json(&args.llama_tokenizer.join("config.json"), "Llama config")?,
        })
    }
}

/// CLIP-L, CLIP-G, T5-XXL and Llama-3.1-8B with seeded random weights, and the tokenizers.
fn random_encoders(
    args: &PipelineArgs,
    configs: &Configs,
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

#[cfg(test)]
mod tests {
    use super::*;
    use hidream_studio::weights::requested_tensors;

    fn parameters(tensors: &[(String, Vec<usize>)]) -> usize {
        tensors
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// The built-in configurations build models of the released checkpoints' sizes
    /// (their published config.json files).
    #[test]
    fn the_built_in_configs_are_the_released_models() {
        let c = Configs::released().unwrap();
        let transformer = requested_tensors(|vb| HiDreamTransformer::new(&c.transformer, vb));
        let transformer = transformer.unwrap();
        assert_eq!(transformer.len(), 1615);
        assert_eq!(parameters(&transformer), 17_105_733_184);
        let t5 = requested_tensors(|vb| T5Encoder::new(&c.t5, vb)).unwrap();
        // 4.762 B in the checkpoint, which also holds the shared embedding once more.
        assert_eq!(parameters(&t5) / 1_000_000, 4_762);
        let llama = requested_tensors(|vb| LlamaEncoder::new(&c.llama, vb)).unwrap();
        // 8.03 B less the 0.525 B LM head, which the encoder never reads.
        assert_eq!(parameters(&llama) / 10_000_000, 750);
        let clip_g = requested_tensors(|vb| ClipTextEncoder::new(&c.clip_g, vb)).unwrap();
        assert_eq!(parameters(&clip_g) / 10_000_000, 69);
        assert_eq!(c.vae.scale_factor(), 8);
    }
}
