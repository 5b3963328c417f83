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
pub use llama::{KvCache, LlamaConfig, LlamaEncoder, LlamaForCausalLM};

pub use t5::{T5Config, T5Encoder};
pub use tokenize::{PromptTokenizer, Tokens};

use super::{ComponentKind, LoadError, QuantizedLayers, load_checked_from, load_checked_ignoring};

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
    /// The same embeddings on `device` (the transformer's, when the encoders ran elsewhere).
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            pooled: self.pooled.to_device(device)?,
            t5: self.t5.to_device(device)?,
            llama: self.llama.to_device(device)?,
        })
    }

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

/// The four tokenizers, each cutting prompts at the snapshot's sequence length.
#[derive(Debug, Clone)]
pub struct PromptTokenizers {
    clip_l: PromptTokenizer,
    clip_g: PromptTokenizer,
    t5: PromptTokenizer,
    llama: PromptTokenizer,
}

impl PromptTokenizers {
    /// CLIP-L's, CLIP-G's and T5's from a HiDream snapshot, Llama's from its own folder.
    pub fn load(snapshot: &Snapshot, llama_dir: &Path) -> std::result::Result<Self, LoadError> {
        let max_len = max_sequence_length(snapshot)?;
        check_llama_folder(llama_dir)?;
        Ok(Self {
            clip_l: PromptTokenizer::clip(&snapshot.component_dir("tokenizer")?, max_len)?,
            clip_g: PromptTokenizer::clip(&snapshot.component_dir("tokenizer_2")?, max_len)?,
            t5: PromptTokenizer::t5(&snapshot.component_dir("tokenizer_3")?, max_len)?,
            llama: PromptTokenizer::llama(llama_dir, max_len)?,
        })
    }

    pub fn tokenize(&self, prompt: &str) -> std::result::Result<PromptTokens, WeightsError> {
        Ok(PromptTokens {
            clip_l: self.clip_l.encode(prompt)?,
            clip_g: self.clip_g.encode(prompt)?,
            t5: self.t5.encode(prompt)?,
            llama: self.llama.encode(prompt)?,
        })
    }
}

/// The four encoders' outputs for one prompt, as the transformer takes them (f32).
fn assemble(clip_l: Tensor, clip_g: Tensor, t5: &Tensor, llama: &Tensor) -> Result<PromptEncoding> {
    Ok(PromptEncoding {
        pooled: Tensor::cat(&[clip_l, clip_g], 1)?.to_dtype(DType::F32)?,
        t5: t5.to_dtype(DType::F32)?,
        llama: llama.to_dtype(DType::F32)?,
    })
}

#[derive(Debug, Clone)]
pub struct TextEncoders {
    tokenizers: PromptTokenizers,
    clip_l: ClipTextEncoder,
    clip_g: ClipTextEncoder,
    t5: T5Encoder,
    llama: LlamaEncoder,
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
        let tokenizers = PromptTokenizers::load(snapshot, llama_dir)?;
        let on = (dtype, device);
        Ok(Self {
            tokenizers,
            clip_l: load_clip(snapshot, "text_encoder", on)?,
            clip_g: load_clip(snapshot, "text_encoder_2", on)?,
            t5: load_t5(snapshot, on)?,
            llama: load_llama(llama_dir, on)?,
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
            tokenizers: PromptTokenizers {
                clip_l: clip_l.0,
                clip_g: clip_g.0,
                t5: t5.0,
                llama: llama.0,
            },
            clip_l: clip_l.1,
            clip_g: clip_g.1,
            t5: t5.1,
            llama: llama.1,
            device: device.clone(),
        }
    }

    pub fn tokenize(&self, prompt: &str) -> std::result::Result<PromptTokens, WeightsError> {
        self.tokenizers.tokenize(prompt)
    }

    /// The Llama-3.1 encoder, whose weights the agent's chat model can share
    /// ([`causal_lm_sharing`]).
    pub fn llama(&self) -> &LlamaEncoder {
        &self.llama
    }

    /// Encodes already tokenized ids. Every output is returned in f32.
    pub(crate) fn encode_tokens(&self, tokens: &PromptTokens) -> Result<PromptEncoding> {
        let dev = &self.device;
        assemble(
            self.clip_l.encode(&tokens.clip_l.ids, dev)?,
            self.clip_g.encode(&tokens.clip_g.ids, dev)?,
            &self.t5.encode(&tokens.t5.ids, &tokens.t5.mask, dev)?,
            &self
                .llama
                .encode(&tokens.llama.ids, &tokens.llama.mask, dev)?,
        )
    }

    pub fn encode(&self, prompt: &str) -> anyhow::Result<PromptEncoding> {
        let tokens = self.tokenize(prompt)?;
        Ok(self.encode_tokens(&tokens)?)
    }
}

