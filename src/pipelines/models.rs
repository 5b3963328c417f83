//! The loaded models of one HiDream-I1 snapshot, with the memory policy for the text encoders
//! and a cache of recent prompts' embeddings.

use std::collections::VecDeque;
use std::sync::Arc;

use candle_core::{DType, Device};

use super::placement::{load_placed, plan_placement};
use crate::agent::ChatModel;
use crate::models::hidream::HiDreamTransformer;
use crate::models::text::{
    LlamaForCausalLM, PromptEncoding, PromptTokenizers, TextEncoders, causal_lm_sharing,
    encode_one_at_a_time,
};
use crate::models::vae::AutoencoderKl;
use crate::placement::{EncoderDevice, EncoderPlacement, Placement, PlanModel};
use crate::settings::{DeviceChoice, ModelSelection};
use crate::weights::Snapshot;

/// Prompts whose embeddings are kept. One prompt is about 67 MB in f32 for the real encoders
/// (T5 128×4096 and 32 Llama layers of 128×4096).
pub(crate) const PROMPT_CACHE_SIZE: usize = 8;

/// The text encoders' dtype on the CPU: candle's CPU kernels have no bf16 matrix product, and
/// T5 overflows f16.
const CPU_ENCODER_DTYPE: DType = DType::F32;

/// Whether the text encoders stay loaded between prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderMemory {
    /// Keep them (fast when prompts change often).
    Keep,
    /// Free them after encoding (the transformer alone is 34 GB in bf16; CLIP, T5 and Llama add
    /// 27 GB more) and load them again for a prompt that is not cached.
    Drop,
    /// Load them one at a time for a prompt that is not cached, each freed before the next
    /// loads: the peak is the largest encoder (Llama, 16 GB in bf16) instead of all four.
    OneAtATime,
    /// As [`Self::OneAtATime`], with the transformer moved to host memory while they run and
    /// back afterwards: for GPUs that cannot hold the largest encoder beside it.
    OneAtATimeWithoutTransformer,
}

impl EncoderMemory {
    /// Drop on GPUs, where memory is scarce; keep on the CPU.
    pub fn default_for(device: DeviceChoice) -> Self {
        match device {
            DeviceChoice::Cpu => Self::Keep,
            DeviceChoice::Cuda => Self::Drop,
        }
    }

    /// Whether the encoders load one at a time: then no Llama stays loaded to be shared.
    pub fn one_at_a_time(self) -> bool {
        matches!(self, Self::OneAtATime | Self::OneAtATimeWithoutTransformer)
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
    /// Kept for encoding one encoder at a time (the encoders hold their own otherwise).
    tokenizers: Option<PromptTokenizers>,
    memory: EncoderMemory,
    /// Where and in which dtype the text encoders run.
    encoder_device: (Device, DType),
    /// What the placement planner decided, when it ran.
    placement: Option<Placement>,
    cache: VecDeque<(String, Arc<EncodedPrompt>)>,
    /// How many times the text encoders were loaded (for tests and logs).
    encoder_loads: usize,
}

impl HiDreamModels {
    /// Loads the transformer and the autoencoder; the text encoders load on first use.
    /// With a GPU (or `--vram-budget`) the placement planner decides first: the transformer
    /// resident or streamed, the encoders all at once, one at a time or on the CPU.
    pub fn load(selection: &ModelSelection, memory: EncoderMemory) -> anyhow::Result<Self> {
        let device = selection.device.device()?;
        let snapshot = Snapshot::open(&selection.model)?;
        let placement = plan_placement(selection, &snapshot, &device, PlanModel::I1)?;
        let transformer_dir = snapshot.component_dir("transformer")?;
        let (dtype, dir) = (selection.dtype.dtype(), &transformer_dir);
        let load_on = |device: &Device| match &selection.transformer {
            Some(weights) => HiDreamTransformer::load_weights(dir, weights, dtype, device),
            None => HiDreamTransformer::load(dir, dtype, device),
        };
        let transformer = load_placed(placement.as_ref(), &device, load_on)?;
        let mut models = Self::around(selection, memory, snapshot, device, transformer)?;
        models.apply(placement);
        Ok(models)
    }

