//! The four prompt tokenizers, built from the files the real snapshots ship, with HiDream's
//! truncation and padding: every sequence is exactly `max_len` (128) tokens.
//!
//! - CLIP (`tokenizer/`, `tokenizer_2/`): byte-level BPE from vocab.json + merges.txt (the
//!   repositories have no tokenizer.json), `<|startoftext|>` … `<|endoftext|>`, padded with the
//!   folder's pad token (`<|endoftext|>` for CLIP-L, `!` for CLIP-G).
//! - T5 (`tokenizer_3/`): tokenizer.json, or the sentencepiece `spiece.model`; ends in `</s>`,
//!   padded with `<pad>` (0).
//! - Llama: tokenizer.json; BOS first, right-padded with the end token `<|eot_id|>`.

use std::path::{Path, PathBuf};

use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Lowercase, NFC, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{
    AddedToken, PaddingDirection, PaddingParams, PaddingStrategy, SplitDelimiterBehavior,
    Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use super::spiece;
use crate::weights::WeightsError;

/// CLIP's pre-tokenisation pattern (as in transformers' CLIPTokenizer).
const CLIP_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// Ids and attention mask of one prompt, `max_len` long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
    /// Whether the prompt was longer than `max_len` and lost its end.
    pub truncated: bool,
}

#[derive(Debug, Clone)]
pub struct PromptTokenizer {
    tokenizer: Tokenizer,
    /// Where it was read from, for messages.
    source: PathBuf,
}

