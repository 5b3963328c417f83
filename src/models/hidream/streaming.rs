//! Block streaming: when the transformer does not fit the GPU, its last blocks (in execution
//! order) stay in host memory and each is copied to the GPU just before it runs, then freed.
//! The first `resident` blocks, the embedders, the caption projections and the final layer stay
//! on the GPU. A step then moves the streamed blocks' bytes over PCIe once (the placement
//! planner's `streamed_bytes_per_step`) and holds one streamed block at a time beside the
//! resident ones.
//!
//! The copies are synchronous: candle queues the copy and the block's kernels on one stream,
//! so a copy does not overlap the previous block's compute (overlapping them needs a second
//! stream and pinned host buffers, which candle does not expose).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{Device, Result};

use super::blocks::{DoubleStreamBlock, SingleStreamBlock};
use super::moe::ExpertRouting;
use crate::models::device_copy::ToDevice;

/// A block that can be copied to the compute device and told how to route there.
pub(crate) trait StreamableBlock: ToDevice + Clone {
    fn route(&mut self, routing: ExpertRouting) -> Result<()>;
}

impl StreamableBlock for DoubleStreamBlock {
    fn route(&mut self, routing: ExpertRouting) -> Result<()> {
        self.set_expert_routing(routing)
    }
}

impl StreamableBlock for SingleStreamBlock {
    fn route(&mut self, routing: ExpertRouting) -> Result<()> {
        self.set_expert_routing(routing)
    }
}

/// Which blocks live in host memory, and how they run on the compute device.
#[derive(Debug, Clone)]
pub(crate) struct Streaming {
    /// Blocks from this index on (dual-stream blocks first, then single-stream) are in host
    /// memory.
    pub resident_blocks: usize,
    /// Where the blocks run.
    pub device: Device,
    /// How the copied blocks' experts route on `device`.
    pub routing: ExpertRouting,
    /// Block copies made so far (shared by clones of the model).
    copies: Arc<AtomicUsize>,
}

impl Streaming {
    pub fn new(resident_blocks: usize, device: &Device, routing: ExpertRouting) -> Self {
        Self {
            resident_blocks,
            device: device.clone(),
            routing,
            copies: Arc::default(),
        }
    }

    pub fn copies(&self) -> usize {
        self.copies.load(Ordering::Relaxed)
    }

    /// Block `index` (execution order) ready to run: itself when resident, else a copy on the
    /// compute device, dropped (and its memory freed) when the caller is done with it.
    pub fn on_device<'a, B: StreamableBlock>(
        &self,
        index: usize,
        block: &'a B,
    ) -> Result<Cow<'a, B>> {
        if index < self.resident_blocks {
            return Ok(Cow::Borrowed(block));
        }
        let mut copy = block.to_device(&self.device)?;
        copy.route(self.routing)?;
        self.copies.fetch_add(1, Ordering::Relaxed);
        Ok(Cow::Owned(copy))
    }
}
