//! Class-conditional generation with a REPA-E / Hi-DiT latent SiT, as REPA-E's generate.py
//! (@3ad8046) samples: noise in the normalised latent space, the ODE or SDE sampler, then
//! `vae.decode(samples / latents_scale + latents_bias)` and (x + 1)/2·255 truncated to uint8.

mod classes;
mod error;
mod experiment;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

pub use classes::{ClassError, ClassNames, resolve_class};
pub use error::HiditError;
pub use experiment::{Experiment, ExperimentArgs, SAMPLING_ENTRY};

use super::{NoiseInput, Progress, Timings};
use crate::host_reads;
use crate::models::hidit::autoencoder::AutoencoderKl;
use crate::models::hidit::{Guidance, Mode, Sampler, Sit};
use crate::rng::Rng;
use experiment::{build_checked, read_weights};

/// The files a run uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HiditFiles {
    /// The experiment folder (args.json, checkpoints/).
    pub model: PathBuf,
    /// `--checkpoint`: a step or a file; `None` for the folder's only one.
    pub checkpoint: Option<String>,
    /// The autoencoder's state dict (`.pt` or `.safetensors`).
    pub vae: PathBuf,
    /// `latents_scale` / `latents_bias`; `None` for the VAE's name with `-latents-stats`, as
    /// generate.py finds it.
    pub latents_stats: Option<PathBuf>,
}

/// generate.py's way to the statistics: the VAE file's `.pt` replaced by `-latents-stats.pt`
/// (and likewise for a `.safetensors` conversion).
pub fn default_latents_stats(vae: &Path) -> PathBuf {
    let ext = vae.extension().and_then(|e| e.to_str()).unwrap_or("pt");
    let stem = vae
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    vae.with_file_name(format!("{stem}-latents-stats.{ext}"))
}

/// The sampler settings of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HiditSettings {
    pub class: usize,
    pub steps: usize,
    pub mode: Mode,
    pub cfg_scale: f64,
    pub guidance_low: f64,
    pub guidance_high: f64,
    pub seed: u64,
}

/// At most this many steps (REPA-E uses 50; more only costs time).
pub const MAX_STEPS: usize = 1000;

impl HiditSettings {
    pub fn guidance(&self) -> Guidance {
        Guidance {
            scale: self.cfg_scale,
            low: self.guidance_low,
            high: self.guidance_high,
        }
    }

    /// Refuses what REPA-E would refuse or what cannot run, naming the flag.
    pub fn validate(&self, num_classes: usize, null_class: bool) -> Result<(), HiditError> {
        let setting = |flag, problem: String| Err(HiditError::Setting { flag, problem });
        if self.class >= num_classes {
            return Err(ClassError::OutOfRange {
                index: self.class,
                count: num_classes,
            }
            .into());
        }
        if !(1..=MAX_STEPS).contains(&self.steps) {
            return setting("--steps", format!("must be from 1 to {MAX_STEPS}"));
        }
        // generate.py: assert args.cfg_scale >= 1.0.
        if !(self.cfg_scale >= 1.0 && self.cfg_scale.is_finite()) {
            return setting("--cfg-scale", "must be 1 or more (1: no guidance)".into());
        }
        if !(self.guidance_low.is_finite() && self.guidance_high.is_finite())
            || self.guidance_low > self.guidance_high
        {
            return setting(
                "--guidance-low",
                format!(
                    "{} is above --guidance-high {}: guidance applies to steps whose time t lies \
                     in [low, high], t running from 1 (noise) to 0",
                    self.guidance_low, self.guidance_high
                ),
            );
        }
        if self.cfg_scale > 1.0 && !null_class {
            return setting(
                "--cfg-scale",
                "needs the null class, and this model was trained without label dropout \
                 (cfg_prob 0): use 1"
                    .into(),
            );
        }
        Ok(())
    }
}

/// REPA-E's latent normalisation: normalised = (z − bias) · scale, per channel.
#[derive(Debug, Clone)]
pub struct LatentStats {
    /// `latents_scale` [1, C, 1, 1] = 1 / std, f32.
    pub scale: Tensor,
    /// `latents_bias` [1, C, 1, 1] = mean, f32.
    pub bias: Tensor,
}