fn tokenizer_error(path: &Path, detail: impl std::fmt::Display) -> WeightsError {
    WeightsError::Tokenizer {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

impl PromptTokenizer {
    /// A CLIP tokenizer folder. A tokenizer.json, when present, wins over vocab.json +
    /// merges.txt.
    pub fn clip(dir: &Path, max_len: usize) -> Result<Self, WeightsError> {
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Self::from_json(&json, max_len, special_token(dir, "pad_token")?.as_ref());
        }
        let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        for file in [&vocab, &merges] {
            if !file.is_file() {
                return Err(tokenizer_error(
                    file,
                    "is missing: a CLIP tokenizer needs vocab.json and merges.txt (or a tokenizer.json)",
                ));
            }
        }
        let bos = special_token(dir, "bos_token")?.unwrap_or_else(|| "<|startoftext|>".into());
        let eos = special_token(dir, "eos_token")?.unwrap_or_else(|| "<|endoftext|>".into());
        let unk = special_token(dir, "unk_token")?.unwrap_or_else(|| eos.clone());
        let pad = special_token(dir, "pad_token")?.unwrap_or_else(|| eos.clone());
        let bpe = BPE::from_file(&path_str(&vocab)?, &path_str(&merges)?)
            .unk_token(unk.clone())
            .continuing_subword_prefix(String::new())
            .end_of_word_suffix("</w>".into())
            .fuse_unk(false)
            .build()
            .map_err(|e| tokenizer_error(&vocab, format!("does not load with merges.txt: {e}")))?;
        let mut tokenizer = Tokenizer::new(bpe);
        let whitespace = Replace::new(
            tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".into()),
            " ",
        )
        .map_err(|e| tokenizer_error(dir, e))?;
        tokenizer.with_normalizer(Some(NormalizerSequence::new(vec![
            NFC.into(),
            whitespace.into(),
            Lowercase.into(),
        ])));
        let split = Split::new(
            SplitPattern::Regex(CLIP_PATTERN.into()),
            SplitDelimiterBehavior::Removed,
            true,
        )
        .map_err(|e| tokenizer_error(dir, e))?;
        tokenizer.with_pre_tokenizer(Some(PreTokenizerSequence::new(vec![
            split.into(),
            ByteLevel::new(false, true, true).into(),
        ])));
        let id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| tokenizer_error(&vocab, format!("has no `{token}` token")))
        };
        let (bos_id, eos_id) = (id(&bos)?, id(&eos)?);
        tokenizer.with_post_processor(Some(
            RobertaProcessing::new((eos.clone(), eos_id), (bos.clone(), bos_id))
                .trim_offsets(false)
                .add_prefix_space(false),
        ));
        let specials: Vec<AddedToken> = [&bos, &eos, &unk, &pad]
            .into_iter()
            .map(|t| AddedToken::from(t.clone(), true))
            .collect();
        tokenizer.add_special_tokens(&specials);
        Self::finish(tokenizer, &vocab, max_len, &pad)
    }

    /// A T5 tokenizer folder: tokenizer.json, else spiece.model.
    pub fn t5(dir: &Path, max_len: usize) -> Result<Self, WeightsError> {
        let json = dir.join("tokenizer.json");
        let pad = special_token(dir, "pad_token")?.unwrap_or_else(|| "<pad>".into());
        if json.is_file() {
            return Self::from_json(&json, max_len, Some(&pad));
        }
        let model = dir.join("spiece.model");
        if !model.is_file() {
            return Err(tokenizer_error(
                &model,
                "is missing: a T5 tokenizer needs spiece.model or tokenizer.json",
            ));
        }
        let extra_ids = tokenizer_config(dir)?
            .and_then(|c| c.get("extra_ids").and_then(serde_json::Value::as_u64))
            .unwrap_or(100) as usize;
        let bytes = std::fs::read(&model).map_err(|e| WeightsError::io(&model, e))?;
        let tokenizer =
            spiece::t5_tokenizer(&bytes, extra_ids).map_err(|e| tokenizer_error(&model, e))?;
        Self::finish(tokenizer, &model, max_len, &pad)
    }

    /// A Llama folder's tokenizer.json; padding uses the end token of tokenizer_config.json
    /// (HiDream sets pad := eos).
    pub fn llama(dir: &Path, max_len: usize) -> Result<Self, WeightsError> {
        let eos = special_token(dir, "eos_token")?.unwrap_or_else(|| "<|eot_id|>".into());
        Self::from_json(&dir.join("tokenizer.json"), max_len, Some(&eos))
    }

    fn from_json(path: &Path, max_len: usize, pad: Option<&String>) -> Result<Self, WeightsError> {
        if !path.is_file() {
            return Err(tokenizer_error(path, "is missing"));
        }
        let tokenizer = Tokenizer::from_file(path)
            .map_err(|e| tokenizer_error(path, format!("does not parse as a tokenizer: {e}")))?;
        let pad = pad.cloned().ok_or_else(|| {
            tokenizer_error(
                path,
                "has no pad token in special_tokens_map.json or tokenizer_config.json",
            )
        })?;
        Self::finish(tokenizer, path, max_len, &pad)
    }

    fn finish(
        mut tokenizer: Tokenizer,
        source: &Path,
        max_len: usize,
        pad: &str,
    ) -> Result<Self, WeightsError> {
        let pad_id = tokenizer.token_to_id(pad).ok_or_else(|| {
            tokenizer_error(source, format!("has no id for its pad token `{pad}`"))
        })?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| tokenizer_error(source, e))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(max_len),
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token: pad.to_string(),
        }));
        Ok(Self {
            tokenizer,
            source: source.to_path_buf(),
        })
    }

    pub fn encode(&self, prompt: &str) -> Result<Tokens, WeightsError> {
        let encoding = self
            .tokenizer
            .encode(prompt, true)
            .map_err(|e| tokenizer_error(&self.source, format!("failed on the prompt: {e}")))?;
        Ok(Tokens {
            ids: encoding.get_ids().to_vec(),
            mask: encoding.get_attention_mask().to_vec(),
            truncated: !encoding.get_overflowing().is_empty(),
        })
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }
}

fn path_str(path: &Path) -> Result<String, WeightsError> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| tokenizer_error(path, "has a path that is not valid UTF-8"))
}

fn tokenizer_config(dir: &Path) -> Result<Option<serde_json::Value>, WeightsError> {
    let path = dir.join("tokenizer_config.json");
    if !path.is_file() {
        return Ok(None);
    }
    crate::weights::read_json(&path, "tokenizer config").map(Some)
}

/// A special token named in special_tokens_map.json or tokenizer_config.json, written either as
/// a string or as `{"content": …}`.
fn special_token(dir: &Path, key: &str) -> Result<Option<String>, WeightsError> {
    for file in ["special_tokens_map.json", "tokenizer_config.json"] {
        let path = dir.join(file);
        if !path.is_file() {
            continue;
        }
        let value: serde_json::Value = crate::weights::read_json(&path, "tokenizer config")?;
        let token = match value.get(key) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Object(o)) => o
                .get("content")
                .and_then(|c| c.as_str())
                .map(str::to_string),
            _ => None,
        };
        if token.is_some() {
            return Ok(token);
        }
    }
    Ok(None)
}
