//! A job's GPU memory, stage by stage, for `generate --json` and the history.

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::decode::DecodeMode;
use crate::device_memory::PeakTracker;

/// Peak device memory while each stage ran, in bytes (the whole device's use: see
/// [`crate::device_memory`] for what is measured), and how the result was decoded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuMemoryRecord {
    /// Encoding the prompts (with the text encoders loaded).
    pub encode_peak_bytes: Option<u64>,
    /// Denoising, after the encoders were freed (or kept, as the memory policy says).
    pub denoise_peak_bytes: Option<u64>,
    pub decode_peak_bytes: Option<u64>,
    pub decode: DecodeMode,
}

/// Measures a job's stages on one device; on the CPU it records nothing.
pub(crate) struct StageMemory {
    tracker: PeakTracker,
    record: GpuMemoryRecord,
}

impl StageMemory {
    pub fn new(device: &Device) -> Self {
        Self {
            tracker: PeakTracker::new(device),
            record: GpuMemoryRecord::default(),
        }
    }

    /// A sample inside a stage (after each denoising step).
    pub fn sample(&mut self) {
        self.tracker.sample();
    }

    /// Ends the encoding stage and starts measuring the denoising one.
    pub fn encoded(&mut self) {
        self.record.encode_peak_bytes = self.finish_stage();
    }

    /// Ends the denoising stage and starts measuring the decoding one.
    pub(crate) fn denoised(&mut self) {
        self.record.denoise_peak_bytes = self.finish_stage();
    }

    pub fn decoded(&mut self, mode: DecodeMode) {
        self.record.decode_peak_bytes = self.finish_stage();
        self.record.decode = mode;
    }

    fn finish_stage(&mut self) -> Option<u64> {
        self.tracker.sample();
        let peak = self.tracker.peak_bytes();
        self.tracker.reset();
        peak
    }

    /// The record, or `None` on the CPU.
    pub(crate) fn into_record(self) -> Option<GpuMemoryRecord> {
        self.record.encode_peak_bytes.map(|_| self.record)
    }
}
