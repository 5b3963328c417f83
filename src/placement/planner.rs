//! Where each model goes for a GPU memory budget: the transformer resident or streamed block by
//! block from host memory, the text encoders all resident, one at a time or on the CPU,
//! the decode whole or in tiles; with the peak of each phase and the arithmetic behind every
//! choice. Pure: the same request always gives the same placement.

use serde::Serialize;

use super::PlacementError;
use super::memory::{
    self, ENCODER_WORKING, IMAGE_SIDE, PCIE_BYTES_PER_SECOND, PlanModel, RESERVE, STAGING_SLOTS,
    Workload,
};
use super::released::ModelConfigs;
use super::size::gb;
use super::weights::{EncoderBytes, EncoderFormat, ModelWeights, TransformerBytes};
use crate::quantize::QuantTarget;

/// Where the text encoders may run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum EncoderDevice {
    Gpu,
    Cpu,
}

/// What to plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanRequest {
    /// GPU memory the plan may use, in bytes.
    pub budget: u64,
    pub model: PlanModel,
    pub transformer: QuantTarget,
    pub encoders: EncoderFormat,
    /// `None`: the GPU where they fit, else the CPU.
    pub encoder_device: Option<EncoderDevice>,
}

/// Where the text encoders run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderPlacement {
    /// All four on the GPU beside the transformer, kept between prompts.
    AllResident,
    /// On the GPU one at a time, each freed before the next loads, beside the resident
    /// transformer.
    OneAtATimeBesideTransformer,
    /// On the GPU one at a time, before the transformer loads: a new prompt frees the
    /// transformer and loads it again afterwards.
    OneAtATimeBeforeTransformer,
    Cpu,
}

impl EncoderPlacement {
    pub fn describe(self) -> &'static str {
        match self {
            Self::AllResident => "all resident",
            Self::OneAtATimeBesideTransformer => "one at a time, beside it",
            Self::OneAtATimeBeforeTransformer => "one at a time, before it",
            Self::Cpu => "CPU",
        }
    }
}

/// Where the transformer's weights live during denoising.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TransformerPlacement {
    Resident,
    /// The first `resident_blocks` blocks (in execution order) stay on the GPU; the others
    /// live in host memory and are copied in every step (two staging slots: the copy being
    /// made and the block running; the engine's copies are synchronous for now, see
    /// `models::hidream::streaming`).
    Streamed {
        resident_blocks: usize,
        blocks: usize,
        streamed_bytes_per_step: u64,
        staging_bytes: u64,
    },
}

impl TransformerPlacement {
    pub fn describe(self) -> String {
        match self {
            Self::Resident => "resident".into(),
            Self::Streamed {
                resident_blocks,
                blocks,
                ..
            } => format!("{resident_blocks}/{blocks}"),
        }
    }
}

/// How the latents are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodePlacement {
    Whole,
    /// In the engine's default tiles.
    Tiled,
}

/// Peak GPU memory of each phase, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PhasePeaks {
    /// Encoding the prompts.
    pub encode: u64,
    /// Denoising.
    pub denoise: u64,
    /// Decoding (and E1.1's source encode, which needs less).
    pub decode: u64,
}

impl PhasePeaks {
    pub fn max(&self) -> u64 {
        self.encode.max(self.denoise).max(self.decode)
    }
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    pub model: PlanModel,
    pub budget_bytes: u64,
    /// The transformer's format (`bf16`, `q8_0`, …).
    pub transformer_format: &'static str,
    pub transformer_bytes: u64,
    pub encoder_format: EncoderFormat,
    pub workload: Workload,
    pub transformer: TransformerPlacement,
    pub encoders: EncoderPlacement,
    pub decode: DecodePlacement,
    pub peak_bytes: PhasePeaks,
    pub overall_peak_bytes: u64,
    /// What the whole transformer resident would need at its worst phase: denoising, or a
    /// tiled decode beside it.
    pub resident_need_bytes: u64,
    /// Host memory the placement holds: streamed blocks and encoders on the CPU.
    pub host_bytes: u64,
    pub reasons: Vec<String>,
}

/// The released models' sizes, worked out once, and the planning over them.
#[derive(Debug, Clone)]
pub struct Planner {
    configs: ModelConfigs,
    weights: ModelWeights,
}

