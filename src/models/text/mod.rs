//! HiDream-I1's four text encoders and their tokenizers (`_get_*_prompt_embeds` and
//! `encode_prompt` in
//! https://github.com/HiDream-ai/HiDream-I1/blob/9b42dd606fecf8f78b974adb7e4d10331c91371a/hi_diffusers/pipelines/hidream_image/pipeline_hidream_image.py):
//! CLIP-L and CLIP-G give the pooled vector, T5-XXL and every layer of Llama-3.1-8B-Instruct
//! give the token sequences.

mod activation;
mod clip;
mod llama;
mod spiece;
mod t5;
mod tokenize;

use std::path::Path;

use candle_core::{DType, Device, Result, Tensor};

pub use activation::Activation;
pub use clip::{ClipConfig, ClipTextEncoder};
pub use llama::{LlamaConfig, LlamaEncoder};

pub use t5::{T5Config, T5Encoder};
pub use tokenize::{PromptTokenizer, Tokens};

use super::{ComponentKind, LoadError, load_checked_from, load_checked_ignoring};

/// Checkpoint tensors each encoder knowingly leaves unread: CLIP's position-id buffer, T5's
/// unshared copy of the shared embedding, Llama's language-model head.
pub(crate) const CLIP_UNREAD: &[&str] = &["text_model.embeddings.position_ids"];
pub(crate) const T5_UNREAD: &[&str] = &["encoder.embed_tokens.weight"];
pub(crate) const LLAMA_UNREAD: &[&str] = &["lm_head.weight"];
use crate::weights::{Snapshot, StudioManifest, WeightsError, read_json};

/// Tokens every encoder sees (the pipelines' `max_sequence_length`) unless a bundled model's
/// manifest says otherwise.
pub const MAX_SEQUENCE_LENGTH: usize = 128;

/// The token ids of one prompt for each encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTokens {
    pub clip_l: Tokens,
    pub clip_g: Tokens,
    pub t5: Tokens,
    pub llama: Tokens,
}

impl PromptTokens {
    /// Whether any encoder had to cut the prompt short.
    pub fn truncated(&self) -> bool {
        [&self.clip_l, &self.clip_g, &self.t5, &self.llama]
            .iter()
            .any(|t| t.truncated)
    }
}

/// What the transformer is conditioned on, for a batch of prompts.
#[derive(Debug, Clone)]
pub struct PromptEncoding {
    /// CLIP-L ‖ CLIP-G projected pooled outputs: [B, 768 + 1280].
    pub pooled: Tensor,
    /// T5 last hidden state: [B, 128, 4096].
    pub t5: Tensor,
    /// Every Llama layer's output: [layers, B, 128, 4096].
    pub llama: Tensor,
}

impl PromptEncoding {
    /// Stacks prompts into one batch in the given order (CFG: `[negative, positive]`).
    pub fn batch(parts: &[&PromptEncoding]) -> Result<Self> {
        let cat = |f: fn(&PromptEncoding) -> &Tensor, dim| {
            Tensor::cat(&parts.iter().map(|p| f(p)).collect::<Vec<_>>(), dim)
        };
        Ok(Self {
            pooled: cat(|p| &p.pooled, 0)?,
            t5: cat(|p| &p.t5, 0)?,
            llama: cat(|p| &p.llama, 1)?,
        })
    }
}

/// A text encoder with its tokenizer.
#[derive(Debug, Clone)]
struct Encoder<M> {
    tokenizer: PromptTokenizer,
    model: M,
}

#[derive(Debug, Clone)]
pub struct TextEncoders {
    clip_l: Encoder<ClipTextEncoder>,
    clip_g: Encoder<ClipTextEncoder>,
    t5: Encoder<T5Encoder>,
    llama: Encoder<LlamaEncoder>,
    device: Device,
}

