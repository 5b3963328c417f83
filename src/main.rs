//! `hidream-studio`: the studio window, or one of the command-line tools.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hidream_studio::models::hidream::{CudaAttention, set_cuda_attention};

mod cli;

// Every tensor op allocates its output; glibc hands large blocks back to the kernel on free and
// takes fresh zeroed pages on the next op, which cost 5–10 % of a CPU forward. mimalloc keeps
// and reuses them (and still returns memory to the system when models are dropped).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's option enum (mimalloc.h, v2 and v3 alike); the Rust
/// bindings do not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc returns freed pages to the system after 10 ms by default, so the next denoising
/// step faults them back in (17× more page faults, 18 % slower on the medium benchmark).
/// A second keeps them across steps and still frees memory soon after models are dropped.
fn keep_freed_memory_for_a_while() {
    // SAFETY: setting an option is allowed at any time; it only changes when pages are purged.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
}

/// HiDream Studio: create and edit images with the HiDream models, locally.
///
/// Run without a command to open the studio window.
#[derive(Parser)]
#[command(name = "hidream-studio", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The window's history folder (database, images, masks). Default: the platform's data
    /// folder, ~/.local/share/hidream-studio on Linux.
    #[arg(long, global = false)]
    data_dir: Option<std::path::PathBuf>,
    /// The window's settings folder (config.json). Default: the platform's config folder,
    /// ~/.config/hidream-studio on Linux.
    #[arg(long, global = false)]
    config_dir: Option<std::path::PathBuf>,
    /// The attention on CUDA devices: the fused kernel, or the blocked path every device has
    /// (to compare the two, or if the fused kernel misbehaves on a GPU). No effect on the CPU.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = CudaAttention::Fused,
        env = "HIDREAM_CUDA_ATTENTION"
    )]
    cuda_attention: CudaAttention,
}

#[derive(Subcommand)]
enum Command {
    /// Check a model folder: what it holds and what is missing or damaged.
    ///
    /// Reads only file headers, so checking a 47 GB download takes a moment. Prints each
    /// component with its class, files, stored dtypes, parameter count and size, then every
    /// problem found. Exits with status 1 when the folder cannot be used as it is.
    Info(cli::info::InfoArgs),
    /// Make an image from a prompt with HiDream-I1 (Full, Dev or Fast).
    ///
    /// The PNG carries every setting as text, so the image can be reproduced from itself.
    Generate(Box<cli::generate::GenerateArgs>),
    /// Change an image by instruction with HiDream-E1-Full or E1.1, optionally only inside a
    /// brushed mask.
    ///
    /// The PNG carries every setting as text, like `generate`'s.
    Edit(Box<cli::edit::EditArgs>),
    /// ShapesEval: generate a fixed prompt set with a Shapes model and check every picture.
    ///
    /// Reads each picture back into objects (nearest palette colour, connected regions, shape
    /// from the outline) and prints accuracy per category, then one JSON line.
    Eval(Box<cli::eval::EvalArgs>),
    /// Ask the agent: it makes a picture, changes one, or answers, and prints its decision.
    ///
    /// The agent model (default: the bundled shapes-agent) reads the message, with --image
    /// attached and the earlier messages of --conversation, and calls generate_image or
    /// edit_image; the jobs run on the bundled Shapes models unless --dry-run.
    Agent(Box<cli::agent::AgentArgs>),
    /// Score the agent on held-out requests: the action it chose and, unless --dry-run, whether
    /// its picture passes ShapesEval's check of what was asked.
    AgentEval(Box<cli::agent_eval::AgentEvalArgs>),
    /// Make a class-conditional image with a Hi-DiT / REPA-E latent SiT.
    ///
    /// Reads REPA-E's files as published (an experiment folder with args.json and
    /// checkpoints/NNNNNNN.pt, the autoencoder's .pt and its latent statistics) and samples as
    /// REPA-E's generate.py does: Euler ODE or Euler–Maruyama SDE, classifier-free guidance
    /// inside a time interval, decoded and truncated to 8 bits.
    Hidit(Box<cli::hidit::HiditArgs>),
    /// Write a HiDream transformer as a quantised GGUF file (ComfyUI-GGUF's format).
    ///
    /// Load the result with `generate --transformer FILE.gguf`; ComfyUI-GGUF loads it too.
    Quantize(cli::quantize::QuantizeArgs),
    /// Plan where the models go for a GPU memory budget: the transformer resident or
    /// streamed, the text encoders together, one at a time or on the CPU, and each phase's peak.
    ///
    /// Arithmetic over the released models' sizes (no download needed); prints the choices and
    /// why. Without --vram-budget, the table for 80, 48, 24, 16 and 12 GB.
    Plan(cli::plan::PlanArgs),
    /// Time parts of the pipeline (for BENCHMARKS.md).
    ///
    /// Set RAYON_NUM_THREADS to fix the number of CPU threads.
    Bench(cli::bench::BenchArgs),
    /// Run the reference fixtures (tests/fixtures/CASE) on a device and dtype and compare the
    /// final latents with the reference's.
    ///
    /// Prints each case's relative error and pass or fail against a per-dtype tolerance; exits
    /// with status 1 when any case fails. With CUDA in f32, TF32 is off.
    Parity(cli::parity::ParityArgs),
    /// Download a model from the Hugging Face hub into the standard cache, where the studio
    /// (and huggingface_hub) find it.
    ///
    /// Resumes partial files, checks LFS files' SHA-256, and checks the disk has room first.
    /// HF_TOKEN authorises gated models (Llama-3.1-8B-Instruct); HF_ENDPOINT picks another
    /// hub. Prints the snapshot folder at the end. Without REPO, lists the known models.
    Download(cli::download::DownloadArgs),
}

