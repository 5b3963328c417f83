//! How much GPU memory a run uses, from the CUDA driver: the device's used memory
//! (`total − free`, `cuMemGetInfo`) at chosen sample points, corrected by the high-water mark of
//! candle's memory pool, and the largest value seen.
//!
//! What the numbers mean, honestly:
//! - candle (through cudarc 0.19) allocates every tensor with `cuMemAllocAsync` from the
//!   device's default memory pool and frees it as soon as it is dropped. Freed blocks stay
//!   reserved in the pool (and count as used) until the next stream, event or context
//!   synchronisation hands them back to the driver (the default pool's release threshold is 0);
//!   a device-to-host copy synchronises too.
//! - So `total − free` alone is a maximum over the sample points only: what a stage allocated
//!   and freed before a synchronisation between two samples is missed.
//! - The pool also keeps the high-water mark of its live allocations (`USED_MEM_HIGH`), whatever
//!   the synchronisations. Each sample therefore also counts `used − pool reserved now + pool
//!   high-water`: the memory outside the pool (CUDA context, cuBLAS workspaces, other processes)
//!   as it is now, plus candle's tensors at their peak since the tracker was created or reset.
//!   That is exact for the tensors and assumes the memory outside the pool did not change
//!   between samples (it is allocated once, early). [`PeakTracker::reset`] resets the pool's
//!   mark, so each stage can be measured on its own; sample at stage boundaries and after each
//!   denoising step.
//! - "Used" is the whole device's: it includes this process's CUDA context and cuBLAS
//!   workspaces (a few hundred MB) and any other process on the GPU.
//!
//! On the CPU there is nothing to probe and every value is `None`.

use candle_core::Device;

/// Memory of a device, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemoryInfo {
    pub free: u64,
    pub total: u64,
    /// The memory pool candle allocates from, where the device has one.
    pub pool: Option<PoolInfo>,
}

/// The device's default memory pool (`cuMemPoolGetAttribute`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolInfo {
    /// Physical memory the pool holds now, live or freed-but-kept.
    pub reserved: u64,
    /// The most memory live allocations held at once since the mark was last reset.
    pub used_high: u64,
}

impl MemoryInfo {
    /// Memory in use on the whole device now (`total − free`).
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.free)
    }

    /// The device's use at the pool's high-water mark, as far as it can be known: the memory
    /// outside the pool now plus the pool's peak of live allocations. Never below [`used`].
    ///
    /// [`used`]: Self::used
    pub(crate) fn peak_estimate(&self) -> u64 {
        let used = self.used();
        match self.pool {
            Some(pool) => used.max(used.saturating_sub(pool.reserved) + pool.used_high),
            None => used,
        }
    }
}

/// The device's memory now; `None` on the CPU, or when the driver cannot be asked (the
/// reason is logged).
pub(crate) fn memory_info(device: &Device) -> Option<MemoryInfo> {
    match device {
        Device::Cuda(cuda) => cuda::memory_info(cuda),
        _ => None,
    }
}

