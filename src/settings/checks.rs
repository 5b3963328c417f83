//! The bounds every job's numbers must keep, checked once for text-to-image and editing alike
//! before any model is loaded.

use super::error::{Field, SettingsError};
use crate::pipelines::{ComputeDType, DeviceChoice};

/// The schedulers are defined on 1000 training timesteps; more steps than that repeat them.
pub(crate) const MAX_STEPS: usize = 1000;

/// Guidance scales above this only burn the image: the official scripts use 3 to 5 and the
/// released models were tuned for those.
pub(crate) const MAX_GUIDANCE: f64 = 20.0;

/// Scheduler time shifts above this leave almost every step at the noisiest end: the
/// released models use 3 (Full, Fast) and 6 (Dev).
pub(crate) const MAX_SHIFT: f64 = 20.0;

/// Twice the released models' 1024; the working latents grow with its square, so an
/// unbounded value allocates without limit before anything can say it does not fit.
pub(crate) const MAX_BASE_RESOLUTION: u32 = 2048;

pub fn steps(steps: usize) -> Result<usize, SettingsError> {
    if steps == 0 {
        return Err(SettingsError::new(Field::Steps, "must be at least 1"));
    }
    if steps > MAX_STEPS {
        return Err(SettingsError::new(
            Field::Steps,
            format!("must be at most {MAX_STEPS}, the model's training timesteps (got {steps})"),
        ));
    }
    Ok(steps)
}

/// A guidance scale (text-to-image's, or an edit's instruction or image guidance).
pub fn guidance(field: Field, value: f64) -> Result<f64, SettingsError> {
    if !value.is_finite() || !(0.0..=MAX_GUIDANCE).contains(&value) {
        return Err(SettingsError::new(
            field,
            format!(
                "must be 0 or more, at most {MAX_GUIDANCE} (got {value}); 0 and 1 turn \
                 guidance off"
            ),
        ));
    }
    Ok(value)
}

pub fn shift(value: f64) -> Result<f64, SettingsError> {
    if !value.is_finite() || value <= 0.0 || value > MAX_SHIFT {
        return Err(SettingsError::new(
            Field::Shift,
            format!("must be positive, at most {MAX_SHIFT} (got {value})"),
        ));
    }
    Ok(value)
}

pub fn refine_strength(value: f64) -> Result<f64, SettingsError> {
    if !(0.0..=1.0).contains(&value) {
        return Err(SettingsError::new(
            Field::RefineStrength,
            format!("must be between 0 and 1 (got {value})"),
        ));
    }
    Ok(value)
}

pub fn base_resolution(value: u32) -> Result<u32, SettingsError> {
    if !(16..=MAX_BASE_RESOLUTION).contains(&value) || !value.is_multiple_of(16) {
        return Err(SettingsError::new(
            Field::BaseResolution,
            format!(
                "must be a multiple of 16, at least 16 and at most {MAX_BASE_RESOLUTION} \
                 (got {value})"
            ),
        ));
    }
    Ok(value)
}

/// Text the job cannot run without (a prompt, an instruction).
pub(crate) fn not_blank(field: Field, text: &str, hint: &str) -> Result<(), SettingsError> {
    if text.trim().is_empty() {
        return Err(SettingsError::new(field, format!("is empty; {hint}")));
    }
    Ok(())
}

/// candle's CPU kernels have no bf16 matrix product: the job would fail only after minutes of
/// loading, with "unsupported dtype BF16 for op matmul".
pub(crate) fn dtype_on_device(
    dtype: ComputeDType,
    device: DeviceChoice,
) -> Result<(), SettingsError> {
    if device == DeviceChoice::Cpu && dtype == ComputeDType::Bf16 {
        return Err(SettingsError::new(
            Field::Dtype,
            "bf16 does not run on the CPU (its matrix products have no bf16 kernel); use f32 \
             on the CPU, or bf16 on CUDA",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_out_of_range_are_refused() {
        assert_eq!(steps(0).unwrap_err().field, Field::Steps);
        assert!(steps(1001).is_err());
        assert_eq!(steps(1000), Ok(1000));
        assert!(guidance(Field::Guidance, -1.0).is_err());
        assert!(guidance(Field::Guidance, f64::NAN).is_err());
        assert!(guidance(Field::Guidance, f64::INFINITY).is_err());
        assert!(guidance(Field::Guidance, 1e6).is_err());
        assert_eq!(guidance(Field::Guidance, 5.0), Ok(5.0));
        assert!(shift(0.0).is_err());
        assert!(shift(f64::INFINITY).is_err());
        assert!(shift(1e9).is_err());
        assert_eq!(shift(6.0), Ok(6.0));
        assert!(refine_strength(f64::NAN).is_err());
        assert!(refine_strength(1.5).is_err());
    }

    #[test]
    fn base_resolution_is_bounded() {
        let e = base_resolution(100_000).unwrap_err();
        assert_eq!(e.field, Field::BaseResolution);
        assert!(
            e.for_cli().starts_with("--base-resolution must be"),
            "{e:?}"
        );
        assert!(base_resolution(8).is_err());
        assert!(base_resolution(1000).is_err());
        assert_eq!(base_resolution(2048), Ok(2048));
        assert_eq!(base_resolution(64), Ok(64));
    }

    #[test]
    fn bf16_is_refused_on_the_cpu_only() {
        let e = dtype_on_device(ComputeDType::Bf16, DeviceChoice::Cpu).unwrap_err();
        assert_eq!(e.field, Field::Dtype);
        assert!(e.for_cli().starts_with("--dtype bf16"), "{}", e.for_cli());
        assert!(dtype_on_device(ComputeDType::Bf16, DeviceChoice::Cuda).is_ok());
        assert!(dtype_on_device(ComputeDType::F32, DeviceChoice::Cpu).is_ok());
    }
}
