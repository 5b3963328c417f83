//! Decoding a large latent in overlapping tiles, for GPUs short of memory.
//!
//! A whole 1024² decode holds 128-channel activations at full resolution and, in the decoder's
//! middle block, attention over all 16,384 latent pixels (a 1 GiB score matrix in f32). Tiles
//! bound both. Neighbouring tiles overlap and are cross-faded linearly over the overlap, first
//! against the tile above, then against the tile to the left, as diffusers'
//! `AutoencoderKL.tiled_decode` does. A tile sees only
//! its own part of the latent, while the middle block's attention sees the whole of it, so the
//! result differs slightly from a whole decode: [`AutoencoderKl::decode`] stays the default and
//! tiling is for when the memory is not there.

use candle_core::{DType, Result, Tensor};

use super::AutoencoderKl;

/// Tile size and overlap in latent pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    pub tile: usize,
    pub overlap: usize,
}

impl Tiling {
    /// 512-pixel tiles overlapping by a quarter, diffusers' defaults for this autoencoder.
    pub(crate) const DEFAULT: Self = Self {
        tile: 64,
        overlap: 16,
    };
}

impl AutoencoderKl {
    /// Like [`Self::decode`], tile by tile. A latent that fits one tile is decoded whole.
    pub fn decode_tiled(&self, latents: &Tensor, tiling: Tiling) -> Result<Tensor> {
        let (_, _, h, w) = latents.dims4()?;
        let Tiling { tile, overlap } = tiling;
        if tile == 0 || overlap >= tile {
            candle_core::bail!("a tiling needs tile > overlap, got tile {tile}, overlap {overlap}");
        }
        if h <= tile && w <= tile {
            return self.decode(latents);
        }
        let scale = self.cfg.scale_factor();
        let stride = tile - overlap;
        // Each tile keeps its first `stride` rows and columns (in pixels); the overlap beyond them
        // is faded into the next tile.
        let (keep, fade) = (stride * scale, overlap * scale);
        let starts = |len: usize| (0..len).step_by(stride).collect::<Vec<_>>();

        let mut rows: Vec<Vec<Tensor>> = Vec::new();
        for &y in &starts(h) {
            let mut row = Vec::new();
            for &x in &starts(w) {
                let part = latents
                    .narrow(2, y, tile.min(h - y))?
                    .narrow(3, x, tile.min(w - x))?;
                row.push(self.decode(&part)?);
            }
            rows.push(row);
        }

        let mut out_rows = Vec::with_capacity(rows.len());
        for i in 0..rows.len() {
            let mut pieces = Vec::with_capacity(rows[i].len());
            for j in 0..rows[i].len() {
                let mut t = rows[i][j].clone();
                if i > 0 {
                    t = cross_fade(&rows[i - 1][j], &t, fade, 2)?;
                }
                if j > 0 {
                    t = cross_fade(&rows[i][j - 1], &t, fade, 3)?;
                }
                // Stored back so the tile to the right fades into the blended one.
                rows[i][j] = t.clone();
                let (th, tw) = (t.dim(2)?, t.dim(3)?);
                pieces.push(t.narrow(2, 0, keep.min(th))?.narrow(3, 0, keep.min(tw))?);
            }
            out_rows.push(Tensor::cat(&pieces, 3)?);
        }
        Tensor::cat(&out_rows, 2)
    }
}

/// `next` with its first `extent` lines along `dim` faded in from the last `extent` lines of
/// `prev`: line k is `prev·(1 − k/extent) + next·k/extent`.
fn cross_fade(prev: &Tensor, next: &Tensor, extent: usize, dim: usize) -> Result<Tensor> {
    let extent = extent.min(prev.dim(dim)?).min(next.dim(dim)?);
    if extent == 0 {
        return Ok(next.clone());
    }
    let ramp: Vec<f32> = (0..extent).map(|k| k as f32 / extent as f32).collect();
    let mut shape = vec![1; 4];
    shape[dim] = extent;
    let ramp = Tensor::from_vec(ramp, shape, next.device())?.to_dtype(DType::F32)?;
    let tail = prev.narrow(dim, prev.dim(dim)? - extent, extent)?;
    let head = next.narrow(dim, 0, extent)?;
    let blended = (tail.broadcast_mul(&(1.0 - &ramp)?)? + head.broadcast_mul(&ramp)?)?;
    let rest = next.narrow(dim, extent, next.dim(dim)? - extent)?;
    Tensor::cat(&[&blended, &rest], dim)
}

/// Bytes a whole decode of an `h`×`w` latent needs at its peak, roughly: at full resolution a
/// resnet block's input, output and normalised copy plus the 3×3 unfolding (im2col) of its
/// convolution, and the middle block's f32 attention scores over all latent pixels. About
/// 4.5 GB for 1024² in bf16.
pub(crate) fn whole_decode_bytes(vae: &AutoencoderKl, h: usize, w: usize) -> u64 {
    let cfg = vae.config();
    let scale = cfg.scale_factor();
    let pixels = (h * scale * w * scale) as u64;
    let widest_full_res = cfg.block_out_channels.first().copied().unwrap_or(128) as u64;
    let element = vae.dtype().size_in_bytes() as u64;
    let activations = (3 + 9) * widest_full_res * pixels * element;
    let latent_pixels = (h * w) as u64;
    let scores = latent_pixels * latent_pixels * 4;
    activations + scores
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn a_fade_between_equal_tiles_changes_nothing() -> Result<()> {
        let a = Tensor::full(0.5f32, (1, 3, 6, 5), &Device::Cpu)?;
        for dim in [2, 3] {
            let faded = cross_fade(&a, &a, 3, dim)?;
            assert_eq!(faded.flatten_all()?.to_vec1::<f32>()?, vec![0.5; 90]);
        }
        Ok(())
    }

    #[test]
    fn a_fade_ramps_from_the_previous_tile_to_the_next() -> Result<()> {
        let prev = Tensor::zeros((1, 1, 4, 1), DType::F32, &Device::Cpu)?;
        let next = Tensor::ones((1, 1, 4, 1), DType::F32, &Device::Cpu)?;
        let faded = cross_fade(&prev, &next, 2, 2)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(faded, vec![0.0, 0.5, 1.0, 1.0]);
        Ok(())
    }
}
