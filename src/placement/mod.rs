//! The placement planner (issue 18, "memory tiers"): for a GPU memory budget, where the
//! transformer, the text encoders and the decode go, and what each phase will hold at its peak.
//!
//! Sizes come from the code that loads the models: the released configs (built in) parsed into
//! our config types, every tensor our constructors ask for, and the quantiser's per-tensor
//! recipe for GGUF formats. What the weights do not cover is the memory model in [`memory`],
//! each constant with its reason.

pub mod memory;
mod released;
mod size;
mod weights;

pub use memory::PlanModel;
pub use released::ModelConfigs;
pub use size::{SizeError, gb, parse_size};
pub use weights::{EncoderBytes, EncoderFormat, ModelWeights, TransformerBytes};

/// Why a placement could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("the built-in {what} config is not valid ({detail}); this is a bug, please report it")]
    BuiltInConfig { what: &'static str, detail: String },
    #[error("sizing the {what} failed ({detail}); this is a bug, please report it")]
    Audit { what: &'static str, detail: String },
}
