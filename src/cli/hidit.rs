//! `hidream-studio hidit`: one class-conditional image from a REPA-E / Hi-DiT experiment folder,
//! sampled as REPA-E's generate.py samples.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use hidream_studio::engine::Cancelled;
use hidream_studio::models::hidit::Mode;
use hidream_studio::pipelines::hidit::{
    HiditFiles, HiditGeneration, HiditModels, HiditSettings, generate,
};
use hidream_studio::pipelines::{DeviceChoice, NoiseInput, Progress};
use hidream_studio::rng::fresh_seed;
use hidream_studio::store::{png_with_hidit_metadata, write_atomically};
use serde::Serialize;

use super::job_args::OutputArgs;
use super::outputs::{print_written, write_dump};
use super::progress_bar::ProgressBar;

#[derive(Clone, Copy, ValueEnum)]
enum SamplerMode {
    /// Euler on the probability-flow ODE (deterministic).
    Ode,
    /// Euler–Maruyama on the SDE, with a final noise-free step (Hi-DiT's choice).
    Sde,
}

#[derive(Args)]
#[command(mut_arg("dump", |arg| arg.help(
    "Also write `samples` (the final latents before decoding, in the sampler's normalised \
     space) and `image` (f32 [1, 3, H, W], about [−1, 1]: the VAE's decode, or the pixel \
     stream's image) as safetensors"
)))]
pub struct HiditArgs {
    /// The experiment folder: args.json and checkpoints/NNNNNNN.pt (REPA-E's layout).
    #[arg(long)]
    model: PathBuf,
    /// The checkpoint: a step (100 or 0000100) or a file. Default: the folder's only one. Its
    /// `ema` weights are used, as generate.py uses them.
    #[arg(long)]
    checkpoint: Option<String>,
    /// The autoencoder's weights: REPA-E's plain state dict (.pt), or a safetensors conversion.
    /// Default: the checkpoint's own `vae` entry, which REPA-E's end-to-end checkpoints carry,
    /// else args.json's `vae_ckpt` found in or above the folder (generate.py's order).
    #[arg(long)]
    vae: Option<PathBuf>,
    /// `latents_scale` and `latents_bias`. Default: the VAE's file name with
    /// `-latents-stats` added, as generate.py finds it (with the checkpoint's own VAE: its EMA
    /// BatchNorm statistics).
    #[arg(long)]
    latents_stats: Option<PathBuf>,
    /// The class: its number, or a name (ImageNet's for 1000-class models, or the model's own).
    #[arg(long = "class")]
    class: String,
    /// Model evaluations (each doubled where guidance applies).
    #[arg(long, default_value_t = 50)]
    steps: usize,
    #[arg(long, value_enum, default_value_t = SamplerMode::Ode)]
    mode: SamplerMode,
    /// Classifier-free guidance scale; 1 turns guidance off (generate.py's default 1.5).
    #[arg(long, default_value_t = 1.5)]
    cfg_scale: f64,
    /// Guidance applies at steps whose start time t (1 = noise, 0 = image) is in
    /// [low, high]; REPA-E's best setting is 0 to 0.73, Hi-DiT's 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    guidance_low: f64,
    #[arg(long, default_value_t = 1.0)]
    guidance_high: f64,
    /// For a model with a pixel branch (args.json's `pixel_branch`): the pixel stream joins
    /// at steps with t < TAU (default: the folder's `pixel_branch.tau`).
    #[arg(long, conflicts_with = "latent_only")]
    tau: Option<f64>,
    /// For a model with a pixel branch: sample the latents only and decode them with the VAE
    /// (stage 1's path), to compare with the pixel stream's image.
    #[arg(long)]
    latent_only: bool,
    /// Random seed. Default: a new one, printed.
    #[arg(long, conflicts_with = "noise")]
    seed: Option<u64>,
    /// Exact noise: a safetensors file with `latents` [1, C, h, w] and, for the SDE,
    /// `step_noise` [steps − 1, C, h, w] (f64 keeps REPA-E's draws exact), in the order the
    /// reference sampler draws them; with a pixel branch also `pixel_noise` [1, 3, H, W] (the
    /// hand-off's) and, for the SDE, `pixel_step_noise` [K, 3, H, W] (the gated steps' but
    /// the last).
    #[arg(long)]
    noise: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    #[command(flatten)]
    output: OutputArgs,
    /// Print one JSON summary line on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &HiditArgs) -> anyhow::Result<ExitCode> {
    args.output.check()?;
    let noise = args.noise.as_deref().map(NoiseInput::read).transpose()?;
    let device = args.device.device()?;
    let files = HiditFiles {
        model: args.model.clone(),
        checkpoint: args.checkpoint.clone(),
        vae: args.vae.clone(),
        latents_stats: args.latents_stats.clone(),
    };
    let mut bar = ProgressBar::new(std::io::stderr().is_terminal() && !args.json);
    bar.message("loading the SiT and the autoencoder");
    let models = HiditModels::load(&files, &device)?;
    let settings = HiditSettings {
        class: models.resolve_class(&args.class)?,
        steps: args.steps,
        mode: match args.mode {
            SamplerMode::Ode => Mode::Ode,
            SamplerMode::Sde => Mode::Sde,
        },
        cfg_scale: args.cfg_scale,
        guidance_low: args.guidance_low,
        guidance_high: args.guidance_high,
        seed: args.seed.unwrap_or_else(fresh_seed),
        tau: args.tau,
        latent_only: args.latent_only,
    };
    let generation = generate(&models, &settings, noise.as_ref(), &mut Bar(&mut bar));
    bar.finish();
    let generation = generation?;
    write_outputs(args, &generation)?;
    Ok(ExitCode::SUCCESS)
}

