//! `info` on Hi-DiT's files: REPA-E experiment folders (args.json + checkpoints/), their
//! checkpoints, VAE state dicts and latent statistics, as `.pt` or safetensors. Tensor tables
//! are read from the pickles and headers; no tensor data is loaded.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::render::human_bytes;
use super::{ComponentReport, ComponentStatus, FolderReport, WeightsSummary};
use crate::models::hidit::autoencoder::{AutoencoderKl, VaeArch};
use crate::models::hidit::files::{ArgsJson, LatentStats};
use crate::models::hidit::pixel::PixelBranchConfig;
use crate::weights::torch_pt::{self, FileKind, PtFile};
use crate::weights::{TensorStore, check_held, requested_tensors};

/// A folder `info` reads as a REPA-E experiment: an args.json (and no diffusers index).
pub(super) fn is_experiment(path: &Path) -> bool {
    path.is_dir()
        && path.join("args.json").is_file()
        && !path.join(crate::weights::MODEL_INDEX).is_file()
}

/// A file the experiment's `checkpoints/` holds: `.pt`, `.pth`, `.ckpt` or `.safetensors`.
fn is_checkpoint_file(path: &Path) -> bool {
    path.is_file()
        && path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            ["pt", "pth", "ckpt", "safetensors"].contains(&e.to_ascii_lowercase().as_str())
        })
}

/// One tensor of a listing: name, shape, dtype name (float or not), and where its bytes are:
/// a storage (key, bytes) several tensors of a `.pt` file may share.
struct Listed {
    name: String,
    shape: Vec<usize>,
    dtype: &'static str,
    float: bool,
    storage: (String, u64),
}

/// The state dicts of a file: `(entry, tensors)`, the entry `None` for a plain state dict,
/// and the file's other top-level entries described in words.
struct Contents {
    dicts: Vec<(Option<String>, Vec<Listed>)>,
    others: Vec<String>,
    steps: Option<i64>,
    args: Option<serde_json::Map<String, serde_json::Value>>,
}

fn read_contents(path: &Path) -> Result<Contents, String> {
    if matches!(torch_pt::sniff(path), Ok(FileKind::Safetensors)) {
        let store = TensorStore::open_file(path).map_err(|e| e.to_string())?;
        let tensors = store
            .names()
            .filter_map(|name| {
                let (entry, _) = store.entry(name)?;
                Some(Listed {
                    name: name.to_string(),
                    shape: entry.shape.clone(),
                    dtype: entry.dtype.name(),
                    float: entry.dtype.loads_as_float(),
                    storage: (name.to_string(), entry.data.len() as u64),
                })
            })
            .collect();
        return Ok(Contents {
            dicts: vec![(None, tensors)],
            others: Vec::new(),
            steps: None,
            args: None,
        });
    }
    let file = PtFile::open(path).map_err(|e| e.to_string())?;
    let listed = |key: Option<&str>| -> Option<Vec<Listed>> {
        let infos = file.tensor_infos(key).ok()?;
        Some(
            infos
                .into_iter()
                .map(|(name, info)| Listed {
                    float: info.dtype.starts_with("float") || info.dtype.starts_with("bfloat"),
                    name,
                    dtype: info.dtype,
                    storage: info.storage,
                    shape: info.shape,
                })
                .collect(),
        )
    };
    let mut contents = Contents {
        dicts: Vec::new(),
        others: Vec::new(),
        steps: file.int("steps"),
        args: file.args_namespace(),
    };
    if let Some(whole) = listed(None) {
        contents.dicts.push((None, whole));
        return Ok(contents);
    }
    for key in file.keys() {
        match listed(Some(&key)) {
            Some(tensors) => contents.dicts.push((Some(key), tensors)),
            // REPA-E's own entries in words; `steps` has its own note.
            None => match key.as_str() {
                "steps" => {}
                "args" => contents.others.push("args (the training arguments)".into()),
                k if k.starts_with("opt") => {
                    contents.others.push(format!("{k} (optimizer state)"));
                }
                _ => contents.others.push(format!(
                    "{key} ({})",
                    file.entry_kind(&key).unwrap_or_default()
                )),
            },
        }
    }
    Ok(contents)
}

fn summary(tensors: &[Listed]) -> WeightsSummary {
    let mut dtypes: BTreeMap<&'static str, usize> = BTreeMap::new();
    for t in tensors {
        *dtypes.entry(t.dtype).or_insert(0) += 1;
    }
    WeightsSummary {
        shards: 1,
        tensors: tensors.len(),
        parameters: tensors
            .iter()
            .map(|t| t.shape.iter().product::<usize>() as u64)
            .sum(),
        // Shared storages are stored once (the tiny fixtures' VAE is views of one).
        bytes: tensors
            .iter()
            .map(|t| (&t.storage.0, t.storage.1))
            .collect::<HashMap<_, _>>()
            .values()
            .sum(),
        shared_bytes: 0,
        dtypes,
    }
}

