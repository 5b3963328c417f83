//! The placement planner (issue 18, "memory tiers"): for a GPU memory budget, where the
//! transformer, the text encoders and the decode go, and what each phase will hold at its peak.
//!
//! Sizes come from the code that loads the models: the released configs (built in) parsed into
//! our config types, every tensor our constructors ask for, and the quantiser's per-tensor
//! recipe for GGUF formats.

mod released;
mod weights;

pub use released::ModelConfigs;
pub use weights::{EncoderBytes, EncoderFormat, ModelWeights, TransformerBytes};

/// Why a placement could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("the built-in {what} config is not valid ({detail}); this is a bug, please report it")]
    BuiltInConfig { what: &'static str, detail: String },
    #[error("sizing the {what} failed ({detail}); this is a bug, please report it")]
    Audit { what: &'static str, detail: String },
}
