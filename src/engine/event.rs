use std::time::Duration;

use candle_core::Tensor;

use crate::settings::SettingsError;

/// Identifies a job in the engine's events; assigned by [`super::Engine::submit`].
pub type JobId = u64;

/// What the engine reports about a job, in order: `Queued`, then `Loading` (only when models
/// must be (re)loaded), `Started`, any number of `Stage`, `Step` and `Partial`, and exactly one
/// of `Finished`, `Failed` or `Cancelled`.
#[derive(Debug)]
pub enum Event<O> {
    Queued {
        id: JobId,
    },
    Loading {
        id: JobId,
        /// What is being loaded, for the user ("HiDream-I1-Full from /models/…").
        what: String,
    },
    Started {
        id: JobId,
    },
    /// A phase of the job other than denoising ("encoding the prompt", "decoding").
    Stage {
        id: JobId,
        stage: String,
    },
    Step {
        id: JobId,
        /// 1-based: `step` of `total` denoising steps are done.
        step: usize,
        total: usize,
        /// The current clean-image estimate (latents), for previews.
        preview: Option<Tensor>,
    },
    /// Something the job produced before its end: an agent turn streams its reply's text and
    /// the pictures of its plan this way, each as it is made.
    Partial {
        id: JobId,
        output: O,
    },
    Finished {
        id: JobId,
        output: O,
        elapsed: Duration,
    },
    Failed {
        id: JobId,
        /// A message written for the user, naming a setting in neither place's words.
        error: String,
        /// The setting the job was refused on, when that is the whole error: the command line
        /// words it with its flag, the window with its label, in place of `error`.
        setting: Option<SettingsError>,
    },
    Cancelled {
        id: JobId,
    },
}

impl<O> Event<O> {
    pub fn id(&self) -> JobId {
        match self {
            Self::Queued { id }
            | Self::Loading { id, .. }
            | Self::Started { id }
            | Self::Stage { id, .. }
            | Self::Step { id, .. }
            | Self::Partial { id, .. }
            | Self::Finished { id, .. }
            | Self::Failed { id, .. }
            | Self::Cancelled { id } => *id,
        }
    }

    /// Whether this is the last event of its job.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Finished { .. } | Self::Failed { .. } | Self::Cancelled { .. }
        )
    }
}
