//! The planner's memory model: what besides the weights each phase holds on the GPU. Every
//! constant says where it comes from; sizes follow the configs, so another model of the family
//! is planned with its own numbers.
//!
//! All activations are counted in bf16 (2 bytes), the compute dtype on CUDA, at the largest
//! token count the transformer takes (I1 pads every size to `max_seq` = 4096 image tokens, a
//! 1024² image; E1.1's canvas is twice that) and a 1024² output image.

use serde::Serialize;

use super::weights::EncoderFormat;
use crate::models::hidream::{Config, swiglu_hidden};
use crate::models::text::{ClipConfig, LlamaConfig, MAX_SEQUENCE_LENGTH, T5Config};
use crate::models::vae::{Tiling, VaeConfig};
use crate::pipelines::PROMPT_CACHE_SIZE;
use crate::quantize::QuantTarget;

/// Bytes of a bf16 activation.
const ACTIVATION: u64 = 2;
/// Bytes of an f32 value.
const F32: u64 = 4;

/// What every phase keeps free for what the planner does not count tensor by tensor: the CUDA
/// context (about 0.3–0.5 GB with CUDA 12+'s lazy module loading), cuBLAS/cuBLASLt workspaces
/// (tens of MB a handle), our kernels' modules, and the slack of the stream-ordered pool candle
/// allocates from (freed blocks of odd sizes that the next tensor cannot reuse).
pub const RESERVE: u64 = 800_000_000;

/// The text encoders' working memory besides their weights, at 128 tokens: Llama's largest, its
/// 32 layer outputs (128×4096 bf16 each, 34 MB) and their f32 copy (67 MB), an MLP's
/// 128×14336 intermediates (11 MB); T5's f32 position bias (4 MB). Rounded up to 0.2 GB for
/// the encoders' own cuBLAS workspaces.
pub const ENCODER_WORKING: u64 = 200_000_000;

/// Blocks in flight while streaming: one computing, the next uploading.
pub const STAGING_SLOTS: u64 = 2;

/// What pinned host-to-device copies reach on PCIe 4.0 ×16 (31.5 GB/s raw, about 25 GB/s in
/// practice), to turn streamed bytes into seconds. The engine's copies come from pageable
/// memory for now, which typically reaches about half of that.
pub const PCIE_BYTES_PER_SECOND: f64 = 25e9;

/// Side of the planned image in pixels: the models' native size.
pub const IMAGE_SIDE: usize = 1024;

/// D-wide (model width) tensors a block keeps alive across its sub-layers: the block's input,
/// the adaLN-modulated norm being fed forward, the sub-layer's output and the new residual.
const CARRIED_WIDTHS: u64 = 4;
/// D-wide tensors alive inside the attention at its peak: q, k, v; q and k laid out by head,
/// rotated in f32 (counted twice) and cast back to bf16; v by head; the output.
const ATTENTION_WIDTHS: u64 = 12;
/// At the decoder's full-resolution peak, multiples of the widest full-resolution channel
/// count per pixel: a 3×3 convolution's input (1), candle's CUDA im2col matrix (9; candle
/// 0.11's CUDA conv2d always goes through im2col without the cudnn feature, which we do not
/// enable), cuBLAS's output (1) and candle's NCHW copy of it (1).
const DECODE_WIDTHS: u64 = 12;

/// The model whose workload is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum PlanModel {
    /// HiDream-I1 (Full, Dev, Fast): text to image.
    #[value(name = "i1")]
    #[serde(rename = "i1")]
    I1,
    /// HiDream-E1.1: editing on an image-and-source canvas.
    #[value(name = "e1.1")]
    #[serde(rename = "e1.1")]
    E1_1,
}