/// The folders the window uses: the given ones, the platform's for the rest.
fn window_paths(
    data_dir: Option<std::path::PathBuf>,
    config_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<Option<hidream_studio::app::StudioPaths>> {
    if data_dir.is_none() && config_dir.is_none() {
        return Ok(None);
    }
    let platform = hidream_studio::app::StudioPaths::platform();
    let pick = |given: Option<std::path::PathBuf>, fallback: Option<std::path::PathBuf>, flag| {
        given
            .or(fallback)
            .ok_or_else(|| anyhow::anyhow!("no home folder was found: pass {flag} as well"))
    };
    Ok(Some(hidream_studio::app::StudioPaths {
        data_dir: pick(
            data_dir,
            platform.as_ref().map(|p| p.data_dir.clone()),
            "--data-dir",
        )?,
        config_dir: pick(
            config_dir,
            platform.as_ref().map(|p| p.config_dir.clone()),
            "--config-dir",
        )?,
    }))
}

fn main() -> ExitCode {
    keep_freed_memory_for_a_while();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HIDREAM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    set_cuda_attention(cli.cuda_attention);
    let result = match cli.command {
        None => {
            window_paths(cli.data_dir, cli.config_dir).and_then(hidream_studio::app::run_window)
        }
        Some(Command::Info(args)) => cli::info::run(&args),
        Some(Command::Download(args)) => cli::download::run(&args),
        Some(Command::Bench(args)) => cli::bench::run(&args),
        Some(Command::Quantize(args)) => cli::quantize::run(&args),
        Some(Command::Plan(args)) => cli::plan::run(&args),
        Some(Command::Parity(args)) => cli::parity::run(&args),
        Some(Command::Generate(args)) => cli::generate::run(&args),
        Some(Command::Agent(args)) => cli::agent::run(&args),
        Some(Command::AgentEval(args)) => cli::agent_eval::run(&args),
        Some(Command::Edit(args)) => cli::edit::run(&args),
        Some(Command::Hidit(args)) => cli::hidit::run(&args),
        Some(Command::Eval(args)) if args.edits => cli::eval_edits::run(&args),
        Some(Command::Eval(args)) => cli::eval::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
