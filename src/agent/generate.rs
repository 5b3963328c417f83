//! The generation loop: the prompt is read in one pass into a KV cache, then one token at a
//! time is chosen (greedily or by seeded sampling, see [`super::sampling`]) and fed back, until
//! an end-of-sequence id, a caller's stop string, the new-token limit or the caller's cancel.
//! Logits come back to the host once per token, in f32.

use std::ops::ControlFlow;
use std::path::Path;

use serde::Deserialize;

use super::sampling::{Sampler, SamplingParams, apply_repetition_penalty, argmax, softmax};
use crate::host_reads;
use crate::models::text::{KvCache, LlamaForCausalLM};
use crate::weights::{WeightsError, read_json};

/// New tokens when neither the caller nor generation_config.json gives a limit.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 512;

/// One id or a list, as configs write `eos_token_id`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    fn into_vec(self) -> Vec<u32> {
        match self {
            Self::One(id) => vec![id],
            Self::Many(ids) => ids,
        }
    }
}

/// The fields of generation_config.json (and config.json's `eos_token_id`) that decoding uses.
#[derive(Debug, Clone, Default, Deserialize)]
struct GenerationFile {
    eos_token_id: Option<TokenIds>,
    do_sample: Option<bool>,
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    repetition_penalty: Option<f32>,
    max_new_tokens: Option<usize>,
}

/// How a model folder asks to be decoded, with transformers' defaults for what it leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    pub eos_token_ids: Vec<u32>,
    pub do_sample: bool,
    pub sampling: SamplingParams,
    pub repetition_penalty: f32,
    pub max_new_tokens: usize,
}

impl GenerationConfig {
    /// generation_config.json of `dir` if it has one; the eos ids fall back to config.json's.
    pub fn read(dir: &Path) -> Result<Self, WeightsError> {
        let file = dir.join("generation_config.json");
        let generation: GenerationFile = if file.is_file() {
            read_json(&file, "generation config")?
        } else {
            GenerationFile::default()
        };
        let eos = if let Some(ids) = generation.eos_token_id {
            ids.into_vec()
        } else {
            let model: GenerationFile = read_json(&dir.join("config.json"), "model config")?;
            model
                .eos_token_id
                .map(TokenIds::into_vec)
                .unwrap_or_default()
        };
        let defaults = SamplingParams::default();
        Ok(Self {
            eos_token_ids: eos,
            do_sample: generation.do_sample.unwrap_or(false),
            sampling: SamplingParams {
                temperature: generation.temperature.unwrap_or(defaults.temperature),
                top_k: generation.top_k.unwrap_or(defaults.top_k),
                top_p: generation.top_p.unwrap_or(defaults.top_p),
            },
            repetition_penalty: generation.repetition_penalty.unwrap_or(1.0),
            max_new_tokens: generation.max_new_tokens.unwrap_or(DEFAULT_MAX_NEW_TOKENS),
        })
    }

