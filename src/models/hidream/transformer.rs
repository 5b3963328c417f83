//! `HiDreamImageTransformer2DModel`: patchify, embed, 16 dual-stream then 32 single-stream
//! blocks, final adaLN layer, unpatchify (sizes from [`Config`]).

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::models::linear::{Linear, linear, linear_no_bias};

use super::blocks::{DoubleStreamBlock, NORM_EPS, SingleStreamBlock};
use super::config::Config;
use super::embeddings::{MlpEmbedder, RopeTable, TIMESTEP_FEATURES, timestep_sinusoid};
use super::lora::{LoraUse, LoraWeights, merged_var_builder};
use super::moe::ExpertRouting;
use super::streaming::{StreamableBlock, Streaming};
use crate::kernels;
use crate::models::device_copy::ToDevice;
use crate::models::linear::with_quantized;
use crate::models::{LoadError, QuantizedLayers, load_checked_from, load_checked_through};
use crate::quantize::QuantTarget;
use crate::weights::{RandomQuantized, StudioManifest, TensorStore, random_var_builder};

/// `general.architecture` of HiDream transformer GGUF files (ComfyUI-GGUF's name for the model).
pub const GGUF_ARCHITECTURE: &str = "hidream";

/// What the transformer's linear layers hold while loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearMemory {
    pub layers: usize,
    /// Layers whose weight stays block-quantised (dequantised at each use).
    pub quantized: usize,
    /// Bytes of their weights and biases.
    pub bytes: usize,
}

/// The text conditioning of one batch of prompts, projected once and reused at every step
/// (the reference recomputes these 49 projections at every step).
#[derive(Debug, Clone)]
pub struct PromptEmbeds {
    /// T5 through projection #blocks: [B, St5, D].
    t5: Tensor,
    /// Block b's Llama state through projection b: [B, Sl, D] each.
    llama: Vec<Tensor>,
    /// The pooled-CLIP half of the adaLN input: [B, D].
    pooled: Tensor,
}

impl PromptEmbeds {
    pub fn batch(&self) -> Result<usize> {
        self.pooled.dim(0)
    }
}

#[derive(Debug, Clone)]
struct FinalLayer {
    ada: Linear,
    linear: Linear,
}

#[derive(Debug, Clone)]
pub struct HiDreamTransformer {
    cfg: Config,
    t_embedder: MlpEmbedder,
    p_embedder: MlpEmbedder,
    x_embedder: Linear,
    /// One per block (Llama states), then one for T5.
    caption_projection: Vec<Linear>,
    double_blocks: Vec<DoubleStreamBlock>,
    single_blocks: Vec<SingleStreamBlock>,
    final_layer: FinalLayer,
    dtype: DType,
    /// Non-square inputs are padded to this many image tokens (config's `max_resolution`
    /// unless a pipeline sets it, as the editing pipelines do for their canvas).
    max_seq: usize,
    /// Set when the last blocks live in host memory (see [`HiDreamTransformer::place`]).
    streaming: Option<Streaming>,
}

