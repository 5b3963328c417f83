//! REPA-E experiment folders as train_ldm_only.py writes them (REPA-E @3ad8046): `args.json`
//! (`vars(args)`) and `checkpoints/NNNNNNN.pt`, each a dict {model, ema, opt, args, steps} of
//! which sampling uses `ema`. A checkpoint may also be a safetensors conversion holding the ema
//! state dict alone. Our own models add an `arch` object (and `vae_arch`, `class_names`) to
//! args.json.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::error::HiditError;
use crate::models::hidit::autoencoder::VaeArch;
use crate::models::hidit::config::MODEL_NAMES;
use crate::models::hidit::{ArchSpec, Conditioning, Sit, SitConfig};
use crate::weights::{Held, mismatch_details, read_json, requested_tensors, torch_pt};

/// The checkpoint entry sampling reads (generate.py loads `state_dict['ema']`).
pub const SAMPLING_ENTRY: &str = "ema";
/// Checkpoint tensors the SiT does not read: BatchNorm's step counter.
const SIT_IGNORED: [&str; 1] = ["bn.num_batches_tracked"];

/// The fields of args.json sampling needs, with train_ldm_only.py's defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExperimentArgs {
    #[serde(default = "default_model")]
    pub model: String,
    #[serde(default = "thousand")]
    pub num_classes: usize,
    #[serde(default = "eight")]
    pub encoder_depth: usize,
    #[serde(default)]
    pub qk_norm: bool,
    #[serde(default = "two_five_six")]
    pub resolution: usize,
    /// Label dropout in training: above 0, the label table has the null class.
    #[serde(default = "one_tenth")]
    pub cfg_prob: f64,
    #[serde(default = "default_vae")]
    pub vae: String,
    /// Ours: the SiT's shape, for models without a REPA-E name; takes precedence over `model`.
    #[serde(default)]
    pub arch: Option<ArchSpec>,
    /// Ours: the autoencoder's shape; takes precedence over `vae`.
    #[serde(default)]
    pub vae_arch: Option<VaeArch>,
    /// Ours: a name per class (synonyms separated by ", ").
    #[serde(default)]
    pub class_names: Option<Vec<String>>,
}

fn default_model() -> String {
    "SiT-XL/1".into()
}
fn thousand() -> usize {
    1000
}
fn eight() -> usize {
    8
}
fn two_five_six() -> usize {
    256
}
fn one_tenth() -> f64 {
    0.1
}
fn default_vae() -> String {
    "f16d32".into()
}

/// An experiment folder with its chosen checkpoint.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub dir: PathBuf,
    pub args: ExperimentArgs,
    pub checkpoint: PathBuf,
}

impl Experiment {
    /// Reads `dir`/args.json and picks the checkpoint: `choice` (a step such as `100` or
    /// `0000100`, or a file), else the folder's only one.
    pub fn open(dir: &Path, choice: Option<&str>) -> Result<Self, HiditError> {
        let args_path = dir.join("args.json");
        if !args_path.is_file() {
            return Err(HiditError::NotAnExperiment {
                dir: dir.to_path_buf(),
            });
        }
        let args: ExperimentArgs = read_json(&args_path, "REPA-E args.json")?;
        if args.qk_norm {
            return Err(field(
                &args_path,
                "qk_norm",
                "is true: models with query/key normalisation are not supported (REPA-E's \
                 published models have none)",
            ));
        }
        if let Some(names) = &args.class_names
            && names.len() != args.num_classes
        {
            return Err(field(
                &args_path,
                "class_names",
                format!(
                    "lists {} names for {} classes (`num_classes`)",
                    names.len(),
                    args.num_classes
                ),
            ));
        }
        Ok(Self {
            checkpoint: find_checkpoint(dir, choice)?,
            dir: dir.to_path_buf(),
            args,
        })
    }

    pub fn args_path(&self) -> PathBuf {
        self.dir.join("args.json")
    }

