use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Tensor;
use crossbeam_channel::Sender;

use super::Notifier;
use super::event::{Event, JobId};

/// What the engine runs. Implementations load models for a request and run it, reporting
/// progress through the [`JobContext`].
pub trait Backend: Send + 'static {
    type Request: Send + 'static;
    type Output: Send + 'static;
    /// Identifies the set of models a request needs (model folders, dtype, device). Consecutive
    /// jobs with equal keys reuse the loaded models.
    type ModelKey: PartialEq + Clone + fmt::Debug + Send;
    type Models: Send;

    fn model_key(&self, request: &Self::Request) -> Self::ModelKey;

    /// A short description of what `load` will load, for the `Loading` event.
    fn describe(&self, key: &Self::ModelKey) -> String {
        format!("{key:?}")
    }

    fn load(&mut self, key: &Self::ModelKey) -> anyhow::Result<Self::Models>;

    fn run(
        &mut self,
        models: &mut Self::Models,
        request: &Self::Request,
        ctx: &mut JobContext<'_, Self::Output>,
    ) -> Result<Self::Output, JobError>;
}

/// The job was cancelled by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// How a job can end other than with an output.
#[derive(Debug)]
pub enum JobError {
    Cancelled,
    Failed(anyhow::Error),
}

impl From<Cancelled> for JobError {
    fn from(_: Cancelled) -> Self {
        Self::Cancelled
    }
}

impl From<anyhow::Error> for JobError {
    fn from(error: anyhow::Error) -> Self {
        // A cancellation that travelled through `?` as an anyhow error is still a cancellation.
        if error.is::<Cancelled>() {
            Self::Cancelled
        } else {
            Self::Failed(error)
        }
    }
}

/// A running job's link back to the engine: progress reports and the cancellation flag.
pub struct JobContext<'a, O> {
    id: JobId,
    cancel: &'a AtomicBool,
    events: &'a Sender<Event<O>>,
    notify: &'a Notifier,
}

/// A second link for the same job: an agent turn reports its reply's text through one while
/// the pictures of its plan report their steps through the other.
impl<O> Clone for JobContext<'_, O> {
    fn clone(&self) -> Self {
        Self { ..*self }
    }
}

impl<'a, O> JobContext<'a, O> {
    pub(super) fn new(
        id: JobId,
        cancel: &'a AtomicBool,
        events: &'a Sender<Event<O>>,
        notify: &'a Notifier,
    ) -> Self {
        Self {
            id,
            cancel,
            events,
            notify,
        }
    }

    pub fn id(&self) -> JobId {
        self.id
    }

    /// The flag the user's cancel sets, for work that checks it itself (an agent's plan).
    pub(crate) fn cancel_flag(&self) -> &'a AtomicBool {
        self.cancel
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Returns `Err(Cancelled)` once the user has cancelled the job.
    pub(crate) fn check_cancelled(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// Reports a phase of the job.
    pub fn stage(&mut self, stage: impl Into<String>) -> Result<(), Cancelled> {
        self.send(Event::Stage {
            id: self.id,
            stage: stage.into(),
        });
        self.check_cancelled()
    }

    /// Reports that `step` of `total` denoising steps are done, then checks for cancellation:
    /// this is the boundary at which a cancel takes effect.
    pub fn step(
        &mut self,
        step: usize,
        total: usize,
        preview: Option<Tensor>,
    ) -> Result<(), Cancelled> {
        self.send(Event::Step {
            id: self.id,
            step,
            total,
            preview,
        });
        self.check_cancelled()
    }

    /// Hands the window something the job made before its end (see [`Event::Partial`]).
    pub fn partial(&self, output: O) {
        self.send(Event::Partial {
            id: self.id,
            output,
        });
    }

    fn send(&self, event: Event<O>) {
        // The handle owns the receiver; if it is gone nobody is listening and that is fine.
        let _ = self.events.send(event);
        (self.notify)();
    }
}
