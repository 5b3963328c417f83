//! The loaded models of one HiDream-I1 snapshot, with the memory policy for the text encoders
//! and a cache of recent prompts' embeddings.

use std::collections::VecDeque;
use std::sync::Arc;

use candle_core::{DType, Device};

use crate::models::hidream::HiDreamTransformer;
use crate::models::text::{PromptEncoding, TextEncoders};
use crate::models::vae::AutoencoderKl;
use crate::settings::{DeviceChoice, ModelSelection};
use crate::weights::Snapshot;

/// Prompts whose embeddings are kept. One prompt is about 67 MB in f32 for the real encoders
/// (T5 128×4096 and 32 Llama layers of 128×4096).
pub(crate) const PROMPT_CACHE_SIZE: usize = 8;

/// Whether the text encoders stay loaded between prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderMemory {
    /// Keep them (fast when prompts change often).
    Keep,
    /// Free them after encoding (the transformer alone is 34 GB in bf16; CLIP, T5 and Llama add
    /// 27 GB more) and load them again for a prompt that is not cached.
    Drop,
}

impl EncoderMemory {
    /// Drop on GPUs, where memory is scarce; keep on the CPU.
    pub fn default_for(device: DeviceChoice) -> Self {
        match device {
            DeviceChoice::Cpu => Self::Keep,
            DeviceChoice::Cuda => Self::Drop,
        }
    }
}

/// A prompt's embeddings and whether it had to be truncated.
#[derive(Debug, Clone)]
pub(crate) struct EncodedPrompt {
    pub encoding: PromptEncoding,
    pub truncated: bool,
}

pub struct HiDreamModels {
    selection: ModelSelection,
    snapshot: Snapshot,
    device: Device,
    pub transformer: HiDreamTransformer,
    pub vae: AutoencoderKl,
    encoders: Option<TextEncoders>,
    memory: EncoderMemory,
    cache: VecDeque<(String, Arc<EncodedPrompt>)>,
    /// How many times the text encoders were loaded (for tests and logs).
    encoder_loads: usize,
}

impl HiDreamModels {
    /// Loads the transformer and the autoencoder; the text encoders load on first use.
    pub fn load(selection: &ModelSelection, memory: EncoderMemory) -> anyhow::Result<Self> {
        let device = selection.device.device()?;
        let snapshot = Snapshot::open(&selection.model)?;
        let transformer_dir = snapshot.component_dir("transformer")?;
        let (dtype, dir) = (selection.dtype.dtype(), &transformer_dir);
        let transformer = match &selection.transformer {
            Some(weights) => HiDreamTransformer::load_weights(dir, weights, dtype, &device)?,
            None => HiDreamTransformer::load(dir, dtype, &device)?,
        };
        Self::around(selection, memory, snapshot, device, transformer)
    }

    /// The components of `selection.model` (VAE now, encoders on first use) around a
    /// transformer loaded elsewhere (an editing model, a LoRA merge).
    pub(crate) fn with_transformer(
        selection: &ModelSelection,
        memory: EncoderMemory,
        transformer: HiDreamTransformer,
    ) -> anyhow::Result<Self> {
        let device = selection.device.device()?;
        let snapshot = Snapshot::open(&selection.model)?;
        Self::around(selection, memory, snapshot, device, transformer)
    }

    /// Loads the snapshot's autoencoder next to `transformer`.
    fn around(
        selection: &ModelSelection,
        memory: EncoderMemory,
        snapshot: Snapshot,
        device: Device,
        transformer: HiDreamTransformer,
    ) -> anyhow::Result<Self> {
        let vae = AutoencoderKl::load(
            &snapshot.component_dir("vae")?,
            selection.dtype.dtype(),
            &device,
        )?;
        Ok(Self {
            selection: selection.clone(),
            snapshot,
            device,
            transformer,
            vae,
            encoders: None,
            memory,
            cache: VecDeque::new(),
            encoder_loads: 0,
        })
    }

    /// Models built elsewhere (seeded random weights for `bench pipeline`) around the snapshot
    /// `selection.model`, which only provides the tokenizers' folder here. `encoders` serve the
    /// first prompts; under [`EncoderMemory::Drop`] they are freed after encoding as loaded ones
    /// are, and a later new prompt loads the snapshot's.
    pub fn from_parts(
        selection: &ModelSelection,
        memory: EncoderMemory,
        transformer: HiDreamTransformer,
        vae: AutoencoderKl,
        encoders: TextEncoders,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            selection: selection.clone(),
            snapshot: Snapshot::open(&selection.model)?,
            // The models' own device handle: a second `Device::new_cuda` would make every
            // transfer between the two go through the host.
            device: transformer.device().clone(),
            transformer,
            vae,
            encoders: Some(encoders),
            memory,
            cache: VecDeque::new(),
            encoder_loads: 0,
        })
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn selection(&self) -> &ModelSelection {
        &self.selection
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.selection.dtype.dtype()
    }

    pub fn encoder_loads(&self) -> usize {
        self.encoder_loads
    }

    pub fn encoders_loaded(&self) -> bool {
        self.encoders.is_some()
    }

    pub(crate) fn cached_prompt(&self, prompt: &str) -> Option<Arc<EncodedPrompt>> {
        self.cache
            .iter()
            .find(|(p, _)| p == prompt)
            .map(|(_, e)| e.clone())
    }

    /// Embeddings of every prompt, from the cache where possible; the encoders are loaded only
    /// when a prompt is new, and freed afterwards under [`EncoderMemory::Drop`].
    pub(crate) fn encode_prompts(
        &mut self,
        prompts: &[&str],
    ) -> anyhow::Result<Vec<Arc<EncodedPrompt>>> {
        let mut out = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            if let Some(hit) = self.cached_prompt(prompt) {
                out.push(hit);
                continue;
            }
            let encoders = if let Some(e) = &self.encoders {
                e
            } else {
                let loaded = TextEncoders::load(
                    &self.snapshot,
                    &self.selection.llama,
                    self.dtype(),
                    &self.device,
                )?;
                self.encoder_loads += 1;
                self.encoders.insert(loaded)
            };
            let tokens = encoders.tokenize(prompt)?;
            let encoded = Arc::new(EncodedPrompt {
                encoding: encoders.encode_tokens(&tokens)?,
                truncated: tokens.truncated(),
            });
            if self.cache.len() == PROMPT_CACHE_SIZE {
                self.cache.pop_front();
            }
            self.cache.push_back((prompt.to_string(), encoded.clone()));
            out.push(encoded);
        }
        if self.memory == EncoderMemory::Drop {
            self.encoders = None;
        }
        Ok(out)
    }
}
