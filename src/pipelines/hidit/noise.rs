//! Where a Hi-DiT run's noise comes from: a file (checked against the run) or the seeded
//! generator, in the reference sampler's draw order: the initial latents (f32), then per step
//! the latent step noise (SDE), at the hand-off the pixel start noise, then the pixel step
//! noise (SDE, gated steps).

use candle_core::{DType, Device, Tensor};

use super::error::HiditError;
use crate::pipelines::NoiseInput;
use crate::rng::Rng;

pub(super) enum NoiseSource<'a> {
    Seeded { rng: Rng, shape: [usize; 4] },
    File(&'a NoiseInput),
}

impl<'a> NoiseSource<'a> {
    /// `shape`: the latents' [1, C, h, w]; `draws`: the latent stream's SDE draws.
    pub(super) fn new(
        seed: u64,
        input: Option<&'a NoiseInput>,
        shape: [usize; 4],
        draws: usize,
    ) -> Result<Self, HiditError> {
        let Some(input) = input else {
            return Ok(Self::Seeded {
                rng: Rng::new(seed),
                shape,
            });
        };
        if input.latents.dims() != shape {
            return Err(HiditError::Noise(format!(
                "the file's `latents` are {:?} but this model samples {shape:?}",
                input.latents.dims()
            )));
        }
        let expected = [draws, shape[1], shape[2], shape[3]];
        match &input.step_noise {
            Some(t) if draws > 0 && t.dims() != expected => Err(HiditError::Noise(format!(
                "the file's `step_noise` is {:?} but these settings draw {expected:?} (one per \
                 SDE step but the last)",
                t.dims()
            ))),
            None if draws > 0 => Err(HiditError::Noise(format!(
                "the file has no `step_noise`, which the SDE sampler needs ({expected:?}); add \
                 it or drop --noise"
            ))),
            _ => Ok(Self::File(input)),
        }
    }

    /// The pixel stream's noises the file must hold for a run drawing the start noise of
    /// `image` [1, 3, H, W] and `draws` step noises; checked before sampling starts.
    pub(super) fn check_pixels(&self, image: [usize; 4], draws: usize) -> Result<(), HiditError> {
        let Self::File(input) = self else {
            return Ok(());
        };
        let found = |t: &Option<Tensor>| t.as_ref().map(|t| t.dims().to_vec());
        if found(&input.pixel_noise).as_deref() != Some(&image[..]) {
            return Err(HiditError::Noise(format!(
                "the pixel stream starts from `pixel_noise` {image:?}, and the file's is {}",
                describe(found(&input.pixel_noise))
            )));
        }
        let steps = [draws, image[1], image[2], image[3]];
        if draws > 0 && found(&input.pixel_step_noise).as_deref() != Some(&steps[..]) {
            return Err(HiditError::Noise(format!(
                "the pixel stream's SDE steps draw `pixel_step_noise` {steps:?} (one per gated \
                 step but the last), and the file's is {}",
                describe(found(&input.pixel_step_noise))
            )));
        }
        Ok(())
    }

    /// The initial latents, f32 on the CPU.
    pub(super) fn latents(&mut self) -> candle_core::Result<Tensor> {
        match self {
            Self::Seeded { rng, shape } => Tensor::from_vec(
                rng.normals(shape.iter().product()),
                shape.to_vec(),
                &Device::Cpu,
            ),
            Self::File(input) => Ok(input.latents.clone()),
        }
    }

    /// SDE step `i`'s noise, f64 [1, C, h, w] on the CPU.
    pub(super) fn step(&mut self, i: usize) -> candle_core::Result<Tensor> {
        match self {
            Self::Seeded { rng, shape } => normals_f64(rng, *shape),
            Self::File(input) => match &input.step_noise {
                Some(all) => all.get(i)?.unsqueeze(0)?.to_dtype(DType::F64),
                None => candle_core::bail!("no step noise"),
            },
        }
    }

    /// The pixel stream's start noise, f64 `image` [1, 3, H, W] on the CPU.
    pub(super) fn pixel_start(&mut self, image: [usize; 4]) -> candle_core::Result<Tensor> {
        match self {
            Self::Seeded { rng, .. } => normals_f64(rng, image),
            Self::File(input) => match &input.pixel_noise {
                Some(t) => Ok(t.clone()),
                None => candle_core::bail!("no pixel noise"),
            },
        }
    }

    /// The pixel stream's `k`-th step noise, f64 `image` [1, 3, H, W] on the CPU.
    pub(super) fn pixel_step(
        &mut self,
        k: usize,
        image: [usize; 4],
    ) -> candle_core::Result<Tensor> {
        match self {
            Self::Seeded { rng, .. } => normals_f64(rng, image),
            Self::File(input) => match &input.pixel_step_noise {
                Some(all) => all.get(k)?.unsqueeze(0),
                None => candle_core::bail!("no pixel step noise"),
            },
        }
    }
}

fn normals_f64(rng: &mut Rng, shape: [usize; 4]) -> candle_core::Result<Tensor> {
    let values: Vec<f64> = (0..shape.iter().product()).map(|_| rng.normal()).collect();
    Tensor::from_vec(values, shape.to_vec(), &Device::Cpu)
}

fn describe(dims: Option<Vec<usize>>) -> String {
    dims.map_or_else(|| "missing".into(), |d| format!("{d:?}"))
}