/// What a state dict holds, by its tensor names.
fn recognise(tensors: &[Listed]) -> &'static str {
    let has = |name: &str| tensors.iter().any(|t| t.name == name);
    if has("encoder.conv_in.weight") || has("decoder.conv_out.weight") {
        "AutoencoderKL (REPA-E / LDM names)"
    } else if has("latents_scale") && has("latents_bias") {
        "latent statistics"
    } else if has("pos_embed") || has("x_embedder.proj.weight") {
        "SiT weights"
    } else {
        "state dict"
    }
}

/// Checks a VAE listing against `arch`; the problem, if any, in the loader's words.
fn vae_fits(
    path: &Path,
    tensors: &[Listed],
    arch: &VaeArch,
    described_by: &str,
) -> Result<(), String> {
    let requested =
        requested_tensors(|vb| AutoencoderKl::new(arch, vb)).map_err(|e| e.to_string())?;
    let held: HashMap<&str, (&[usize], Option<&str>)> = tensors
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                (t.shape.as_slice(), (!t.float).then_some(t.dtype)),
            )
        })
        .collect();
    check_held((path, described_by), &held, &requested, &[]).map_err(|e| e.to_string())
}

/// The published architecture a VAE listing matches, if any.
fn published_vae(path: &Path, tensors: &[Listed]) -> Option<&'static str> {
    VaeArch::NAMES.into_iter().find(|name| {
        VaeArch::from_name(name).is_some_and(|arch| vae_fits(path, tensors, &arch, name).is_ok())
    })
}

fn row(
    name: String,
    class: String,
    tensors: &[Listed],
    status: ComponentStatus,
) -> ComponentReport {
    ComponentReport {
        name,
        class,
        status,
        weights: Some(summary(tensors)),
        files: Vec::new(),
    }
}

fn broken_row(name: String, why: &str) -> ComponentReport {
    ComponentReport {
        name,
        class: String::new(),
        status: ComponentStatus::Broken(why.to_string()),
        weights: None,
        files: Vec::new(),
    }
}

