//! Hi-DiT's files as REPA-E publishes them: experiment folders (`args.json` +
//! `checkpoints/NNNNNNN.pt`, whose `ema` entry is the model), the VAE `.pt` (a plain state
//! dict) and its latent statistics (`*-latents-stats.pt`), each also as a safetensors
//! conversion with the same tensor names (REPA-E `generate.py`, `save_vae_weights.py`,
//! `train_ldm_only.py` @3ad8046).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::autoencoder::{AutoencoderKl, VaeArch};
use crate::weights::torch_pt::{self, FileKind, PtError, PtFile};
use crate::weights::{TensorStore, WeightsError, check_tensor_map, read_json, requested_tensors};

/// Everything that can be wrong with a Hi-DiT experiment folder, VAE or statistics file.
#[derive(Debug, thiserror::Error)]
pub enum HiditFilesError {
    #[error(transparent)]
    Pt(#[from] PtError),

    #[error(transparent)]
    Weights(#[from] WeightsError),

    #[error(
        "{dir}: not a REPA-E experiment folder: {detail}; point at the folder that holds \
         args.json and checkpoints/"
    )]
    NotAnExperiment { dir: PathBuf, detail: String },

    #[error("{dir}: holds no checkpoint (.pt or .safetensors); copy one into checkpoints/")]
    NoCheckpoint { dir: PathBuf },

    #[error(
        "{dir}: holds several checkpoints ({list}); choose one with --checkpoint STEP \
         (for example --checkpoint {example})"
    )]
    SeveralCheckpoints {
        dir: PathBuf,
        list: String,
        example: u64,
    },

    #[error(
        "{dir}: has no checkpoint `{given}` (it holds {list}); give a step number or a \
         checkpoint file"
    )]
    CheckpointNotFound {
        dir: PathBuf,
        given: String,
        list: String,
    },

    #[error("{path}: field `{field}` {problem}")]
    Args {
        path: PathBuf,
        field: &'static str,
        problem: String,
    },

    #[error(
        "{path}: has no `{key}` (it holds {present}); give the `-latents-stats.pt` file saved \
         next to the VAE"
    )]
    StatsKeyMissing {
        path: PathBuf,
        key: &'static str,
        present: String,
    },

    #[error("{path}: building the {what}: {cause}")]
    Build {
        what: &'static str,
        path: PathBuf,
        cause: Box<candle_core::Error>,
    },
}

type Result<T, E = HiditFilesError> = std::result::Result<T, E>;

/// `args.json` of a REPA-E run (`vars(args)` of train_ldm_only.py or train_repae.py): the
/// fields sampling needs, every other field kept in `rest`. A model of our own adds `arch`
/// (its SiT, read by `models::hidit::sit`) and `vae_arch`, which take precedence over `model`
/// and `vae`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ArgsJson {
    /// REPA-E's `SiT_models` name (`SiT-XL/1`).
    #[serde(default)]
    pub model: Option<String>,
    /// REPA-E's `vae_models` name (`f16d32`, `f8d4`).
    #[serde(default)]
    pub vae: Option<String>,
    /// Where training read the VAE from (relative to REPA-E's working directory).
    #[serde(default)]
    pub vae_ckpt: Option<String>,
    #[serde(default)]
    pub resolution: Option<usize>,
    #[serde(default)]
    pub num_classes: Option<usize>,
    /// The block after which the REPA projector reads (training only).
    #[serde(default)]
    pub encoder_depth: Option<usize>,
    #[serde(default)]
    pub enc_type: Option<String>,
    #[serde(default)]
    pub cfg_prob: Option<f64>,
    #[serde(default)]
    pub qk_norm: Option<bool>,
    #[serde(default)]
    pub path_type: Option<String>,
    /// Our own SiT architecture object (depth, hidden_size, …), left to the SiT to read.
    #[serde(default)]
    pub arch: Option<serde_json::Value>,
    /// Our own autoencoder architecture.
    #[serde(default)]
    pub vae_arch: Option<VaeArch>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

impl ArgsJson {
    pub fn read(path: &Path) -> Result<Self> {
        Ok(read_json(path, "REPA-E args.json")?)
    }

    /// The VAE training read (`vae_ckpt`) for the experiment folder `dir`, if it is found:
    /// REPA-E gives it relative to its working directory, usually two levels above the
    /// experiment folder (`exps/NAME`); a folder packed on its own holds it inside.
    pub fn training_vae(&self, dir: &Path) -> Option<PathBuf> {
        let given = Path::new(self.vae_ckpt.as_deref()?);
        [Some(dir), dir.parent(), dir.parent().and_then(Path::parent)]
            .into_iter()
            .flatten()
            .map(|base| base.join(given))
            .find(|p| p.is_file())
    }

