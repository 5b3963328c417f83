//! The FLUX.1 autoencoder as HiDream ships it: a diffusers `AutoencoderKL` with 16 latent
//! channels, scaling and shift factors from `vae/config.json` (0.3611 and 0.1159 for the real
//! one), no quant convs.

pub(crate) mod blocks;
mod coder;
mod config;
mod tiled;

use std::path::Path;

use crate::kernels::conv2d_module;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder, conv2d};

pub use config::VaeConfig;
pub use tiled::Tiling;
pub(crate) use tiled::whole_decode_bytes;

use super::{LoadError, load_checked};
use coder::{Decoder, Encoder};

#[derive(Debug, Clone)]
pub struct AutoencoderKl {
    cfg: VaeConfig,
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    dtype: DType,
}

impl AutoencoderKl {
    pub fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let c = cfg.latent_channels;
        let one = Conv2dConfig::default();
        Ok(Self {
            cfg: cfg.clone(),
            encoder: Encoder::new(cfg, vb.pp("encoder"))?,
            decoder: Decoder::new(cfg, vb.pp("decoder"))?,
            quant_conv: cfg
                .use_quant_conv
                .then(|| conv2d(2 * c, 2 * c, 1, one, vb.pp("quant_conv")))
                .transpose()?,
            post_quant_conv: cfg
                .use_post_quant_conv
                .then(|| conv2d(c, c, 1, one, vb.pp("post_quant_conv")))
                .transpose()?,
            dtype: vb.dtype(),
        })
    }

    /// Loads `vae/` of a snapshot.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> std::result::Result<Self, LoadError> {
        let cfg = VaeConfig::from_file(&dir.join("config.json"))?;
        load_checked(dir, "autoencoder", dtype, device, |vb| Self::new(&cfg, vb))
    }

    pub fn config(&self) -> &VaeConfig {
        &self.cfg
    }

    /// The dtype the weights were loaded in, which the convolutions compute in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Diffusion latents → image in about [−1, 1], NCHW, f32: `z = x / scaling + shift`, then
    /// the decoder.
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let shift = self.cfg.shift_factor.unwrap_or(0.0);
        let z = ((latents.to_dtype(DType::F32)? / self.cfg.scaling_factor)? + shift)?
            .to_dtype(self.dtype)?;
        let z = match &self.post_quant_conv {
            Some(conv) => conv2d_module(conv, &z)?,
            None => z,
        };
        self.decoder.forward(&z)?.to_dtype(DType::F32)
    }

    /// Image in [−1, 1], NCHW → the mean and log-variance of the latent distribution, before
    /// scaling: ([B, C, h, w], [B, C, h, w]).
    pub(crate) fn encode_distribution(&self, image: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.encoder.forward(&image.to_dtype(self.dtype)?)?;
        let h = match &self.quant_conv {
            Some(conv) => conv2d_module(conv, &h)?,
            None => h,
        };
        let parts = h.to_dtype(DType::F32)?.chunk(2, 1)?;
        Ok((parts[0].clone(), parts[1].clamp(-30.0, 20.0)?))
    }

    /// Image → diffusion latents `(mode − shift) · scaling`, f32.
    pub fn encode(&self, image: &Tensor) -> Result<Tensor> {
        let (mean, _) = self.encode_distribution(image)?;
        let shift = self.cfg.shift_factor.unwrap_or(0.0);
        (mean - shift)? * self.cfg.scaling_factor
    }
}

/// An f32 image in [−1, 1], [1, 3, H, W] → RGB8, as the pipelines post-process:
/// clamp(x/2 + ½, 0, 1), then ·255 rounded half to even (numpy's rounding).
pub fn to_rgb8(image: &Tensor) -> Result<image::RgbImage> {
    let (_, c, h, w) = image.dims4()?;
    if c != 3 {
        candle_core::bail!("expected an RGB image, got {c} channels");
    }
    // The finished image, read once after the last step.
    let values = crate::host_reads::to_vec1::<f32>(
        &image.get(0)?.permute((1, 2, 0))?.to_dtype(DType::F32)?,
    )?;
    let pixels = values
        .iter()
        .map(|&v| ((v / 2.0 + 0.5).clamp(0.0, 1.0) * 255.0).round_ties_even() as u8)
        .collect();
    image::RgbImage::from_raw(w as u32, h as u32, pixels)
        .ok_or_else(|| candle_core::Error::Msg("image buffer has the wrong size".into()))
}
