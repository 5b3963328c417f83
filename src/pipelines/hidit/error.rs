use std::path::PathBuf;

use crate::engine::Cancelled;
use crate::models::hidit::files::HiditFilesError;
use crate::weights::WeightsError;

use super::classes::ClassError;

/// Everything that can stop a Hi-DiT run, each naming the file (and key or field) or the
/// setting, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum HiditError {
    #[error(transparent)]
    Files(#[from] HiditFilesError),

    #[error(transparent)]
    Weights(#[from] WeightsError),

    #[error("{path}: field `{field}` {problem}")]
    Field {
        path: PathBuf,
        field: &'static str,
        problem: String,
    },

    #[error("{path}: cannot build the {what}: {cause}")]
    Build {
        path: PathBuf,
        what: &'static str,
        cause: candle_core::Error,
    },

    #[error("the files do not fit together: {0}")]
    Incompatible(String),

    #[error(transparent)]
    Class(#[from] ClassError),

    #[error("{flag} {problem}")]
    Setting { flag: &'static str, problem: String },

    #[error("--noise: {0}")]
    Noise(String),

    #[error("sampling failed: {0}")]
    Compute(candle_core::Error),

    #[error("cancelled")]
    Cancelled(#[from] Cancelled),
}

// A hand-written From, not #[from]: the cause is in the message, not chained as a source,
// so `{:#}` says it once.
impl From<candle_core::Error> for HiditError {
    fn from(cause: candle_core::Error) -> Self {
        Self::Compute(cause)
    }
}
