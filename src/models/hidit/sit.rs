//! REPA-E's SiT (models/sit.py @3ad8046), the inference path (`SiT.inference`): a class-
//! conditional DiT with adaLN-Zero blocks on patches of a VAE latent, predicting the velocity
//! v = ε − x of the linear path x_t = (1 − t)·x + t·ε (t = 1 is noise).
//!
//! Tensor names are the checkpoint's own. Everything computes in f32, as the reference runs.
//! `forward` is split into its stages (`embed`, `condition`, `transform`, `latent_head`) so a
//! second input stream can be added to the tokens before the blocks and a second head can read
//! the blocks' output, without touching the latent path.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Embedding, Linear, VarBuilder, conv2d, embedding, linear};

use super::config::{FREQUENCY_EMBEDDING_SIZE, SitConfig};
use crate::kernels::{
    conv2d_module, gated_residual, modulated_layer_norm, softmax_last_dim_scaled,
};
use crate::models::hidream::timestep_sinusoid;

/// Epsilon of every LayerNorm in the SiT (`norm1`, `norm2`, `norm_final`; none has weights).
const LN_EPS: f64 = 1e-6;
/// Epsilon of the latent BatchNorm (`bn`, affine-free, always in eval mode).
const BN_EPS: f64 = 1e-4;

/// The SiT with its REPA projectors and latent statistics.
#[derive(Debug, Clone)]
pub struct Sit {
    cfg: SitConfig,
    /// `x_embedder.proj`: a convolution with kernel = stride = patch size.
    x_embedder: Conv2d,
    /// `pos_embed` [1, T, D]: fixed 2-D sin-cos in REPA-E, read from the checkpoint.
    pos_embed: Tensor,
    t_embedder: TimestepEmbedder,
    /// `y_embedder.embedding_table` [num_classes (+1 null), D].
    y_embedder: Embedding,
    blocks: Vec<SitBlock>,
    final_layer: FinalLayer,
    /// `projectors.{i}`: REPA's MLPs onto the aligned encoders' features. Training only.
    projectors: Vec<Projector>,
    /// `bn.running_mean` / `bn.running_var` [C]: the latent statistics the model was trained on.
    bn_mean: Tensor,
    bn_var: Tensor,
}