/// "a 1.0 GB + b 2.0 GB = 3.0 GB": a sum as the reasons show it.
fn sum_line(parts: &[(&str, u64)]) -> (u64, String) {
    let total = parts.iter().map(|p| p.1).sum();
    let terms: Vec<String> = parts
        .iter()
        .filter(|p| p.1 > 0)
        .map(|(name, bytes)| format!("{name} {}", gb(*bytes)))
        .collect();
    (total, format!("{} = {}", terms.join(" + "), gb(total)))
}

fn compare(total: u64, budget: u64) -> String {
    if total <= budget {
        format!("≤ {}", gb(budget))
    } else {
        format!("> {}", gb(budget))
    }
}

/// The transformer's GPU footprint: everything outside the blocks, the resident blocks and
/// the staging slots for the streamed ones.
struct Footprint {
    bytes: u64,
    placement: TransformerPlacement,
    streamed: u64,
}

fn footprint(t: &TransformerBytes, resident_blocks: usize) -> Footprint {
    let blocks = t.blocks.len();
    let resident: u64 = t.blocks[..resident_blocks].iter().sum();
    let streamed: u64 = t.blocks[resident_blocks..].iter().sum();
    if resident_blocks == blocks {
        return Footprint {
            bytes: t.total(),
            placement: TransformerPlacement::Resident,
            streamed: 0,
        };
    }
    let largest = t.blocks[resident_blocks..]
        .iter()
        .copied()
        .max()
        .unwrap_or(0);
    let staging = STAGING_SLOTS * largest;
    Footprint {
        bytes: t.outside_blocks + resident + staging,
        placement: TransformerPlacement::Streamed {
            resident_blocks,
            blocks,
            streamed_bytes_per_step: streamed,
            staging_bytes: staging,
        },
        streamed,
    }
}

/// Each phase's need without the encoders.
struct Phases {
    transformer: u64,
    denoise: u64,
    decode: u64,
}

/// What every phase holds besides the transformer and the phase's own work.
struct Common {
    vae: u64,
    cache: u64,
}

impl Planner {
    /// Sizes the released HiDream models.
    pub fn released() -> Result<Self, PlacementError> {
        let configs = ModelConfigs::released()?;
        let weights = ModelWeights::audit(&configs)?;
        Ok(Self { configs, weights })
    }

    /// Sizes the models of `configs` (a snapshot's own, read from its config.json files).
    pub fn for_configs(configs: ModelConfigs) -> Result<Self, PlacementError> {
        let weights = ModelWeights::audit(&configs)?;
        Ok(Self { configs, weights })
    }

    pub fn weights(&self) -> &ModelWeights {
        &self.weights
    }

    pub fn configs(&self) -> &ModelConfigs {
        &self.configs
    }

