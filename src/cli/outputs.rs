//! What `generate` and `edit` write besides the image: the `--dump` tensors, and the `--json`
//! summary line or the closing line on stderr, the same for both.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Tensor;
use hidream_studio::pipelines::{GpuMemoryRecord, Timings};
use serde::Serialize;

/// `--dump`: named tensors (the final latents and the decoded image, f32) as safetensors.
pub fn write_dump(dump: &Path, tensors: &[(&str, &Tensor)]) -> anyhow::Result<()> {
    let tensors: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(name, t)| ((*name).to_string(), (*t).clone()))
        .collect();
    candle_core::safetensors::save(&tensors, dump)
        .with_context(|| format!("--dump {}", dump.display()))
}

/// The `--json` line of a finished job; [`summary!`] fills it from a record.
#[derive(Serialize)]
pub struct Summary<'a, S: Serialize, R: Serialize> {
    pub output: &'a PathBuf,
    pub dump: &'a Option<PathBuf>,
    pub seed: u64,
    pub settings: &'a S,
    pub resolved: &'a R,
    pub noise: &'a str,
    /// Only edits have warnings (a stretched mask, a refine stage that cannot run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<&'a [String]>,
    pub prompt_truncated: bool,
    pub timings: &'a Timings,
    /// Peak device memory per stage and how the result was decoded (null on the CPU).
    pub gpu_memory: &'a Option<GpuMemoryRecord>,
    /// Where the placement planner put the models, and why (absent when it did not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<&'a serde_json::Value>,
}

impl<S: Serialize, R: Serialize> Summary<'_, S, R> {
    pub fn print(&self) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string(self)?);
        Ok(())
    }
}

/// The [`Summary`] of a job's `record` written to `output` (an [`OutputArgs`]), with
/// `warnings` (edits have them). Generation and edit records name these fields alike but share
/// no type, so a macro serves both where a function could serve only one.
///
/// [`OutputArgs`]: super::job_args::OutputArgs
macro_rules! summary {
    ($output:expr, $record:expr, $warnings:expr, $placement:expr $(,)?) => {
        $crate::cli::outputs::Summary {
            output: &$output.out,
            dump: &$output.dump,
            seed: $record.settings.seed,
            settings: &$record.settings,
            resolved: &$record.resolved,
            noise: &$record.noise,
            warnings: $warnings,
            prompt_truncated: $record.prompt_truncated,
            timings: &$record.timings,
            gpu_memory: &$record.gpu_memory,
            placement: $placement,
        }
    };
}
pub(crate) use summary;

/// The planner's choice on stderr without `--json`: what went where, then its reasons.
pub(crate) fn print_placement(placement: &serde_json::Value) {
    let field = |name: &str| {
        placement[name]
            .as_str()
            .map_or_else(|| placement[name].to_string(), str::to_string)
    };
    let transformer = match &placement["transformer"] {
        t if t["kind"] == "streamed" => format!(
            "streamed ({} of {} blocks resident)",
            t["resident_blocks"], t["blocks"]
        ),
        _ => "resident".to_string(),
    };
    eprintln!(
        "placement for {} of GPU memory: transformer {transformer}, text encoders {}, decode {}",
        hidream_studio::placement::gb(placement["budget_bytes"].as_u64().unwrap_or(0)),
        field("encoders").replace('_', " "),
        field("decode"),
    );
    for reason in placement["reasons"].as_array().into_iter().flatten() {
        eprintln!("  {}", reason.as_str().unwrap_or_default());
    }
}

/// The closing line on stderr without `--json`: the file written, the picture's `size` as the
/// command describes it, the seed, and where the time went.
pub(crate) fn print_written(out: &Path, size: &str, seed: u64, t: &Timings) {
    eprintln!(
        "wrote {} ({size}, seed {seed}) in {:.1} s: load {:.1} s, encode {:.1} s, {} steps \
         {:.1} s, decode {:.1} s",
        out.display(),
        t.total_ms / 1e3,
        t.load_ms / 1e3,
        t.encode_ms / 1e3,
        t.step_ms.len(),
        t.step_ms.iter().sum::<f64>() / 1e3,
        t.decode_ms / 1e3
    );
}
