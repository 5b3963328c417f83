//! The noise a generation starts from and, for the Flash sampler, the fresh noise of every
//! step: drawn from the seeded [`Rng`] on the CPU (so a seed gives the same image on any
//! machine), or read from a file to replay a reference run exactly.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::rng::Rng;

/// Noise read from a safetensors file: `latents` [1, C, h, w] and optionally `step_noise`
/// [steps − 1, C, h, w]. Latents are kept as f32; step noise as f64 when stored so, else f32.
#[derive(Debug, Clone)]
pub struct NoiseInput {
    pub latents: Tensor,
    pub step_noise: Option<Tensor>,
    /// Hi-DiT's pixel stream: the start noise [1, 3, H, W] drawn at the hand-off, and the noise
    /// of each stochastic gated step [K, 3, H, W], both kept in f64 (exact from any float).
    pub pixel_noise: Option<Tensor>,
    pub pixel_step_noise: Option<Tensor>,
}

impl NoiseInput {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| anyhow::anyhow!("{}: cannot read the noise file: {e}", path.display()))?;
        let latents = tensors.get("latents").cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: has no `latents` tensor; a noise file holds `latents` [1, 16, h, w] and \
                 optionally `step_noise` [steps − 1, 16, h, w]",
                path.display()
            )
        })?;
        let step_noise = tensors.get("step_noise");
        float_noise(path, "latents", &latents)?;
        if let Some(t) = step_noise {
            float_noise(path, "step_noise", t)?;
        }
        let pixel = |name: &str| -> anyhow::Result<Option<Tensor>> {
            let Some(t) = tensors.get(name) else {
                return Ok(None);
            };
            float_noise(path, name, t)?;
            Ok(Some(t.to_dtype(DType::F64)?))
        };
        let (pixel_noise, pixel_step_noise) = (pixel("pixel_noise")?, pixel("pixel_step_noise")?);
        // f64 step noise stays f64: REPA-E's SDE draws it in f64 (the Hi-DiT samplers' state).
        let step_dtype = |t: &Tensor| {
            if t.dtype() == DType::F64 {
                DType::F64
            } else {
                DType::F32
            }
        };
        Ok(Self {
            latents: latents.to_dtype(DType::F32)?,
            step_noise: step_noise.map(|t| t.to_dtype(step_dtype(t))).transpose()?,
            pixel_noise,
            pixel_step_noise,
        })
    }
}

/// Noise is Gaussian: an integer tensor is a wrong file (or a wrong tensor saved), and casting
/// it would start from whole numbers without a word.
fn float_noise(path: &Path, name: &str, tensor: &Tensor) -> anyhow::Result<()> {
    if !tensor.dtype().is_float() {
        anyhow::bail!(
            "{}: the `{name}` tensor is {:?}, not floating point; noise files hold Gaussian \
             noise in f32, f16 or bf16: save it from a float tensor",
            path.display(),
            tensor.dtype()
        );
    }
    Ok(())
}

pub(super) enum NoiseSource<'a> {
    Seeded {
        rng: Rng,
        shape: [usize; 4],
        device: Device,
    },
    File {
        input: &'a NoiseInput,
        device: Device,
    },
}

impl<'a> NoiseSource<'a> {
    /// Checks a noise file against the job's latent shape and step count.
    pub fn new(
        seed: u64,
        input: Option<&'a NoiseInput>,
        shape: [usize; 4],
        steps: usize,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let Some(input) = input else {
            return Ok(Self::Seeded {
                rng: Rng::new(seed),
                shape,
                device: device.clone(),
            });
        };
        if input.latents.dims() != shape {
            anyhow::bail!(
                "the noise file's `latents` are {:?} but this job needs {:?}; the file was made \
                 for another size (check --width/--height/--base-resolution)",
                input.latents.dims(),
                shape
            );
        }
        if let Some(step_noise) = &input.step_noise {
            let expected = [steps.saturating_sub(1), shape[1], shape[2], shape[3]];
            if step_noise.dims() != expected {
                anyhow::bail!(
                    "the noise file's `step_noise` is {:?} but {steps} steps need {:?}",
                    step_noise.dims(),
                    expected
                );
            }
        }
        Ok(Self::File {
            input,
            device: device.clone(),
        })
    }

    pub fn initial(&mut self) -> anyhow::Result<Tensor> {
        Ok(match self {
            Self::Seeded { rng, shape, device } => draw(rng, shape, device)?,
            Self::File { input, device } => input.latents.to_device(device)?,
        })
    }

    /// The fresh noise of step `i` (drawn in order after the initial latents).
    pub fn step_noise(&mut self, i: usize) -> anyhow::Result<Tensor> {
        Ok(match self {
            Self::Seeded { rng, shape, device } => draw(rng, shape, device)?,
            Self::File { input, device } => {
                let all = input.step_noise.as_ref().ok_or_else(|| {
                    anyhow::anyhow!(
                        "the noise file has no `step_noise`, which this sampler needs at every step \
                         but the last; add it or drop --noise"
                    )
                })?;
                all.get(i)?
                    .unsqueeze(0)?
                    .to_dtype(DType::F32)?
                    .to_device(device)?
            }
        })
    }
}

/// The next draw of the project's generator, made on the CPU so every device gets the same
/// numbers, then moved to `device`.
fn draw(rng: &mut Rng, shape: &[usize], device: &Device) -> candle_core::Result<Tensor> {
    Tensor::from_vec(
        rng.normals(shape.iter().product()),
        shape.to_vec(),
        &Device::Cpu,
    )?
    .to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_noise_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("noise.safetensors");
        let ints = Tensor::zeros((1, 16, 8, 8), DType::I64, &Device::Cpu).unwrap();
        candle_core::safetensors::save(
            &std::collections::HashMap::from([("latents", ints)]),
            &path,
        )
        .unwrap();
        let e = NoiseInput::read(&path).unwrap_err().to_string();
        assert!(
            e.contains("`latents`") && e.contains("not floating point"),
            "{e}"
        );
        let floats = Tensor::zeros((1, 16, 8, 8), DType::F16, &Device::Cpu).unwrap();
        candle_core::safetensors::save(
            &std::collections::HashMap::from([("latents", floats)]),
            &path,
        )
        .unwrap();
        assert!(NoiseInput::read(&path).is_ok());
    }
}