    pub fn plan(&self, req: &PlanRequest) -> Result<Placement, PlacementError> {
        let c = &self.configs;
        let budget = req.budget;
        let t = self.weights.transformer(req.transformer);
        let enc = self.weights.encoders(req.encoders);
        let work = req.model.workload(&c.transformer);
        let act = memory::dit_activations(&c.transformer, &work);
        let scratch = memory::dequantisation_scratch(&c.transformer, req.transformer);
        let common = Common {
            vae: self.weights.vae(),
            cache: memory::prompt_cache(&c.clip_l, &c.clip_g, &c.t5, &c.llama),
        };
        let format = req.transformer.name();
        let mut reasons = vec![format!(
            "{}: {} tokens a sample ({} image + {} text) × batch {}, activations {} + projected \
             prompts {}",
            req.model.name(),
            work.tokens(),
            work.image_tokens,
            work.text_tokens,
            work.batch,
            gb(act.blocks),
            gb(act.conditioning)
        )];

        let denoise_parts = |transformer: (&str, u64)| {
            sum_line(&[
                transformer,
                ("activations", act.total()),
                ("dequantisation scratch", scratch),
                ("prompt cache", common.cache),
                ("VAE", common.vae),
                ("reserve", RESERVE),
            ])
        };
        let tiled = memory::vae_decode_tiled(&c.vae, IMAGE_SIDE);
        // The transformer stays on the GPU through the decode (the next job reuses it), so a
        // tiled decode beside it must fit as well as the denoising.
        let need = |bytes: u64| {
            let denoise = denoise_parts(("transformer", bytes)).0;
            denoise.max(bytes + tiled + common.vae + common.cache + RESERVE)
        };
        let fits = |f: &Footprint| need(f.bytes) <= budget;
        let (resident_denoise, resident_line) =
            denoise_parts((&*format!("{format} transformer"), t.total()));
        let resident_need = need(t.total());
        let all = footprint(&t, t.blocks.len());
        let chosen = if fits(&all) {
            reasons.push(format!(
                "transformer resident: {resident_line} {}",
                compare(resident_denoise, budget)
            ));
            all
        } else {
            let Some(f) = (0..t.blocks.len())
                .rev()
                .map(|n| footprint(&t, n))
                .find(|f| fits(f))
            else {
                let least = footprint(&t, 0);
                return Err(PlacementError::DoesNotFit {
                    model: req.model.name(),
                    format,
                    budget,
                    needed: need(least.bytes),
                });
            };
            let on_gpu = denoise_parts(("transformer on the GPU", f.bytes));
            reasons.push(streamed_reason(
                &f,
                &t,
                format,
                (resident_need, budget),
                on_gpu,
            ));
            f
        };

        let (decode, decode_bytes) = self.decode(&chosen, &common, budget, &mut reasons);
        // The phases without the encoders; all-resident encoders add to both.
        let phases = Phases {
            transformer: chosen.bytes,
            denoise: denoise_parts(("transformer", chosen.bytes)).0,
            decode: chosen.bytes + decode_bytes + common.vae + common.cache + RESERVE,
        };
        let (encoders, encode_peak) =
            self.encoders(req, &enc, &phases, &common, budget, &mut reasons)?;
        let with_encoders = if encoders == EncoderPlacement::AllResident {
            enc.total()
        } else {
            0
        };
        let peaks = PhasePeaks {
            encode: encode_peak,
            denoise: phases.denoise + with_encoders,
            decode: phases.decode + with_encoders,
        };
        let host_encoders = if encoders == EncoderPlacement::Cpu {
            enc.cpu_peak(req.encoders)
        } else {
            0
        };
        Ok(Placement {
            model: req.model,
            budget_bytes: budget,
            transformer_format: format,
            transformer_bytes: t.total(),
            encoder_format: req.encoders,
            workload: work,
            transformer: chosen.placement,
            encoders,
            decode,
            overall_peak_bytes: peaks.max(),
            peak_bytes: peaks,
            resident_need_bytes: resident_need,
            host_bytes: chosen.streamed + host_encoders,
            reasons,
        })
    }

    /// Whole when it fits beside the transformer, else tiles.
    fn decode(
        &self,
        transformer: &Footprint,
        common: &Common,
        budget: u64,
        reasons: &mut Vec<String>,
    ) -> (DecodePlacement, u64) {
        let vae = &self.configs.vae;
        let whole = memory::vae_decode(vae, IMAGE_SIDE);
        let parts = |decode: u64| {
            sum_line(&[
                ("transformer", transformer.bytes),
                ("decode", decode),
                ("VAE", common.vae),
                ("prompt cache", common.cache),
                ("reserve", RESERVE),
            ])
        };
        let (need, line) = parts(whole);
        if need <= budget {
            reasons.push(format!(
                "decode {IMAGE_SIDE}² whole: {line} {}",
                compare(need, budget)
            ));
            return (DecodePlacement::Whole, whole);
        }
        let tiled = memory::vae_decode_tiled(vae, IMAGE_SIDE);
        let (tiled_need, tiled_line) = parts(tiled);
        reasons.push(format!(
            "decode {IMAGE_SIDE}² in tiles: whole it would need {} > {}; tiled: {tiled_line} {}",
            gb(need),
            gb(budget),
            compare(tiled_need, budget)
        ));
        (DecodePlacement::Tiled, tiled)
    }

