use std::path::PathBuf;

use crate::engine::Cancelled;
use crate::weights::WeightsError;
use crate::weights::torch_pt::PtError;

use super::classes::ClassError;

/// Everything that can stop a Hi-DiT run, each naming the file (and key or field) or the
/// setting, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum HiditError {
    #[error(
        "{dir}: not a REPA-E experiment folder: it has no args.json; point --model at the \
         folder that holds args.json and checkpoints/"
    )]
    NotAnExperiment { dir: PathBuf },

    #[error(transparent)]
    Weights(#[from] WeightsError),

    #[error(transparent)]
    Pt(#[from] PtError),

    #[error("{path}: field `{field}` {problem}")]
    Field {
        path: PathBuf,
        field: &'static str,
        problem: String,
    },

    #[error(
        "{dir}: has no checkpoints (checkpoints/NNNNNNN.pt); the training saved none yet, or \
         point --checkpoint at the file"
    )]
    NoCheckpoint { dir: PathBuf },

    #[error(
        "{dir}: holds several checkpoints (steps {steps}); choose one with --checkpoint STEP \
         (the latest is {latest})"
    )]
    SeveralCheckpoints {
        dir: PathBuf,
        steps: String,
        latest: String,
    },

    #[error("--checkpoint {given}: {problem}")]
    CheckpointNotFound { given: String, problem: String },

    #[error("{path}: cannot read the tensors: {detail}; the file is damaged: fetch it again")]
    Safetensors { path: PathBuf, detail: String },

    #[error(
        "{path}: the {what} does not match the architecture {source_of_arch} describes:{details}\n\
         this is not the checkpoint of this model, or args.json describes another one"
    )]
    Mismatch {
        path: PathBuf,
        what: &'static str,
        source_of_arch: String,
        details: String,
    },

    #[error("{path}: cannot build the {what}: {source}")]
    Build {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: candle_core::Error,
    },

    #[error("{path}: tensor `{tensor}` {problem}")]
    Stats {
        path: PathBuf,
        tensor: &'static str,
        problem: String,
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
    Compute(#[from] candle_core::Error),

    #[error("cancelled")]
    Cancelled(#[from] Cancelled),
}
