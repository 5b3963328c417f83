//! Hi-DiT's pixel branch, our design (tools/train-hidit/hidit_model.py): noisy pixels embedded
//! per latent token and added to the latent tokens only at low noise (t < τ), and a
//! high-frequency head that reads the blocks' output and predicts the clean image x̂.
//!
//! The forward, as the trainer writes it out (T tokens on the latent grid, D hidden):
//!
//! ```text
//! g     = 1[t < τ]                                       per sample, compared in f32
//! h     = x_embedder(z_t) + pos_embed + g · pix_embedder(p_t)                  [B, T, D]
//! c     = t_embedder(t) + y_embedder(y)                                        [B, D]
//! h     = blocks(h, c)
//! v_z   = unpatchify(final_layer(h, c))                  the latent velocity, as stage 1
//! x̂     = pix_head(h, c)                                 clean pixels [B, 3, H, W]
//! ```
//!
//! With g = 0 the latent velocity is stage 1's exactly, whatever the pixels are. Tensor names
//! are the trainer's state dict's (`pix_embedder.proj`, `pix_head.*`); everything is f32.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder, conv2d, linear};
use serde::{Deserialize, Serialize};

use super::sit::Sit;
use crate::kernels::{conv2d_module, modulated_layer_norm};

/// The pixel head's LayerNorm epsilon (no affine parameters, as the SiT's).
const LN_EPS: f64 = 1e-6;

/// args.json's `pixel_branch` object: a folder without one is latent-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PixelBranchConfig {
    /// The gate's threshold: pixel tokens enter for t < τ (t = 1 is noise).
    pub tau: f64,
    /// Image pixels per latent token, per side (`pix_embedder.proj`'s kernel and stride).
    pub patch_size: usize,
    /// The head's widths: `proj_in` to the first, then one ×2 upsampling per next one.
    pub head_channels: Vec<usize>,
    /// The final PixelShuffle factor after `pix_head.out`.
    pub out_shuffle: usize,
    /// What the head predicts; only `x` (the clean image) is defined.
    #[serde(default = "x_prediction")]
    pub prediction: String,
    #[serde(default = "three")]
    pub image_channels: usize,
}

fn x_prediction() -> String {
    "x".into()
}

fn three() -> usize {
    3
}

impl PixelBranchConfig {
    /// What makes the configuration unusable, in words naming the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.tau.is_finite() && (0.0..=1.0).contains(&self.tau)) {
            return Err(format!("`tau` {} is not in [0, 1]", self.tau));
        }
        if self.prediction != "x" {
            return Err(format!(
                "`prediction` is `{}`; only `x` (the clean image) is defined",
                self.prediction
            ));
        }
        if self.head_channels.is_empty() || self.head_channels.contains(&0) {
            return Err("`head_channels` must list at least one positive width".into());
        }
        if self.image_channels == 0 || self.out_shuffle == 0 {
            return Err("`image_channels` and `out_shuffle` must be positive".into());
        }
        let upsampled = (1usize << (self.head_channels.len() - 1)) * self.out_shuffle;
        if upsampled != self.patch_size {
            return Err(format!(
                "the head upsamples each token by {upsampled} (2 per `head_channels` entry after \
                 the first, times `out_shuffle` {}), not by `patch_size` {}",
                self.out_shuffle, self.patch_size
            ));
        }
        Ok(())
    }
}

/// The pixel branch's weights: `pix_embedder` and `pix_head`, beside the SiT's.
#[derive(Debug, Clone)]
pub struct PixelBranch {
    cfg: PixelBranchConfig,
    /// `pix_embedder.proj`: Conv2d(3 → D, kernel = stride = patch_size).
    embedder: Conv2d,
    head: PixelHead,
}

