//! The placement planner (issue 18, "memory tiers"): for a GPU memory budget, where the
//! transformer, the text encoders and the decode go, and what each phase will hold at its peak.

mod released;

pub use released::ModelConfigs;

/// Why a placement could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("the built-in {what} config is not valid ({detail}); this is a bug, please report it")]
    BuiltInConfig { what: &'static str, detail: String },
}