/// `info FILE`: a checkpoint, a VAE, latent statistics or any state dict; any other file is
/// described as what its first bytes show (a PNG given by mistake), rather than refused as a
/// folder that is not one.
pub(super) fn inspect_file(path: &Path) -> FolderReport {
    let mut report = FolderReport {
        path: path.to_path_buf(),
        kind: "weights file",
        class_name: String::new(),
        written_by: None,
        components: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let contents = match read_contents(path) {
        Ok(contents) => contents,
        Err(why) => {
            report.class_name = "(unreadable)".into();
            report.problems.push(why);
            return report;
        }
    };
    report.kind = if matches!(torch_pt::sniff(path), Ok(FileKind::Safetensors)) {
        "safetensors file"
    } else {
        "PyTorch checkpoint"
    };
    describe_dicts(&mut report, path, &contents, "");
    report.class_name = match contents.dicts.as_slice() {
        [(None, tensors)] => recognise(tensors).to_string(),
        _ if contents
            .dicts
            .iter()
            .any(|(k, _)| k.as_deref() == Some("ema")) =>
        {
            "REPA-E training checkpoint".into()
        }
        _ => "checkpoint".into(),
    };
    if let [(None, tensors)] = contents.dicts.as_slice()
        && recognise(tensors).starts_with("AutoencoderKL")
    {
        let stats = LatentStats::path_beside(path);
        report.notes.push(if stats.is_file() {
            format!("its latent statistics are beside it: {}", stats.display())
        } else {
            format!(
                "no latent statistics beside it (REPA-E saves {}); give them with \
                 --latents-stats",
                stats.file_name().unwrap_or_default().to_string_lossy()
            )
        });
    }
    report
}

/// Rows (and notes) for each state dict of a file, names prefixed with `prefix`.
fn describe_dicts(report: &mut FolderReport, path: &Path, contents: &Contents, prefix: &str) {
    // Storages already listed under an earlier entry of this file (exported checkpoints keep
    // `model` and `ema` as views of the same tensors): the total counts them once.
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for (key, tensors) in &contents.dicts {
        let name = match key {
            Some(key) => format!("{prefix}{key}"),
            None if prefix.is_empty() => "(state dict)".to_string(),
            None => prefix.trim_end_matches(": ").to_string(),
        };
        let mut class = recognise(tensors).to_string();
        if class.starts_with("AutoencoderKL") {
            match published_vae(path, tensors) {
                Some(arch) => class = format!("AutoencoderKL {arch}"),
                None => report.notes.push(format!(
                    "{name}: an autoencoder of neither published architecture ({}); a model \
                     of its own states it as `vae_arch` in args.json",
                    VaeArch::NAMES.join(", ")
                )),
            }
        }
        if class == "latent statistics"
            && let Some(t) = tensors.iter().find(|t| t.name == "latents_scale")
        {
            class = format!(
                "latent statistics, {} channels",
                t.shape.iter().product::<usize>()
            );
        }
        if key.as_deref() == Some("ema") {
            class.push_str(" (sampled)");
        }
        let mut component = row(name, class, tensors, ComponentStatus::Ok);
        let own: HashMap<&str, u64> = tensors
            .iter()
            .map(|t| (t.storage.0.as_str(), t.storage.1))
            .collect();
        let shared: u64 = own
            .iter()
            .filter(|(k, _)| seen.contains_key(*k))
            .map(|(_, b)| b)
            .sum();
        if shared > 0
            && let Some(w) = component.weights.as_mut()
        {
            w.shared_bytes = shared;
            report.notes.push(format!(
                "{}: {} of its tensors are stored once with an earlier entry's (counted once \
                 in the total)",
                component.name,
                human_bytes(shared)
            ));
        }
        seen.extend(own);
        report.components.push(component);
    }
    if !contents.others.is_empty() {
        report
            .notes
            .push(format!("{prefix}also holds {}", contents.others.join(", ")));
    }
    if let Some(steps) = contents.steps {
        report
            .notes
            .push(format!("{prefix}saved at training step {steps}"));
    }
    if let Some(args) = &contents.args {
        let field = |k: &str| args.get(k).map_or_else(|| "?".into(), ToString::to_string);
        report.notes.push(format!(
            "{prefix}training arguments (argparse.Namespace): model {}, vae {}, resolution {}",
            field("model"),
            field("vae"),
            field("resolution")
        ));
    }
}

/// `info DIR` on a REPA-E experiment folder.
pub(super) fn inspect_experiment(dir: &Path) -> FolderReport {
    let mut report = FolderReport {
        path: dir.to_path_buf(),
        kind: "REPA-E experiment folder",
        class_name: String::new(),
        written_by: None,
        components: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let args_path = dir.join("args.json");
    let args = match ArgsJson::read(&args_path) {
        Ok(args) => Some(args),
        Err(e) => {
            report.problems.push(e.to_string());
            None
        }
    };
    report.class_name = match &args {
        Some(ArgsJson { arch: Some(_), .. }) => {
            "SiT of its own architecture (args.json `arch`)".into()
        }
        Some(ArgsJson { model: Some(m), .. }) => format!("{m} (args.json `model`)"),
        Some(_) => {
            report.problems.push(format!(
                "{}: names no `model` (REPA-E's SiT name) and has no `arch` object",
                args_path.display()
            ));
            "(no model named)".into()
        }
        None => "(args.json unreadable)".into(),
    };
    if let Some(ArgsJson {
        arch: Some(arch),
        model,
        ..
    }) = &args
    {
        report
            .notes
            .push(format!("architecture (args.json `arch`): {arch}"));
        if let Some(model) = model {
            report
                .notes
                .push(format!("`arch` takes precedence over `model` ({model})"));
        }
    }
    if let Some(args) = &args {
        describe_pixel_branch(&mut report, &args_path, args);
    }

    let checkpoints = checkpoint_files(dir);
    if checkpoints.is_empty() {
        report.problems.push(format!(
            "{}: holds no checkpoint (.pt or .safetensors)",
            dir.join("checkpoints").display()
        ));
    } else if checkpoints.len() > 1 {
        report.notes.push(format!(
            "{} checkpoints: sampling needs --checkpoint STEP to choose one",
            checkpoints.len()
        ));
    }
    let mut e2e_vae = false;
    for file in &checkpoints {
        let shown = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        match read_contents(file) {
            Ok(contents) => {
                let is_conversion = matches!(contents.dicts.as_slice(), [(None, _)]);
                if !is_conversion
                    && !contents
                        .dicts
                        .iter()
                        .any(|(k, _)| k.as_deref() == Some("ema"))
                {
                    report.problems.push(format!(
                        "{shown}: has no `ema` entry, which sampling reads (it holds {})",
                        contents
                            .dicts
                            .iter()
                            .filter_map(|(k, _)| k.clone())
                            .chain(contents.others.iter().cloned())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                e2e_vae |= contents
                    .dicts
                    .iter()
                    .any(|(k, _)| k.as_deref() == Some("vae"));
                describe_dicts(&mut report, file, &contents, &format!("{shown}: "));
            }
            Err(why) => {
                report.problems.push(format!("{shown}: {why}"));
                report.components.push(broken_row(shown, &why));
            }
        }
    }
    if let Some(args) = &args {
        describe_vae(&mut report, dir, args, e2e_vae);
    }
    report
}

fn checkpoint_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(listing) = std::fs::read_dir(dir.join("checkpoints")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = listing
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_checkpoint_file(p))
        .collect();
    files.sort();
    files
}

/// The autoencoder args.json names, and its files when training's `vae_ckpt` is found.
fn describe_vae(report: &mut FolderReport, dir: &Path, args: &ArgsJson, e2e_vae: bool) {
    let args_path = dir.join("args.json");
    let arch = match args.vae_arch(&args_path) {
        Ok(arch) => arch,
        Err(e) => {
            report.problems.push(e.to_string());
            return;
        }
    };
    let source = if args.vae_arch.is_some() {
        "args.json `vae_arch`".to_string()
    } else {
        format!(
            "args.json `vae` ({})",
            args.vae.as_deref().unwrap_or_default()
        )
    };
    report.notes.push(format!(
        "autoencoder from {source}: {} latent channels at 1/{} of the image side",
        arch.embed_dim,
        arch.downsampling()
    ));
    if e2e_vae {
        report.notes.push(
            "the checkpoint carries its own VAE (`vae`, end-to-end training); its latent \
             statistics are the EMA's BatchNorm buffers"
                .into(),
        );
        return;
    }
    let found = args.training_vae(dir);
    let Some(vae) = found else {
        report.notes.push(match &args.vae_ckpt {
            Some(given) => format!(
                "training read the VAE from `{given}`, not found from here: give it with --vae \
                 and its statistics with --latents-stats"
            ),
            None => "give the VAE with --vae and its statistics with --latents-stats".into(),
        });
        return;
    };
    let shown = |p: &Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    match read_contents(&vae) {
        Ok(Contents { dicts, .. }) if matches!(dicts.as_slice(), [(None, _)]) => {
            let tensors = &dicts[0].1;
            let status = match vae_fits(&vae, tensors, &arch, &source) {
                Ok(()) => ComponentStatus::Ok,
                Err(why) => {
                    report.problems.push(why.clone());
                    ComponentStatus::Broken(why)
                }
            };
            report
                .components
                .push(row(shown(&vae), "AutoencoderKL".into(), tensors, status));
        }
        Ok(_) => report
            .problems
            .push(format!("{}: not a plain VAE state dict", vae.display())),
        Err(why) => {
            report.problems.push(why.clone());
            report.components.push(broken_row(shown(&vae), &why));
        }
    }
    let stats = LatentStats::path_beside(&vae);
    if !stats.is_file() {
        report.notes.push(format!(
            "no latent statistics beside the VAE ({}): give them with --latents-stats",
            shown(&stats)
        ));
        return;
    }
    let channels = read_contents(&stats).map(|c| {
        c.dicts
            .iter()
            .flat_map(|(_, t)| t)
            .find(|t| t.name == "latents_scale")
            .map(|t| t.shape.iter().product::<usize>())
    });
    match channels {
        Ok(Some(c)) if c == arch.embed_dim => report.components.push(ComponentReport {
            name: shown(&stats),
            class: format!("latent statistics, {c} channels"),
            status: ComponentStatus::Ok,
            weights: None,
            files: Vec::new(),
        }),
        Ok(Some(c)) => report.problems.push(format!(
            "{}: {c} channels, but the autoencoder has {}",
            stats.display(),
            arch.embed_dim
        )),
        Ok(None) => report.problems.push(format!(
            "{}: has no `latents_scale`; it is not a latent-statistics file",
            stats.display()
        )),
        Err(why) => report.problems.push(why),
    }
}

/// Whether the folder is stage 2 (args.json's `pixel_branch`) or latent-only.
fn describe_pixel_branch(report: &mut FolderReport, args_path: &Path, args: &ArgsJson) {
    let Some(value) = args.rest.get("pixel_branch").filter(|v| !v.is_null()) else {
        report.notes.push(
            "latent-only: no `pixel_branch` in args.json (the VAE decodes the latents)".into(),
        );
        return;
    };
    let problem = match serde_json::from_value::<PixelBranchConfig>(value.clone()) {
        Ok(cfg) => match cfg.validate() {
            Ok(()) => {
                report.notes.push(format!(
                    "pixel branch (args.json `pixel_branch`): pixel tokens join for t < {}, \
                     {}×{} pixels per token, head widths {:?}; the image is the pixel stream's",
                    cfg.tau, cfg.patch_size, cfg.patch_size, cfg.head_channels
                ));
                return;
            }
            Err(problem) => problem,
        },
        Err(e) => e.to_string(),
    };
    report.problems.push(format!(
        "{}: field `pixel_branch` {problem}",
        args_path.display()
    ));
}