impl PlanModel {
    pub fn name(self) -> &'static str {
        match self {
            Self::I1 => "HiDream-I1",
            Self::E1_1 => "HiDream-E1.1",
        }
    }

    /// What one denoising step asks of the transformer.
    pub fn workload(self, cfg: &Config) -> Workload {
        let text = 3 * MAX_SEQUENCE_LENGTH;
        match self {
            // Full's classifier-free guidance runs [negative, positive] as one batch (Dev and
            // Fast use batch 1); every size is padded to max_seq image tokens.
            Self::I1 => Workload {
                image_tokens: cfg.max_seq(),
                text_tokens: text,
                batch: 2,
                prompts: 2,
            },
            // inference_e1_1.py: max_seq twice the I1 model's (the target and source side by
            // side, settings::edit's canvas rule); three-way guidance [positive, negative,
            // positive] (text and image guidance) as one batch; the instruction, the negative
            // and the refine stage's target description.
            Self::E1_1 => Workload {
                image_tokens: 2 * cfg.max_seq(),
                text_tokens: text,
                batch: 3,
                prompts: 3,
            },
        }
    }
}

/// The transformer's inputs in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// Image patches per sample.
    pub image_tokens: usize,
    /// Text tokens a single-stream block sees besides the image: T5's 128, Llama's last
    /// layer's 128 (shared by every block) and the block's own Llama layer's 128.
    pub text_tokens: usize,
    /// Samples per forward.
    pub batch: usize,
    /// Distinct prompts one job encodes.
    pub prompts: usize,
}

impl Workload {
    pub fn tokens(&self) -> usize {
        self.image_tokens + self.text_tokens
    }
}

/// The transformer's working memory during denoising.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DitActivations {
    /// Inside the blocks, for the whole batch.
    pub blocks: u64,
    /// The projected prompts (every block's Llama layer and T5, through the caption
    /// projections) for each row of the batch.
    pub conditioning: u64,
}

impl DitActivations {
    pub fn total(&self) -> u64 {
        self.blocks + self.conditioning
    }
}

/// The transformer's activations at `work`: per token, the carried tensors plus the larger of
/// the attention's and the mixture of experts' working set. The experts run as one grouped GEMM
/// over every routed (token, expert) row, so each of a token's top-k rows holds w1‖w3's output
/// (2F), SiLU·mul's (F) and w2's (D), plus their weighted sum (D); the shared expert runs after
/// with half the width, so it never sets the peak.
pub fn dit_activations(cfg: &Config, work: &Workload) -> DitActivations {
    let d = cfg.inner_dim() as u64;
    let f = swiglu_hidden(4 * cfg.inner_dim()) as u64;
    let top_k = cfg.num_activated_experts.max(1) as u64;
    let moe = if cfg.num_routed_experts > 0 {
        top_k * (3 * f + d) + d
    } else {
        3 * f + d
    };
    let per_token = (CARRIED_WIDTHS * d + (ATTENTION_WIDTHS * d).max(moe)) * ACTIVATION;
    let blocks = per_token * work.tokens() as u64 * work.batch as u64;
    let projected_tokens = (cfg.num_blocks() + 1) * MAX_SEQUENCE_LENGTH;
    let conditioning = (projected_tokens as u64 * d + d) * ACTIVATION * work.batch as u64;
    DitActivations {
        blocks,
        conditioning,
    }
}

/// With a GGUF transformer the weights stay quantised on the GPU and each matmul dequantises
/// its weight first; the largest is a block's routed experts' w1‖w3, stacked for the grouped
/// GEMM, in bf16. Nothing for bf16 and f16, which are used as they are.
pub fn dequantisation_scratch(cfg: &Config, format: QuantTarget) -> u64 {
    if matches!(format, QuantTarget::Bf16 | QuantTarget::F16) {
        return 0;
    }
    let d = cfg.inner_dim() as u64;
    let f = swiglu_hidden(4 * cfg.inner_dim()) as u64;
    let experts = cfg.num_routed_experts.max(1) as u64;
    experts * 2 * f * d * ACTIVATION
}

/// Extra working memory of Q8_0 encoders: the same dequantisation as the transformer's, for
/// the largest encoder weight (Llama's 128256×4096 embedding is gathered, not multiplied, so
/// its MLP's 14336×4096 projections are the largest multiplied).
pub fn encoder_scratch(llama: &LlamaConfig, t5: &T5Config, format: EncoderFormat) -> u64 {
    match format {
        EncoderFormat::Bf16 => 0,
        EncoderFormat::Q8_0 => {
            let llama_mlp = llama.intermediate_size * llama.hidden_size;
            let t5_ff = t5.d_ff * t5.d_model;
            llama_mlp.max(t5_ff) as u64 * ACTIVATION
        }
    }
}