impl TextEncoders {
    /// Loads CLIP-L, CLIP-G and T5 from a HiDream snapshot and Llama from its own folder.
    pub fn load(
        snapshot: &Snapshot,
        llama_dir: &Path,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<Self, LoadError> {
        let max_len = StudioManifest::read(snapshot.root())?
            .map_or(MAX_SEQUENCE_LENGTH, |m| m.max_sequence_length);
        let clip = |encoder: &str,
                    tokenizer: &str|
         -> std::result::Result<Encoder<ClipTextEncoder>, LoadError> {
            let dir = snapshot.component_dir(encoder)?;
            let cfg: ClipConfig = read_json(&dir.join("config.json"), "CLIP text encoder config")?;
            Ok(Encoder {
                tokenizer: PromptTokenizer::clip(&snapshot.component_dir(tokenizer)?, max_len)?,
                model: load_checked_ignoring(
                    &dir,
                    "CLIP text encoder",
                    dtype,
                    device,
                    CLIP_UNREAD,
                    |vb| ClipTextEncoder::new(&cfg, vb),
                )?,
            })
        };
        let t5_dir = snapshot.component_dir("text_encoder_3")?;
        let t5_cfg: T5Config = read_json(&t5_dir.join("config.json"), "T5 encoder config")?;
        Ok(Self {
            clip_l: clip("text_encoder", "tokenizer")?,
            clip_g: clip("text_encoder_2", "tokenizer_2")?,
            t5: Encoder {
                tokenizer: PromptTokenizer::t5(&snapshot.component_dir("tokenizer_3")?, max_len)?,
                model: load_encoder(
                    &t5_dir,
                    ComponentKind::T5,
                    ("T5 encoder", T5_UNREAD),
                    (dtype, device),
                    |vb| T5Encoder::new(&t5_cfg, vb),
                )?,
            },
            llama: load_llama(llama_dir, max_len, dtype, device)?,
            device: device.clone(),
        })
    }

    /// Encoders built from weights other than a snapshot's (seeded random ones for `bench
    /// pipeline`), each with its tokenizer.
    pub fn from_parts(
        clip_l: (PromptTokenizer, ClipTextEncoder),
        clip_g: (PromptTokenizer, ClipTextEncoder),
        t5: (PromptTokenizer, T5Encoder),
        llama: (PromptTokenizer, LlamaEncoder),
        device: &Device,
    ) -> Self {
        Self {
            clip_l: Encoder {
                tokenizer: clip_l.0,
                model: clip_l.1,
            },
            clip_g: Encoder {
                tokenizer: clip_g.0,
                model: clip_g.1,
            },
            t5: Encoder {
                tokenizer: t5.0,
                model: t5.1,
            },
            llama: Encoder {
                tokenizer: llama.0,
                model: llama.1,
            },
            device: device.clone(),
        }
    }

    pub fn tokenize(&self, prompt: &str) -> std::result::Result<PromptTokens, WeightsError> {
        Ok(PromptTokens {
            clip_l: self.clip_l.tokenizer.encode(prompt)?,
            clip_g: self.clip_g.tokenizer.encode(prompt)?,
            t5: self.t5.tokenizer.encode(prompt)?,
            llama: self.llama.tokenizer.encode(prompt)?,
        })
    }

    /// Encodes already tokenized ids. Every output is returned in f32.
    pub(crate) fn encode_tokens(&self, tokens: &PromptTokens) -> Result<PromptEncoding> {
        let dev = &self.device;
        let clip_l = self.clip_l.model.encode(&tokens.clip_l.ids, dev)?;
        let clip_g = self.clip_g.model.encode(&tokens.clip_g.ids, dev)?;
        Ok(PromptEncoding {
            pooled: Tensor::cat(&[clip_l, clip_g], 1)?.to_dtype(DType::F32)?,
            t5: self
                .t5
                .model
                .encode(&tokens.t5.ids, &tokens.t5.mask, dev)?
                .to_dtype(DType::F32)?,
            llama: self
                .llama
                .model
                .encode(&tokens.llama.ids, &tokens.llama.mask, dev)?
                .to_dtype(DType::F32)?,
        })
    }

    pub fn encode(&self, prompt: &str) -> anyhow::Result<PromptEncoding> {
        let tokens = self.tokenize(prompt)?;
        Ok(self.encode_tokens(&tokens)?)
    }
}

/// A text encoder from its folder: its safetensors, or the GGUF file that stands in for them
/// (see [`ComponentKind::gguf_standing_in`]; config.json and the tokenizer still come from the
/// folder, and llama.cpp's RoPE frequency table, which the config gives too, is left unread).
fn load_encoder<T>(
    dir: &Path,
    kind: ComponentKind,
    (what, unread): (&'static str, &[&str]),
    (dtype, device): (DType, &Device),
    build: impl Fn(candle_nn::VarBuilder<'_>) -> candle_core::Result<T>,
) -> std::result::Result<T, LoadError> {
    match kind.gguf_standing_in(dir) {
        Some((gguf, architecture)) => {
            let unread = [unread, &["rope_freqs.weight"]].concat();
            load_checked_from(&gguf, architecture, (what, &unread), dtype, device, build)
        }
        None => load_checked_ignoring(dir, what, dtype, device, unread, build),
    }
}

/// A Llama-3.1 folder: config.json, sharded weights (the LM head is left unread) and
/// tokenizer.json.
fn load_llama(
    dir: &Path,
    max_len: usize,
    dtype: DType,
    device: &Device,
) -> std::result::Result<Encoder<LlamaEncoder>, LoadError> {
    let config = dir.join("config.json");
    if !config.is_file() {
        return Err(WeightsError::NotAModelFolder {
            dir: dir.to_path_buf(),
        }
        .into());
    }
    let cfg: LlamaConfig = read_json(&config, "Llama config")?;
    let model = load_encoder(
        dir,
        ComponentKind::Llama,
        ("Llama text encoder", LLAMA_UNREAD),
        (dtype, device),
        |vb| LlamaEncoder::new(&cfg, vb),
    )?;
    Ok(Encoder {
        tokenizer: PromptTokenizer::llama(dir, max_len)?,
        model,
    })
}
