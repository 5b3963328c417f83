//! `hidream-studio generate`: images from a prompt (one, or a batch with consecutive seeds),
//! through the same engine as the window.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use hidream_studio::pipelines::{
    EncoderMemory, GenerateJob, GenerateSettings, Generation, HiDreamBackend, JobOutput,
    ModelSelection, OFFICIAL_RESOLUTIONS, Preset, find_llama, parse_size,
};
use hidream_studio::schedulers::ShiftMode;
use hidream_studio::settings::{DEFAULT_BASE_RESOLUTION, InitImage, UserValues};
use hidream_studio::store::{model_display_name, png_with_metadata};
use hidream_studio::weights::bundled_model;

use super::job::run_jobs;
use super::job_args::{OutputArgs, PlacementArgs, RunArgs, outputs_and_model};
use super::outputs::{print_placement, print_written, summary};
use super::previews::PreviewWriter;

#[derive(Args)]
#[command(mut_arg("noise", |arg| arg.help(
    "Exact starting noise: a safetensors file with `latents` [1, 16, h, w] and, for Dev and \
     Fast, `step_noise` [steps − 1, 16, h, w], to replay a reference run"
)))]
pub struct GenerateArgs {
    /// The HiDream-I1 snapshot: a folder, or a Hugging Face id such as HiDream-ai/HiDream-I1-Dev
    /// found in the local cache. Default: the bundled Shapes model of the preset.
    #[arg(long)]
    model: Option<String>,
    /// The Llama-3.1-8B-Instruct folder. Default: a text_encoder_4/ in the snapshot, else the
    /// Hugging Face cache.
    #[arg(long)]
    llama: Option<PathBuf>,
    /// Transformer weights to use instead of the snapshot's: a GGUF file (such as
    /// city96's HiDream-I1-Dev-Q8_0.gguf, or one written by `quantize`), or a safetensors file
    /// or folder. The snapshot still provides its config, the text encoders and the VAE.
    #[arg(long)]
    transformer: Option<PathBuf>,
    /// What to draw.
    #[arg(long)]
    prompt: String,
    /// What to steer away from (Full preset, or any guidance above 1). Default: empty.
    #[arg(long)]
    negative_prompt: Option<String>,
    /// Sampling preset. Default: guessed from the model's name (…-Full, -Dev, -Fast), else dev.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Denoising steps (Full 50, Dev 28, Fast 16).
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale, 0 to 20; above 1 turns guidance on (Full 5, Dev and
    /// Fast 0).
    #[arg(long)]
    guidance: Option<f64>,
    /// Scheduler time shift, above 0 and at most 20 (Full 3, Dev 6, Fast 3).
    #[arg(long)]
    shift: Option<f64>,
    /// How the Full sampler's schedule is shifted a second time: `dynamic` as the official
    /// pipeline (e^mu, from the model's maximum resolution), or `fixed` (by --shift again).
    #[arg(long, value_enum, default_value_t = ShiftMode::Dynamic)]
    shift_mode: ShiftMode,
    /// Output width; every size is rescaled to about --base-resolution² pixels.
    #[arg(long, requires = "height")]
    width: Option<u32>,
    #[arg(long, requires = "width")]
    height: Option<u32>,
    /// A size as WIDTHxHEIGHT, e.g. one of the official 1024x1024, 1360x768, 768x1360,
    /// 1168x880, 880x1168, 1248x832, 832x1248.
    #[arg(long, conflicts_with_all = ["width", "height"])]
    resolution: Option<String>,
    /// The side of the square whose area every image is rescaled to. Default: the bundled
    /// model's own (64 for the Shapes models), else 1024 (the released models). A multiple of
    /// 16 from 16 to 2048.
    #[arg(long)]
    base_resolution: Option<u32>,
    /// Image-to-image: start from this image (PNG, JPEG, WebP…) instead of pure noise. The
    /// size defaults to the image's aspect ratio.
    #[arg(long)]
    init_image: Option<PathBuf>,
    /// With --init-image: how much may change, above 0 and at most 1 (the share of the steps
    /// that run; 1 ignores the image outside a mask). Default 0.75.
    #[arg(long, requires = "init_image")]
    strength: Option<f64>,
    /// With --init-image: repaint only where this image is white; the rest stays the start
    /// image's (any size; resized to the image with a warning).
    #[arg(long, requires = "init_image")]
    mask: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    placement: PlacementArgs,
    /// Keep the text encoders in memory after encoding (default on the CPU) or free them
    /// (default on CUDA).
    #[arg(long, value_parser = clap::builder::BoolishValueParser::new())]
    keep_encoders: Option<bool>,
    #[command(flatten)]
    output: OutputArgs,
    /// How many images to make, 1 to 16, with seeds --seed, --seed + 1, …; with more than
    /// one, --out a.png writes a-1.png, a-2.png, … (and --dump likewise). The models load once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    batch: u32,
    /// Write a preview PNG per step into this folder (`step-001.png`, …): the step's
    /// clean-image estimate through the latent preview shader, at the output size.
    #[arg(long)]
    preview_dir: Option<PathBuf>,
    /// Print one JSON summary line on stdout.
    #[arg(long)]
    json: bool,
}

/// `--strength` when not given: enough change to redraw, enough kept to recognise the image.
const DEFAULT_STRENGTH: f64 = 0.75;

pub fn run(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let (cache, model) = outputs_and_model(&args.output, args.model.as_deref(), || {
        bundled_shapes_model(args.preset.unwrap_or(Preset::Full))
    })?;
    let llama = find_llama(args.llama.as_deref(), &model, cache.as_ref())?;
    let values = UserValues {
        steps: args.steps,
        guidance: args.guidance,
        shift: args.shift,
        base_resolution: args.base_resolution,
        ..UserValues::default()
    }
    .over_model(&model)?;
    let base_resolution = values.base_resolution.unwrap_or(DEFAULT_BASE_RESOLUTION);
    if args.batch > 1 && (args.run.has_noise() || args.preview_dir.is_some()) {
        anyhow::bail!(
            "--batch {}: --noise and --preview-dir belong to one image; leave them out, or \
             leave out --batch",
            args.batch
        );
    }
    let noise = args.run.noise()?;
    let (device, dtype) = (args.run.device, args.run.dtype());
    let preset = args
        .preset
        .or_else(|| Preset::guess_from_name(&model_display_name(&model)))
        .unwrap_or(Preset::Dev);
    // The size asked for, and in whose words (None: the default square, which is never changed).
    let ((width, height), asked_by) = match (&args.resolution, args.width, args.height) {
        (Some(text), _, _) => {
            let size = parse_size(text).with_context(|| {
                let names: Vec<&str> = OFFICIAL_RESOLUTIONS.iter().map(|r| r.name).collect();
                format!(
                    "--resolution {text}: expected WIDTHxHEIGHT, such as {}",
                    names.join(", ")
                )
            })?;
            (size, Some(format!("--resolution {text}")))
        }
        (None, Some(w), Some(h)) => ((w, h), Some(format!("--width {w} --height {h}"))),
        _ => match &args.init_image {
            Some(path) => {
                let size = image::image_dimensions(path).with_context(|| {
                    format!("--init-image {}: cannot read the image", path.display())
                })?;
                let words = format!("--init-image's {}×{}", size.0, size.1);
                (size, Some(words))
            }
            None => ((base_resolution, base_resolution), None),
        },
    };
    let init = args.init_image.as_ref().map(|image| InitImage {
        image: image.clone(),
        strength: args.strength.unwrap_or(DEFAULT_STRENGTH),
        mask: args.mask.clone(),
    });
    let settings = GenerateSettings {
        models: ModelSelection {
            model,
            llama,
            dtype,
            device,
            transformer: args.transformer.clone(),
            placement: args.placement.choice(),
        },
        prompt: args.prompt.clone(),
        negative_prompt: args.negative_prompt.clone(),
        preset,
        steps: values.steps,
        guidance: values.guidance,
        shift: values.shift,
        shift_mode: args.shift_mode,
        width,
        height,
        base_resolution,
        seed: args.run.seed(),
        init,
    };
    // The FLUX autoencoder's 8× is checked again against the real config when the job runs;
    // checking here reports bad values before any model is loaded.
    let resolved = settings
        .resolve(8)
        .map_err(|e| anyhow::anyhow!(e.for_cli()))?;
    if let Some(asked_by) =
        asked_by.filter(|_| (resolved.width, resolved.height) != (width, height))
    {
        eprintln!(
            "note: {asked_by} makes a {}×{} image: every size is rescaled to about \
             {base_resolution}² pixels (--base-resolution) with sides a multiple of 16, as the \
             official pipeline does",
            resolved.width, resolved.height
        );
    }
    let backend = HiDreamBackend {
        encoder_memory: args.keep_encoders.map(|keep| {
            if keep {
                EncoderMemory::Keep
            } else {
                EncoderMemory::Drop
            }
        }),
    };
    let previews = args
        .preview_dir
        .as_deref()
        .map(PreviewWriter::new)
        .transpose()?;
    let count = args.batch as usize;
    let mut noise = Some(noise);
    let jobs = (0..args.batch)
        .map(|i| {
            GenerateJob {
                settings: GenerateSettings {
                    seed: settings.seed.wrapping_add(u64::from(i)),
                    ..settings.clone()
                },
                // Only a batch of one may have it (refused above otherwise).
                noise: noise.take().flatten(),
            }
            .into()
        })
        .collect();
    run_jobs(
        backend,
        jobs,
        args.json,
        previews.as_ref(),
        |index, output| {
            let JobOutput::Generation(generation) = output else {
                anyhow::bail!("internal error: a text-to-image job returned an edit");
            };
            write_outputs(args, &args.output.numbered(index, count), &generation)
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

fn write_outputs(
    args: &GenerateArgs,
    output: &OutputArgs,
    generation: &Generation,
) -> anyhow::Result<()> {
    let png = png_with_metadata(&generation.image, &generation.record)?;
    output.write(&png, &generation.final_latents, &generation.decoded)?;
    let record = &generation.record;
    if args.json {
        summary!(output, record, None, record.placement.as_ref()).print()?;
    } else {
        if let Some(placement) = &record.placement {
            print_placement(placement);
        }
        let size = format!("{}×{}", record.resolved.width, record.resolved.height);
        print_written(&output.out, &size, record.settings.seed, &record.timings);
        if record.prompt_truncated {
            eprintln!(
                "note: the prompt is longer than the text encoders' 128 tokens; its end was ignored"
            );
        }
    }
    Ok(())
}

/// The Shapes model bundled for a preset, used when no --model is given.
pub(super) fn bundled_shapes_model(preset: Preset) -> anyhow::Result<std::path::PathBuf> {
    let name = format!("shapes-i1-{}", preset.name().to_ascii_lowercase());
    bundled_model(&name).with_context(|| {
        format!(
            "no --model given and the bundled model {name} was not found (looked in \
             $HIDREAM_STUDIO_MODELS and assets/models beside the executable): pass --model with a \
             HiDream-I1 folder or Hugging Face id"
        )
    })
}
