//! How many bytes each model's weights take in each format, counted tensor by tensor from what
//! our own constructors ask for ([`requested_tensors`]), so the planner sizes exactly what
//! loading would load: the transformer without anything it never reads, Llama without its LM
//! head, T5 with its shared embedding once.

use candle_core::DType;
use serde::Serialize;

use super::PlacementError;
use super::released::ModelConfigs;
use crate::models::hidream::HiDreamTransformer;
use crate::models::text::{ClipTextEncoder, LlamaEncoder, T5Encoder};
use crate::models::vae::AutoencoderKl;
use crate::quantize::{QuantTarget, tensor_type};
use crate::weights::gguf::GgmlType;
use crate::weights::requested_tensors;

/// Tensor names and shapes in request order.
type Tensors = Vec<(String, Vec<usize>)>;

/// Bytes per element of the checkpoints' bf16 (and of f16).
const HALF: u64 = 2;

/// How the text encoders' weights are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum EncoderFormat {
    /// As released: 2 bytes a weight.
    #[value(name = "bf16")]
    Bf16,
    /// T5 and Llama's 2-D weights (embeddings included) in Q8_0, 8.5 bits a weight, as
    /// llama.cpp's Q8_0 files hold them; norms stay F32. The CLIPs (1.6 GB together) stay bf16.
    #[value(name = "q8_0")]
    Q8_0,
}

impl EncoderFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::Bf16 => "bf16",
            Self::Q8_0 => "q8_0",
        }
    }
}

/// The transformer's bytes in one format: what is outside the blocks (embedders, the 49
/// caption projections, the final layer) and each block in execution order (the dual-stream
/// blocks, then the single-stream ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformerBytes {
    pub outside_blocks: u64,
    pub blocks: Vec<u64>,
}

impl TransformerBytes {
    pub fn total(&self) -> u64 {
        self.outside_blocks + self.blocks.iter().sum::<u64>()
    }
}

/// The four text encoders' bytes in one format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EncoderBytes {
    pub clip_l: u64,
    pub clip_g: u64,
    pub t5: u64,
    pub llama: u64,
}

impl EncoderBytes {
    pub fn total(&self) -> u64 {
        self.clip_l + self.clip_g + self.t5 + self.llama
    }

    /// Host memory the engine's CPU encoding holds at its peak: the encoders run there one at
    /// a time in f32 (candle's CPU kernels have no bf16 matrix product), so the largest
    /// encoder's dense weights at twice their bf16 size; quantised ones stay as stored and are
    /// dequantised one layer at a time.
    pub fn cpu_peak(&self, format: EncoderFormat) -> u64 {
        let quantised = |bytes: u64| match format {
            EncoderFormat::Bf16 => 2 * bytes,
            EncoderFormat::Q8_0 => bytes,
        };
        [
            2 * self.clip_l,
            2 * self.clip_g,
            quantised(self.t5),
            quantised(self.llama),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }

    /// The largest encoder and its name: what one-at-a-time loading must find room for.
    pub fn largest(&self) -> (&'static str, u64) {
        [
            ("CLIP-L", self.clip_l),
            ("CLIP-G", self.clip_g),
            ("T5-XXL", self.t5),
            ("Llama-3.1-8B", self.llama),
        ]
        .into_iter()
        .fold(("", 0), |best, e| if e.1 > best.1 { e } else { best })
    }
}

/// Every tensor each model of a HiDream pipeline asks for, from its config.
#[derive(Debug, Clone)]
pub struct ModelWeights {
    transformer: Tensors,
    clip_l: Tensors,
    clip_g: Tensors,
    t5: Tensors,
    llama: Tensors,
    vae: Tensors,
}

impl ModelWeights {
    /// Audits each constructor on `configs` (nothing is allocated: the audit hands out
    /// broadcast zeros).
    pub fn audit(configs: &ModelConfigs) -> Result<Self, PlacementError> {
        let audit = |what: &'static str, result: candle_core::Result<Tensors>| {
            result.map_err(|e| PlacementError::Audit {
                what,
                detail: e.to_string(),
            })
        };
        Ok(Self {
            transformer: audit(
                "transformer",
                requested_tensors(|vb| HiDreamTransformer::new(&configs.transformer, vb)),
            )?,
            clip_l: audit(
                "CLIP-L",
                requested_tensors(|vb| ClipTextEncoder::new(&configs.clip_l, vb)),
            )?,
            clip_g: audit(
                "CLIP-G",
                requested_tensors(|vb| ClipTextEncoder::new(&configs.clip_g, vb)),
            )?,
            t5: audit(
                "T5-XXL",
                requested_tensors(|vb| T5Encoder::new(&configs.t5, vb)),
            )?,
            llama: audit(
                "Llama",
                requested_tensors(|vb| LlamaEncoder::new(&configs.llama, vb)),
            )?,
            vae: audit(
                "autoencoder",
                requested_tensors(|vb| AutoencoderKl::new(&configs.vae, vb)),
            )?,
        })
    }

    /// The transformer in `format`: 2 bytes a weight for bf16 and f16 (what loading the
    /// safetensors checkpoint holds), else each tensor in the ggml type the quantiser's
    /// community recipe gives it ([`tensor_type`]), unquantised F32/BF16 tensors included.
    pub fn transformer(&self, format: QuantTarget) -> TransformerBytes {
        let mut bytes = TransformerBytes {
            outside_blocks: 0,
            blocks: Vec::new(),
        };
        // Block keys in first-request order, which is execution order.
        let mut keys: Vec<String> = Vec::new();
        for (name, shape) in &self.transformer {
            let size = transformer_tensor_bytes(name, shape, format);
            match block_key(name) {
                Some(key) => {
                    if let Some(i) = keys.iter().position(|k| k == key) {
                        bytes.blocks[i] += size;
                    } else {
                        keys.push(key.to_string());
                        bytes.blocks.push(size);
                    }
                }
                None => bytes.outside_blocks += size,
            }
        }
        bytes
    }