impl LatentStats {
    /// Reads `latents_scale` and `latents_bias` (any shape of `channels` values) from a
    /// `torch.save` dict or a safetensors file.
    pub fn read(path: &Path, channels: usize, device: &Device) -> Result<Self, HiditError> {
        let tensors = read_weights(path, None)?;
        let get = |tensor: &'static str| {
            let problem = |problem: String| HiditError::Stats {
                path: path.to_path_buf(),
                tensor,
                problem,
            };
            let t = tensors.get(tensor).ok_or_else(|| {
                problem(
                    "is missing; a latent-statistics file holds latents_scale and latents_bias"
                        .into(),
                )
            })?;
            if t.elem_count() != channels || !t.dtype().is_float() {
                return Err(problem(format!(
                    "is {:?} {:?}, but the model's latent has {channels} channels (floats)",
                    t.dtype(),
                    t.dims()
                )));
            }
            Ok(t.to_dtype(DType::F32)?
                .reshape((1, channels, 1, 1))?
                .to_device(device)?)
        };
        Ok(Self {
            scale: get("latents_scale")?,
            bias: get("latents_bias")?,
        })
    }

    /// Normalised latents [B, C, h, w] back to the autoencoder's: z / scale + bias.
    pub fn denormalize(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        z.broadcast_div(&self.scale)?.broadcast_add(&self.bias)
    }
}

/// Everything one run needs, loaded.
pub struct HiditModels {
    pub files: HiditFiles,
    pub experiment: Experiment,
    pub sit: Sit,
    pub vae: AutoencoderKl,
    pub stats: LatentStats,
    /// The model's class names, if it has any (its own, or ImageNet's for 1000 classes).
    pub class_names: Option<ClassNames>,
    pub device: Device,
    pub load_ms: f64,
}