impl Sit {
    pub fn new(cfg: &SitConfig, vb: VarBuilder) -> Result<Self> {
        if let Err(problem) = cfg.validate() {
            candle_core::bail!("SiT configuration: {problem}")
        }
        let d = cfg.hidden_size;
        let p = cfg.patch_size;
        let x_embedder = conv2d(
            cfg.in_channels,
            d,
            p,
            Conv2dConfig {
                stride: p,
                ..Default::default()
            },
            vb.pp("x_embedder.proj"),
        )?;
        let blocks = (0..cfg.depth)
            .map(|i| SitBlock::new(cfg, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<_>>()?;
        let projectors = cfg
            .z_dims
            .iter()
            .enumerate()
            .map(|(i, &z)| {
                Projector::new(d, cfg.projector_dim, z, vb.pp(format!("projectors.{i}")))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            x_embedder,
            pos_embed: vb.get((1, cfg.num_patches(), d), "pos_embed")?,
            t_embedder: TimestepEmbedder::new(d, vb.pp("t_embedder"))?,
            y_embedder: embedding(cfg.label_rows(), d, vb.pp("y_embedder.embedding_table"))?,
            blocks,
            final_layer: FinalLayer::new(cfg, vb.pp("final_layer"))?,
            projectors,
            bn_mean: vb.get(cfg.in_channels, "bn.running_mean")?,
            bn_var: vb.get(cfg.in_channels, "bn.running_var")?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &SitConfig {
        &self.cfg
    }

    /// The velocity at `x` [B, C, H, W] (normalised latents), times `t` [B] in [0, 1] and labels
    /// `y` [B] (u32; `num_classes` is the null class) → [B, C, H, W]. All f32.
    pub fn forward(&self, x: &Tensor, t: &Tensor, y: &Tensor) -> Result<Tensor> {
        let c = self.condition(t, y)?;
        let h = self.embed(x)?;
        let h = self.transform(h, &c)?;
        self.latent_head(&h, &c)
    }

    /// Patch tokens plus positions: [B, C, H, W] → [B, T, D], tokens in row-major patch order.
    pub fn embed(&self, x: &Tensor) -> Result<Tensor> {
        let tokens = conv2d_module(&self.x_embedder, x)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        tokens.broadcast_add(&self.pos_embed)
    }

    /// The conditioning vector c = t_embed(t) + y_embed(y) [B, D].
    pub fn condition(&self, t: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.t_embedder.forward(t)? + self.y_embedder.forward(y)?
    }

    /// The blocks: [B, T, D] → [B, T, D].
    pub fn transform(&self, mut h: Tensor, c: &Tensor) -> Result<Tensor> {
        // Every adaLN modulation starts with SiLU(c): computed once for all of them.
        let c = c.silu()?;
        for block in &self.blocks {
            h = block.forward(&h, &c)?;
        }
        Ok(h)
    }

    /// The final layer and unpatchify: [B, T, D] → velocity [B, C, H, W].
    pub fn latent_head(&self, h: &Tensor, c: &Tensor) -> Result<Tensor> {
        let out = self.final_layer.forward(h, &c.silu()?)?;
        self.unpatchify(&out)
    }

    /// [B, T, p·p·C] → [B, C, h·p, w·p]: token (i, j) holds its patch as (row, column, channel).
    fn unpatchify(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, _) = x.dims3()?;
        let (p, c) = (self.cfg.patch_size, self.cfg.in_channels);
        let side = self.cfg.input_size / p;
        x.reshape(vec![b, side, side, p, p, c])?
            .permute(vec![0, 5, 1, 3, 2, 4])?
            .reshape((b, c, side * p, side * p))
    }

    /// REPA's projected features of hidden states `h` [B, T, D], one [B, T, z] per aligned
    /// encoder (REPA-E reads them after block `encoder_depth`, for the alignment loss).
    pub fn project(&self, h: &Tensor) -> Result<Vec<Tensor>> {
        self.projectors.iter().map(|p| p.forward(h)).collect()
    }

    /// The latent BatchNorm's statistics: (running_mean, running_var), each [C].
    pub fn latent_stats(&self) -> (&Tensor, &Tensor) {
        (&self.bn_mean, &self.bn_var)
    }

    /// REPA-E's `bn` in eval mode: (z − mean) / sqrt(var + 1e-4), per channel. [B, C, H, W].
    pub fn normalize_latents(&self, z: &Tensor) -> Result<Tensor> {
        let c = self.cfg.in_channels;
        let mean = self.bn_mean.reshape((1, c, 1, 1))?;
        let std = (self.bn_var.reshape((1, c, 1, 1))? + BN_EPS)?.sqrt()?;
        z.broadcast_sub(&mean)?.broadcast_div(&std)
    }
}

/// Sinusoidal features of t (as is, in [0, 1]; no ×1000), then Linear, SiLU, Linear.
#[derive(Debug, Clone)]
struct TimestepEmbedder {
    fc1: Linear,
    fc2: Linear,
}

impl TimestepEmbedder {
    fn new(d: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: linear(FREQUENCY_EMBEDDING_SIZE, d, vb.pp("mlp.0"))?,
            fc2: linear(d, d, vb.pp("mlp.2"))?,
        })
    }

    /// t [B] → [B, D].
    fn forward(&self, t: &Tensor) -> Result<Tensor> {
        // [cos(t·f_k), sin(t·f_k)], f_k = exp(−ln(10000)·k/128): the features HiDream's
        // timestep embedding uses too (t fed as is, in [0, 1]).
        let features = timestep_sinusoid(t)?;
        self.fc2.forward(&self.fc1.forward(&features)?.silu()?)
    }
}

/// adaLN-Zero block: timm Attention (fused qkv with bias) and Mlp (tanh-GELU), each behind a
/// modulated LayerNorm and a gate.
#[derive(Debug, Clone)]
struct SitBlock {
    qkv: Linear,
    proj: Linear,
    fc1: Linear,
    fc2: Linear,
    /// `adaLN_modulation.1`: SiLU(c) → 6 chunks (shift, scale, gate for attention, then MLP).
    modulation: Linear,
    heads: usize,
}

impl SitBlock {
    fn new(cfg: &SitConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let mlp = cfg.mlp_hidden();
        Ok(Self {
            qkv: linear(d, 3 * d, vb.pp("attn.qkv"))?,
            proj: linear(d, d, vb.pp("attn.proj"))?,
            fc1: linear(d, mlp, vb.pp("mlp.fc1"))?,
            fc2: linear(mlp, d, vb.pp("mlp.fc2"))?,
            modulation: linear(d, 6 * d, vb.pp("adaLN_modulation.1"))?,
            heads: cfg.num_heads,
        })
    }

    /// x [B, T, D], `c_silu` = SiLU(c) [B, D] → [B, T, D].
    fn forward(&self, x: &Tensor, c_silu: &Tensor) -> Result<Tensor> {
        let m = chunks::<6>(&self.modulation.forward(c_silu)?)?;
        let [
            shift_msa,
            scale_msa,
            gate_msa,
            shift_mlp,
            scale_mlp,
            gate_mlp,
        ] = &m;
        let h = modulated_layer_norm(x, scale_msa, shift_msa, LN_EPS)?;
        let x = gated_residual(x, &self.attention(&h)?, gate_msa)?;
        let h = modulated_layer_norm(&x, scale_mlp, shift_mlp, LN_EPS)?;
        let mlp = self.fc2.forward(&self.fc1.forward(&h)?.gelu()?)?;
        gated_residual(&x, &mlp, gate_mlp)
    }

    /// softmax(q·kᵀ/√Dh)·v over all tokens, heads concatenated, then `proj`. [B, T, D].
    fn attention(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let dh = d / self.heads;
        // qkv channels are [q | k | v], each head-major: [B, T, 3, H, Dh] → [3, B, H, T, Dh].
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, t, 3, self.heads, dh))?
            .permute((2, 0, 3, 1, 4))?;
        let (q, k, v) = (
            qkv.get(0)?.contiguous()?,
            qkv.get(1)?.contiguous()?,
            qkv.get(2)?.contiguous()?,
        );
        let scores = q.matmul(&k.t()?)?;
        let weights = softmax_last_dim_scaled(&scores, 1.0 / (dh as f64).sqrt())?;
        let out = weights.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        self.proj.forward(&out)
    }
}

