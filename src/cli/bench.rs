//! `hidream-studio bench`: timings of the model parts, printed so BENCHMARKS.md can put them
//! next to the reference implementation's (tools/bench/ has the Python counterparts).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use clap::{Args, Subcommand};
use hidream_studio::device_memory::PeakTracker;
use hidream_studio::models::hidream::{Config, HiDreamTransformer};
use hidream_studio::rng::Rng;
use hidream_studio::weights::random_var_builder;

use hidream_studio::pipelines::{ComputeDType, DeviceChoice};

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    target: BenchTarget,
}

#[derive(Subcommand)]
enum BenchTarget {
    /// One forward of the HiDream transformer.
    ///
    /// Each --config is a transformer folder (its weights are loaded) or a config.json (seeded
    /// random weights, drawn on the GPU with --device cuda). The input is --batch square
    /// latents of the config's max_resolution (128×128 for the real model: a 1024² image),
    /// --text-tokens T5 and as many Llama tokens, t = 500. A forward includes the 49 caption
    /// projections, as the reference's does.
    Dit(DitArgs),
    /// One prompt through a text encoder (CLIP, T5 or Llama, from the config's
    /// `architectures`), with seeded random weights: 20 prompt tokens padded to 128, as HiDream
    /// encodes a short prompt.
    Encoder(EncoderArgs),
    /// The whole HiDream-I1 pipeline at the released sizes (CLIP-L, CLIP-G, T5-XXL,
    /// Llama-3.1-8B, the 17 B transformer, the FLUX autoencoder) with seeded random weights
    /// (drawn on the GPU with --device cuda), through the library's `generate`: encode, per
    /// step, decode, total, and the peak GPU memory of each stage.
    Pipeline(super::bench_pipeline::PipelineArgs),
    /// One forward of REPA-E's SiT (SiT-XL/1 by default) with seeded random weights on the
    /// 16×16×32 latent of its f16d32 autoencoder, as `tools/bench/bench_sit.py` times REPA-E's
    /// own model.
    Sit(super::bench_sit::SitArgs),
    /// One latent preview: a seeded random [16, h, w] latent to RGB at 8× its size, by the
    /// wgpu compute pass (upload, dispatch, read back) and by the CPU reference.
    Preview(PreviewArgs),
}

#[derive(Args)]
struct PreviewArgs {
    /// Latent side (128 for a 1024² image).
    #[arg(long, default_value_t = 128)]
    side: u32,
    #[arg(long, default_value_t = 20)]
    iters: usize,
}

#[derive(Args)]
struct EncoderArgs {
    /// A transformers config.json; repeat to time several.
    #[arg(long = "config", required = true)]
    configs: Vec<PathBuf>,
    #[arg(long, default_value_t = 5)]
    iters: usize,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
}

#[derive(Args)]
struct DitArgs {
    /// Transformer folder or config.json; repeat to time several.
    #[arg(long = "config", required = true)]
    configs: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = ComputeDType::F32)]
    dtype: ComputeDType,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    /// Timed runs per config (the median is reported).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Images per forward: 1 (Dev, Fast) or 2 (Full: classifier-free guidance runs the
    /// negative and the positive prompt together). A list (1,2) times each on one load.
    #[arg(long, value_delimiter = ',', default_value = "1",
          value_parser = clap::value_parser!(u16).range(1..))]
    batch: Vec<u16>,
    /// T5 tokens, and as many Llama tokens (the pipelines always pad to 128).
    #[arg(long, default_value_t = TEXT_TOKENS as u16, value_parser = clap::value_parser!(u16).range(1..))]
    text_tokens: u16,
    /// Print one JSON object per config instead of a table row (with load time and, on CUDA,
    /// GPU memory).
    #[arg(long)]
    json: bool,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    match &args.target {
        BenchTarget::Dit(dit) => bench_dit(dit),
        BenchTarget::Encoder(args) => bench_encoders(args),
        BenchTarget::Preview(args) => bench_preview(args),
        BenchTarget::Pipeline(args) => super::bench_pipeline::run(args),
        BenchTarget::Sit(args) => super::bench_sit::run(args),
    }
}

