//! The KL autoencoder of REPA-E and Hi-DiT: latent-diffusion's `AutoencoderKL` as REPA-E
//! `models/autoencoder.py` @3ad8046 defines it (e2e-VAVAE is its `f16d32`: 32 latent channels
//! at 1/16 of the image side), with the state-dict names of its `.pt` files: `encoder.*`,
//! `decoder.*`, `quant_conv.*`, `post_quant_conv.*`.
//!
//! The blocks are the FLUX autoencoder's (`models::vae::blocks`, the same maths) under the LDM
//! names: `down.{i}.block.{j}` / `down.{i}.attn.{j}` / `down.{i}.downsample.conv`,
//! `mid.block_1` / `mid.attn_1` / `mid.block_2`, and `up.{i}` indexed by resolution level
//! (`up.0` is the full-resolution level, run last).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder, conv2d};
use serde::{Deserialize, Serialize};

use crate::kernels::conv2d_module;
use crate::models::vae::blocks::{
    Downsample, MidAttention, MidBlock, Norm, Resample, ResnetBlock, Upsample, conv3x3,
};

/// GroupNorm groups of every norm (REPA-E's `Normalize`): each width must be a multiple.
pub const GROUPS: usize = 32;

/// The autoencoder's architecture, as REPA-E's `Encoder`/`Decoder` arguments. REPA-E's
/// published models are named by `args.json`'s `vae` ([`Self::from_name`]); a model of our own
/// states it as a `vae_arch` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaeArch {
    /// Latent channels (`z_channels`).
    pub embed_dim: usize,
    /// Base width; level `i` is `ch · ch_mult[i]` wide.
    pub ch: usize,
    pub ch_mult: Vec<usize>,
    /// ResNet blocks per encoder level; the decoder has one more per level.
    #[serde(default = "two")]
    pub num_res_blocks: usize,
    /// Image sides (at the nominal `resolution`) whose levels have attention after each block.
    #[serde(default = "sixteen")]
    pub attn_resolutions: Vec<usize>,
    /// The nominal image side the levels' resolutions are counted from.
    #[serde(default = "two_five_six")]
    pub resolution: usize,
    /// Whether the encoder predicts a log-variance (`quant_conv` 2C → 2C) or only a mean.
    #[serde(default = "yes")]
    pub use_variational: bool,
    /// Image side / latent side, `2^(len(ch_mult) − 1)`; stated so readers of args.json see it
    /// (0 = not stated).
    #[serde(default)]
    pub downsample_factor: usize,
}

fn two() -> usize {
    2
}

fn sixteen() -> Vec<usize> {
    vec![16]
}

fn two_five_six() -> usize {
    256
}

fn yes() -> bool {
    true
}

impl VaeArch {
    /// REPA-E's `VAE_F16D32` (e2e-VAVAE, VA-VAE): [B, 32, H/16, W/16].
    pub fn f16d32() -> Self {
        Self {
            embed_dim: 32,
            ch: 128,
            ch_mult: vec![1, 1, 2, 2, 4],
            num_res_blocks: 2,
            attn_resolutions: vec![16],
            resolution: 256,
            use_variational: true,
            downsample_factor: 16,
        }
    }

    /// REPA-E's `VAE_F8D4` (the SD-VAE layout): [B, 4, H/8, W/8]. Its levels are 256…32
    /// pixels, so only the middle has attention.
    pub fn f8d4() -> Self {
        Self {
            embed_dim: 4,
            ch: 128,
            ch_mult: vec![1, 2, 4, 4],
            num_res_blocks: 2,
            attn_resolutions: vec![16],
            resolution: 256,
            use_variational: true,
            downsample_factor: 8,
        }
    }