impl PixelBranch {
    /// At the checkpoint's root prefix (the SiT's), for a SiT of width `hidden`.
    pub fn new(cfg: &PixelBranchConfig, hidden: usize, vb: VarBuilder) -> Result<Self> {
        if let Err(problem) = cfg.validate() {
            candle_core::bail!("pixel_branch: {problem}")
        }
        let embedder = conv2d(
            cfg.image_channels,
            hidden,
            cfg.patch_size,
            Conv2dConfig {
                stride: cfg.patch_size,
                ..Default::default()
            },
            vb.pp("pix_embedder.proj"),
        )?;
        Ok(Self {
            cfg: cfg.clone(),
            embedder,
            head: PixelHead::new(cfg, hidden, vb.pp("pix_head"))?,
        })
    }

    pub fn config(&self) -> &PixelBranchConfig {
        &self.cfg
    }

    /// The gated forward: (v_z [B, C, h, w], x̂ [B, 3, H, W]) at normalised latents `z`, noisy
    /// pixels `p` (f32, about [−1, 1]), times `t` [B] and labels `y` [B]; the pixel tokens
    /// count where t < `tau` (compared in f32, as the trainer compares its f32 times).
    pub fn forward(
        &self,
        sit: &Sit,
        (z, p): (&Tensor, &Tensor),
        t: &Tensor,
        y: &Tensor,
        tau: f64,
    ) -> Result<(Tensor, Tensor)> {
        let b = t.dim(0)?;
        let gate = t.lt(tau as f32)?.to_dtype(DType::F32)?.reshape((b, 1, 1))?;
        // [B, 3, H, W] → [B, T, D], tokens in the latent grid's row-major order.
        let pixels = conv2d_module(&self.embedder, p)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let h = (sit.embed(z)? + pixels.broadcast_mul(&gate)?)?;
        let c = sit.condition(t, y)?;
        let h = sit.transform(h, &c)?;
        Ok((sit.latent_head(&h, &c)?, self.head.forward(&h, &c)?))
    }

    /// The pixel velocity of the x-prediction: v_p = (p − x̂) / t in `p`'s dtype (f64 in the
    /// sampler), a true division as the reference's (candle's `/ f64` multiplies by 1/t).
    pub fn velocity(p: &Tensor, x_hat: &Tensor, t: f64) -> Result<Tensor> {
        let t = Tensor::new(t, p.device())?.to_dtype(p.dtype())?;
        (p - x_hat.to_dtype(p.dtype())?)?.broadcast_div(&t)
    }
}

/// The high-frequency head: modulated LayerNorm, `proj_in` to a token grid of images, ×2
/// conv + PixelShuffle + SiLU stages, then a conv to 3·r² channels and PixelShuffle(r).
#[derive(Debug, Clone)]
struct PixelHead {
    /// `adaLN_modulation.1`: SiLU(c) → (shift, scale).
    modulation: Linear,
    proj_in: Linear,
    /// `ups.{i}`: Conv2d 3×3, pad 1, C_i → 4·C_{i+1}.
    ups: Vec<Conv2d>,
    /// `out`: Conv2d 3×3, pad 1, C_last → 3·r².
    out: Conv2d,
    shuffle: usize,
}

impl PixelHead {
    fn new(cfg: &PixelBranchConfig, hidden: usize, vb: VarBuilder) -> Result<Self> {
        let same = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let widths = &cfg.head_channels;
        let ups = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| conv2d(w[0], 4 * w[1], 3, same, vb.pp(format!("ups.{i}"))))
            .collect::<Result<_>>()?;
        let last = widths[widths.len() - 1];
        let r = cfg.out_shuffle;
        Ok(Self {
            modulation: linear(hidden, 2 * hidden, vb.pp("adaLN_modulation.1"))?,
            proj_in: linear(hidden, widths[0], vb.pp("proj_in"))?,
            ups,
            out: conv2d(last, cfg.image_channels * r * r, 3, same, vb.pp("out"))?,
            shuffle: r,
        })
    }

    /// h [B, T, D], c [B, D] → x̂ [B, 3, side·patch, side·patch].
    fn forward(&self, h: &Tensor, c: &Tensor) -> Result<Tensor> {
        let (b, tokens, d) = h.dims3()?;
        let m = self.modulation.forward(&c.silu()?)?;
        let shift = m.narrow(1, 0, d)?.reshape((b, 1, d))?;
        let scale = m.narrow(1, d, d)?.reshape((b, 1, d))?;
        let u = self
            .proj_in
            .forward(&modulated_layer_norm(h, &scale, &shift, LN_EPS)?)?;
        let side = (tokens as f64).sqrt().round() as usize;
        let width = u.dim(2)?;
        // [B, T, C0] → [B, C0, side, side]: token (i, j) is grid cell (i, j).
        let mut u = u
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, width, side, side))?;
        for conv in &self.ups {
            u = pixel_shuffle(&conv2d_module(conv, &u)?, 2)?.silu()?;
        }
        pixel_shuffle(&conv2d_module(&self.out, &u)?, self.shuffle)
    }
}

