//! The encoder and decoder stacks of the autoencoder, in diffusers naming (`up_blocks.0` is the
//! lowest resolution of the decoder).

use crate::kernels::conv2d_module;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder, conv2d};

use super::blocks::{Downsample, MidBlock, Norm, ResnetBlock, Upsample};
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

#[derive(Debug, Clone)]
enum Resample {
    Up(Upsample),
    Down(Downsample),
}

impl Module for Stage {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for resnet in &self.resnets {
            x = resnet.forward(&x)?;
        }
        match &self.resample {
            Some(Resample::Up(up)) => up.forward(&x),
            Some(Resample::Down(down)) => down.forward(&x),
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
        let mut up = Vec::with_capacity(widths.len());
        let mut prev = top;
        for (i, &width) in widths.iter().enumerate() {
            let stage_vb = vb.pp(format!("up_blocks.{i}"));
            let resnets = (0..=cfg.layers_per_block)
                .map(|j| {
                    ResnetBlock::new(
                        if j == 0 { prev } else { width },
                        width,
                        g,
                        stage_vb.pp(format!("resnets.{j}")),
                    )
                })
                .collect::<Result<_>>()?;
            let resample = if i + 1 < widths.len() {
                Some(Resample::Up(Upsample::new(
                    width,
                    stage_vb.pp("upsamplers.0"),
                )?))
            } else {
                None
            };
            up.push(Stage { resnets, resample });
            prev = width;
        }
        Ok(Self {
            conv_in: conv3x3(cfg.latent_channels, top, vb.pp("conv_in"))?,
            mid: MidBlock::new(top, g, cfg.mid_block_add_attention, vb.pp("mid_block"))?,
            up,
            norm_out: Norm::new(g, prev, vb.pp("conv_norm_out"))?,
            conv_out: conv3x3(prev, cfg.out_channels, vb.pp("conv_out"))?,
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
        let mut down = Vec::with_capacity(widths.len());
        let mut prev = widths[0];
        for (i, &width) in widths.iter().enumerate() {
            let stage_vb = vb.pp(format!("down_blocks.{i}"));
            let resnets = (0..cfg.layers_per_block)
                .map(|j| {
                    ResnetBlock::new(
                        if j == 0 { prev } else { width },
                        width,
                        g,
                        stage_vb.pp(format!("resnets.{j}")),
                    )
                })
                .collect::<Result<_>>()?;
            let resample = if i + 1 < widths.len() {
                Some(Resample::Down(Downsample::new(
                    width,
                    stage_vb.pp("downsamplers.0"),
                )?))
            } else {
                None
            };
            down.push(Stage { resnets, resample });
            prev = width;
        }
        Ok(Self {
            conv_in: conv3x3(cfg.in_channels, widths[0], vb.pp("conv_in"))?,
            down,
            mid: MidBlock::new(prev, g, cfg.mid_block_add_attention, vb.pp("mid_block"))?,
            norm_out: Norm::new(g, prev, vb.pp("conv_norm_out"))?,
            conv_out: conv3x3(prev, 2 * cfg.latent_channels, vb.pp("conv_out"))?,
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