    /// The architecture of one of REPA-E's `vae_models` names (`f16d32`, `f8d4`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "f16d32" => Some(Self::f16d32()),
            "f8d4" => Some(Self::f8d4()),
            _ => None,
        }
    }

    /// The names [`Self::from_name`] knows.
    pub const NAMES: [&str; 2] = ["f16d32", "f8d4"];

    /// Image side per latent side: `2^(levels − 1)`.
    pub fn downsampling(&self) -> usize {
        1 << self.ch_mult.len().saturating_sub(1)
    }

    /// Whether level `i` (0 = full resolution) has attention.
    fn attention_at(&self, level: usize) -> bool {
        self.attn_resolutions
            .contains(&(self.resolution >> level.min(usize::BITS as usize - 1)))
    }

    /// Checks what REPA-E's code would refuse or silently build differently; the message names
    /// the field.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.ch_mult.is_empty() {
            return Err("`ch_mult` is empty; it lists each level's width multiplier".into());
        }
        if self.embed_dim == 0 || self.ch == 0 {
            return Err("`embed_dim` and `ch` must be positive".into());
        }
        if self.num_res_blocks == 0 {
            return Err("`num_res_blocks` must be at least 1".into());
        }
        if let Some(m) = self
            .ch_mult
            .iter()
            .find(|&&m| !(self.ch * m).is_multiple_of(GROUPS))
        {
            return Err(format!(
                "`ch` × `ch_mult` gives a width of {}, not a multiple of the {GROUPS} GroupNorm \
                 groups",
                self.ch * m
            ));
        }
        if self.downsample_factor != 0 && self.downsample_factor != self.downsampling() {
            return Err(format!(
                "`downsample_factor` is {}, but {} levels in `ch_mult` downsample by {}",
                self.downsample_factor,
                self.ch_mult.len(),
                self.downsampling()
            ));
        }
        Ok(())
    }
}

/// One resolution level: ResNet blocks, each followed by attention at attention levels, then
/// the resampler (none at the last level run).
#[derive(Debug, Clone)]
struct Level {
    blocks: Vec<ResnetBlock>,
    attentions: Vec<MidAttention>,
    resample: Option<Resample>,
}

impl Level {
    /// `blocks` ResNet blocks from `cin` to `cout` channels (the first one changes the width)
    /// under `vb` (`down.{i}` or `up.{i}`).
    fn new(
        (cin, cout): (usize, usize),
        blocks: usize,
        attention: bool,
        resample: Option<&str>,
        vb: &VarBuilder,
    ) -> Result<Self> {
        let blocks_vb = vb.pp("block");
        let attn_vb = vb.pp("attn");
        let mut level = Self {
            blocks: Vec::with_capacity(blocks),
            attentions: Vec::new(),
            resample: None,
        };
        for j in 0..blocks {
            let width_in = if j == 0 { cin } else { cout };
            level
                .blocks
                .push(ResnetBlock::ldm(width_in, cout, GROUPS, blocks_vb.pp(j))?);
            if attention {
                level
                    .attentions
                    .push(MidAttention::ldm(cout, GROUPS, attn_vb.pp(j))?);
            }
        }
        level.resample = match resample {
            Some("upsample") => Some(Resample::Up(Upsample::new(cout, vb.pp("upsample"))?)),
            Some(_) => Some(Resample::Down(Downsample::new(cout, vb.pp("downsample"))?)),
            None => None,
        };
        Ok(level)
    }
}

impl Module for Level {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (j, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x)?;
            if let Some(attention) = self.attentions.get(j) {
                x = attention.forward(&x)?;
            }
        }
        match &self.resample {
            Some(resample) => resample.forward(&x),
            None => Ok(x),
        }
    }
}

/// Image [B, 3, H, W] → moments [B, 2·embed_dim, H/f, W/f] (before `quant_conv`).
#[derive(Debug, Clone)]
struct Encoder {
    conv_in: Conv2d,
    down: Vec<Level>,
    mid: MidBlock,
    norm_out: Norm,
    conv_out: Conv2d,
}

impl Encoder {
    fn new(arch: &VaeArch, vb: VarBuilder) -> Result<Self> {
        let levels = arch.ch_mult.len();
        let down_vb = vb.pp("down");
        let mut down = Vec::with_capacity(levels);
        let mut width = arch.ch;
        for (i, &mult) in arch.ch_mult.iter().enumerate() {
            let cout = arch.ch * mult;
            let resample = (i + 1 < levels).then_some("downsample");
            down.push(Level::new(
                (width, cout),
                arch.num_res_blocks,
                arch.attention_at(i),
                resample,
                &down_vb.pp(i),
            )?);
            width = cout;
        }
        Ok(Self {
            conv_in: conv3x3(3, arch.ch, 1, 1, vb.pp("conv_in"))?,
            down,
            mid: MidBlock::ldm(width, GROUPS, vb.pp("mid"))?,
            norm_out: Norm::new(GROUPS, width, vb.pp("norm_out"))?,
            conv_out: conv3x3(width, 2 * arch.embed_dim, 1, 1, vb.pp("conv_out"))?,
        })
    }
}

impl Module for Encoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = conv2d_module(&self.conv_in, x)?;
        for level in &self.down {
            h = level.forward(&h)?;
        }
        let h = self.mid.forward(&h)?;
        conv2d_module(&self.conv_out, &self.norm_out.forward(&h, true)?)
    }
}

