//! The encoder and decoder stacks of the autoencoder, in diffusers naming (`up_blocks.0` is the
//! lowest resolution of the decoder).

use crate::kernels::conv2d_module;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder, conv2d};

use super::blocks::{Downsample, MidBlock, Norm, Resample, ResnetBlock, Upsample};
use super::config::VaeConfig;

fn conv3x3(cin: usize, cout: usize, vb: VarBuilder) -> Result<Conv2d> {
    conv2d(
        cin,
        cout,
        3,
        Conv2dConfig {
            padding: 1,
            ..Default::default()
        },
        vb,
    )
}

#[derive(Debug, Clone)]
struct Stage {
    resnets: Vec<ResnetBlock>,
    resample: Option<Resample>,
}

impl Stage {
    /// One side's stages, in the order data flows through them, under `vb` (`up_blocks` or
    /// `down_blocks`): stage `i` has `resnets` ResNet blocks of `widths[i]` channels (the first
    /// taking the previous stage's width) and, except the last, the resampler `resample` builds
    /// for its width. Returns the stages and the width they end at.
    fn stack(
        widths: &[usize],
        resnets: usize,
        groups: usize,
        vb: &VarBuilder,
        resample: impl Fn(usize, &VarBuilder) -> Result<Resample>,
    ) -> Result<(Vec<Self>, usize)> {
        let mut stages = Vec::with_capacity(widths.len());
        let mut prev = widths.first().copied().unwrap_or_default();
        for (i, &width) in widths.iter().enumerate() {
            let stage_vb = vb.pp(i);
            let resnets = (0..resnets)
                .map(|j| {
                    ResnetBlock::new(
                        if j == 0 { prev } else { width },
                        width,
                        groups,
                        stage_vb.pp(format!("resnets.{j}")),
                    )
                })
                .collect::<Result<_>>()?;
            let resample = if i + 1 < widths.len() {
                Some(resample(width, &stage_vb)?)
            } else {
                None
            };
            stages.push(Self { resnets, resample });
            prev = width;
        }
        Ok((stages, prev))
    }
}

impl Module for Stage {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for resnet in &self.resnets {
            x = resnet.forward(&x)?;
        }
        match &self.resample {
            Some(resample) => resample.forward(&x),
            None => Ok(x),
        }
    }
}

/// latents [B, C_lat, h, w] → image [B, 3, 8h, 8w] (for 4 blocks).
#[derive(Debug, Clone)]
pub(crate) struct Decoder {
    conv_in: Conv2d,
    mid: MidBlock,
    up: Vec<Stage>,
    norm_out: Norm,
    conv_out: Conv2d,
}

impl Decoder {
    pub fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let g = cfg.norm_num_groups;
        let widths: Vec<usize> = cfg.block_out_channels.iter().rev().copied().collect();
        let top = widths[0];
        let (up, out_width) = Stage::stack(
            &widths,
            cfg.layers_per_block + 1,
            g,
            &vb.pp("up_blocks"),
            |width, vb| Ok(Resample::Up(Upsample::new(width, vb.pp("upsamplers.0"))?)),
        )?;
        Ok(Self {
            conv_in: conv3x3(cfg.latent_channels, top, vb.pp("conv_in"))?,
            mid: MidBlock::new(top, g, cfg.mid_block_add_attention, vb.pp("mid_block"))?,
            up,
            norm_out: Norm::new(g, out_width, vb.pp("conv_norm_out"))?,
            conv_out: conv3x3(out_width, cfg.out_channels, vb.pp("conv_out"))?,
        })
    }
}

impl Module for Decoder {
    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let mut x = self.mid.forward(&conv2d_module(&self.conv_in, z)?)?;
        for stage in &self.up {
            x = stage.forward(&x)?;
        }
        conv2d_module(&self.conv_out, &self.norm_out.forward(&x, true)?)
    }
}

/// image [B, 3, H, W] → mean and log-variance of the latents, [B, 2·C_lat, H/8, W/8].
#[derive(Debug, Clone)]
pub struct Encoder {
    conv_in: Conv2d,
    down: Vec<Stage>,
    mid: MidBlock,
    norm_out: Norm,
    conv_out: Conv2d,
}

impl Encoder {
    pub fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let g = cfg.norm_num_groups;
        let widths = &cfg.block_out_channels;
        let (down, out_width) = Stage::stack(
            widths,
            cfg.layers_per_block,
            g,
            &vb.pp("down_blocks"),
            |width, vb| {
                Ok(Resample::Down(Downsample::new(
                    width,
                    vb.pp("downsamplers.0"),
                )?))
            },
        )?;
        Ok(Self {
            conv_in: conv3x3(cfg.in_channels, widths[0], vb.pp("conv_in"))?,
            down,
            mid: MidBlock::new(
                out_width,
                g,
                cfg.mid_block_add_attention,
                vb.pp("mid_block"),
            )?,
            norm_out: Norm::new(g, out_width, vb.pp("conv_norm_out"))?,
            conv_out: conv3x3(out_width, 2 * cfg.latent_channels, vb.pp("conv_out"))?,
        })
    }
}

impl Module for Encoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = conv2d_module(&self.conv_in, x)?;
        for stage in &self.down {
            x = stage.forward(&x)?;
        }
        let x = self.mid.forward(&x)?;
        conv2d_module(&self.conv_out, &self.norm_out.forward(&x, true)?)
    }
}