/// Modulated LayerNorm (shift, scale; no gate) then the linear map to p·p·C per token.
#[derive(Debug, Clone)]
struct FinalLayer {
    modulation: Linear,
    linear: Linear,
}

impl FinalLayer {
    fn new(cfg: &SitConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.decoder_hidden_size;
        let out = cfg.patch_size * cfg.patch_size * cfg.in_channels;
        Ok(Self {
            modulation: linear(d, 2 * d, vb.pp("adaLN_modulation.1"))?,
            linear: linear(d, out, vb.pp("linear"))?,
        })
    }

    fn forward(&self, x: &Tensor, c_silu: &Tensor) -> Result<Tensor> {
        let [shift, scale] = chunks::<2>(&self.modulation.forward(c_silu)?)?;
        self.linear
            .forward(&modulated_layer_norm(x, &scale, &shift, LN_EPS)?)
    }
}

/// [B, N·D] → N tensors [B, 1, D], in order (`chunk(N, dim=-1)`, then broadcast over tokens).
fn chunks<const N: usize>(m: &Tensor) -> Result<[Tensor; N]> {
    let (b, width) = m.dims2()?;
    let d = width / N;
    let parts: Vec<Tensor> = (0..N)
        .map(|i| m.narrow(1, i * d, d)?.reshape((b, 1, d)))
        .collect::<Result<_>>()?;
    parts
        .try_into()
        .map_err(|_| candle_core::Error::Msg("adaLN chunk count".into()))
}

