//! The building blocks of the diffusers autoencoder: ResNet blocks, the single-head mid-block
//! attention, and the 2× resamplers. The LDM autoencoder of Hi-DiT (`models::hidit`) computes
//! the same blocks under the original latent-diffusion names, which the `ldm` constructors
//! read.

use crate::kernels::conv2d_module;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder, conv2d, linear};

/// GroupNorm epsilon of every norm in the autoencoder.
const EPS: f64 = 1e-6;

/// GroupNorm with affine parameters, optionally fused with the SiLU that follows it.
#[derive(Debug, Clone)]
pub(crate) struct Norm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
}

impl Norm {
    pub fn new(groups: usize, channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(channels, "weight")?,
            bias: vb.get(channels, "bias")?,
            groups,
        })
    }

    pub fn forward(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        crate::kernels::group_norm(x, &self.weight, &self.bias, self.groups, EPS, silu)
    }
}

pub(crate) fn conv3x3(
    cin: usize,
    cout: usize,
    stride: usize,
    padding: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    conv2d(
        cin,
        cout,
        3,
        Conv2dConfig {
            padding,
            stride,
            ..Default::default()
        },
        vb,
    )
}

/// norm → SiLU → conv, twice, plus a 1×1 shortcut when the width changes.
#[derive(Debug, Clone)]
pub(crate) struct ResnetBlock {
    norm1: Norm,
    conv1: Conv2d,
    norm2: Norm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    pub fn new(cin: usize, cout: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Self::with_shortcut(cin, cout, groups, "conv_shortcut", vb)
    }

    /// As [`Self::new`], with the LDM name of the 1×1 shortcut (`nin_shortcut`).
    pub fn ldm(cin: usize, cout: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Self::with_shortcut(cin, cout, groups, "nin_shortcut", vb)
    }

    fn with_shortcut(
        cin: usize,
        cout: usize,
        groups: usize,
        shortcut: &str,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            norm1: Norm::new(groups, cin, vb.pp("norm1"))?,
            conv1: conv3x3(cin, cout, 1, 1, vb.pp("conv1"))?,
            norm2: Norm::new(groups, cout, vb.pp("norm2"))?,
            conv2: conv3x3(cout, cout, 1, 1, vb.pp("conv2"))?,
            shortcut: if cin == cout {
                None
            } else {
                Some(conv2d(
                    cin,
                    cout,
                    1,
                    Conv2dConfig::default(),
                    vb.pp(shortcut),
                )?)
            },
        })
    }
}

impl Module for ResnetBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = conv2d_module(&self.conv1, &self.norm1.forward(x, true)?)?;
        let h = conv2d_module(&self.conv2, &self.norm2.forward(&h, true)?)?;
        match &self.shortcut {
            Some(conv) => conv2d_module(conv, x)? + h,
            None => x + h,
        }
    }
}

/// Single-head self-attention over all pixels, with a residual connection.
#[derive(Debug, Clone)]
pub(crate) struct MidAttention {
    norm: Norm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
}

impl MidAttention {
    pub fn new(channels: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: Norm::new(groups, channels, vb.pp("group_norm"))?,
            to_q: linear(channels, channels, vb.pp("to_q"))?,
            to_k: linear(channels, channels, vb.pp("to_k"))?,
            to_v: linear(channels, channels, vb.pp("to_v"))?,
            to_out: linear(channels, channels, vb.pp("to_out.0"))?,
        })
    }

    /// The LDM `AttnBlock`: `norm`, then 1×1 convs `q`, `k`, `v` and `proj_out`. A 1×1 conv
    /// over pixels is a linear map over pixel tokens, so the weights [C, C, 1, 1] load as
    /// [C, C] linears and the forward pass is the one above.
    pub fn ldm(channels: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        let one_by_one = |name: &str| -> Result<Linear> {
            let vb = vb.pp(name);
            let weight = vb
                .get((channels, channels, 1, 1), "weight")?
                .reshape((channels, channels))?;
            Ok(Linear::new(weight, Some(vb.get(channels, "bias")?)))
        };
        Ok(Self {
            norm: Norm::new(groups, channels, vb.pp("norm"))?,
            to_q: one_by_one("q")?,
            to_k: one_by_one("k")?,
            to_v: one_by_one("v")?,
            to_out: one_by_one("proj_out")?,
        })
    }
}

impl Module for MidAttention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let tokens = self
            .norm
            .forward(x, false)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = self.to_q.forward(&tokens)?;
        let k = self.to_k.forward(&tokens)?;
        let v = self.to_v.forward(&tokens)?;
        let scores = q.matmul(&k.t()?)?;
        let probs = crate::kernels::softmax_last_dim_scaled(&scores, 1.0 / (c as f64).sqrt())?;
        let out = self.to_out.forward(&probs.matmul(&v)?)?;
        x + out.transpose(1, 2)?.reshape((b, c, h, w))?
    }
}

/// resnet → attention → resnet at the lowest resolution.
#[derive(Debug, Clone)]
pub(crate) struct MidBlock {
    resnet0: ResnetBlock,
    attention: Option<MidAttention>,
    resnet1: ResnetBlock,
}

impl MidBlock {
    pub fn new(channels: usize, groups: usize, attention: bool, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            resnet0: ResnetBlock::new(channels, channels, groups, vb.pp("resnets.0"))?,
            attention: if attention {
                Some(MidAttention::new(channels, groups, vb.pp("attentions.0"))?)
            } else {
                None
            },
            resnet1: ResnetBlock::new(channels, channels, groups, vb.pp("resnets.1"))?,
        })
    }

    /// The LDM middle: `block_1`, `attn_1`, `block_2`, always with attention.
    pub fn ldm(channels: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            resnet0: ResnetBlock::ldm(channels, channels, groups, vb.pp("block_1"))?,
            attention: Some(MidAttention::ldm(channels, groups, vb.pp("attn_1"))?),
            resnet1: ResnetBlock::ldm(channels, channels, groups, vb.pp("block_2"))?,
        })
    }
}

impl Module for MidBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.resnet0.forward(x)?;
        if let Some(attention) = &self.attention {
            x = attention.forward(&x)?;
        }
        self.resnet1.forward(&x)
    }
}

/// Nearest-neighbour 2× upsampling followed by a 3×3 conv.
#[derive(Debug, Clone)]
pub(crate) struct Upsample {
    conv: Conv2d,
}

impl Upsample {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv3x3(channels, channels, 1, 1, vb.pp("conv"))?,
        })
    }
}

impl Module for Upsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv2d_module(&self.conv, &crate::kernels::upsample_nearest_2x(x)?)
    }
}

/// A level's 2× resampler: up in a decoder, down in an encoder.
#[derive(Debug, Clone)]
pub(crate) enum Resample {
    Up(Upsample),
    Down(Downsample),
}

impl Module for Resample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Up(up) => up.forward(x),
            Self::Down(down) => down.forward(x),
        }
    }
}

/// A stride-2 3×3 conv after padding one pixel on the right and bottom only.
#[derive(Debug, Clone)]
pub(crate) struct Downsample {
    conv: Conv2d,
}

impl Downsample {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv3x3(channels, channels, 2, 0, vb.pp("conv"))?,
        })
    }
}

impl Module for Downsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv2d_module(
            &self.conv,
            &x.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?,
        )
    }
}
