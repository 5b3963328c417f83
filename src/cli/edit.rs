//! `hidream-studio edit`: change an image by instruction with HiDream-E1-Full or E1.1,
//! optionally only inside a brushed mask.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use hidream_studio::pipelines::edit::{Edit, EditForm, EditModelChoice, EditSettings, RefineModel};
use hidream_studio::pipelines::{EditJob, HiDreamBackend, JobOutput, find_llama};
use hidream_studio::settings::{JobWarning, UserValues};
use hidream_studio::store::png_with_edit_metadata;
use hidream_studio::weights::{bundled_model, resolve_model_path};

use super::job::run_job;
use super::job_args::{OutputArgs, PlacementArgs, RunArgs, outputs_and_model};
use super::outputs::{print_placement, print_written, summary};

#[derive(Args)]
#[command(mut_arg("dump", |arg| arg.help(
    "Also write `final_latents` and `image` (f32, about [−1, 1], NCHW, working size)"
)))]
pub struct EditArgs {
    /// The editing model: a HiDream-E1.1 folder, a merged HiDream-E1-Full pipeline folder, or the
    /// E1-Full LoRA (HiDream-E1-Full.safetensors, or the folder holding it) with --base-model.
    /// A Hugging Face id found in the local cache works too. Default: the bundled Shapes E1.1.
    #[arg(long)]
    model: Option<String>,
    /// HiDream-I1-Full: the base the E1-Full LoRA applies to, the text encoders and VAE for an
    /// E1.1 folder that holds only its transformer, and the refine model of --refine-model base.
    #[arg(long)]
    base_model: Option<String>,
    /// Treat --model as this form instead of recognising it from the files.
    #[arg(long, value_enum)]
    form: Option<EditForm>,
    /// The Llama-3.1-8B-Instruct folder. Default: the Hugging Face cache.
    #[arg(long)]
    llama: Option<PathBuf>,
    /// Weights for the editing transformer instead of its folder's: a GGUF file (an E1.1
    /// quantised by `quantize`, say). Its config stays the --model folder's. Not with the
    /// E1-Full LoRA.
    #[arg(long)]
    transformer: Option<PathBuf>,
    /// The image to edit (PNG, JPEG, WebP, TIFF, BMP…; EXIF orientation is applied).
    #[arg(long)]
    image: PathBuf,
    /// What to change, e.g. "make the car red". For E1-Full it is put into the model's
    /// "Editing Instruction: … Target Image Description: …" form unless it already is.
    #[arg(long)]
    instruction: String,
    /// E1-Full: what the edited image shows (default: the instruction).
    #[arg(long)]
    description: Option<String>,
    /// What to steer away from. Default: "low quality, blurry, distorted" (E1.1) or
    /// "low resolution, blur" (E1-Full); `--negative-prompt ""` is an empty one.
    #[arg(long)]
    negative_prompt: Option<String>,
    /// Only change where this image is white (any size; resized to the image with a warning).
    /// Transparent pixels count as black: what they cover is kept.
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Instruction following, 0 to 20 (E1.1 3, E1-Full 5); 1 or less turns guidance off.
    #[arg(long)]
    guidance: Option<f64>,
    /// Image preservation, 0 to 20 (E1.1 1.5, E1-Full 4).
    #[arg(long)]
    image_guidance: Option<f64>,
    /// Use the InstructPix2Pix guidance of the first E1 release instead of the rescaled
    /// ("CLIP CFG norm") guidance of the current pipeline.
    #[arg(long)]
    no_clip_cfg_norm: bool,
    /// Fraction of the last steps run as text-to-image on the target description
    /// (E1.1 and E1-Full LoRA 0.3; 0 turns it off).
    #[arg(long)]
    refine_strength: Option<f64>,
    /// What the refine stage runs on: `reference` as the official scripts really do, or `base`
    /// (HiDream-I1-Full from --base-model) as the E1 README describes. See README.md.
    #[arg(long, value_enum, default_value_t = RefineModel::Reference)]
    refine_model: RefineModel,
    /// Denoising steps (28).
    #[arg(long)]
    steps: Option<usize>,
    /// Scheduler time shift, above 0 and at most 20 (default: the model's scheduler config, 3).
    #[arg(long)]
    shift: Option<f64>,
    /// Working size: E1.1 works at about this side squared (1024), E1-Full at this square
    /// (768). Tiny test models need less. A multiple of 16 from 16 to 2048.
    #[arg(long)]
    base_resolution: Option<u32>,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    placement: PlacementArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Print one JSON summary line on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &EditArgs) -> anyhow::Result<ExitCode> {
    let (cache, model) = outputs_and_model(&args.output, args.model.as_deref(), || {
        bundled_model("shapes-e1.1").context(
            "no --model given and the bundled model shapes-e1.1 was not found (looked in \
             $HIDREAM_STUDIO_MODELS and assets/models beside the executable): pass --model with \
             a HiDream-E1.1 or E1-Full folder or Hugging Face id",
        )
    })?;
    // A bundled model's own settings for what the command line leaves unset.
    let values = UserValues {
        steps: args.steps,
        guidance: args.guidance,
        image_guidance: args.image_guidance,
        shift: args.shift,
        refine_strength: args.refine_strength,
        base_resolution: args.base_resolution,
    }
    .over_model(&model)?;
    let base_model = args
        .base_model
        .as_deref()
        .map(|b| resolve_model_path(b, cache.as_ref()))
        .transpose()?;
    let components = base_model.clone().unwrap_or_else(|| model.clone());
    let llama = find_llama(args.llama.as_deref(), &components, cache.as_ref())?;
    let noise = args.run.noise()?;
    if args.image.is_dir() {
        anyhow::bail!(
            "--image {}: is a folder; give an image file inside it",
            args.image.display()
        );
    }
    if !args.image.is_file() {
        anyhow::bail!("--image {}: no such image file", args.image.display());
    }
    let models = EditModelChoice {
        base_model,
        transformer: args.transformer.clone(),
        form: args.form,
        refine_model: args.refine_model,
        placement: args.placement.choice(),
        ..EditModelChoice::new(model, llama, args.run.dtype(), args.run.device)
    };
    let seed = args.run.seed();
    let settings = EditSettings {
        description: args.description.clone(),
        negative_prompt: args.negative_prompt.clone(),
        mask: args.mask.clone(),
        clip_cfg_norm: !args.no_clip_cfg_norm,
        ..EditSettings::new(
            models,
            args.image.clone(),
            args.instruction.clone(),
            &values,
            seed,
        )
    };
    settings
        .validate()
        .map_err(|e| anyhow::anyhow!(e.for_cli()))?;
    let job = EditJob { settings, noise };
    let JobOutput::Edit(result) = run_job(HiDreamBackend::default(), job.into(), args.json, None)?
    else {
        anyhow::bail!("internal error: an edit job returned a text-to-image result");
    };
    write_outputs(args, &result)?;
    Ok(ExitCode::SUCCESS)
}

fn write_outputs(args: &EditArgs, result: &Edit) -> anyhow::Result<()> {
    let record = &result.record;
    let png = png_with_edit_metadata(&result.image, record)?;
    args.output
        .write(&png, &result.final_latents, &result.decoded)?;
    // In the command line's words (flags), here and in the summary.
    let warnings: Vec<String> = result.warnings.iter().map(JobWarning::for_cli).collect();
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    if args.json {
        summary!(
            args.output,
            record,
            Some(&warnings),
            record.placement.as_ref()
        )
        .print()?;
    } else {
        if let Some(placement) = &record.placement {
            print_placement(placement);
        }
        let r = &record.resolved;
        let size = format!(
            "{}, {}×{} at {}×{}",
            r.form.name(),
            r.source_width,
            r.source_height,
            r.width,
            r.height
        );
        print_written(
            &args.output.out,
            &size,
            record.settings.seed,
            &record.timings,
        );
    }
    Ok(())
}