    /// The autoencoder: `vae_arch` if given, else REPA-E's architecture named by `vae`.
    pub fn vae_arch(&self, path: &Path) -> Result<VaeArch> {
        let args_error = |field, problem: String| HiditFilesError::Args {
            path: path.to_path_buf(),
            field,
            problem,
        };
        if let Some(arch) = &self.vae_arch {
            arch.check().map_err(|p| args_error("vae_arch", p))?;
            return Ok(arch.clone());
        }
        let name = self.vae.as_deref().ok_or_else(|| {
            args_error(
                "vae",
                "is missing: name REPA-E's VAE (f16d32 or f8d4) or give a `vae_arch` object".into(),
            )
        })?;
        VaeArch::from_name(name).ok_or_else(|| {
            args_error(
                "vae",
                format!(
                    "is `{name}`, not one of REPA-E's VAEs ({}); give a `vae_arch` object for \
                     another",
                    VaeArch::NAMES.join(", ")
                ),
            )
        })
    }
}

/// One REPA-E experiment folder with the checkpoint to sample from chosen.
#[derive(Debug, Clone)]
pub struct HiditExperiment {
    pub dir: PathBuf,
    pub args_path: PathBuf,
    pub args: ArgsJson,
    /// The chosen checkpoint file.
    pub checkpoint: PathBuf,
    /// Every checkpoint in `checkpoints/`, by step.
    pub checkpoints: Vec<(u64, PathBuf)>,
}

impl HiditExperiment {
    /// Opens the folder `path` (or the folder of a checkpoint file given as `path`) and picks
    /// the checkpoint: `choice` (a step such as `100` or `0000100`, or a file), else the only
    /// one.
    pub fn open(path: &Path, choice: Option<&str>) -> Result<Self> {
        let (dir, given_file) = if path.is_file() {
            let dir = path
                .parent()
                .filter(|p| p.file_name().is_some_and(|n| n == "checkpoints"))
                .and_then(Path::parent)
                .ok_or_else(|| HiditFilesError::NotAnExperiment {
                    dir: path.to_path_buf(),
                    detail: "a checkpoint file given as the model must lie in the folder's \
                             checkpoints/"
                        .into(),
                })?;
            (dir.to_path_buf(), Some(path.to_path_buf()))
        } else {
            (path.to_path_buf(), None)
        };
        let args_path = dir.join("args.json");
        if !args_path.is_file() {
            return Err(HiditFilesError::NotAnExperiment {
                dir,
                detail: "it has no args.json".into(),
            });
        }
        let args = ArgsJson::read(&args_path)?;
        let checkpoints = list_checkpoints(&dir)?;
        let checkpoint = match (given_file, choice) {
            (_, Some(choice)) => choose(&dir, &checkpoints, choice)?,
            (Some(file), None) => file,
            (None, None) => match checkpoints.as_slice() {
                [] => {
                    return Err(HiditFilesError::NoCheckpoint {
                        dir: dir.join("checkpoints"),
                    });
                }
                [(_, only)] => only.clone(),
                [.., (last, _)] => {
                    return Err(HiditFilesError::SeveralCheckpoints {
                        dir: dir.join("checkpoints"),
                        list: listing(&checkpoints),
                        example: *last,
                    });
                }
            },
        };
        Ok(Self {
            dir,
            args_path,
            args,
            checkpoint,
            checkpoints,
        })
    }

    /// The autoencoder architecture args.json states.
    pub fn vae_arch(&self) -> Result<VaeArch> {
        self.args.vae_arch(&self.args_path)
    }

    /// The checkpoint's `ema` state dict (what REPA-E samples from), in stored dtypes on the
    /// CPU. A safetensors conversion holds it directly (or under `ema.` prefixes).
    pub fn load_ema(&self) -> Result<HashMap<String, Tensor>> {
        self.load_entry("ema")
    }

    /// The state dict under `key` (`ema`, `model`, or `vae` in REPA-E end-to-end checkpoints).
    pub fn load_entry(&self, key: &str) -> Result<HashMap<String, Tensor>> {
        read_tensors(&self.checkpoint, Some(key))
    }

    /// Whether the checkpoint carries its own VAE (REPA-E end-to-end training saves `vae`;
    /// generate.py then takes the statistics from the EMA's BatchNorm).
    pub fn checkpoint_has_vae(&self) -> Result<bool> {
        Ok(match torch_pt::sniff(&self.checkpoint)? {
            FileKind::TorchZip => PtFile::open(&self.checkpoint)?.has("vae"),
            _ => false,
        })
    }