    /// The text encoders in `format` (see [`EncoderFormat`]).
    pub fn encoders(&self, format: EncoderFormat) -> EncoderBytes {
        let quantised = match format {
            EncoderFormat::Bf16 => half_bytes,
            EncoderFormat::Q8_0 => q8_0_bytes,
        };
        EncoderBytes {
            clip_l: half_bytes(&self.clip_l),
            clip_g: half_bytes(&self.clip_g),
            t5: quantised(&self.t5),
            llama: quantised(&self.llama),
        }
    }

    /// The autoencoder in bf16 (encoder and decoder: E1.1 encodes its source image).
    pub fn vae(&self) -> u64 {
        half_bytes(&self.vae)
    }
}

fn elements(shape: &[usize]) -> u64 {
    shape.iter().product::<usize>() as u64
}

/// `double_stream_blocks.3` of `double_stream_blocks.3.block.attn1.to_q.weight`, or `None`
/// outside the blocks.
fn block_key(name: &str) -> Option<&str> {
    let rest = name
        .strip_prefix("double_stream_blocks.")
        .or_else(|| name.strip_prefix("single_stream_blocks."))?;
    let index_len = rest.find('.')?;
    let prefix_len = name.len() - rest.len();
    Some(&name[..prefix_len + index_len])
}

fn transformer_tensor_bytes(name: &str, shape: &[usize], format: QuantTarget) -> u64 {
    let n = elements(shape);
    match format {
        QuantTarget::Bf16 | QuantTarget::F16 => n * HALF,
        _ => {
            let ty = tensor_type(name, shape, DType::BF16, format);
            // tensor_type only picks a block type whose blocks fill the rows; 2 bytes a
            // weight (its F16 fallback) otherwise.
            ty.bytes_for(n as usize).map_or(n * HALF, |b| b as u64)
        }
    }
}

fn half_bytes(tensors: &Tensors) -> u64 {
    tensors.iter().map(|(_, s)| elements(s) * HALF).sum()
}

/// llama.cpp's Q8_0 file layout: 2-D weights in Q8_0 where their rows fill whole 32-wide
/// blocks (else F16), 1-D tensors (norms, biases) in F32.
fn q8_0_bytes(tensors: &Tensors) -> u64 {
    let q8 = GgmlType::from_name("Q8_0");
    tensors
        .iter()
        .map(|(_, shape)| {
            let n = elements(shape);
            if shape.len() < 2 {
                return n * 4;
            }
            q8.and_then(|t| t.bytes_for(n as usize))
                .map_or(n * HALF, |b| b as u64)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights() -> ModelWeights {
        ModelWeights::audit(&ModelConfigs::released().unwrap()).unwrap()
    }

    fn gb(bytes: u64) -> f64 {
        (bytes as f64 / 1e7).round() / 100.0
    }

    /// The reference sizes of the released bf16 checkpoints (the transformer 34.21 GB, Llama
    /// 15.01 GB without its LM head, T5-XXL's encoder 9.52 GB, CLIP-G 1.39 GB, CLIP-L 0.25 GB,
    /// the FLUX autoencoder 0.17 GB).
    #[test]
    fn bf16_sizes_are_the_released_checkpoints() {
        let w = weights();
        let t = w.transformer(QuantTarget::Bf16);
        assert_eq!(t.total(), 17_105_733_184 * 2);
        assert_eq!(gb(t.total()), 34.21);
        assert_eq!(t.blocks.len(), 48);
        let e = w.encoders(EncoderFormat::Bf16);
        assert_eq!(
            [e.llama, e.t5, e.clip_g, e.clip_l, w.vae()].map(gb),
            [15.01, 9.52, 1.39, 0.25, 0.17]
        );
        assert_eq!(e.largest(), ("Llama-3.1-8B", e.llama));
    }

    #[test]
    fn blocks_are_split_in_execution_order() {
        assert_eq!(
            block_key("double_stream_blocks.15.block.attn1.to_q.weight"),
            Some("double_stream_blocks.15")
        );
        assert_eq!(
            block_key("single_stream_blocks.0.block.ff_i.gate.weight"),
            Some("single_stream_blocks.0")
        );
        assert_eq!(block_key("caption_projection.48.linear.weight"), None);
        let t = weights().transformer(QuantTarget::Bf16);
        // Dual-stream blocks carry a second (text) stream: larger than single-stream ones.
        assert!(t.blocks[0] > t.blocks[16]);
        assert_eq!(t.blocks[0], t.blocks[15]);
        assert_eq!(t.blocks[16], t.blocks[47]);
    }

    #[test]
    fn quantised_sizes_follow_the_recipe() {
        let w = weights();
        let bf16 = w.transformer(QuantTarget::Bf16).total();
        let q8 = w.transformer(QuantTarget::Q8_0).total();
        let q4km = w.transformer(QuantTarget::Q4KM).total();
        // Q8_0 is 8.5 bits a weight; what stays unquantised keeps it above 17/32 of bf16.
        assert!(q8 > bf16 * 17 / 32 && q8 < bf16 * 6 / 10, "{q8}");
        assert!(q4km < q8 && q4km > bf16 / 4, "{q4km}");
        let e = w.encoders(EncoderFormat::Q8_0);
        assert!(e.llama < w.encoders(EncoderFormat::Bf16).llama * 6 / 10);
    }
}
