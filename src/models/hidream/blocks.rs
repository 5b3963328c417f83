//! Dual-stream and single-stream transformer blocks with adaLN modulation.

use candle_core::{D, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::models::device_copy::ToDevice;
use crate::models::linear::{Linear, linear};

use super::attention::Attention;
use super::config::Config;
use super::embeddings::RopeTable;
use super::moe::{ExpertRouting, ImageFeedForward, SwiGlu};
use crate::kernels;

/// LayerNorm epsilon of every block norm and the final layer's (no affine parameters).
pub(crate) const NORM_EPS: f64 = 1e-6;

/// One (shift, scale, gate) triple of an adaLN output, each [B, 1, D].
#[derive(Debug, Clone)]
pub(crate) struct Modulation {
    shift: Tensor,
    scale: Tensor,
    gate: Tensor,
}

impl Modulation {
    /// `LN(x)·(1 + scale) + shift`
    fn modulated_norm(&self, x: &Tensor) -> Result<Tensor> {
        kernels::modulated_layer_norm(x, &self.scale, &self.shift, NORM_EPS)
    }

    /// `x + gate·f`
    fn gated_add(&self, x: &Tensor, f: &Tensor) -> Result<Tensor> {
        kernels::gated_residual(x, f, &self.gate)
    }

    /// A feed-forward sub-layer with its residual: `x + gate·ff(LN(x)·(1 + scale) + shift)`.
    fn feed_forward(&self, x: &Tensor, ff: &impl Module) -> Result<Tensor> {
        self.gated_add(x, &ff.forward(&self.modulated_norm(x)?)?)
    }
}

/// Splits an adaLN output [B, n·3·D] into n modulation triples, in the order
/// (shift, scale, gate) per triple.
fn modulations(ada: &Tensor, n: usize) -> Result<Vec<Modulation>> {
    let chunks = ada.unsqueeze(1)?.chunk(3 * n, D::Minus1)?;
    Ok(chunks
        .chunks(3)
        .map(|c| Modulation {
            shift: c[0].clone(),
            scale: c[1].clone(),
            gate: c[2].clone(),
        })
        .collect())
}

/// What both kinds of block hold, under the reference's names: the adaLN projection of the
/// timestep embedding to the block's modulation triples, the attention, and the image tokens'
/// mixture-of-experts feed-forward.
#[derive(Debug, Clone)]
struct BlockCore {
    ada: Linear,
    /// Modulation triples: one per attention and feed-forward sub-layer of each stream.
    triples: usize,
    attn: Attention,
    ff_i: ImageFeedForward,
}

impl ToDevice for BlockCore {
    fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            ada: self.ada.to_device(device)?,
            triples: self.triples,
            attn: self.attn.to_device(device)?,
            ff_i: self.ff_i.to_device(device)?,
        })
    }
}

impl BlockCore {
    fn linears<'a>(&'a self, out: &mut Vec<&'a Linear>) {
        out.push(&self.ada);
        self.attn.linears(out);
        self.ff_i.linears(out);
    }

    /// A dual-stream block's attention is joint and it modulates four sub-layers (attention
    /// and feed-forward of each stream); a single-stream block modulates two.
    fn new(cfg: &Config, dual_stream: bool, vb: &VarBuilder) -> Result<Self> {
        let dim = cfg.inner_dim();
        let triples = if dual_stream { 4 } else { 2 };
        Ok(Self {
            ada: linear(dim, 3 * triples * dim, vb.pp("adaLN_modulation.1"))?,
            triples,
            attn: Attention::new(dim, cfg.num_attention_heads, dual_stream, vb.pp("attn1"))?,
            ff_i: ImageFeedForward::new(
                dim,
                cfg.num_routed_experts,
                cfg.num_activated_experts,
                vb.pp("ff_i"),
            )?,
        })
    }

    /// The block's modulation triples for `temb_act` = SiLU(temb) [B, D].
    fn modulations(&self, temb_act: &Tensor) -> Result<Vec<Modulation>> {
        modulations(&self.ada.forward(temb_act)?, self.triples)
    }
}