    /// The autoencoder file to read when none is given, in generate.py's order: none if the
    /// checkpoint carries its own `vae` (end-to-end runs), else args.json's `vae_ckpt` where
    /// it is found (`ArgsJson::training_vae`); `None` with no such file either.
    pub fn default_vae(&self) -> Result<Option<PathBuf>> {
        if self.checkpoint_has_vae()? {
            return Ok(None);
        }
        Ok(self.args.training_vae(&self.dir))
    }
}

/// `checkpoints/*.pt|*.pth|*.safetensors` of `dir`, by the step in their names (files whose
/// name is not a step come last, numbered after the others).
fn list_checkpoints(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let folder = dir.join("checkpoints");
    let listing = std::fs::read_dir(&folder).map_err(|_| HiditFilesError::NotAnExperiment {
        dir: dir.to_path_buf(),
        detail: "it has no checkpoints/ folder".into(),
    })?;
    let mut found: Vec<(Option<u64>, PathBuf)> = listing
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["pt", "pth", "safetensors"].contains(&e.to_ascii_lowercase().as_str())
            })
        })
        .map(|p| (step_of(&p), p))
        .collect();
    found.sort_by_key(|(step, path)| (step.is_none(), *step, path.clone()));
    let numbered = found.iter().filter_map(|(s, _)| *s).max().unwrap_or(0);
    let mut next = numbered;
    Ok(found
        .into_iter()
        .map(|(step, path)| {
            let step = step.unwrap_or_else(|| {
                next += 1;
                next
            });
            (step, path)
        })
        .collect())
}

fn step_of(path: &Path) -> Option<u64> {
    path.file_stem()?.to_str()?.parse().ok()
}

