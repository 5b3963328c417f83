use candle_core::Tensor;

use crate::engine::{Cancelled, JobContext};

/// How a pipeline reports what it is doing and learns that it should stop.
pub trait Progress {
    fn stage(&mut self, stage: &str) -> Result<(), Cancelled>;

    /// `step` of `total` denoising steps are done; `preview` is the current x0 estimate.
    fn step(&mut self, step: usize, total: usize, preview: Option<Tensor>)
    -> Result<(), Cancelled>;
}

impl<O> Progress for JobContext<'_, O> {
    fn stage(&mut self, stage: &str) -> Result<(), Cancelled> {
        JobContext::stage(self, stage)
    }

    fn step(
        &mut self,
        step: usize,
        total: usize,
        preview: Option<Tensor>,
    ) -> Result<(), Cancelled> {
        JobContext::step(self, step, total, preview)
    }
}

/// Reports nothing and never stops (for library callers and tests).
pub struct Silent;

impl Progress for Silent {
    fn stage(&mut self, _: &str) -> Result<(), Cancelled> {
        Ok(())
    }

    fn step(&mut self, _: usize, _: usize, _: Option<Tensor>) -> Result<(), Cancelled> {
        Ok(())
    }
}
