use std::process::ExitCode;

use clap::Args;
use hidream_studio::info::inspect;
use hidream_studio::weights::{HubCache, resolve_model_path};

#[derive(Args)]
pub struct InfoArgs {
    /// A model folder (a HiDream snapshot, a Llama-3.1 folder or a REPA-E / Hi-DiT experiment
    /// folder), a GGUF, `.pt` or safetensors file, or a Hugging Face model id such as
    /// `HiDream-ai/HiDream-I1-Full` (optionally `@REVISION`) found in the local cache.
    pub model: String,

    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &InfoArgs) -> anyhow::Result<ExitCode> {
    let given = std::path::Path::new(&args.model);
    let path = if given.is_file() {
        given.to_path_buf()
    } else {
        resolve_model_path(&args.model, HubCache::from_env().as_ref())?
    };
    let report = inspect(&path)?;
    if args.json {
        super::print_report(&format!("{}\n", serde_json::to_string(&report)?))?;
    } else {
        super::print_report(&report.to_string())?;
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
