//! `hidream-studio bench sit`: one forward of REPA-E's SiT (a REPA-E model name, SiT-XL/1 by
//! default) at its real size with seeded random weights, on the 16×16×32 latent of REPA-E's
//! f16d32 autoencoder, as the samplers call it. `tools/bench/bench_sit.py` times REPA-E's own
//! PyTorch model the same way.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Tensor};
use clap::Args;
use hidream_studio::models::hidit::{Conditioning, Sit, SitConfig};
use hidream_studio::pipelines::DeviceChoice;
use hidream_studio::weights::random_var_builder;

#[derive(Args)]
pub struct SitArgs {
    /// A REPA-E model name: SiT-XL/1, SiT-XL/2, SiT-L/1, SiT-B/2, …
    #[arg(long, default_value = "SiT-XL/1")]
    model: String,
    /// Images per forward; a list (1,2) times each on one model (2: classifier-free guidance
    /// runs [x, x] with [class, null]).
    #[arg(long, value_delimiter = ',', default_value = "1",
          value_parser = clap::value_parser!(u16).range(1..))]
    batch: Vec<u16>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    /// Timed runs per batch size (the median and the best are reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    iters: u16,
    /// Untimed runs first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
}

/// REPA-E's train_ldm_only.py flags for the f16d32 latent: 1000 classes with a null row, the
/// projector onto DINOv2-B's 768 widths from block 8.
const INPUT_SIZE: usize = 16;
const LATENT_CHANNELS: usize = 32;

pub fn run(args: &SitArgs) -> anyhow::Result<ExitCode> {
    let device = args.device.device()?;
    let conditioning = Conditioning {
        num_classes: 1000,
        null_class: true,
        encoder_depth: 8,
    };
    let cfg = SitConfig::from_name(
        &args.model,
        INPUT_SIZE,
        LATENT_CHANNELS,
        conditioning,
        (vec![768], 2048),
    )
    .with_context(|| format!("--model {}: not a REPA-E SiT name", args.model))?;
    let started = Instant::now();
    let model = Sit::new(&cfg, random_var_builder(0, DType::F32, &device))
        .context("building the random SiT")?;
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    for &batch in &args.batch {
        let b = usize::from(batch);
        let x = Tensor::randn(
            0f32,
            1.,
            (b, LATENT_CHANNELS, INPUT_SIZE, INPUT_SIZE),
            &device,
        )?;
        let t = Tensor::full(0.5f32, b, &device)?;
        let y = Tensor::from_vec((0..b as u32).map(|i| i * 7).collect(), b, &device)?;
        let mut times = Vec::with_capacity(usize::from(args.iters));
        for i in 0..args.warmup + usize::from(args.iters) {
            let start = Instant::now();
            model.forward(&x, &t, &y)?;
            device.synchronize()?;
            if i >= args.warmup {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{}",
            serde_json::json!({
                "bench": "sit", "side": "ours (candle)", "model": args.model, "batch": b,
                "device": args.device.name(), "threads": candle_core::utils::get_num_threads(),
                "median_ms": times[times.len() / 2], "min_ms": times[0], "build_ms": build_ms,
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}
