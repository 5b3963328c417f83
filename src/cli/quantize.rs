//! `hidream-studio quantize`: a HiDream transformer written as a GGUF file in the community's
//! format (ComfyUI-GGUF's), to load with `generate --transformer FILE.gguf`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use hidream_studio::models::hidream::GGUF_ARCHITECTURE;
use hidream_studio::quantize::{QuantTarget, open_transformer, quantize_weights};
use hidream_studio::weights::{HubCache, resolve_model_path};

#[derive(Args)]
pub struct QuantizeArgs {
    /// What to quantise: a HiDream-I1 or E1.1 snapshot (its transformer/), a transformer
    /// folder, a Hugging Face id found in the local cache, or one safetensors file.
    source: String,
    /// The type of the quantised tensors. The `_m` mixes give attention values and
    /// feed-forward down projections Q6_K, as the community files do. Embedders, the final
    /// layer, the caption projection, the MoE gates and 1-D tensors stay unquantised.
    #[arg(long = "type", value_enum)]
    target: QuantTarget,
    /// Where to write, a name ending in .gguf.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: &QuantizeArgs) -> anyhow::Result<ExitCode> {
    let is_gguf = args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    if !is_gguf {
        anyhow::bail!("--out {}: name a file ending in .gguf", args.out.display());
    }
    let given = PathBuf::from(&args.source);
    let source = if given.is_file() {
        given
    } else {
        resolve_model_path(&args.source, HubCache::from_env().as_ref())?
    };
    let store = open_transformer(&source)?;
    if store.location() == args.out.as_path() {
        anyhow::bail!(
            "--out {} is the file being quantised; name another",
            args.out.display()
        );
    }
    let report = quantize_weights(&store, GGUF_ARCHITECTURE, args.target, &args.out)
        .with_context(|| format!("quantising {} to {}", source.display(), args.out.display()))?;
    let types: Vec<String> = report
        .by_type
        .iter()
        .map(|(ty, n)| format!("{ty} {n}"))
        .collect();
    println!(
        "wrote {}: {} tensors, {} parameters, {} of weights ({})",
        args.out.display(),
        report.tensors,
        count(report.parameters),
        size(report.data_bytes),
        types.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// 16.99 billion, 1.42 million.
fn count(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} billion", n / 1e9)
    } else {
        format!("{:.2} million", n / 1e6)
    }
}

/// 18.71 GiB, 0.76 MiB.
fn size(bytes: u64) -> String {
    let bytes = bytes as f64;
    let gib = f64::from(1u32 << 30);
    if bytes >= gib {
        format!("{:.2} GiB", bytes / gib)
    } else {
        format!("{:.2} MiB", bytes / f64::from(1u32 << 20))
    }
}