    /// Options that decode as the model's config asks: sampling with `seed` when it says
    /// `do_sample`, greedy otherwise.
    pub fn options(&self, seed: u64) -> GenerateOptions {
        GenerateOptions {
            max_new_tokens: self.max_new_tokens,
            decoding: if self.do_sample {
                Decoding::Sample {
                    params: self.sampling,
                    seed,
                }
            } else {
                Decoding::Greedy
            },
            repetition_penalty: self.repetition_penalty,
            eos_token_ids: self.eos_token_ids.clone(),
            stop_strings: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decoding {
    /// The most likely token each step.
    Greedy,
    /// A seeded draw from the warped distribution.
    Sample { params: SamplingParams, seed: u64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub decoding: Decoding,
    /// Applied before choosing, greedy or not (1 = none).
    pub repetition_penalty: f32,
    /// Generation ends after any of these (it is kept in the output, as transformers keeps it).
    pub eos_token_ids: Vec<u32>,
    /// Generation ends once the text of the new tokens (with the prompt's tail) contains one.
    pub stop_strings: Vec<String>,
}

impl GenerateOptions {
    /// Greedy decoding up to `max_new_tokens`, ending on `eos_token_ids`.
    pub fn greedy(max_new_tokens: usize, eos_token_ids: Vec<u32>) -> Self {
        Self {
            max_new_tokens,
            decoding: Decoding::Greedy,
            repetition_penalty: 1.0,
            eos_token_ids,
            stop_strings: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    Eos(u32),
    StopString(String),
    MaxNewTokens,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The new tokens, the stopping one included.
    pub ids: Vec<u32>,
    pub stop: StopReason,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("there is nothing to answer: the prompt has no tokens")]
    EmptyPrompt,

    #[error("the language model failed: {0}")]
    Model(candle_core::Error),

    #[error("could not turn the model's tokens back into text: {0}")]
    Decode(String),
}

// A hand-written From, not #[from]: the cause is in the message, not chained as a source,
// so `{:#}` says it once.
impl From<candle_core::Error> for GenerateError {
    fn from(cause: candle_core::Error) -> Self {
        Self::Model(cause)
    }
}

/// Continues `prompt`. `decode` turns ids into text (for stop strings); `on_token` sees each
/// new id as it is chosen (the stopping one too) and may cancel.
pub fn generate(
    lm: &LlamaForCausalLM,
    prompt: &[u32],
    options: &GenerateOptions,
    decode: &dyn Fn(&[u32]) -> Result<String, String>,
    mut on_token: impl FnMut(u32) -> ControlFlow<()>,
) -> Result<Generated, GenerateError> {
    if prompt.is_empty() {
        return Err(GenerateError::EmptyPrompt);
    }
    let mut sampler = match &options.decoding {
        Decoding::Greedy => None,
        Decoding::Sample { params, seed } => Some((params, Sampler::new(*seed))),
    };
    let mut cache = KvCache::new();
    let mut all: Vec<u32> = prompt.to_vec();
    let mut new = Vec::new();
    let mut logits = lm.forward(prompt, &mut cache)?;
    while new.len() < options.max_new_tokens {
        let mut scores: Vec<f32> = host_reads::to_vec1(&logits)?;
        apply_repetition_penalty(&mut scores, &all, options.repetition_penalty);
        let next = match &mut sampler {
            None => argmax(&scores),
            Some((params, sampler)) => {
                params.warp(&mut scores);
                sampler.draw(&softmax(&scores))
            }
        };
        all.push(next);
        new.push(next);
        let cancelled = on_token(next).is_break();
        if options.eos_token_ids.contains(&next) {
            return Ok(Generated {
                ids: new,
                stop: StopReason::Eos(next),
            });
        }
        if let Some(stop) = stop_string_completed(&all, &options.stop_strings, decode)? {
            return Ok(Generated {
                ids: new,
                stop: StopReason::StopString(stop),
            });
        }
        if cancelled {
            return Ok(Generated {
                ids: new,
                stop: StopReason::Cancelled,
            });
        }
        if new.len() < options.max_new_tokens {
            logits = lm.forward(&[next], &mut cache)?;
        }
    }
    Ok(Generated {
        ids: new,
        stop: StopReason::MaxNewTokens,
    })
}

/// The stop string that the last token completes, if any: one that occurs in the text and
/// ends inside the last token's text (it may start in earlier tokens, the prompt's too), as
/// transformers' `StopStringCriteria` decides.
fn stop_string_completed(
    ids: &[u32],
    stops: &[String],
    decode: &dyn Fn(&[u32]) -> Result<String, String>,
) -> Result<Option<String>, GenerateError> {
    let Some(longest) = stops.iter().map(String::len).max() else {
        return Ok(None);
    };
    // Every token holds at least one byte, so a stop string of n bytes spans at most n + 1
    // tokens; decoding that tail is enough.
    let window = &ids[ids.len().saturating_sub(longest + 2)..];
    let text = decode(window).map_err(GenerateError::Decode)?;
    let before = decode(&window[..window.len() - 1]).map_err(GenerateError::Decode)?;
    Ok(stops
        .iter()
        .find(|stop| {
            !stop.is_empty()
                && text
                    .match_indices(stop.as_str())
                    .any(|(start, s)| start + s.len() > before.len())
        })
        .cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_string_counts_only_once_the_last_token_completes_it() {
        let vocab = ["he", "llo", " wor", "ld", "!"];
        let decode = |ids: &[u32]| -> Result<String, String> {
            Ok(ids.iter().map(|&i| vocab[i as usize]).collect())
        };
        let stops = vec!["lo w".to_owned()];
        assert_eq!(
            stop_string_completed(&[0, 1], &stops, &decode).unwrap(),
            None
        );
        assert_eq!(
            stop_string_completed(&[0, 1, 2], &stops, &decode).unwrap(),
            Some("lo w".to_owned())
        );
        // Completed earlier: not again.
        assert_eq!(
            stop_string_completed(&[0, 1, 2, 3], &stops, &decode).unwrap(),
            None
        );
        assert_eq!(stop_string_completed(&[4], &[], &decode).unwrap(), None);
    }
}