    /// Follows the planner's choice for the encoders, and keeps the placement for the records.
    pub(crate) fn apply(&mut self, placement: Option<Placement>) {
        if let Some(p) = &placement {
            self.memory = match p.encoders {
                EncoderPlacement::AllResident => EncoderMemory::Keep,
                EncoderPlacement::OneAtATimeBesideTransformer | EncoderPlacement::Cpu => {
                    EncoderMemory::OneAtATime
                }
                EncoderPlacement::OneAtATimeBeforeTransformer => {
                    EncoderMemory::OneAtATimeWithoutTransformer
                }
            };
            if p.encoders == EncoderPlacement::Cpu {
                self.encoder_device = (Device::Cpu, CPU_ENCODER_DTYPE);
            }
        }
        self.placement = placement;
    }

    /// What the placement planner decided for these models, if it ran.
    pub fn placement(&self) -> Option<&Placement> {
        self.placement.as_ref()
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
        let encoder_device = match selection.placement.encoder_device {
            Some(EncoderDevice::Cpu) => (Device::Cpu, CPU_ENCODER_DTYPE),
            _ => (device.clone(), selection.dtype.dtype()),
        };
        Ok(Self {
            selection: selection.clone(),
            snapshot,
            device,
            transformer,
            vae,
            encoders: None,
            tokenizers: None,
            memory,
            encoder_device,
            placement: None,
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
        // The models' own device handle: a second `Device::new_cuda` would make every
        // transfer between the two go through the host.
        let device = transformer.device().clone();
        Ok(Self {
            selection: selection.clone(),
            snapshot: Snapshot::open(&selection.model)?,
            encoder_device: (device.clone(), selection.dtype.dtype()),
            device,
            transformer,
            vae,
            encoders: Some(encoders),
            tokenizers: None,
            memory,
            placement: None,
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

    /// How the text encoders are held now (sharing the Llama turns `Drop` into `Keep`).
    pub fn encoder_memory(&self) -> EncoderMemory {
        self.memory
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
    /// when a prompt is new, as the memory policy says.
    pub(crate) fn encode_prompts(
        &mut self,
        prompts: &[&str],
    ) -> anyhow::Result<Vec<Arc<EncodedPrompt>>> {
        let mut new: Vec<&str> = Vec::new();
        for prompt in prompts {
            if self.cached_prompt(prompt).is_none() && !new.contains(prompt) {
                new.push(prompt);
            }
        }
        let mut encoded: Vec<(String, Arc<EncodedPrompt>)> = Vec::new();
        if !new.is_empty() {
            for (prompt, e) in new.iter().zip(self.encode_new(&new)?) {
                encoded.push((prompt.to_string(), Arc::new(e)));
            }
        }
        let out = prompts
            .iter()
            .map(|prompt| {
                let fresh = encoded
                    .iter()
                    .find(|(p, _)| p == prompt)
                    .map(|(_, e)| e.clone());
                fresh.or_else(|| self.cached_prompt(prompt))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| anyhow::anyhow!("a prompt's embeddings went missing; this is a bug"))?;
        for entry in encoded {
            if self.cache.len() == PROMPT_CACHE_SIZE {
                self.cache.pop_front();
            }
            self.cache.push_back(entry);
        }
        Ok(out)
    }

    /// The text encoders, loaded now if they are not.
    fn loaded_encoders(&mut self) -> anyhow::Result<&TextEncoders> {
        if self.encoders.is_none() {
            let (device, dtype) = &self.encoder_device;
            let loaded = TextEncoders::load(&self.snapshot, &self.selection.llama, *dtype, device)?;
            self.encoder_loads += 1;
            self.encoders = Some(loaded);
        }
        self.encoders
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the text encoders went missing; this is a bug"))
    }

    /// The Llama-3.1 language model over the text encoder these models hold: the 8B weights
    /// are loaded once and shared (only the LM head is read in addition), on the encoders'
    /// device and dtype. Loads the encoders if they are not loaded; the language model keeps
    /// the Llama weights in memory for as long as it lives.
    ///
    /// Under [`EncoderMemory::Drop`] the encoders are kept from now on: dropping them after a
    /// prompt would free nothing of the Llama (the language model holds it) and the next
    /// prompt would load a second copy beside it.
    pub fn shared_language_model(&mut self) -> anyhow::Result<LlamaForCausalLM> {
        if self.memory.one_at_a_time() {
            anyhow::bail!(
                "the text encoders are loaded one at a time for this memory budget, so there is \
                 no resident Llama to share; load the agent's model on its own (ChatModel::load)"
            );
        }
        if self.memory == EncoderMemory::Drop {
            self.memory = EncoderMemory::Keep;
        }
        let llama_dir = self.selection.llama.clone();
        Ok(causal_lm_sharing(
            self.loaded_encoders()?.llama(),
            &llama_dir,
        )?)
    }

    /// The agent's chat model over [`Self::shared_language_model`], with the tokenizer, chat
    /// template and generation config of the Llama folder (Llama-3.1-8B-Instruct's).
    pub fn chat_model(&mut self) -> anyhow::Result<ChatModel> {
        let lm = self.shared_language_model()?;
        Ok(ChatModel::with_language_model(&self.selection.llama, lm)?)
    }

    /// Runs the text encoders on prompts that are not cached, on the encoders' device, and
    /// returns the embeddings on the models' device.
    fn encode_new(&mut self, prompts: &[&str]) -> anyhow::Result<Vec<EncodedPrompt>> {
        let (encoder_device, encoder_dtype) = self.encoder_device.clone();
        let (tokens, encodings) = match self.memory {
            EncoderMemory::Keep | EncoderMemory::Drop => {
                let encoders = self.loaded_encoders()?;
                let tokens = prompts
                    .iter()
                    .map(|p| encoders.tokenize(p))
                    .collect::<Result<Vec<_>, _>>()?;
                let encodings = tokens
                    .iter()
                    .map(|t| encoders.encode_tokens(t))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                if self.memory == EncoderMemory::Drop {
                    self.encoders = None;
                }
                (tokens, encodings)
            }
            EncoderMemory::OneAtATime | EncoderMemory::OneAtATimeWithoutTransformer => {
                let tokenizers = match &self.tokenizers {
                    Some(t) => t,
                    None => self.tokenizers.insert(PromptTokenizers::load(
                        &self.snapshot,
                        &self.selection.llama,
                    )?),
                };
                let tokens = prompts
                    .iter()
                    .map(|p| tokenizers.tokenize(p))
                    .collect::<Result<Vec<_>, _>>()?;
                let away = self.memory == EncoderMemory::OneAtATimeWithoutTransformer;
                let resident = self.transformer.resident_blocks();
                if away {
                    self.transformer = self.transformer.clone().place(&Device::Cpu, usize::MAX)?;
                }
                let encodings = encode_one_at_a_time(
                    &self.snapshot,
                    &self.selection.llama,
                    (encoder_dtype, &encoder_device),
                    &tokens,
                );
                if away {
                    self.transformer = self.transformer.clone().place(&self.device, resident)?;
                }
                self.encoder_loads += 1;
                (tokens, encodings?)
            }
        };
        tokens
            .iter()
            .zip(encodings)
            .map(|(t, e)| {
                Ok(EncodedPrompt {
                    encoding: e.to_device(&self.device)?,
                    truncated: t.truncated(),
                })
            })
            .collect()
    }
}
