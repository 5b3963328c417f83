//! What `generate` and `edit` write besides the image: the `--dump` tensors and the `--json`
//! summary line, the same for both.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Tensor;
use hidream_studio::pipelines::{GpuMemoryRecord, Timings};
use serde::Serialize;

/// `--dump`: the final latents and the decoded image, f32.
pub fn write_dump(dump: &Path, final_latents: &Tensor, decoded: &Tensor) -> anyhow::Result<()> {
    let tensors = HashMap::from([
        ("final_latents".to_string(), final_latents.clone()),
        ("image".to_string(), decoded.clone()),
    ]);
    candle_core::safetensors::save(&tensors, dump)
        .with_context(|| format!("--dump {}", dump.display()))
}

/// The `--json` line of a finished job.
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
}

impl<S: Serialize, R: Serialize> Summary<'_, S, R> {
    pub fn print(&self) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string(self)?);
        Ok(())
    }
}