fn bench_preview(args: &PreviewArgs) -> anyhow::Result<ExitCode> {
    use hidream_studio::preview::{GpuPreview, render_cpu};
    let side = args.side;
    let mut rng = Rng::new(7);
    let latent = rng.normals(16 * (side * side) as usize);
    let out = (side * 8, side * 8);
    let gpu = GpuPreview::new()?;
    let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<(f64, f64)> {
        f()?;
        let mut ms = Vec::with_capacity(args.iters);
        for _ in 0..args.iters {
            let t = Instant::now();
            f()?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        Ok((ms[ms.len() / 2], ms[0]))
    };
    let (gpu_median, gpu_min) = time(&mut || {
        gpu.render(&latent, (side, side), out)?;
        Ok(())
    })?;
    let (cpu_median, cpu_min) = time(&mut || {
        render_cpu(&latent, (side, side), out)?;
        Ok(())
    })?;
    println!("latent {side}×{side}×16 → {}×{} RGBA", out.0, out.1);
    println!(
        "  shader ({:>28}): median {gpu_median:8.2} ms, min {gpu_min:8.2} ms",
        gpu.adapter_name()
    );
    println!("  CPU reference (1 thread)      : median {cpu_median:8.2} ms, min {cpu_min:8.2} ms");
    Ok(ExitCode::SUCCESS)
}

const TEXT_TOKENS: usize = 128;

fn bench_dit(args: &DitArgs) -> anyhow::Result<ExitCode> {
    let device = args.device.device()?;
    let dtype = args.dtype.dtype();
    let threads = candle_core::utils::get_num_threads();
    let text = usize::from(args.text_tokens);
    if !args.json {
        println!(
            "config                          image tokens  batch  dtype  threads  median ms  min ms"
        );
    }
    for path in &args.configs {
        let mut memory = PeakTracker::new(&device);
        let baseline = memory.peak_bytes();
        let loading = Instant::now();
        let (cfg, model) = load_or_randomise(path, dtype, &device)?;
        device.synchronize()?;
        let load_ms = ms(loading.elapsed());
        let weights = memory.sample();
        for &batch in &args.batch {
            let batch = usize::from(batch);
            memory.reset();
            let timing = time_dit(&model, &cfg, batch, text, args, &device, &mut memory)?;
            let tokens = (cfg.max_resolution[0] / cfg.patch_size).pow(2);
            let name = display_name(path);
            let (median, min) = (ms(timing.median), ms(timing.min));
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "bench": "dit", "config": name, "image_tokens": tokens, "batch": batch,
                        "text_tokens": text, "device": args.device.name(),
                        "dtype": args.dtype.name(), "threads": threads, "median_ms": median,
                        "min_ms": min, "iters": timing.iters, "load_ms": load_ms,
                        "gpu_baseline_bytes": baseline, "gpu_after_load_bytes": weights,
                        "gpu_peak_bytes": memory.peak_bytes(),
                    })
                );
            } else {
                println!(
                    "{name:<32}{tokens:>12}  {batch:>5}  {:<5}  {threads:>7}  {median:>9.1}  {min:>6.1}",
                    args.dtype.name(),
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

struct DitTiming {
    median: Duration,
    min: Duration,
    iters: usize,
}

/// Times `model`'s forward on `batch` seeded random inputs; `memory` sees every forward's
/// high-water mark.
fn time_dit(
    model: &HiDreamTransformer,
    cfg: &Config,
    batch: usize,
    text: usize,
    args: &DitArgs,
    device: &Device,
    memory: &mut PeakTracker,
) -> anyhow::Result<DitTiming> {
    let side = cfg.max_resolution[0];
    let mut rng = Rng::new(0);
    let mut randn = |shape: &[usize]| -> anyhow::Result<Tensor> {
        let n = shape.iter().product();
        Ok(Tensor::from_vec(rng.normals(n), shape, &Device::Cpu)?.to_device(device)?)
    };
    let latents = randn(&[batch, cfg.in_channels, side, side])?;
    let t5 = randn(&[batch, text, cfg.caption_channels[0]])?;
    let llama = randn(&[
        cfg.llama_layers_needed(),
        batch,
        text,
        cfg.caption_channels[1],
    ])?;
    let pooled = randn(&[batch, cfg.text_emb_dim])?;
    let t = Tensor::full(500f32, batch, device)?;

    let mut forward = || -> anyhow::Result<()> {
        let prompt = model.encode_prompt(&t5, &llama, &pooled)?;
        let out = model.forward(&latents, &t, &prompt)?;
        device.synchronize()?;
        memory.sample();
        drop(out);
        Ok(())
    };
    for _ in 0..args.warmup {
        forward()?;
    }
    let mut times = Vec::with_capacity(args.iters);
    for _ in 0..args.iters.max(1) {
        let start = Instant::now();
        forward()?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok(DitTiming {
        median: times[times.len() / 2],
        min: times[0],
        iters: times.len(),
    })
}

/// The token ids every encoder benchmark uses: a start token, 20 prompt tokens, an end token,
/// then padding (the reference pads CLIP with the end token, T5 with 0, Llama with `<|eot_id|>`).
fn bench_tokens(start: Option<u32>, end: u32, pad: u32) -> (Vec<u32>, Vec<u32>) {
    let mut ids: Vec<u32> = start
        .into_iter()
        .chain(400..420)
        .chain(std::iter::once(end))
        .collect();
    let real = ids.len();
    ids.resize(TEXT_TOKENS, pad);
    let mask = (0..TEXT_TOKENS).map(|i| u32::from(i < real)).collect();
    (ids, mask)
}

fn bench_encoders(args: &EncoderArgs) -> anyhow::Result<ExitCode> {
    use hidream_studio::models::text::{
        ClipConfig, ClipTextEncoder, LlamaConfig, LlamaEncoder, T5Config, T5Encoder,
    };

    let device = Device::Cpu;
    let threads = candle_core::utils::get_num_threads();
    println!("config                                    tokens  threads  median ms  min ms");
    for path in &args.configs {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)?;
        let arch = value["architectures"][0]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let vb = random_var_builder(0, DType::F32, &device);
        let encode: Box<dyn Fn() -> candle_core::Result<Tensor>> = match arch.as_str() {
            "CLIPTextModelWithProjection" => {
                let cfg: ClipConfig = serde_json::from_value(value)?;
                let (ids, _) = bench_tokens(
                    Some(cfg.eos_token_id - 1),
                    cfg.eos_token_id,
                    cfg.eos_token_id,
                );
                let model = ClipTextEncoder::new(&cfg, vb)?;
                let device = device.clone();
                Box::new(move || model.encode(&ids, &device))
            }
            "T5EncoderModel" => {
                let cfg: T5Config = serde_json::from_value(value)?;
                let (ids, mask) = bench_tokens(None, 1, 0);
                let model = T5Encoder::new(&cfg, vb)?;
                let device = device.clone();
                Box::new(move || model.encode(&ids, &mask, &device))
            }
            "LlamaForCausalLM" => {
                let cfg: LlamaConfig = serde_json::from_value(value.clone())?;
                let bos = value["bos_token_id"].as_u64().unwrap_or(1) as u32;
                let eos = value["eos_token_id"].as_u64().unwrap_or(2) as u32;
                let (mut ids, mask) = bench_tokens(Some(bos), eos, eos);
                // Llama has no end token after the prompt: the 21st real token is a prompt token.
                ids[21] = 420;
                let model = LlamaEncoder::new(&cfg, vb)?;
                let device = device.clone();
                Box::new(move || model.encode(&ids, &mask, &device))
            }
            other => anyhow::bail!("{}: unsupported architecture `{other}`", path.display()),
        };
        for _ in 0..args.warmup {
            encode()?;
        }
        let mut times = Vec::with_capacity(args.iters);
        for _ in 0..args.iters.max(1) {
            let start = Instant::now();
            encode()?;
            times.push(start.elapsed());
        }
        times.sort();
        println!(
            "{:<42}{TEXT_TOKENS:>6}  {threads:>7}  {:>9.1}  {:>6.1}",
            display_name(path),
            ms(times[times.len() / 2]),
            ms(times[0])
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn load_or_randomise(
    path: &Path,
    dtype: DType,
    device: &Device,
) -> anyhow::Result<(Config, HiDreamTransformer)> {
    if path.is_dir() {
        let model = HiDreamTransformer::load(path, dtype, device)?;
        return Ok((model.config().clone(), model));
    }
    let cfg = Config::from_file(path)?;
    let model = HiDreamTransformer::new(&cfg, random_var_builder(0, dtype, device))
        .with_context(|| format!("building a random transformer for {}", path.display()))?;
    Ok((cfg, model))
}

fn display_name(path: &Path) -> String {
    let parts: Vec<_> = path.iter().map(|p| p.to_string_lossy()).collect();
    parts[parts.len().saturating_sub(3)..].join("/")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
