//! Llama as a causal language model (transformers' `LlamaForCausalLM`): the shared decoder
//! stack, then the LM head, which is its own `lm_head.weight` or, when the config says
//! `tie_word_embeddings`, the token embedding.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear_no_bias};

use super::{Decoder, KvCache, LlamaConfig};

#[derive(Debug, Clone)]
pub struct LlamaForCausalLM {
    decoder: Decoder,
    /// [vocab, D].
    lm_head: Linear,
}

impl LlamaForCausalLM {
    /// `vb` at the checkpoint root (`model.*`, `lm_head.weight`).
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let decoder = Decoder::new(cfg, vb.pp("model"))?;
        let lm_head = if cfg.tie_word_embeddings {
            Linear::new(decoder.embedding_weight().clone(), None)
        } else {
            linear_no_bias(cfg.hidden_size, cfg.vocab_size, vb.pp("lm_head"))?
        };
        Ok(Self { decoder, lm_head })
    }

    /// A language model over a text encoder's decoder stack (the weights are shared, not
    /// copied) with the LM head `lm_head` ([vocab, D], the checkpoint's `lm_head.weight`, which
    /// the encoder leaves unread), or the encoder's embedding when `None` (tied configs).
    pub fn from_encoder(encoder: &super::LlamaEncoder, lm_head: Option<Tensor>) -> Self {
        let decoder = encoder.decoder().clone();
        let lm_head = lm_head.unwrap_or_else(|| decoder.embedding_weight().clone());
        Self {
            decoder,
            lm_head: Linear::new(lm_head, None),
        }
    }

    pub fn config(&self) -> &LlamaConfig {
        self.decoder.config()
    }

    /// Feeds `ids` after what `cache` holds and returns the next-token logits of the last of
    /// them: [vocab], f32. The prompt goes in as one chunk, then one token per call.
    pub fn forward(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        if ids.is_empty() {
            candle_core::bail!("the language model was given no tokens to read");
        }
        let hidden = self.decoder.forward_cached(ids, cache)?;
        // Only the last position's logits are needed: [1, 1, D] → [vocab].
        let last = hidden.narrow(1, ids.len() - 1, 1)?;
        self.lm_head
            .forward(&last)?
            .to_dtype(DType::F32)?
            .squeeze(0)?
            .squeeze(0)
    }

    /// Feeds `ids` after what `cache` holds and returns the next-token logits after each of
    /// them: [len(ids), vocab], f32 (scoring a given continuation, not generating one).
    pub fn forward_all(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        if ids.is_empty() {
            candle_core::bail!("the language model was given no tokens to read");
        }
        let hidden = self.decoder.forward_cached(ids, cache)?;
        self.lm_head
            .forward(&hidden)?
            .to_dtype(DType::F32)?
            .squeeze(0)
    }
}