fn listing(checkpoints: &[(u64, PathBuf)]) -> String {
    checkpoints
        .iter()
        .filter_map(|(_, p)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--checkpoint`: a step number, or a file (as given, or relative to the folder).
fn choose(dir: &Path, checkpoints: &[(u64, PathBuf)], given: &str) -> Result<PathBuf> {
    let as_path = Path::new(given);
    for candidate in [as_path.to_path_buf(), dir.join(as_path)] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    if let Ok(step) = given.parse::<u64>()
        && let Some((_, path)) = checkpoints
            .iter()
            .find(|(s, p)| *s == step && step_of(p).is_some())
    {
        return Ok(path.clone());
    }
    Err(HiditFilesError::CheckpointNotFound {
        dir: dir.join("checkpoints"),
        given: given.to_string(),
        list: if checkpoints.is_empty() {
            "none".into()
        } else {
            listing(checkpoints)
        },
    })
}

/// The tensors of a `.pt` file (the state dict under `key`, or the whole file) or of a
/// safetensors conversion (its `key.`-prefixed part; a conversion without prefixes is one
/// state dict, read for no key or `ema`), on the CPU in their stored dtypes. Safetensors integer tensors (BatchNorm's
/// `num_batches_tracked`) are left out: nothing here reads them.
pub fn read_tensors(path: &Path, key: Option<&str>) -> Result<HashMap<String, Tensor>> {
    if torch_pt::sniff(path)? != FileKind::Safetensors {
        // Every other kind is read, or refused with its own message, by the torch reader.
        return Ok(PtFile::open(path)?.state_dict(key)?);
    }
    let store = TensorStore::open_file(path)?;
    let prefix = key.map(|k| format!("{k}."));
    let prefixed = prefix
        .as_ref()
        .is_some_and(|p| store.names().any(|n| n.starts_with(p.as_str())));
    // An unprefixed conversion holds the one state dict sampling reads: the `ema` entry.
    if let Some(key) = key
        && !prefixed
        && key != "ema"
    {
        return Err(PtError::KeyMissing {
            path: path.to_path_buf(),
            key: key.to_string(),
            present: "one state dict without entry prefixes (taken as `ema`)".into(),
        }
        .into());
    }
    let mut out = HashMap::new();
    for name in store.names() {
        let short = match (&prefix, prefixed) {
            (Some(p), true) => match name.strip_prefix(p.as_str()) {
                Some(short) => short,
                None => continue,
            },
            _ => name,
        };
        let floats = store
            .entry(name)
            .is_some_and(|(entry, _)| entry.dtype.loads_as_float());
        if floats {
            out.insert(short.to_string(), store.load(name, None, &Device::Cpu)?);
        }
    }
    Ok(out)
}

/// Loads the VAE state dict at `path` (`.pt` or safetensors) as the autoencoder `arch`,
/// checking every tensor name and shape first (`described_by` says where `arch` came from, for
/// the message).
pub fn load_vae(
    path: &Path,
    arch: &VaeArch,
    described_by: &str,
    dtype: DType,
    device: &Device,
) -> Result<AutoencoderKl> {
    let tensors = read_tensors(path, None)?;
    vae_from_tensors(path, tensors, arch, described_by, dtype, device)
}

/// As [`load_vae`], from a state dict already read (a checkpoint's `vae` entry).
pub fn vae_from_tensors<S: std::hash::BuildHasher>(
    path: &Path,
    tensors: HashMap<String, Tensor, S>,
    arch: &VaeArch,
    described_by: &str,
    dtype: DType,
    device: &Device,
) -> Result<AutoencoderKl> {
    let build_error = |cause| HiditFilesError::Build {
        what: "autoencoder",
        path: path.to_path_buf(),
        cause: Box::new(cause),
    };
    arch.check().map_err(|problem| HiditFilesError::Args {
        path: path.to_path_buf(),
        field: "vae_arch",
        problem,
    })?;
    let requested = requested_tensors(|vb| AutoencoderKl::new(arch, vb)).map_err(build_error)?;
    let tensors: HashMap<String, Tensor> = tensors.into_iter().collect();
    check_tensor_map(path, described_by, &tensors, &requested, &[])?;
    let vb = VarBuilder::from_tensors(tensors, dtype, device);
    AutoencoderKl::new(arch, vb).map_err(build_error)
}

/// REPA-E's latent normalisation: `z_norm = (z − bias) · scale`, decoded as
/// `z_norm / scale + bias`.
#[derive(Debug, Clone)]
pub struct LatentStats {
    /// 1/std per channel, [1, C, 1, 1] f32.
    pub scale: Tensor,
    /// Mean per channel, [1, C, 1, 1] f32.
    pub bias: Tensor,
}

impl LatentStats {
    /// Reads `latents_scale` and `latents_bias` from a `*-latents-stats.pt` (or its safetensors
    /// conversion); either shape, [C] or [1, C, 1, 1], is accepted.
    pub fn read(path: &Path) -> Result<Self> {
        let tensors = read_tensors(path, None)?;
        let get = |key: &'static str| -> Result<Tensor> {
            let t = tensors.get(key).ok_or_else(|| {
                let mut present: Vec<&str> = tensors.keys().map(String::as_str).collect();
                present.sort_unstable();
                let listed = if present.len() > 4 {
                    format!("{}, … ({} tensors)", present[..4].join(", "), present.len())
                } else {
                    present.join(", ")
                };
                HiditFilesError::StatsKeyMissing {
                    path: path.to_path_buf(),
                    key,
                    present: listed,
                }
            })?;
            per_channel(t).map_err(|cause| HiditFilesError::Build {
                what: "latent statistics",
                path: path.to_path_buf(),
                cause: Box::new(cause),
            })
        };
        Ok(Self {
            scale: get("latents_scale")?,
            bias: get("latents_bias")?,
        })
    }

    /// From a SiT's BatchNorm buffers, as generate.py does for end-to-end checkpoints:
    /// scale = running_var^(−1/2) (no eps), bias = running_mean.
    pub fn from_batchnorm(
        running_mean: &Tensor,
        running_var: &Tensor,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            scale: per_channel(&per_channel(running_var)?.sqrt()?.recip()?)?,
            bias: per_channel(running_mean)?,
        })
    }

    /// Where generate.py looks for the statistics of `vae`: `X.pt` → `X-latents-stats.pt`.
    pub fn path_beside(vae: &Path) -> PathBuf {
        let name = vae
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stats = match name.rsplit_once('.') {
            Some((stem, ext)) => format!("{stem}-latents-stats.{ext}"),
            None => format!("{name}-latents-stats.pt"),
        };
        vae.with_file_name(stats)
    }

    pub fn channels(&self) -> usize {
        self.scale.dims().get(1).copied().unwrap_or(0)
    }

    /// VAE latents → the sampler's normalised space.
    pub fn normalise(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        z.broadcast_sub(&self.bias)?.broadcast_mul(&self.scale)
    }

    /// The sampler's normalised latents → VAE latents (REPA-E `denormalize_latents`).
    pub fn denormalise(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        z.broadcast_div(&self.scale)?.broadcast_add(&self.bias)
    }
}

/// Any per-channel tensor ([C] or [1, C, 1, 1]) as [1, C, 1, 1] f32.
fn per_channel(t: &Tensor) -> candle_core::Result<Tensor> {
    t.to_dtype(DType::F32)?.reshape((1, t.elem_count(), 1, 1))
}