    /// The encoders' placement and the encode phase's peak: all resident, one at a time beside
    /// the transformer, one at a time before it, or the CPU, the first that fits.
    fn encoders(
        &self,
        req: &PlanRequest,
        enc: &EncoderBytes,
        phases: &Phases,
        common: &Common,
        budget: u64,
        reasons: &mut Vec<String>,
    ) -> Result<(EncoderPlacement, u64), PlacementError> {
        let c = &self.configs;
        let scratch = memory::encoder_scratch(&c.llama, &c.t5, req.encoders);
        let working = ENCODER_WORKING + scratch;
        let (largest_name, largest) = enc.largest();
        let largest_label = format!("largest {largest_name}");
        let always = [
            ("prompt cache", common.cache),
            ("VAE", common.vae),
            ("reserve", RESERVE),
        ];
        let with = |parts: &[(&str, u64)]| {
            let mut all = parts.to_vec();
            all.extend_from_slice(&always);
            sum_line(&all)
        };
        let format = req.encoders.name();
        if req.encoder_device == Some(EncoderDevice::Cpu) {
            let (need, line) = with(&[("transformer", phases.transformer)]);
            reasons.push(format!(
                "encoders on the CPU (--encoder-device cpu), one at a time in f32 from {format}: \
                 {} of host memory at most; the GPU holds {line}",
                gb(enc.cpu_peak(req.encoders))
            ));
            return Ok((EncoderPlacement::Cpu, need));
        }
        let transformer_part = ("transformer", phases.transformer);
        // All resident: the later phases carry the encoders too.
        let (all_encode, all_line) = with(&[
            transformer_part,
            ("encoders", enc.total()),
            ("working", working),
        ]);
        let all_peak = all_encode
            .max(phases.denoise + enc.total())
            .max(phases.decode + enc.total());
        if all_peak <= budget {
            reasons.push(format!(
                "encoders ({format}) all resident beside the transformer: {all_line}; with \
                 them the peak is {} {}",
                gb(all_peak),
                compare(all_peak, budget)
            ));
            return Ok((EncoderPlacement::AllResident, all_encode));
        }
        let (beside, beside_line) = with(&[
            transformer_part,
            (&largest_label, largest),
            ("working", working),
        ]);
        if beside <= budget {
            reasons.push(format!(
                "encoders ({format}) one at a time beside the transformer, each freed after use: \
                 {beside_line} {}; all four kept would need {} > {}",
                compare(beside, budget),
                gb(all_peak),
                gb(budget)
            ));
            return Ok((EncoderPlacement::OneAtATimeBesideTransformer, beside));
        }
        let (before, before_line) = with(&[(&largest_label, largest), ("working", working)]);
        if before <= budget {
            reasons.push(format!(
                "encoders ({format}) one at a time on the GPU, freed before the transformer \
                 loads: {before_line} {}; beside the transformer they would need {} > {}, so a \
                 new prompt frees the transformer and loads it again",
                compare(before, budget),
                gb(beside),
                gb(budget)
            ));
            return Ok((EncoderPlacement::OneAtATimeBeforeTransformer, before));
        }
        if req.encoder_device == Some(EncoderDevice::Gpu) {
            return Err(PlacementError::EncodersDoNotFit {
                largest: largest_name,
                size: largest,
                needed: before,
                budget,
            });
        }
        let (need, line) = with(&[transformer_part]);
        let hint = if req.encoders == EncoderFormat::Bf16 {
            let q8 = self.weights.encoders(EncoderFormat::Q8_0).largest().1;
            let q8_working =
                ENCODER_WORKING + memory::encoder_scratch(&c.llama, &c.t5, EncoderFormat::Q8_0);
            let q8_need = with(&[("", q8), ("", q8_working)]).0;
            if q8_need <= budget {
                format!(
                    " (with --encoder-type q8_0 the largest would need {}, which fits)",
                    gb(q8_need)
                )
            } else {
                format!(" (with --encoder-type q8_0 still {})", gb(q8_need))
            }
        } else {
            String::new()
        };
        reasons.push(format!(
            "encoders on the CPU, one at a time in f32, {} of host memory at most: on the GPU \
             even alone they would need {} > {}{hint}; the GPU holds {line}",
            gb(enc.cpu_peak(req.encoders)),
            gb(before),
            gb(budget)
        ));
        Ok((EncoderPlacement::Cpu, need))
    }
}

/// Why and how the transformer streams.
fn streamed_reason(
    f: &Footprint,
    t: &TransformerBytes,
    format: &str,
    (resident_need, budget): (u64, u64),
    (need, line): (u64, String),
) -> String {
    let TransformerPlacement::Streamed {
        resident_blocks,
        blocks,
        staging_bytes,
        ..
    } = f.placement
    else {
        return String::new();
    };
    let resident: u64 = t.blocks[..resident_blocks].iter().sum();
    format!(
        "{format} transformer {} does not fit resident (it would need {} at its worst phase, > \
         {}): {resident_blocks} of {blocks} \
         blocks resident, {} streamed from host memory, {} a step (≈{:.2} s at {:.0} GB/s); \
         on the GPU outside the blocks {} + resident blocks {} + {STAGING_SLOTS} staging slots {}; \
         {line} {}",
        gb(t.total()),
        gb(resident_need),
        gb(budget),
        blocks - resident_blocks,
        gb(f.streamed),
        f.streamed as f64 / PCIE_BYTES_PER_SECOND,
        PCIE_BYTES_PER_SECOND / 1e9,
        gb(t.outside_blocks),
        gb(resident),
        gb(staging_bytes),
        compare(need, budget)
    )
}
