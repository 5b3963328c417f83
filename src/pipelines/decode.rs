//! The last stage of a job: latents to pixels, whole, or in tiles when a GPU is short of memory.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::device_memory::memory_info;
use crate::models::vae::{AutoencoderKl, Tiling, whole_decode_bytes};

/// How the latents were decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeMode {
    #[default]
    Whole,
    /// In overlapping tiles ([`Tiling::DEFAULT`]): the device had too little free memory.
    Tiled,
}

/// Whole decodes need headroom beyond the estimate for the allocator's rounding and cuBLAS
/// workspaces.
const HEADROOM: f64 = 1.5;

/// Decodes whole on the CPU and wherever the free memory allows, in tiles otherwise.
pub fn decode(vae: &AutoencoderKl, latents: &Tensor) -> Result<(Tensor, DecodeMode)> {
    let (_, _, h, w) = latents.dims4()?;
    let needed = whole_decode_bytes(vae, h, w) as f64 * HEADROOM;
    let short = memory_info(latents.device()).is_some_and(|info| (info.free as f64) < needed);
    if short {
        tracing::info!(
            "decoding in tiles: a whole {h}×{w} decode needs about {:.1} GiB, more than is free",
            needed / f64::from(1u32 << 30)
        );
        Ok((
            vae.decode_tiled(latents, Tiling::DEFAULT)?,
            DecodeMode::Tiled,
        ))
    } else {
        Ok((vae.decode(latents)?, DecodeMode::Whole))
    }
}
