//! Every read of tensor values back to the host by the models and pipelines goes through here,
//! so that it can be counted.
//!
//! On a GPU such a read is a device-to-host copy that makes the CPU wait until the device has
//! finished all queued work: inside a denoising step it would stall the step once per read
//! (the official HiDream code does so in every MoE block). The denoising loop must run without
//! any; `tests/integration/host_reads.rs` runs the loop with device-resident routing and checks
//! the count stays still, and a unit test below checks that the model, scheduler and pipeline
//! sources read values back nowhere else.
//!
//! The count is per thread: a pipeline runs on the thread that calls it, so parallel tests do
//! not see each other's reads.

use std::cell::Cell;

use candle_core::{Result, Tensor, WithDType};

thread_local! {
    static READS: Cell<u64> = const { Cell::new(0) };
}

/// Reads on this thread so far.
pub fn count() -> u64 {
    READS.with(Cell::get)
}

fn record() {
    READS.with(|r| r.set(r.get() + 1));
}

/// All values of `t`, row-major.
pub fn to_vec1<T: WithDType>(t: &Tensor) -> Result<Vec<T>> {
    record();
    t.flatten_all()?.to_vec1()
}

/// A [rows, cols] tensor's rows.
pub(crate) fn to_vec2<T: WithDType>(t: &Tensor) -> Result<Vec<Vec<T>>> {
    record();
    t.to_vec2()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use candle_core::Device;

    use super::*;

    #[test]
    fn reads_are_counted_per_thread() -> Result<()> {
        let t = Tensor::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu)?;
        let before = count();
        assert_eq!(to_vec1::<f32>(&t)?, vec![1., 2., 3., 4.]);
        assert_eq!(to_vec2::<f32>(&t)?, vec![vec![1., 2.], vec![3., 4.]]);
        assert_eq!(count(), before + 2);
        let other = std::thread::spawn(count)
            .join()
            .map_err(|_| candle_core::Error::Msg("the counting thread panicked".into()))?;
        assert_eq!(other, 0);
        Ok(())
    }

    /// candle's methods that copy values to the host. `to_device(` is listed because moving a
    /// tensor to the CPU is the same copy; `to_device` towards the model's device is fine, so
    /// only calls that name the CPU count.
    const HOST_READ_CALLS: [&str; 7] = [
        ".to_vec0",
        ".to_vec1",
        ".to_vec2",
        ".to_vec3",
        ".to_scalar",
        "to_device(&Device::Cpu",
        "to_device(&candle_core::Device::Cpu",
    ];

    /// The code a denoising step runs: the models, the samplers, the pipelines and the kernels.
    const STEP_CODE: [&str; 5] = [
        "src/models",
        "src/schedulers",
        "src/pipelines",
        "src/kernels",
        "src/weights",
    ];

    /// Non-test code only: a file's `#[cfg(test)] mod …` and everything after it is skipped
    /// (test modules come last in this code base).
    fn production_lines(source: &str) -> impl Iterator<Item = (usize, &str)> {
        let lines: Vec<&str> = source.lines().collect();
        let end = lines
            .windows(2)
            .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].trim_start().starts_with("mod "))
            .unwrap_or(lines.len());
        lines.into_iter().take(end).enumerate()
    }

    #[test]
    fn the_step_code_reads_values_back_only_through_this_module() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in STEP_CODE {
            crate::source_scan::rust_files(&root.join(dir), &mut files);
        }
        assert!(files.len() > 20, "found only {} source files", files.len());
        let mut offenders = Vec::new();
        for file in &files {
            let relative = file.strip_prefix(root).unwrap_or(file);
            // A module of its own for tests (`#[cfg(test)] mod tests;`).
            if relative.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let source = std::fs::read_to_string(file).unwrap_or_default();
            for (n, line) in production_lines(&source) {
                let code = line.split("//").next().unwrap_or("");
                if HOST_READ_CALLS.iter().any(|call| code.contains(call)) {
                    offenders.push(format!("{}:{}: {}", relative.display(), n + 1, line.trim()));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "read tensor values back through crate::host_reads so the denoising loop's \
             host reads are counted:\n{}",
            offenders.join("\n")
        );
    }
}