impl HiditModels {
    pub fn load(files: &HiditFiles, device: &Device) -> Result<Self, HiditError> {
        let start = Instant::now();
        let experiment = Experiment::open(&files.model, files.checkpoint.as_deref())?;
        let sit = experiment.load_sit(device)?;
        let arch = experiment.vae_arch()?;
        let args_path = experiment.args_path();
        let vae_source = match &experiment.args.vae_arch {
            Some(_) => format!("{}'s `vae_arch`", args_path.display()),
            None => format!("{}'s `vae` ({})", args_path.display(), experiment.args.vae),
        };
        let vae = build_checked(
            &files.vae,
            ("autoencoder", vae_source, &[]),
            read_weights(&files.vae, None)?,
            device,
            |vb| AutoencoderKl::new(&arch, vb),
        )?;
        let cfg = sit.config();
        if arch.embed_dim != cfg.in_channels {
            return Err(HiditError::Incompatible(format!(
                "the autoencoder {} has {} latent channels, the SiT of {} works on {}",
                files.vae.display(),
                arch.embed_dim,
                experiment.checkpoint.display(),
                cfg.in_channels
            )));
        }
        let stats_path = files
            .latents_stats
            .clone()
            .unwrap_or_else(|| default_latents_stats(&files.vae));
        let stats = LatentStats::read(&stats_path, cfg.in_channels, device)?;
        let class_names = match &experiment.args.class_names {
            Some(names) => Some(ClassNames::from_lines(names.iter().map(String::as_str))),
            None if cfg.num_classes == 1000 => Some(ClassNames::imagenet()),
            None => None,
        };
        Ok(Self {
            files: HiditFiles {
                latents_stats: Some(stats_path),
                ..files.clone()
            },
            experiment,
            sit,
            vae,
            stats,
            class_names,
            device: device.clone(),
            load_ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// The class `given` (a number or a name) names.
    pub fn resolve_class(&self, given: &str) -> Result<usize, ClassError> {
        resolve_class(
            given,
            self.sit.config().num_classes,
            self.class_names.as_ref(),
        )
    }

    /// The latent's shape [1, C, h, w].
    pub fn latent_shape(&self) -> [usize; 4] {
        let cfg = self.sit.config();
        [1, cfg.in_channels, cfg.input_size, cfg.input_size]
    }
}

/// One image and how it was made.
#[derive(Debug, Clone)]
pub struct HiditGeneration {
    /// The sampler's result in the normalised latent space, f32 [1, C, h, w] (generate.py casts
    /// the f64 state to f32 before decoding).
    pub samples: Tensor,
    /// The decoded image, f32 [1, 3, H, W], about [−1, 1], unclamped.
    pub decoded: Tensor,
    pub image: image::RgbImage,
    pub record: HiditRecord,
}

/// Everything needed to understand and reproduce a Hi-DiT image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HiditRecord {
    pub settings: HiditSettings,
    /// The class's name, where the model has names.
    pub class_name: Option<String>,
    pub files: HiditFiles,
    /// The checkpoint file used (its `ema` entry, or a conversion's tensors).
    pub checkpoint: PathBuf,
    pub width: u32,
    pub height: u32,
    /// `seed`, or `file` when the noise came from a file.
    pub noise: String,
    pub timings: Timings,
    pub app: String,
}

/// Samples one image of `settings.class`. The noise comes from `noise` (`latents` [1, C, h, w]
/// and, for the SDE, `step_noise` [steps − 1, C, h, w] in the order the sampler draws it) or
/// from the seeded generator: the latents first (f32), then each SDE step's noise (f64).
pub fn generate(
    models: &HiditModels,
    settings: &HiditSettings,
    noise: Option<&NoiseInput>,
    progress: &mut dyn Progress,
) -> Result<HiditGeneration, HiditError> {
    let start = Instant::now();
    let cfg = models.sit.config();
    settings.validate(cfg.num_classes, cfg.null_class)?;
    let sampler = Sampler::new(settings.mode, settings.steps, settings.guidance());
    let shape = models.latent_shape();
    let mut source = NoiseSource::new(settings.seed, noise, shape, sampler.noise_draws())?;
    let device = &models.device;
    let mut x = source.latents()?.to_dtype(DType::F64)?.to_device(device)?;
    let labels = Tensor::new(&[settings.class as u32], device)?;
    let null = cfg.num_classes as u32;
    progress.stage("sampling")?;
    let mut step_ms = Vec::with_capacity(settings.steps);
    for i in 0..sampler.steps() {
        let step_start = Instant::now();
        let eps = if sampler.draws_noise_at(i) {
            Some(source.step(i)?.to_device(device)?)
        } else {
            None
        };
        x = sampler.step(&models.sit, &x, (&labels, null), i, eps.as_ref())?;
        step_ms.push(step_start.elapsed().as_secs_f64() * 1e3);
        progress.step(i + 1, sampler.steps(), None)?;
    }
    progress.stage("decoding")?;
    let decode_start = Instant::now();
    let samples = x.to_dtype(DType::F32)?;
    let decoded = models.vae.decode(&models.stats.denormalize(&samples)?)?;
    let image = to_rgb8(&decoded)?;
    let decode_ms = decode_start.elapsed().as_secs_f64() * 1e3;
    let record = HiditRecord {
        settings: settings.clone(),
        class_name: models
            .class_names
            .as_ref()
            .and_then(|n| n.name(settings.class))
            .map(str::to_string),
        files: models.files.clone(),
        checkpoint: models.experiment.checkpoint.clone(),
        width: image.width(),
        height: image.height(),
        noise: if noise.is_some() { "file" } else { "seed" }.into(),
        timings: Timings {
            load_ms: models.load_ms,
            encode_ms: 0.0,
            step_ms,
            decode_ms,
            total_ms: models.load_ms + start.elapsed().as_secs_f64() * 1e3,
        },
        app: format!("hidream-studio {}", env!("CARGO_PKG_VERSION")),
    };
    Ok(HiditGeneration {
        samples,
        decoded,
        image,
        record,
    })
}

/// generate.py's pixels: clamp(255·((x + 1) / 2), 0, 255) cast to uint8 (truncation), in f32
/// in this order. [1, 3, H, W] → RGB.
fn to_rgb8(decoded: &Tensor) -> Result<image::RgbImage, HiditError> {
    let (_, _, h, w) = decoded.dims4()?;
    let pixels = ((decoded + 1.0)? / 2.0)?
        .affine(255.0, 0.0)?
        .clamp(0f32, 255f32)?
        .to_dtype(DType::U8)?
        .get(0)?
        .permute((1, 2, 0))?;
    let bytes = host_reads::to_vec1::<u8>(&pixels)?;
    image::RgbImage::from_raw(w as u32, h as u32, bytes)
        .ok_or_else(|| HiditError::Incompatible("the decoded image has an odd size".into()))
}

/// Where the noise comes from: a file (checked against the run) or the seeded generator.
enum NoiseSource<'a> {
    Seeded { rng: Rng, shape: [usize; 4] },
    File(&'a NoiseInput),
}

impl<'a> NoiseSource<'a> {
    fn new(
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

    /// The initial latents, f32 on the CPU.
    fn latents(&mut self) -> candle_core::Result<Tensor> {
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
    fn step(&mut self, i: usize) -> candle_core::Result<Tensor> {
        match self {
            Self::Seeded { rng, shape } => {
                let values: Vec<f64> = (0..shape.iter().product()).map(|_| rng.normal()).collect();
                Tensor::from_vec(values, shape.to_vec(), &Device::Cpu)
            }
            Self::File(input) => match &input.step_noise {
                Some(all) => all.get(i)?.unsqueeze(0)?.to_dtype(DType::F64),
                None => candle_core::bail!("no step noise"),
            },
        }
    }
}