/// Restarts the pool's high-water mark from the memory live now (a no-op on the CPU).
pub(crate) fn reset_pool_peak(device: &Device) {
    if let Device::Cuda(cuda) = device {
        cuda::reset_pool_peak(cuda);
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::CudaDevice;
    use candle_core::cuda_backend::cudarc::driver::{DriverError, result, sys};

    use super::{MemoryInfo, PoolInfo};

    pub(crate) fn memory_info(cuda: &CudaDevice) -> Option<MemoryInfo> {
        let stream = cuda.cuda_stream();
        let context = stream.context();
        // `mem_get_info` binds the device's context to this thread first, so it answers for
        // the device the tensors live on whatever thread asks.
        match context.mem_get_info() {
            Ok((free, total)) => Some(MemoryInfo {
                free: free as u64,
                total: total as u64,
                pool: pool_info(context.cu_device())
                    .inspect_err(|e| tracing::debug!("no memory pool statistics: {e}"))
                    .ok(),
            }),
            Err(error) => {
                tracing::warn!("cuMemGetInfo failed, GPU memory is not reported: {error}");
                None
            }
        }
    }

    fn pool_info(device: sys::CUdevice) -> Result<PoolInfo, DriverError> {
        Ok(PoolInfo {
            reserved: pool_attribute(
                device,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT,
            )?,
            used_high: pool_attribute(
                device,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
            )?,
        })
    }

    fn pool_attribute(
        device: sys::CUdevice,
        attribute: sys::CUmemPool_attribute,
    ) -> Result<u64, DriverError> {
        let mut value: u64 = 0;
        // SAFETY: `device` comes from a live context (its `cu_device`), whose context
        // `memory_info` bound to this thread; both attributes are `cuuint64_t`, which `value`
        // is.
        unsafe {
            let pool = result::device::get_default_mem_pool(device)?;
            result::mem_pool::get_attribute(
                pool,
                attribute,
                (&mut value as *mut u64).cast::<std::ffi::c_void>(),
            )?;
        }
        Ok(value)
    }

    pub(crate) fn reset_pool_peak(cuda: &CudaDevice) {
        let stream = cuda.cuda_stream();
        let context = stream.context();
        let reset = || -> Result<(), DriverError> {
            context.bind_to_thread()?;
            let mut zero: u64 = 0;
            // SAFETY: as in `pool_attribute`; the driver only accepts 0 for this attribute,
            // which resets the mark to the memory in use now.
            unsafe {
                let pool = result::device::get_default_mem_pool(context.cu_device())?;
                result::mem_pool::set_attribute(
                    pool,
                    sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                    (&mut zero as *mut u64).cast::<std::ffi::c_void>(),
                )
            }
        };
        if let Err(error) = reset() {
            tracing::debug!("could not reset the memory pool's high-water mark: {error}");
        }
    }
}

/// Without the `cuda` feature no `Device::Cuda` can exist; these only satisfy the matches.
#[cfg(not(feature = "cuda"))]
mod cuda {
    use candle_core::CudaDevice;

    use super::MemoryInfo;

    pub(crate) fn memory_info(_: &CudaDevice) -> Option<MemoryInfo> {
        None
    }

    pub(crate) fn reset_pool_peak(_: &CudaDevice) {}
}

/// The largest device memory use seen at the calls of [`PeakTracker::sample`] (see the module
/// documentation for what is and is not seen).
#[derive(Debug, Clone)]
pub struct PeakTracker {
    device: Device,
    peak: Option<u64>,
}

impl PeakTracker {
    /// A tracker for `device`, with the pool's mark reset and one sample taken now (so the peak
    /// is never below what was in use when tracking began).
    pub fn new(device: &Device) -> Self {
        let mut tracker = Self {
            device: device.clone(),
            peak: None,
        };
        tracker.reset();
        tracker
    }

    /// Reads the device's memory and keeps the largest use so far. Returns the use now
    /// (`total − free`; `None` on the CPU).
    pub fn sample(&mut self) -> Option<u64> {
        let info = memory_info(&self.device)?;
        let seen = info.peak_estimate();
        self.peak = Some(self.peak.map_or(seen, |p| p.max(seen)));
        Some(info.used())
    }

    /// The largest use since creation or the last [`reset`](Self::reset); `None` on the CPU.
    pub fn peak_bytes(&self) -> Option<u64> {
        self.peak
    }

    /// Forgets the peak, restarts the pool's high-water mark and samples again, to measure the
    /// next stage on its own. Synchronise the device first, or memory freed by queued work
    /// still counts.
    pub fn reset(&mut self) {
        self.peak = None;
        reset_pool_peak(&self.device);
        self.sample();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_has_no_device_memory_to_report() {
        let mut tracker = PeakTracker::new(&Device::Cpu);
        assert_eq!(tracker.sample(), None);
        assert_eq!(tracker.peak_bytes(), None);
        tracker.reset();
        assert_eq!(tracker.peak_bytes(), None);
        assert_eq!(memory_info(&Device::Cpu), None);
    }

    #[test]
    fn used_is_total_minus_free() {
        let info = MemoryInfo {
            free: 30,
            total: 100,
            pool: None,
        };
        assert_eq!(info.used(), 70);
        assert_eq!(info.peak_estimate(), 70);
        let odd = MemoryInfo {
            free: 120,
            total: 100,
            pool: None,
        };
        assert_eq!(odd.used(), 0);
    }

    #[test]
    fn the_pool_peak_replaces_the_pool_now() {
        // 70 used: 20 outside the pool, 50 reserved by it; its live allocations peaked at 60.
        let info = MemoryInfo {
            free: 30,
            total: 100,
            pool: Some(PoolInfo {
                reserved: 50,
                used_high: 60,
            }),
        };
        assert_eq!(info.peak_estimate(), 80);
        // A peak below what is reserved now cannot lower the estimate under `used`.
        let kept = MemoryInfo {
            pool: Some(PoolInfo {
                reserved: 50,
                used_high: 10,
            }),
            ..info
        };
        assert_eq!(kept.peak_estimate(), 70);
    }
}