/// PyTorch's PixelShuffle: [B, C·r², H, W] → [B, C, H·r, W·r], channel c·r² + i·r + j going to
/// pixel (y·r + i, x·r + j) of channel c.
pub fn pixel_shuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    let (b, cr2, h, w) = x.dims4()?;
    let c = cr2 / (r * r);
    x.reshape(vec![b, c, r, r, h, w])?
        .permute(vec![0, 1, 4, 2, 5, 3])?
        .reshape((b, c, h * r, w * r))
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::weights::requested_tensors;

    fn cfg() -> PixelBranchConfig {
        serde_json::from_str(
            r#"{"tau": 0.3, "patch_size": 16, "head_channels": [64, 32, 16],
                "out_shuffle": 4, "prediction": "x", "image_channels": 3}"#,
        )
        .unwrap()
    }

    #[test]
    fn names_and_shapes_are_the_trainers() {
        let requested = requested_tensors(|vb| PixelBranch::new(&cfg(), 128, vb)).unwrap();
        let find = |name: &str| {
            requested
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.clone())
        };
        assert_eq!(find("pix_embedder.proj.weight"), Some(vec![128, 3, 16, 16]));
        assert_eq!(
            find("pix_head.adaLN_modulation.1.weight"),
            Some(vec![256, 128])
        );
        assert_eq!(find("pix_head.proj_in.weight"), Some(vec![64, 128]));
        assert_eq!(find("pix_head.ups.0.weight"), Some(vec![128, 64, 3, 3]));
        assert_eq!(find("pix_head.ups.1.weight"), Some(vec![64, 32, 3, 3]));
        assert_eq!(find("pix_head.out.weight"), Some(vec![48, 16, 3, 3]));
        assert_eq!(requested.len(), 12);
    }

    #[test]
    fn the_head_must_upsample_to_the_patch() {
        let mut bad = cfg();
        bad.out_shuffle = 2;
        assert!(bad.validate().unwrap_err().contains("patch_size"));
        bad = cfg();
        bad.prediction = "v".into();
        assert!(bad.validate().unwrap_err().contains("prediction"));
        assert!(serde_json::from_str::<PixelBranchConfig>(r#"{"tau": 0.3, "patch": 16}"#).is_err());
    }

    #[test]
    fn pixel_shuffle_is_pytorchs() {
        // One channel out of 4 = 2²: input channel i·2 + j lands at (y·2 + i, x·2 + j).
        let x = Tensor::arange(0f32, 16.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 4, 2, 2))
            .unwrap();
        let y = pixel_shuffle(&x, 2).unwrap();
        let rows = y.get(0).unwrap().get(0).unwrap().to_vec2::<f32>().unwrap();
        // channel k holds 4k..4k+3 over (y, x); out[0][1] = channel 1 at (0, 0) = 4.
        assert_eq!(rows[0], [0.0, 4.0, 1.0, 5.0]);
        assert_eq!(rows[1], [8.0, 12.0, 9.0, 13.0]);
        assert_eq!(rows[3], [10.0, 14.0, 11.0, 15.0]);
    }
}
