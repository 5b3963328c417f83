//! Catching latents that turned into NaN or ±∞ (guidance or shift far out of range, a noise
//! file holding NaN, damaged weights, an f16 overflow), which would otherwise decode to a black
//! image that is saved as if it were a result.
//!
//! Every step's latents are recorded as one device scalar, `Σ 0·x`: 0 when every value is
//! finite, NaN as soon as one is not (0·NaN and 0·∞ are NaN). Nothing is read back inside the loop (on a GPU that
//! would stall each step); the scalars are read together once the loop is done, which names
//! the first step that went wrong.

use candle_core::{DType, Tensor};

use crate::host_reads;

/// The first denoising step (1-based) whose latents held a value that is not finite.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the latents stopped being finite numbers at step {step} of {steps} (NaN or infinity), so \
     there is no image to save; lower the guidance or the shift, check the noise file if one \
     was given, or compute in bfloat16 or float32 if this ran in float16"
)]
pub(crate) struct NonFiniteLatents {
    pub step: usize,
    pub steps: usize,
}

/// One device scalar per recorded step.
#[derive(Default)]
pub(crate) struct FiniteWatch {
    per_step: Vec<Tensor>,
}

impl FiniteWatch {
    /// Records a step's latents (any float dtype) without reading them.
    pub fn record(&mut self, latents: &Tensor) -> candle_core::Result<()> {
        let probe = latents.affine(0.0, 0.0)?.to_dtype(DType::F32)?.sum_all()?;
        self.per_step.push(probe);
        Ok(())
    }

    /// Reads every recorded probe at once; `steps` is the job's step count, for the message.
    pub fn check(self, steps: usize) -> anyhow::Result<()> {
        if self.per_step.is_empty() {
            return Ok(());
        }
        let probes = host_reads::to_vec1::<f32>(&Tensor::stack(&self.per_step, 0)?)?;
        match probes.iter().position(|p| !p.is_finite()) {
            Some(i) => Err(NonFiniteLatents { step: i + 1, steps }.into()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn names_the_first_step_that_is_not_finite() -> anyhow::Result<()> {
        let good = Tensor::new(&[1.0f32, -2.5, 3.0e38], &Device::Cpu)?;
        let mut watch = FiniteWatch::default();
        watch.record(&good)?;
        watch.check(3)?;

        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut watch = FiniteWatch::default();
            watch.record(&good)?;
            watch.record(&Tensor::new(&[1.0f32, bad], &Device::Cpu)?)?;
            watch.record(&good)?;
            let err = watch.check(3).expect_err("a non-finite step");
            let err = err.downcast::<NonFiniteLatents>()?;
            assert_eq!(err, NonFiniteLatents { step: 2, steps: 3 });
        }
        Ok(())
    }
}