/// REPA's projector: Linear, SiLU, Linear, SiLU, Linear.
#[derive(Debug, Clone)]
struct Projector {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

impl Projector {
    fn new(d: usize, projector_dim: usize, z_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: linear(d, projector_dim, vb.pp("0"))?,
            fc2: linear(projector_dim, projector_dim, vb.pp("2"))?,
            fc3: linear(projector_dim, z_dim, vb.pp("4"))?,
        })
    }

    fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(h)?.silu()?;
        let h = self.fc2.forward(&h)?.silu()?;
        self.fc3.forward(&h)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;
    use crate::models::hidit::config::Conditioning;
    use crate::weights::{random_var_builder, requested_tensors};

    fn tiny(patch_size: usize) -> SitConfig {
        SitConfig {
            input_size: 4,
            patch_size,
            in_channels: 3,
            hidden_size: 8,
            decoder_hidden_size: 8,
            depth: 2,
            num_heads: 2,
            mlp_ratio: 4.0,
            num_classes: 5,
            null_class: true,
            z_dims: vec![6],
            projector_dim: 10,
            encoder_depth: 1,
        }
    }

    #[test]
    fn names_and_shapes_are_the_checkpoints() {
        let named = SitConfig::from_name(
            "SiT-XL/1",
            16,
            32,
            Conditioning {
                num_classes: 1000,
                null_class: true,
                encoder_depth: 8,
            },
            (vec![768], 2048),
        )
        .unwrap();
        let requested = requested_tensors(|vb| Sit::new(&named, vb)).unwrap();
        let find = |name: &str| {
            requested
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.clone())
        };
        assert_eq!(find("pos_embed"), Some(vec![1, 256, 1152]));
        assert_eq!(find("x_embedder.proj.weight"), Some(vec![1152, 32, 1, 1]));
        assert_eq!(
            find("y_embedder.embedding_table.weight"),
            Some(vec![1001, 1152])
        );
        assert_eq!(find("blocks.27.attn.qkv.weight"), Some(vec![3456, 1152]));
        assert_eq!(find("blocks.0.adaLN_modulation.1.bias"), Some(vec![6912]));
        assert_eq!(
            find("final_layer.adaLN_modulation.1.weight"),
            Some(vec![2304, 1152])
        );
        assert_eq!(find("final_layer.linear.weight"), Some(vec![32, 1152]));
        assert_eq!(find("projectors.0.4.weight"), Some(vec![768, 2048]));
        assert_eq!(find("bn.running_var"), Some(vec![32]));
        // Every tensor but bn.num_batches_tracked: the parameter count REPA-E's SiT-XL/1 has
        // with its projector and pos_embed (683,279,392, as `sum(p.numel() for p in
        // model.parameters())` gives it) plus the two 32-wide BatchNorm statistics.
        let params: usize = requested
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(params, 683_279_392 + 2 * 32);
    }

    #[test]
    fn unpatchify_puts_each_token_at_its_patch() {
        // Token (i, j) of a 2×2 grid with patch 2 and 3 channels: value = 1000·i + 100·j +
        // 10·(row·2 + col) + channel must land at pixel (2i + row, 2j + col).
        let sit = Sit::new(&tiny(2), random_var_builder(1, DType::F32, &Device::Cpu)).unwrap();
        let mut tokens = Vec::new();
        for i in 0..2 {
            for j in 0..2 {
                for r in 0..2 {
                    for c in 0..2 {
                        for ch in 0..3 {
                            tokens.push((1000 * i + 100 * j + 10 * (r * 2 + c) + ch) as f32);
                        }
                    }
                }
            }
        }
        let x = Tensor::from_vec(tokens, (1, 4, 12), &Device::Cpu).unwrap();
        let img = sit.unpatchify(&x).unwrap();
        let at = |ch: usize, y: usize, x: usize| {
            img.get(0)
                .unwrap()
                .get(ch)
                .unwrap()
                .get(y)
                .unwrap()
                .get(x)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert_eq!(at(0, 0, 0), 0.0);
        assert_eq!(at(2, 1, 3), (100 + 10 * 3 + 2) as f32);
        assert_eq!(at(1, 3, 2), (1000 + 100 + 10 * 2 + 1) as f32);
    }

    #[test]
    fn timestep_features_are_cos_then_sin_of_raw_t() {
        let t = Tensor::new(&[0.5f32], &Device::Cpu).unwrap();
        let f = timestep_sinusoid(&t).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(f[0].len(), FREQUENCY_EMBEDDING_SIZE);
        // k = 0: frequency 1 → cos(0.5), sin(0.5) at columns 0 and 128.
        assert!((f[0][0] - 0.5f32.cos()).abs() < 1e-7);
        assert!((f[0][128] - 0.5f32.sin()).abs() < 1e-7);
        let f1 = (-(10_000f64.ln()) / 128.0).exp() as f32;
        assert!((f[0][1] - (0.5 * f1).cos()).abs() < 1e-6);
    }
}