    /// The autoencoder's architecture: `vae_arch`, else REPA-E's `vae` name.
    pub fn vae_arch(&self) -> Result<VaeArch, HiditError> {
        if let Some(arch) = &self.args.vae_arch {
            arch.check()
                .map_err(|problem| field(&self.args_path(), "vae_arch", problem))?;
            return Ok(arch.clone());
        }
        VaeArch::from_name(&self.args.vae).ok_or_else(|| {
            field(
                &self.args_path(),
                "vae",
                format!(
                    "is `{}`, not one of REPA-E's autoencoders ({}); a model of another shape \
                     states it in a `vae_arch` object",
                    self.args.vae,
                    VaeArch::NAMES.join(", ")
                ),
            )
        })
    }

    /// The SiT's configuration: `arch`, else REPA-E's `model` name on the autoencoder's latent,
    /// with the projector widths read off `state_dict` (REPA-E takes them from the encoders).
    pub fn sit_config(
        &self,
        state_dict: &HashMap<String, Tensor>,
    ) -> Result<SitConfig, HiditError> {
        let conditioning = Conditioning {
            num_classes: self.args.num_classes,
            null_class: self.args.cfg_prob > 0.0,
            encoder_depth: self.args.encoder_depth,
        };
        let cfg = if let Some(arch) = &self.args.arch {
            SitConfig::from_arch(arch, conditioning)
        } else {
            let vae = self.vae_arch()?;
            let input_size = self.args.resolution / vae.downsampling();
            SitConfig::from_name(
                &self.args.model,
                input_size,
                vae.embed_dim,
                conditioning,
                projector_widths(state_dict),
            )
            .ok_or_else(|| {
                field(
                    &self.args_path(),
                    "model",
                    format!(
                        "is `{}`, not one of REPA-E's SiT names ({MODEL_NAMES}); a model of \
                         another shape states it in an `arch` object",
                        self.args.model
                    ),
                )
            })?
        };
        let which = if self.args.arch.is_some() {
            "arch"
        } else {
            "model"
        };
        cfg.validate()
            .map_err(|problem| field(&self.args_path(), which, problem))?;
        Ok(cfg)
    }

    /// Where the architecture came from, for messages.
    pub fn arch_source(&self) -> String {
        match &self.args.arch {
            Some(_) => format!("{}'s `arch`", self.args_path().display()),
            None => format!(
                "{}'s `model` ({})",
                self.args_path().display(),
                self.args.model
            ),
        }
    }

    /// The SiT from the checkpoint's `ema` entry (a safetensors conversion: the whole file),
    /// every tensor checked against the configuration first, computing in f32 on `device`.
    pub fn load_sit(&self, device: &Device) -> Result<Sit, HiditError> {
        let state_dict = read_weights(&self.checkpoint, Some(SAMPLING_ENTRY))?;
        let cfg = self.sit_config(&state_dict)?;
        build_checked(
            &self.checkpoint,
            ("SiT checkpoint", self.arch_source(), &SIT_IGNORED),
            state_dict,
            device,
            |vb| Sit::new(&cfg, vb),
        )
    }
}

fn field(path: &Path, field: &'static str, problem: impl Into<String>) -> HiditError {
    HiditError::Field {
        path: path.to_path_buf(),
        field,
        problem: problem.into(),
    }
}

/// (z_dims, projector_dim) of the projectors `projectors.{i}.{0,4}.weight` in a state dict.
fn projector_widths(state_dict: &HashMap<String, Tensor>) -> (Vec<usize>, usize) {
    let dim0 = |name: String| {
        state_dict
            .get(&name)
            .and_then(|t| t.dims().first().copied())
    };
    let z_dims: Vec<usize> = (0..)
        .map_while(|i| dim0(format!("projectors.{i}.4.weight")))
        .collect();
    let projector_dim = dim0("projectors.0.0.weight".into()).unwrap_or(2048);
    (z_dims, projector_dim)
}

