//! Class-conditional generation with a REPA-E / Hi-DiT latent SiT, as REPA-E's generate.py
//! (@3ad8046) samples: noise in the normalised latent space, the ODE or SDE sampler, then
//! `vae.decode(samples / latents_scale + latents_bias)` and (x + 1)/2·255 truncated to uint8.

mod classes;
mod error;
mod experiment;
mod noise;
mod sampling;

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

pub use classes::{ClassError, ClassNames, resolve_class, search_classes};
pub use error::HiditError;
pub use experiment::{
    SAMPLING_ENTRY, class_names, conditioning, load_hidit, load_sit, pixel_branch_config,
    sit_config,
};
pub use sampling::PixelStream;

use super::{NoiseInput, Progress, Timings};
use crate::host_reads;
use crate::models::hidit::autoencoder::AutoencoderKl;
use crate::models::hidit::files::{HiditExperiment, LatentStats, load_vae, vae_from_tensors};
use crate::models::hidit::{Guidance, Hybrid, Mode, PixelBranch, Sampler, Sit};
use noise::NoiseSource;

/// The files a run uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HiditFiles {
    /// The experiment folder (args.json, checkpoints/).
    pub model: PathBuf,
    /// `--checkpoint`: a step or a file; `None` for the folder's only one.
    pub checkpoint: Option<String>,
    /// The autoencoder's state dict (`.pt` or `.safetensors`); `None` for the checkpoint's
    /// own `vae` entry (REPA-E's end-to-end checkpoints).
    pub vae: Option<PathBuf>,
    /// `latents_scale` / `latents_bias`; `None` for the VAE's name with `-latents-stats`, as
    /// generate.py finds it (or, with the checkpoint's own VAE, its EMA BatchNorm's).
    pub latents_stats: Option<PathBuf>,
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
    /// The pixel branch's gate threshold, overriding the folder's `pixel_branch.tau`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tau: Option<f64>,
    /// Sample the latents only and decode them with the VAE, even where the folder has a pixel
    /// branch (stage 1's path, for comparison).
    #[serde(default)]
    pub latent_only: bool,
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
        if let Some(tau) = self.tau
            && !(tau.is_finite() && (0.0..=1.0).contains(&tau))
        {
            return setting(
                "--tau",
                format!("{tau} is not in [0, 1]: the pixel stream joins at steps with t < tau"),
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

/// Everything one run needs, loaded.
pub struct HiditModels {
    /// The files used, the latent statistics' as found.
    pub files: HiditFiles,
    pub experiment: HiditExperiment,
    pub sit: Sit,
    /// The pixel branch, where args.json has `pixel_branch` (stage 2).
    pub pixel: Option<PixelBranch>,
    pub vae: AutoencoderKl,
    pub stats: LatentStats,
    /// The model's class names, if it has any (its own, or ImageNet's for 1000 classes).
    pub class_names: Option<ClassNames>,
    pub device: Device,
    pub load_ms: f64,
}

impl HiditModels {
    /// Loads the checkpoint's `ema` SiT, the autoencoder and the latent statistics, as
    /// generate.py does: a separate VAE with its `-latents-stats` file, or an end-to-end
    /// checkpoint's own `vae` with its EMA BatchNorm's statistics.
    pub fn load(files: &HiditFiles, device: &Device) -> Result<Self, HiditError> {
        let start = Instant::now();
        let experiment = HiditExperiment::open(&files.model, files.checkpoint.as_deref())?;
        let (sit, pixel) = load_hidit(&experiment, SAMPLING_ENTRY, device)?;
        let (vae, stats, vae_file, latents_stats) =
            load_autoencoder(files, &experiment, &sit, device)?;
        let cfg = sit.config();
        let embed_dim = vae.arch().embed_dim;
        if embed_dim != cfg.in_channels || stats.channels() != cfg.in_channels {
            return Err(HiditError::Incompatible(format!(
                "the SiT of {} works on {} latent channels, the autoencoder has {} and the \
                 latent statistics {}",
                experiment.checkpoint.display(),
                cfg.in_channels,
                embed_dim,
                stats.channels()
            )));
        }
        if let Some(branch) = &pixel {
            let per_token = cfg.patch_size * vae.arch().downsampling();
            if branch.config().patch_size != per_token {
                return Err(HiditError::Incompatible(format!(
                    "{}'s `pixel_branch.patch_size` is {} but each latent token covers {} image \
                     pixels per side (SiT patch {} × the autoencoder's factor {})",
                    experiment.args_path.display(),
                    branch.config().patch_size,
                    per_token,
                    cfg.patch_size,
                    vae.arch().downsampling()
                )));
            }
        }
        let stats = LatentStats {
            scale: stats.scale.to_device(device)?,
            bias: stats.bias.to_device(device)?,
        };
        let class_names = class_names(&experiment, cfg.num_classes)?;
        Ok(Self {
            files: HiditFiles {
                vae: vae_file,
                latents_stats,
                ..files.clone()
            },
            experiment,
            sit,
            pixel,
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

    /// The image's shape [1, 3, H, W].
    pub fn image_shape(&self) -> [usize; 4] {
        let [_, _, h, w] = self.latent_shape();
        let f = self.vae.arch().downsampling();
        [1, 3, h * f, w * f]
    }

    /// The latent's shape [1, C, h, w].
    pub fn latent_shape(&self) -> [usize; 4] {
        let cfg = self.sit.config();
        [1, cfg.in_channels, cfg.input_size, cfg.input_size]
    }
}

/// The autoencoder and the latent statistics (and the statistics file, if one was read):
/// `files.vae` (or `HiditExperiment::default_vae`) with its `-latents-stats` file, as
/// generate.py loads them for LDM-only runs, or an end-to-end checkpoint's own `vae` with its
/// EMA BatchNorm's statistics. Also returns the VAE and statistics files read, if any.
fn load_autoencoder(
    files: &HiditFiles,
    experiment: &HiditExperiment,
    sit: &Sit,
    device: &Device,
) -> Result<(AutoencoderKl, LatentStats, Option<PathBuf>, Option<PathBuf>), HiditError> {
    let arch = experiment.vae_arch()?;
    let described_by = match (&experiment.args.vae_arch, &experiment.args.vae) {
        (Some(_), _) => "args.json's `vae_arch`".to_string(),
        (None, name) => format!("args.json's `vae` ({})", name.as_deref().unwrap_or("?")),
    };
    let vae_file = match &files.vae {
        Some(path) => Some(path.clone()),
        None => experiment.default_vae()?,
    };
    if let Some(path) = &vae_file {
        let vae = load_vae(path, &arch, &described_by, DType::F32, device)?;
        let stats_path = files
            .latents_stats
            .clone()
            .unwrap_or_else(|| LatentStats::path_beside(path));
        let stats = LatentStats::read(&stats_path)?;
        return Ok((vae, stats, vae_file, Some(stats_path)));
    }
    if !experiment.checkpoint_has_vae()? {
        return Err(HiditError::Setting {
            flag: "--vae",
            problem: format!(
                "is needed: {} has no `vae` entry (only REPA-E's end-to-end checkpoints carry \
                 their autoencoder){}",
                experiment.checkpoint.display(),
                match &experiment.args.vae_ckpt {
                    Some(given) => format!(
                        ", and args.json's `vae_ckpt` ({given}) is not found in or above {}",
                        experiment.dir.display()
                    ),
                    None => String::new(),
                }
            ),
        });
    }
    let weights = experiment.load_entry("vae")?;
    let vae = vae_from_tensors(
        &experiment.checkpoint,
        weights,
        &arch,
        &described_by,
        DType::F32,
        device,
    )?;
    let stats = if let Some(path) = &files.latents_stats {
        LatentStats::read(path)?
    } else {
        let (mean, var) = sit.latent_stats();
        LatentStats::from_batchnorm(mean, var)?
    };
    Ok((vae, stats, None, files.latents_stats.clone()))
}

/// One image and how it was made.
#[derive(Debug, Clone)]
pub struct HiditGeneration {
    /// The sampler's result in the normalised latent space, f32 [1, C, h, w] (generate.py casts
    /// the f64 state to f32 before decoding).
    pub samples: Tensor,
    /// The image, f32 [1, 3, H, W], about [−1, 1], unclamped: the VAE's decode of `samples`,
    /// or with a pixel branch the pixel stream at t = 0 (its f64 state cast down).
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
    /// How the pixel stream made the image; `None` where the VAE decoded the final latents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_stream: Option<PixelStream>,
    pub timings: Timings,
    pub app: String,
}

/// Samples one image of `settings.class`: with the pixel branch where the folder has one (and
/// not `latent_only`), else the latents decoded by the VAE. The noise comes from `noise`
/// (`latents` [1, C, h, w]; for the SDE `step_noise` [steps − 1, C, h, w]; with a pixel branch
/// `pixel_noise` and `pixel_step_noise`) or from the seeded generator, in the reference's draw
/// order (see `noise`).
pub fn generate(
    models: &HiditModels,
    settings: &HiditSettings,
    noise: Option<&NoiseInput>,
    progress: &mut dyn Progress,
) -> Result<HiditGeneration, HiditError> {
    let start = Instant::now();
    let cfg = models.sit.config();
    settings.validate(cfg.num_classes, cfg.null_class)?;
    if settings.tau.is_some() && (models.pixel.is_none() || settings.latent_only) {
        return Err(HiditError::Setting {
            flag: "--tau",
            problem: "applies to a model with a pixel branch, sampled without --latent-only \
                      (its args.json has no `pixel_branch`, or --latent-only was given)"
                .into(),
        });
    }
    let sampler = Sampler::new(settings.mode, settings.steps, settings.guidance());
    let mut source = NoiseSource::new(
        settings.seed,
        noise,
        models.latent_shape(),
        sampler.noise_draws(),
    )?;
    let labels = Tensor::new(&[settings.class as u32], &models.device)?;
    let run = sampling::Run {
        models,
        sampler: &sampler,
        labels: (&labels, cfg.num_classes as u32),
    };
    progress.stage("sampling")?;
    let branch = models.pixel.as_ref().filter(|_| !settings.latent_only);
    let sampled = match branch {
        Some(branch) => {
            let tau = settings.tau.unwrap_or(branch.config().tau);
            run.hybrid(
                &Hybrid::new(&sampler, &models.sit, branch, tau),
                &mut source,
                progress,
            )?
        }
        None => run.latent(&mut source, progress)?,
    };
    progress.stage("decoding")?;
    let decode_start = Instant::now();
    let samples = sampled.latents.to_dtype(DType::F32)?;
    let decoded = match sampled.pixels {
        Some(pixels) => pixels.to_dtype(DType::F32)?,
        None => models.vae.decode(&models.stats.denormalise(&samples)?)?,
    };
    let image = to_rgb8(&decoded)?;
    let decode_ms = decode_start.elapsed().as_secs_f64() * 1e3;
    let step_ms = sampled.step_ms;
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
        pixel_stream: sampled.pixel_stream,
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