/// Dual-stream block: image and text have their own norms, projections and feed-forwards and
/// meet in one joint attention.
#[derive(Debug, Clone)]
pub(crate) struct DoubleStreamBlock {
    core: BlockCore,
    ff_t: SwiGlu,
}

impl ToDevice for DoubleStreamBlock {
    fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            core: self.core.to_device(device)?,
            ff_t: self.ff_t.to_device(device)?,
        })
    }
}

impl DoubleStreamBlock {
    pub(crate) fn linears<'a>(&'a self, out: &mut Vec<&'a Linear>) {
        self.core.linears(out);
        self.ff_t.linears(out);
    }

    pub fn set_expert_routing(&mut self, routing: ExpertRouting) -> Result<()> {
        self.core.ff_i.set_routing(routing)
    }

    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.inner_dim();
        Ok(Self {
            core: BlockCore::new(cfg, true, &vb)?,
            ff_t: SwiGlu::new(dim, 4 * dim, vb.pp("ff_t"))?,
        })
    }

    /// `img` [B, Si, D], `txt` [B, St, D], `temb_act` = SiLU(temb) [B, D]. Returns the image
    /// stream and the first `keep_text` text tokens: the rest (the block's own Llama tokens)
    /// only serve as keys and values, and the reference discards their outputs.
    pub fn forward(
        &self,
        img: &Tensor,
        key_mask: Option<&Tensor>,
        txt: &Tensor,
        keep_text: usize,
        temb_act: &Tensor,
        rope: &RopeTable,
    ) -> Result<(Tensor, Tensor)> {
        let m = self.core.modulations(temb_act)?;
        let (msa_i, mlp_i, msa_t, mlp_t) = (&m[0], &m[1], &m[2], &m[3]);

        let (attn_i, attn_t) = self.core.attn.forward_joint(
            &msa_i.modulated_norm(img)?,
            key_mask,
            &msa_t.modulated_norm(txt)?,
            keep_text,
            rope,
        )?;
        let img = msa_i.gated_add(img, &attn_i)?;
        let txt = msa_t.gated_add(&txt.narrow(1, 0, keep_text)?, &attn_t)?;

        Ok((
            mlp_i.feed_forward(&img, &self.core.ff_i)?,
            mlp_t.feed_forward(&txt, &self.ff_t)?,
        ))
    }
}

/// Single-stream block: one sequence of image and text tokens, one set of weights.
#[derive(Debug, Clone)]
pub(crate) struct SingleStreamBlock {
    core: BlockCore,
}

impl ToDevice for SingleStreamBlock {
    fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            core: self.core.to_device(device)?,
        })
    }
}

impl SingleStreamBlock {
    pub(crate) fn linears<'a>(&'a self, out: &mut Vec<&'a Linear>) {
        self.core.linears(out);
    }

    pub fn set_expert_routing(&mut self, routing: ExpertRouting) -> Result<()> {
        self.core.ff_i.set_routing(routing)
    }

    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            core: BlockCore::new(cfg, false, &vb)?,
        })
    }

    /// `x` [B, S, D] (image tokens first), `key_mask` [1, S, 1, 1] when the image is padded.
    /// Returns the first `keep` tokens; all `S` are keys and values.
    pub fn forward(
        &self,
        x: &Tensor,
        keep: usize,
        key_mask: Option<&Tensor>,
        temb_act: &Tensor,
        rope: &RopeTable,
    ) -> Result<Tensor> {
        let m = self.core.modulations(temb_act)?;
        let (msa, mlp) = (&m[0], &m[1]);
        let attn = self
            .core
            .attn
            .forward(&msa.modulated_norm(x)?, keep, key_mask, rope)?;
        let x = msa.gated_add(&x.narrow(1, 0, keep)?, &attn)?;
        mlp.feed_forward(&x, &self.core.ff_i)
    }
}