impl HiDreamTransformer {
    /// Builds the model from a `VarBuilder` rooted at the checkpoint's top level (tensor names
    /// exactly as in the released snapshots).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.inner_dim();
        let [t5_width, llama_width] = [cfg.caption_channels[0], cfg.caption_channels[1]];
        let blocks = cfg.num_blocks();
        let caption_projection = (0..=blocks)
            .map(|k| {
                let width = if k == blocks { t5_width } else { llama_width };
                linear_no_bias(width, dim, vb.pp(format!("caption_projection.{k}.linear")))
            })
            .collect::<Result<_>>()?;
        let double_blocks = (0..cfg.num_layers)
            .map(|i| DoubleStreamBlock::new(cfg, vb.pp(format!("double_stream_blocks.{i}.block"))))
            .collect::<Result<_>>()?;
        let single_blocks = (0..cfg.num_single_layers)
            .map(|j| SingleStreamBlock::new(cfg, vb.pp(format!("single_stream_blocks.{j}.block"))))
            .collect::<Result<_>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            t_embedder: MlpEmbedder::new(
                TIMESTEP_FEATURES,
                dim,
                vb.pp("t_embedder.timestep_embedder"),
            )?,
            p_embedder: MlpEmbedder::new(
                cfg.text_emb_dim,
                dim,
                vb.pp("p_embedder.pooled_embedder"),
            )?,
            x_embedder: linear(cfg.patch_features(), dim, vb.pp("x_embedder.proj"))?,
            caption_projection,
            double_blocks,
            single_blocks,
            final_layer: FinalLayer {
                ada: linear(dim, 2 * dim, vb.pp("final_layer.adaLN_modulation.1"))?,
                linear: linear(
                    dim,
                    cfg.patch_size * cfg.patch_size * cfg.out_channels(),
                    vb.pp("final_layer.linear"),
                )?,
            },
            dtype: vb.dtype(),
            max_seq: cfg.max_seq(),
            streaming: None,
        })
    }

    /// Seeded random weights for benchmarks (see [`random_var_builder`]); with a quantised
    /// `format`, the linear layers the community recipe quantises hold random blocks of its
    /// types (see [`RandomQuantized`]) and are dequantised at each use, as a GGUF's are.
    pub fn random(
        cfg: &Config,
        format: QuantTarget,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let vb = random_var_builder(seed, dtype, device);
        match format {
            QuantTarget::Bf16 | QuantTarget::F16 => Self::new(cfg, vb),
            target => with_quantized(Arc::new(RandomQuantized { seed, target }), || {
                Self::new(cfg, vb)
            }),
        }
    }

    /// Loads `transformer/` of a snapshot: config.json, then the (sharded) weights converted to
    /// `dtype` on `device`, after checking every tensor name and shape.
    /// A folder without safetensors weights may have a GGUF file standing in for them (see
    /// [`TensorStore::gguf_standing_in`]); its quantised layers are dequantised at load when the
    /// snapshot's manifest asks for it (`dequantize_at_load`: the bundled Shapes models, stored
    /// as Q8_0 to keep the download small), else kept quantised.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> std::result::Result<Self, LoadError> {
        let Some(gguf) = TensorStore::gguf_standing_in(dir) else {
            return Self::load_weights(dir, dir, dtype, device);
        };
        let manifest = match dir.parent() {
            Some(root) => StudioManifest::read(root)?,
            None => None,
        };
        let layers = match manifest {
            Some(m) if m.dequantize_at_load => QuantizedLayers::Dequantized,
            _ => QuantizedLayers::Kept,
        };
        Self::load_as(dir, &gguf, layers, dtype, device)
    }

    /// Loads the transformer described by `config_dir/config.json` from `weights`: a folder,
    /// a safetensors file, or a GGUF file (quantised tensors are dequantised to `dtype`).
    pub fn load_weights(
        config_dir: &Path,
        weights: &Path,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<Self, LoadError> {
        Self::load_as(config_dir, weights, QuantizedLayers::Kept, dtype, device)
    }

    fn load_as(
        config_dir: &Path,
        weights: &Path,
        layers: QuantizedLayers,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<Self, LoadError> {
        let cfg = Config::from_file(&config_dir.join("config.json"))?;
        load_checked_from(
            weights,
            (GGUF_ARCHITECTURE, layers),
            ("HiDream transformer", &[]),
            dtype,
            device,
            |vb| Self::new(&cfg, vb),
        )
    }

    /// Loads `transformer/` of a base snapshot with a LoRA file merged into its weights (see
    /// [`super::lora`]); the LoRA is checked against the base before anything is built.
    pub(crate) fn load_with_lora(
        dir: &Path,
        lora: Arc<LoraWeights>,
        lora_use: LoraUse,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<Self, LoadError> {
        let cfg = Config::from_file(&dir.join("config.json"))?;
        load_checked_through(
            dir,
            "HiDream transformer",
            |store| {
                lora.check_against(&store)?;
                Ok(merged_var_builder(
                    store,
                    lora.clone(),
                    lora_use,
                    dtype,
                    device,
                ))
            },
            |vb| Self::new(&cfg, vb),
        )
    }

    /// How the mixture-of-experts blocks route tokens. Each model starts with
    /// [`ExpertRouting::for_device`] of its device and dtype; tests switch it to check that the
    /// device-resident routings compute what the host one does.
    pub fn set_expert_routing(&mut self, routing: ExpertRouting) -> Result<()> {
        // Blocks in host memory take the routing when they are copied to the device.
        let resident = match &mut self.streaming {
            Some(streaming) => {
                streaming.routing = routing;
                streaming.resident_blocks
            }
            None => self.cfg.num_blocks(),
        };
        let layers = self.cfg.num_layers;
        for block in self.double_blocks.iter_mut().take(resident) {
            block.set_expert_routing(routing)?;
        }
        for block in self
            .single_blocks
            .iter_mut()
            .take(resident.saturating_sub(layers))
        {
            block.set_expert_routing(routing)?;
        }
        Ok(())
    }

    /// Moves the model to `device`, all but the blocks from `resident_blocks` on (execution
    /// order: dual-stream, then single-stream), which go to host memory and are copied to
    /// `device` for each evaluation. With `resident_blocks` ≥ the number of blocks, everything
    /// moves.
    pub fn place(self, device: &Device, resident_blocks: usize) -> Result<Self> {
        let blocks = self.cfg.num_blocks();
        let resident = resident_blocks.min(blocks);
        let layers = self.cfg.num_layers;
        let routing = ExpertRouting::for_device(device, self.dtype);
        // Placement, not a read of results: the streamed blocks' weights move to host memory
        // once (a no-op for a model loaded there).
        let host = Device::Cpu;
        let home = |index: usize| if index < resident { device } else { &host };
        let double_blocks = (self.double_blocks.iter().enumerate())
            .map(|(b, block)| block.to_device(home(b)))
            .collect::<Result<_>>()?;
        let single_blocks = (self.single_blocks.iter().enumerate())
            .map(|(j, block)| block.to_device(home(layers + j)))
            .collect::<Result<_>>()?;
        let mut placed = Self {
            cfg: self.cfg.clone(),
            t_embedder: self.t_embedder.to_device(device)?,
            p_embedder: self.p_embedder.to_device(device)?,
            x_embedder: self.x_embedder.to_device(device)?,
            caption_projection: self
                .caption_projection
                .iter()
                .map(|l| l.to_device(device))
                .collect::<Result<_>>()?,
            double_blocks,
            single_blocks,
            final_layer: FinalLayer {
                ada: self.final_layer.ada.to_device(device)?,
                linear: self.final_layer.linear.to_device(device)?,
            },
            dtype: self.dtype,
            max_seq: self.max_seq,
            streaming: (resident < blocks).then(|| Streaming::new(resident, device, routing)),
        };
        placed.set_expert_routing(routing)?;
        Ok(placed)
    }

    /// Blocks that stay on the compute device (all of them without streaming).
    pub fn resident_blocks(&self) -> usize {
        self.streaming
            .as_ref()
            .map_or(self.cfg.num_blocks(), |s| s.resident_blocks)
    }

    /// How many blocks stay in host memory and are copied in for each evaluation.
    pub fn streamed_blocks(&self) -> usize {
        self.streaming
            .as_ref()
            .map_or(0, |s| self.cfg.num_blocks() - s.resident_blocks)
    }

    /// Block `index` (execution order) on the compute device: itself, or a copy of a block
    /// that lives in host memory.
    fn on_device<'a, B: StreamableBlock>(&self, index: usize, block: &'a B) -> Result<Cow<'a, B>> {
        match &self.streaming {
            Some(streaming) => streaming.on_device(index, block),
            None => Ok(Cow::Borrowed(block)),
        }
    }

    /// Streamed-block copies made so far (0 without streaming).
    pub fn block_copies(&self) -> usize {
        self.streaming.as_ref().map_or(0, Streaming::copies)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The image-token length non-square inputs are padded to.
    pub fn max_seq(&self) -> usize {
        self.max_seq
    }

    /// Overrides the padding length, as the official editing scripts set `transformer.max_seq`.
    pub(crate) fn set_max_seq(&mut self, max_seq: usize) {
        self.max_seq = max_seq;
    }

    /// How the linear layers hold their weights (norms, MoE gates and biases aside, which the
    /// community recipe never quantises and which are a few MB of the 17B model).
    pub fn linear_memory(&self) -> LinearMemory {
        let mut layers = Vec::new();
        self.t_embedder.linears(&mut layers);
        self.p_embedder.linears(&mut layers);
        layers.push(&self.x_embedder);
        layers.extend(&self.caption_projection);
        for block in &self.double_blocks {
            block.linears(&mut layers);
        }
        for block in &self.single_blocks {
            block.linears(&mut layers);
        }
        layers.extend([&self.final_layer.ada, &self.final_layer.linear]);
        LinearMemory {
            layers: layers.len(),
            quantized: layers.iter().filter(|l| l.is_quantized()).count(),
            bytes: layers.iter().map(|l| l.resident_bytes()).sum(),
        }
    }

    pub fn device(&self) -> &Device {
        self.x_embedder.device()
    }

    /// Projects the text conditioning once per prompt.
    ///
    /// `t5`: [B, St5, Ct5]; `llama`: [L, B, Sl, Cl], every Llama layer's output (the last after
    /// the final norm); `pooled`: [B, text_emb_dim], CLIP-L ‖ CLIP-G.
    pub fn encode_prompt(
        &self,
        t5: &Tensor,
        llama: &Tensor,
        pooled: &Tensor,
    ) -> Result<PromptEmbeds> {
        let layers = llama.dim(0)?;
        if layers < self.cfg.llama_layers_needed() {
            candle_core::bail!(
                "the transformer reads Llama layer {} but the text encoder produced only {layers} \
                 layers; use the Llama-3.1-8B-Instruct the model was made for",
                self.cfg.llama_layers_needed() - 1
            );
        }
        let dtype = self.dtype;
        let blocks = self.cfg.num_blocks();
        let llama = self
            .cfg
            .llama_layers
            .iter()
            .enumerate()
            .map(|(k, &layer)| {
                self.caption_projection[k].forward(&llama.get(layer)?.to_dtype(dtype)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PromptEmbeds {
            t5: self.caption_projection[blocks].forward(&t5.to_dtype(dtype)?)?,
            llama,
            pooled: self.p_embedder.forward(&pooled.to_dtype(dtype)?)?,
        })
    }

    /// One denoising evaluation. `latents`: [B, C, h, w]; `timesteps`: [B] on the 0..1000 scale
    /// (1000·σ). Returns the raw model output [B, C, h, w] (≈ x0 − ε; pipelines negate it).
    pub fn forward(
        &self,
        latents: &Tensor,
        timesteps: &Tensor,
        prompt: &PromptEmbeds,
    ) -> Result<Tensor> {
        let (batch, _, h, w) = latents.dims4()?;
        if prompt.batch()? != batch {
            candle_core::bail!(
                "the latents hold {batch} images but the prompt embeddings {}",
                prompt.batch()?
            );
        }
        let p = self.cfg.patch_size;
        if h % p != 0 || w % p != 0 {
            candle_core::bail!("latent size {h}×{w} is not a multiple of the patch size {p}");
        }
        let grid = (h / p, w / p);
        let image_tokens = grid.0 * grid.1;
        // As the reference: only non-square latents are padded to max_seq, with their padding
        // keys zeroed.
        let padded_len = if h == w { image_tokens } else { self.max_seq };
        if image_tokens > padded_len {
            candle_core::bail!(
                "a {h}×{w} latent has {image_tokens} patches, more than the {padded_len} this model \
                 takes (max_resolution {:?})",
                self.cfg.max_resolution
            );
        }

        let temb = (self
            .t_embedder
            .forward(&timestep_sinusoid(timesteps)?.to_dtype(self.dtype)?)?
            + &prompt.pooled)?;
        let temb_act = candle_nn::ops::silu(&temb)?;

        let tokens = patchify(&latents.to_dtype(self.dtype)?, p)?;
        let tokens = pad_tokens(&tokens, padded_len)?;
        let mut img = self.x_embedder.forward(&tokens)?;

        let last = self.cfg.num_blocks() - 1;
        let mut carried = Tensor::cat(&[&prompt.t5, &prompt.llama[last]], 1)?;
        let carried_len = carried.dim(1)?;
        let total_len = padded_len + carried_len + prompt.llama[0].dim(1)?;
        let rope = RopeTable::new(&self.cfg.axes_dims_rope, grid, total_len, latents.device())?;
        let image_mask = (padded_len > image_tokens)
            .then(|| {
                key_mask(
                    image_tokens,
                    padded_len,
                    padded_len,
                    self.dtype,
                    latents.device(),
                )
            })
            .transpose()?;

        for (b, block) in self.double_blocks.iter().enumerate() {
            let block = self.on_device(b, block)?;
            let txt = Tensor::cat(&[&carried, &prompt.llama[b]], 1)?;
            (img, carried) = block.forward(
                &img,
                image_mask.as_ref(),
                &txt,
                carried_len,
                &temb_act,
                &rope,
            )?;
        }

        let mut stream = Tensor::cat(&[&img, &carried], 1)?;
        let stream_len = stream.dim(1)?;
        let stream_mask = (padded_len > image_tokens)
            .then(|| {
                key_mask(
                    image_tokens,
                    padded_len,
                    total_len,
                    self.dtype,
                    latents.device(),
                )
            })
            .transpose()?;
        for (j, block) in self.single_blocks.iter().enumerate() {
            let b = self.cfg.num_layers + j;
            let block = self.on_device(b, block)?;
            let x = Tensor::cat(&[&stream, &prompt.llama[b]], 1)?;
            // Only image tokens leave the last block.
            let keep = if j + 1 == self.single_blocks.len() {
                padded_len
            } else {
                stream_len
            };
            stream = block.forward(&x, keep, stream_mask.as_ref(), &temb_act, &rope)?;
        }

        // The last single block kept only the (padded) image tokens.
        let img = stream;
        let ada = self
            .final_layer
            .ada
            .forward(&temb_act)?
            .unsqueeze(1)?
            .chunk(2, 2)?;
        let (shift, scale) = (&ada[0], &ada[1]);
        let out = kernels::modulated_layer_norm(&img, scale, shift, NORM_EPS)?;
        let out = self.final_layer.linear.forward(&out)?;
        unpatchify(&out.narrow(1, 0, image_tokens)?, grid, p)
    }
}

/// [B, C, h, w] → [B, (h/p)·(w/p), p·p·C], token index row-major, features (p1, p2, c) with the
/// channel fastest.
pub(crate) fn patchify(x: &Tensor, p: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b, c, h / p, p, w / p, p))?
        .permute((0, 2, 4, 3, 5, 1))?
        .reshape((b, (h / p) * (w / p), p * p * c))
}

/// The inverse of [`patchify`] for the first rows·cols tokens.
pub(crate) fn unpatchify(x: &Tensor, (rows, cols): (usize, usize), p: usize) -> Result<Tensor> {
    let (b, _, features) = x.dims3()?;
    let c = features / (p * p);
    x.reshape((b, rows, cols, p, p, c))?
        .permute((0, 5, 1, 3, 2, 4))?
        .reshape((b, c, rows * p, cols * p))
}

/// Appends zero tokens up to `len`.
fn pad_tokens(tokens: &Tensor, len: usize) -> Result<Tensor> {
    let (b, n, f) = tokens.dims3()?;
    if n == len {
        return Ok(tokens.clone());
    }
    let zeros = Tensor::zeros((b, len - n, f), tokens.dtype(), tokens.device())?;
    Tensor::cat(&[tokens, &zeros], 1)
}

/// [1, len, 1, 1]: zeros for the padding slots `real..padded` of the image, ones for the real
/// image tokens and for the text tokens after the padded image.
fn key_mask(
    real: usize,
    padded: usize,
    len: usize,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let values: Vec<f32> = (0..len)
        .map(|i| {
            if (real..padded).contains(&i) {
                0.0
            } else {
                1.0
            }
        })
        .collect();
    Tensor::from_vec(values, (1, len, 1, 1), device)?.to_dtype(dtype)
}
