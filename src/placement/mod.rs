//! The placement planner (issue 18, "memory tiers"): for a GPU memory budget, where the
//! transformer, the text encoders and the decode go, and what each phase will hold at its peak.
//!
//! Sizes come from the code that loads the models: the released configs (built in) parsed into
//! our config types, every tensor our constructors ask for, and the quantiser's per-tensor
//! recipe for GGUF formats. What the weights do not cover is the memory model in [`memory`],
//! each constant with its reason. The planner is arithmetic; the engine follows it
//! (`pipelines::placement`): GGUF layers stay quantised and are dequantised one at a time,
//! streamed blocks live in host memory and are copied in for each evaluation, and the encoders
//! run all at once, one at a time (with the transformer moved out if need be) or on the CPU.
//! Two things the engine does not do as planned: the copies are synchronous from pageable host
//! memory (no pinned buffers, no second stream to overlap them), and the decode keeps its own
//! whole-or-tiled rule.

mod ladder;
pub mod memory;
mod planner;
mod released;
mod size;
mod table;
#[cfg(test)]
mod tiers_tests;
mod weights;

pub use ladder::LADDER;
pub use memory::PlanModel;
pub use planner::{
    DecodePlacement, EncoderDevice, EncoderPlacement, PhasePeaks, Placement, PlanRequest, Planner,
    TransformerPlacement,
};
pub use released::ModelConfigs;
pub use size::{SizeError, gb, parse_size};
pub use table::{
    TIERS, TableRequest, TierPlacement, render_placement, render_tiers, tier_placements,
};
pub use weights::{EncoderBytes, EncoderFormat, ModelWeights, TransformerBytes};

/// Why a placement could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("the built-in {what} config is not valid ({detail}); this is a bug, please report it")]
    BuiltInConfig { what: &'static str, detail: String },
    #[error("sizing the {what} failed ({detail}); this is a bug, please report it")]
    Audit { what: &'static str, detail: String },
    #[error(
        "{model} with a {format} transformer does not fit {} even with every block streamed: \
         it needs at least {}; give a larger --vram-budget or a smaller --transformer-type",
        gb(*budget),
        gb(*needed)
    )]
    DoesNotFit {
        model: &'static str,
        format: &'static str,
        budget: u64,
        needed: u64,
    },
    #[error(
        "the text encoders do not fit the GPU: the largest, {largest} ({}), needs {} even \
         alone, more than {}; use --encoder-device cpu or --encoder-type q8_0",
        gb(*size),
        gb(*needed),
        gb(*budget)
    )]
    EncodersDoNotFit {
        largest: &'static str,
        size: u64,
        needed: u64,
        budget: u64,
    },
}