/// Latents [B, embed_dim, h, w] (after `post_quant_conv`) → image [B, 3, f·h, f·w].
#[derive(Debug, Clone)]
struct Decoder {
    conv_in: Conv2d,
    mid: MidBlock,
    /// By level: `up[0]` is full resolution. Run from the last to the first.
    up: Vec<Level>,
    norm_out: Norm,
    conv_out: Conv2d,
}

impl Decoder {
    fn new(arch: &VaeArch, vb: VarBuilder) -> Result<Self> {
        let levels = arch.ch_mult.len();
        let top = arch.ch * arch.ch_mult[levels - 1];
        let up_vb = vb.pp("up");
        let mut up = Vec::with_capacity(levels);
        let mut width = top;
        for i in (0..levels).rev() {
            let cout = arch.ch * arch.ch_mult[i];
            let resample = (i > 0).then_some("upsample");
            up.push(Level::new(
                (width, cout),
                arch.num_res_blocks + 1,
                arch.attention_at(i),
                resample,
                &up_vb.pp(i),
            )?);
            width = cout;
        }
        up.reverse();
        Ok(Self {
            conv_in: conv3x3(arch.embed_dim, top, 1, 1, vb.pp("conv_in"))?,
            mid: MidBlock::ldm(top, GROUPS, vb.pp("mid"))?,
            up,
            norm_out: Norm::new(GROUPS, width, vb.pp("norm_out"))?,
            conv_out: conv3x3(width, 3, 1, 1, vb.pp("conv_out"))?,
        })
    }
}

impl Module for Decoder {
    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let mut h = self.mid.forward(&conv2d_module(&self.conv_in, z)?)?;
        for level in self.up.iter().rev() {
            h = level.forward(&h)?;
        }
        conv2d_module(&self.conv_out, &self.norm_out.forward(&h, true)?)
    }
}

/// REPA-E's `AutoencoderKL`: encoder + `quant_conv`, `post_quant_conv` + decoder. No latent
/// scaling here: REPA-E normalises latents with its own statistics (`latents_scale`,
/// `latents_bias`), which the sampler applies before [`Self::decode`].
#[derive(Debug, Clone)]
pub struct AutoencoderKl {
    arch: VaeArch,
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Conv2d,
    post_quant_conv: Conv2d,
    dtype: DType,
}

impl AutoencoderKl {
    /// Builds the autoencoder from the state dict at `vb`'s root (`encoder.*`, `decoder.*`,
    /// `quant_conv.*`, `post_quant_conv.*`). Call [`VaeArch::check`] first: an architecture
    /// it refuses fails here with candle's less helpful message.
    pub fn new(arch: &VaeArch, vb: VarBuilder) -> Result<Self> {
        arch.check().map_err(candle_core::Error::Msg)?;
        let c = arch.embed_dim;
        let moments = if arch.use_variational { 2 * c } else { c };
        let one = Conv2dConfig::default();
        Ok(Self {
            arch: arch.clone(),
            encoder: Encoder::new(arch, vb.pp("encoder"))?,
            decoder: Decoder::new(arch, vb.pp("decoder"))?,
            quant_conv: conv2d(2 * c, moments, 1, one, vb.pp("quant_conv"))?,
            post_quant_conv: conv2d(c, c, 1, one, vb.pp("post_quant_conv"))?,
            dtype: vb.dtype(),
        })
    }

    pub fn arch(&self) -> &VaeArch {
        &self.arch
    }

    /// The dtype the weights were loaded in, which the convolutions compute in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Latents [B, embed_dim, h, w] (in the VAE's own scale, not normalised) → image
    /// [B, 3, f·h, f·w] in about [−1, 1], f32, unclamped as REPA-E returns it.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let z = conv2d_module(&self.post_quant_conv, &z.to_dtype(self.dtype)?)?;
        self.decoder.forward(&z)?.to_dtype(DType::F32)
    }

    /// Image [B, 3, H, W] in [−1, 1] → the posterior's (mean, log-variance), each
    /// [B, embed_dim, H/f, W/f], f32, the log-variance clamped to [−30, 20] as REPA-E's
    /// `DiagonalGaussianDistribution` does. A non-variational encoder's log-variance is ones
    /// (REPA-E appends `ones_like(moments)`).
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.encoder.forward(&x.to_dtype(self.dtype)?)?;
        let moments = conv2d_module(&self.quant_conv, &h)?.to_dtype(DType::F32)?;
        if !self.arch.use_variational {
            let logvar = moments.ones_like()?;
            return Ok((moments, logvar));
        }
        let parts = moments.chunk(2, 1)?;
        Ok((parts[0].clone(), parts[1].clamp(-30.0, 20.0)?))
    }
}