/// Encodes prompts with one encoder in memory at a time: CLIP-L is loaded, encodes every
/// prompt and is freed before CLIP-G loads, and so on for T5 and Llama. The outputs equal
/// [`TextEncoders::encode_tokens`]'s; the peak is the largest encoder instead of all four.
pub(crate) fn encode_one_at_a_time(
    snapshot: &Snapshot,
    llama_dir: &Path,
    (dtype, device): (DType, &Device),
    tokens: &[PromptTokens],
) -> anyhow::Result<Vec<PromptEncoding>> {
    let on = (dtype, device);
    let each = |encode: &dyn Fn(&PromptTokens) -> Result<Tensor>| -> Result<Vec<Tensor>> {
        tokens.iter().map(encode).collect()
    };
    let clip_l = {
        let model = load_clip(snapshot, "text_encoder", on)?;
        each(&|t| model.encode(&t.clip_l.ids, device))?
    };
    let clip_g = {
        let model = load_clip(snapshot, "text_encoder_2", on)?;
        each(&|t| model.encode(&t.clip_g.ids, device))?
    };
    let t5 = {
        let model = load_t5(snapshot, on)?;
        each(&|t| model.encode(&t.t5.ids, &t.t5.mask, device))?
    };
    let llama = {
        let model = load_llama(llama_dir, on)?;
        each(&|t| model.encode(&t.llama.ids, &t.llama.mask, device))?
    };
    let parts = clip_l.into_iter().zip(clip_g).zip(t5.iter().zip(&llama));
    Ok(parts
        .map(|((l, g), (t5, llama))| assemble(l, g, t5, llama))
        .collect::<Result<_>>()?)
}

/// The sequence length every tokenizer cuts at: the bundled model's manifest's, else the
/// released pipelines'.
fn max_sequence_length(snapshot: &Snapshot) -> std::result::Result<usize, WeightsError> {
    Ok(StudioManifest::read(snapshot.root())?
        .map_or(MAX_SEQUENCE_LENGTH, |m| m.max_sequence_length))
}

/// CLIP-L (`text_encoder`) or CLIP-G (`text_encoder_2`) of a snapshot.
fn load_clip(
    snapshot: &Snapshot,
    component: &str,
    (dtype, device): (DType, &Device),
) -> std::result::Result<ClipTextEncoder, LoadError> {
    let dir = snapshot.component_dir(component)?;
    let cfg: ClipConfig = read_json(&dir.join("config.json"), "CLIP text encoder config")?;
    load_checked_ignoring(
        &dir,
        "CLIP text encoder",
        dtype,
        device,
        CLIP_UNREAD,
        |vb| ClipTextEncoder::new(&cfg, vb),
    )
}

/// T5 (`text_encoder_3`) of a snapshot.
fn load_t5(snapshot: &Snapshot, on: (DType, &Device)) -> std::result::Result<T5Encoder, LoadError> {
    let dir = snapshot.component_dir("text_encoder_3")?;
    let cfg: T5Config = read_json(&dir.join("config.json"), "T5 encoder config")?;
    load_encoder(
        &dir,
        ComponentKind::T5,
        ("T5 encoder", T5_UNREAD),
        on,
        |vb| T5Encoder::new(&cfg, vb),
    )
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
            load_checked_from(
                &gguf,
                (architecture, QuantizedLayers::Kept),
                (what, &unread),
                dtype,
                device,
                build,
            )
        }
        None => load_checked_ignoring(dir, what, dtype, device, unread, build),
    }
}

/// A Llama-3.1 folder holds config.json beside its weights and tokenizer.json.
fn check_llama_folder(dir: &Path) -> std::result::Result<(), WeightsError> {
    if dir.join("config.json").is_file() {
        Ok(())
    } else {
        Err(WeightsError::NotAModelFolder {
            dir: dir.to_path_buf(),
        })
    }
}

/// A Llama folder's causal language model (config.json, weights with `lm_head.weight` unless
/// the config ties it to the embedding), or the llama.cpp GGUF file standing in for the weights.
pub fn load_causal_lm(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> std::result::Result<LlamaForCausalLM, LoadError> {
    check_llama_folder(dir)?;
    let cfg: LlamaConfig = read_json(&dir.join("config.json"), "Llama config")?;
    load_encoder(
        dir,
        ComponentKind::Llama,
        ("Llama language model", &[]),
        (dtype, device),
        |vb| LlamaForCausalLM::new(&cfg, vb),
    )
}

/// The causal language model over `encoder`'s weights (shared, not copied: candle tensors are
/// reference-counted), with the LM head read from the Llama folder `dir`, which the encoder
/// leaves unread ([`LLAMA_UNREAD`]); a config that ties the head to the embedding needs none.
/// The head takes the embedding's dtype and device. For Llama-3.1-8B the head is the one new
/// tensor: [128256, 4096], 1 GB in bf16, beside the encoder's 15 GB.
pub fn causal_lm_sharing(
    encoder: &LlamaEncoder,
    dir: &Path,
) -> std::result::Result<LlamaForCausalLM, LoadError> {
    let cfg = encoder.config();
    if cfg.tie_word_embeddings {
        return Ok(LlamaForCausalLM::from_encoder(encoder, None));
    }
    let embedding = encoder.decoder().embedding_weight();
    let store = crate::weights::TensorStore::open_dir(dir)?;
    let head = store
        .load(
            "lm_head.weight",
            Some(&[cfg.vocab_size, cfg.hidden_size]),
            embedding.device(),
        )?
        .to_dtype(embedding.dtype())
        .map_err(|e| LoadError::Build {
            what: "the Llama LM head (lm_head.weight)",
            dir: dir.to_path_buf(),
            cause: Box::new(e),
        })?;
    Ok(LlamaForCausalLM::from_encoder(encoder, Some(head)))
}

/// A Llama-3.1 folder's model: config.json and sharded weights (the LM head is left unread).
fn load_llama(dir: &Path, on: (DType, &Device)) -> std::result::Result<LlamaEncoder, LoadError> {
    check_llama_folder(dir)?;
    let cfg: LlamaConfig = read_json(&dir.join("config.json"), "Llama config")?;
    load_encoder(
        dir,
        ComponentKind::Llama,
        ("Llama text encoder", LLAMA_UNREAD),
        on,
        |vb| LlamaEncoder::new(&cfg, vb),
    )
}