/// The state dict in a `.safetensors` file (all of it) or a `torch.save` file (its entry
/// `entry`, or all of it when `None`), on the CPU in the stored dtypes.
pub(crate) fn read_weights(
    path: &Path,
    entry: Option<&str>,
) -> Result<HashMap<String, Tensor>, HiditError> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
    {
        return candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
            HiditError::Safetensors {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        });
    }
    Ok(torch_pt::read_state_dict(path, entry)?)
}

/// Builds a model from `state_dict` after checking every tensor `build` asks for against it
/// (`what`: the file's role; `source`: where the architecture came from; `ignored`: tensors
/// the model knowingly leaves unread). The weights are converted to f32 on `device`.
pub(crate) fn build_checked<T>(
    path: &Path,
    (what, source, ignored): (&'static str, String, &[&str]),
    state_dict: HashMap<String, Tensor>,
    device: &Device,
    build: impl Fn(VarBuilder<'_>) -> candle_core::Result<T>,
) -> Result<T, HiditError> {
    let build_error = |source| HiditError::Build {
        path: path.to_path_buf(),
        what,
        source,
    };
    let requested = requested_tensors(&build).map_err(build_error)?;
    let held = |name: &str| {
        state_dict.get(name).map(|t| Held {
            shape: t.dims().to_vec(),
            float: t.dtype().is_float(),
            dtype: format!("{:?}", t.dtype()),
        })
    };
    if let Some(details) = mismatch_details(
        &requested,
        held,
        state_dict.keys().map(String::as_str),
        ignored,
    ) {
        return Err(HiditError::Mismatch {
            path: path.to_path_buf(),
            what,
            source_of_arch: source,
            details,
        });
    }
    build(VarBuilder::from_tensors(state_dict, DType::F32, device)).map_err(build_error)
}

/// The checkpoint `choice` names, else the folder's only one.
fn find_checkpoint(dir: &Path, choice: Option<&str>) -> Result<PathBuf, HiditError> {
    let found = checkpoints(dir);
    let steps = || {
        found
            .iter()
            .map(|(step, _)| step.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(given) = choice else {
        return match found.as_slice() {
            [] => Err(HiditError::NoCheckpoint {
                dir: dir.to_path_buf(),
            }),
            [(_, only)] => Ok(only.clone()),
            [.., (latest, _)] => Err(HiditError::SeveralCheckpoints {
                dir: dir.to_path_buf(),
                steps: steps(),
                latest: latest.to_string(),
            }),
        };
    };
    let not_found = |problem: String| HiditError::CheckpointNotFound {
        given: given.to_string(),
        problem,
    };
    if !given.is_empty() && given.bytes().all(|b| b.is_ascii_digit()) {
        let step: u64 = given
            .parse()
            .map_err(|_| not_found("is not a step number".into()))?;
        return found
            .iter()
            .find(|(s, _)| *s == step)
            .map(|(_, path)| path.clone())
            .ok_or_else(|| {
                not_found(if found.is_empty() {
                    format!("{} has no checkpoints", dir.join("checkpoints").display())
                } else {
                    format!(
                        "no checkpoint of this step; the folder has steps {}",
                        steps()
                    )
                })
            });
    }
    let given_path = Path::new(given);
    [
        given_path.to_path_buf(),
        dir.join(given_path),
        dir.join("checkpoints").join(given_path),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .ok_or_else(|| {
        not_found(format!(
            "no such file (looked for it as given, in {} and in its checkpoints/)",
            dir.display()
        ))
    })
}

/// The folder's `checkpoints/NNNNNNN.{pt,safetensors}` by step, ascending (a `.pt` before a
/// conversion of the same step).
fn checkpoints(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir.join("checkpoints")) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, bool, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter_map(|path| {
            let ext = path.extension()?.to_str()?.to_ascii_lowercase();
            let step = path.file_stem()?.to_str()?.parse().ok()?;
            match ext.as_str() {
                "pt" => Some((step, false, path)),
                "safetensors" => Some((step, true, path)),
                _ => None,
            }
        })
        .collect();
    found.sort();
    found.dedup_by_key(|(step, _, _)| *step);
    found
        .into_iter()
        .map(|(step, _, path)| (step, path))
        .collect()
}