/// The engine's prompt cache at capacity (`PROMPT_CACHE_SIZE` prompts kept on the device):
/// each prompt's encoders' output in f32, the pooled CLIP-L ‖ CLIP-G vector, T5's last state
/// and every Llama layer's output at 128 tokens (about 69 MB for the real encoders).
pub fn prompt_cache(
    clip_l: &ClipConfig,
    clip_g: &ClipConfig,
    t5: &T5Config,
    llama: &LlamaConfig,
) -> u64 {
    let tokens = MAX_SEQUENCE_LENGTH;
    let per_prompt = clip_l.projection_dim
        + clip_g.projection_dim
        + tokens * t5.d_model
        + llama.num_hidden_layers * tokens * llama.hidden_size;
    (PROMPT_CACHE_SIZE * per_prompt) as u64 * F32
}

/// A decode's peak activations for a `side`×`side` image: the larger of the full-resolution
/// convolution (see [`DECODE_WIDTHS`]; the widest full-resolution convolution is the last
/// upsampler's, at the second block width, 256 channels for FLUX's autoencoder) and the middle
/// block's attention over every latent pixel (scores and probabilities, counted in f32), plus
/// the finished f32 image.
pub fn vae_decode(cfg: &VaeConfig, side: usize) -> u64 {
    let pixels = (side * side) as u64;
    let widths = &cfg.block_out_channels;
    let widest_full_res = widths.iter().take(2).copied().max().unwrap_or(0) as u64;
    let convolution = DECODE_WIDTHS * widest_full_res * pixels * ACTIVATION;
    let scale = cfg.scale_factor().max(1);
    let latent_pixels = pixels / (scale * scale) as u64;
    let attention = 2 * latent_pixels * latent_pixels * F32;
    convolution.max(attention) + cfg.out_channels as u64 * pixels * F32
}

/// A decode in the engine's default tiles (512 pixels for FLUX's autoencoder): one tile's
/// peak plus the whole f32 image the tiles are blended into.
pub fn vae_decode_tiled(cfg: &VaeConfig, side: usize) -> u64 {
    let tile = Tiling::DEFAULT.tile * cfg.scale_factor();
    if tile >= side {
        return vae_decode(cfg, side);
    }
    vae_decode(cfg, tile) + cfg.out_channels as u64 * (side * side) as u64 * F32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::ModelConfigs;

    fn mb(bytes: u64) -> u64 {
        bytes / 1_000_000
    }

    #[test]
    fn the_real_models_working_sets() {
        let c = ModelConfigs::released().unwrap();
        let i1 = PlanModel::I1.workload(&c.transformer);
        assert_eq!((i1.tokens(), i1.batch), (4480, 2));
        let e1 = PlanModel::E1_1.workload(&c.transformer);
        assert_eq!((e1.tokens(), e1.batch), (8576, 3));
        // Per token: 4·2560 carried + 2·(3·6912 + 2560) + 2560 for the experts, in bf16.
        let per_token = (4 * 2560 + 2 * (3 * 6912 + 2560) + 2560) * 2;
        let a = dit_activations(&c.transformer, &i1);
        assert_eq!(a.blocks, per_token * 4480 * 2);
        assert_eq!(mb(a.blocks), 1064);
        assert_eq!(mb(a.conditioning), 64);
        assert_eq!(mb(dit_activations(&c.transformer, &e1).blocks), 3056);
        assert_eq!(
            mb(dequantisation_scratch(&c.transformer, QuantTarget::Q8_0)),
            283
        );
        assert_eq!(dequantisation_scratch(&c.transformer, QuantTarget::Bf16), 0);
        assert_eq!(mb(prompt_cache(&c.clip_l, &c.clip_g, &c.t5, &c.llama)), 553);
        // 12 × 256 channels × 1024² in bf16, then the f32 image; tiles of 512².
        let image = 3 * 1024 * 1024 * 4;
        assert_eq!(vae_decode(&c.vae, 1024), 12 * 256 * 1024 * 1024 * 2 + image);
        assert_eq!(
            vae_decode_tiled(&c.vae, 1024),
            12 * 256 * 512 * 512 * 2 + image / 4 + image
        );
    }
}