/// The progress bar as the pipeline's progress (the command line never cancels).
struct Bar<'a>(&'a mut ProgressBar);

impl Progress for Bar<'_> {
    fn stage(&mut self, stage: &str) -> Result<(), Cancelled> {
        self.0.message(stage);
        Ok(())
    }

    fn step(
        &mut self,
        step: usize,
        total: usize,
        _: Option<candle_core::Tensor>,
    ) -> Result<(), Cancelled> {
        self.0.step(step, total);
        Ok(())
    }
}

/// The `--json` line.
#[derive(Serialize)]
struct Summary<'a> {
    output: &'a PathBuf,
    dump: &'a Option<PathBuf>,
    seed: u64,
    class: usize,
    class_name: &'a Option<String>,
    settings: &'a HiditSettings,
    checkpoint: &'a PathBuf,
    noise: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pixel_stream: &'a Option<hidream_studio::pipelines::hidit::PixelStream>,
    width: u32,
    height: u32,
    timings: &'a hidream_studio::pipelines::Timings,
}

fn write_outputs(args: &HiditArgs, generation: &HiditGeneration) -> anyhow::Result<()> {
    let record = &generation.record;
    let png = png_with_hidit_metadata(&generation.image, record)?;
    write_atomically(&args.output.out, &png)
        .with_context(|| format!("--out {}", args.output.out.display()))?;
    if let Some(dump) = &args.output.dump {
        write_dump(
            dump,
            &[
                ("samples", &generation.samples),
                ("image", &generation.decoded),
            ],
        )?;
    }
    if args.json {
        let summary = Summary {
            output: &args.output.out,
            dump: &args.output.dump,
            seed: record.settings.seed,
            class: record.settings.class,
            class_name: &record.class_name,
            settings: &record.settings,
            checkpoint: &record.checkpoint,
            noise: &record.noise,
            pixel_stream: &record.pixel_stream,
            width: record.width,
            height: record.height,
            timings: &record.timings,
        };
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        let class = match &record.class_name {
            Some(name) => format!("class {} ({name})", record.settings.class),
            None => format!("class {}", record.settings.class),
        };
        let size = format!("{}×{}, {class}", record.width, record.height);
        print_written(
            &args.output.out,
            &size,
            record.settings.seed,
            &record.timings,
        );
    }
    Ok(())
}
