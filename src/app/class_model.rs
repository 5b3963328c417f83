//! Class mode's Hi-DiT model as configured: the files a job uses (the chosen ones, else the
//! defaults REPA-E's generate.py and our pipeline use) and the classes it offers, read from
//! args.json without loading any weights.

use std::path::{Path, PathBuf};

use super::config::ModelFolders;
use crate::models::hidit::Mode as Sampler;
use crate::models::hidit::files::{HiditExperiment, HiditFilesError, LatentStats};
use crate::pipelines::hidit::{ClassNames, HiditFiles, class_names, conditioning};

/// A usable Hi-DiT model: its files and its classes.
#[derive(Debug, Clone)]
pub(crate) struct ClassModel {
    pub files: HiditFiles,
    /// How many classes it was trained on (its labels are 0 to count − 1).
    pub count: usize,
    /// Whether it has the null class guidance needs (trained with label dropout).
    pub null_class: bool,
    pub names: Option<ClassNames>,
    /// The checkpoint, autoencoder and statistics used, for the models view.
    pub summary: String,
    /// The sampling values its classes.json recommends, if any.
    pub defaults: Option<ClassDefaults>,
}

/// The sampling values a model was made for, as the bundled Shapes Hi-DiT's classes.json
/// gives them (`defaults`); the class controls start from them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
pub(crate) struct ClassDefaults {
    pub mode: Sampler,
    pub num_steps: usize,
    pub cfg_scale: f64,
    pub guidance_low: f64,
    pub guidance_high: f64,
}

impl ClassDefaults {
    /// The folder's classes.json `defaults`. A file without them, or none, gives `None`; one
    /// that does not parse is reported (the class names come from the same file).
    fn read(folder: &Path) -> Result<Option<Self>, String> {
        #[derive(serde::Deserialize)]
        struct ClassesFile {
            #[serde(default)]
            defaults: Option<ClassDefaults>,
        }
        let path = folder.join("classes.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        serde_json::from_str::<ClassesFile>(&text)
            .map(|f| f.defaults)
            .map_err(|e| {
                format!(
                    "{}: `defaults` is not as expected ({e}); it needs mode (\"ode\" or \"sde\"), \
                     num_steps, cfg_scale, guidance_low and guidance_high",
                    path.display()
                )
            })
    }
}

impl ClassModel {
    /// Reads the experiment folder `folder` with the chosen `vae` and `stats`, if any. The
    /// error is written for the models view and the status line.
    pub fn read(folder: &Path, vae: Option<&Path>, stats: Option<&Path>) -> Result<Self, String> {
        if !folder.exists() {
            return Err(format!(
                "{} does not exist (moved or deleted?): choose the folder again",
                folder.display()
            ));
        }
        // The window has no checkpoint choice: of several, the newest (the last step).
        let (exp, checkpoint) = match HiditExperiment::open(folder, None) {
            Err(HiditFilesError::SeveralCheckpoints { example, .. }) => {
                let step = example.to_string();
                let exp = HiditExperiment::open(folder, Some(&step)).map_err(|e| e.to_string())?;
                (exp, Some(step))
            }
            other => (other.map_err(|e| e.to_string())?, None),
        };
        exp.vae_arch().map_err(|e| e.to_string())?;
        let conditioning = conditioning(&exp);
        let names = class_names(&exp, conditioning.num_classes).map_err(|e| e.to_string())?;
        let vae = match vae {
            Some(vae) => Some(vae.to_path_buf()),
            None => exp.default_vae().map_err(|e| e.to_string())?,
        };
        let stats = resolve_stats(&exp, vae.as_deref(), stats)?;
        let shown = |p: &Path| {
            p.file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
        };
        let autoencoder = match &vae {
            Some(vae) => format!("autoencoder {}", shown(vae)),
            None => "the checkpoint's own autoencoder".into(),
        };
        let classes = match &names {
            Some(_) => format!("{} named classes", conditioning.num_classes),
            None => format!("{} classes, by number", conditioning.num_classes),
        };
        let summary = format!(
            "{classes}; checkpoint {}{}, {autoencoder}",
            shown(&exp.checkpoint),
            if checkpoint.is_some() {
                " (the newest)"
            } else {
                ""
            }
        );
        Ok(Self {
            files: HiditFiles {
                model: folder.to_path_buf(),
                checkpoint,
                vae,
                latents_stats: stats,
            },
            count: conditioning.num_classes,
            null_class: conditioning.null_class,
            names,
            summary,
            defaults: ClassDefaults::read(folder)?,
        })
    }

    /// How class `index` is shown: its name, else its number.
    pub fn label(&self, index: usize) -> String {
        match self.names.as_ref().and_then(|n| n.name(index)) {
            Some(name) => name.to_string(),
            None => format!("class {index}"),
        }
    }
}

/// The latent statistics: the chosen file, else the one beside the VAE (as generate.py finds
/// it); with the checkpoint's own VAE, its BatchNorm's (`None`).
fn resolve_stats(
    exp: &HiditExperiment,
    vae: Option<&Path>,
    stats: Option<&Path>,
) -> Result<Option<PathBuf>, String> {
    let missing = |what: &str, path: &Path| {
        format!(
            "the {what} {} does not exist (moved or deleted?): choose it again",
            path.display()
        )
    };
    if let Some(stats) = stats
        && !stats.is_file()
    {
        return Err(missing("latent statistics file", stats));
    }
    let Some(vae) = vae else {
        let own = exp.checkpoint_has_vae().map_err(|e| e.to_string())?;
        if !own {
            let given = exp.args.vae_ckpt.as_deref().map_or_else(
                || "args.json names none".to_string(),
                |g| format!("args.json's `vae_ckpt` ({g}) is not found near the folder"),
            );
            return Err(format!(
                "no autoencoder: {given} and the checkpoint carries none; choose the VAE file"
            ));
        }
        return Ok(stats.map(Path::to_path_buf));
    };
    if !vae.is_file() {
        return Err(missing("autoencoder", vae));
    }
    if let Some(stats) = stats {
        return Ok(Some(stats.to_path_buf()));
    }
    let beside = LatentStats::path_beside(vae);
    if beside.is_file() {
        Ok(Some(beside))
    } else {
        Err(format!(
            "no latent statistics beside the autoencoder ({}): choose the statistics file",
            beside.display()
        ))
    }
}

/// What the configuration gives class mode.
#[derive(Debug, Clone)]
pub(crate) enum ClassModelState {
    /// No folder chosen and none bundled.
    NotSet,
    Ready(Box<ClassModel>),
    Problem(String),
}

/// The configured model, read once per set of files (reading opens args.json and lists the
/// checkpoints, too much for every frame).
#[derive(Default)]
pub(crate) struct ClassModelCache {
    read: Option<(HiditPaths, ClassModelState)>,
}

/// (folder, VAE, statistics) as configured.
type HiditPaths = (PathBuf, Option<PathBuf>, Option<PathBuf>);

impl ClassModelCache {
    /// The model of the configured folder, else of the bundled one.
    pub fn get(&mut self, configured: &ModelFolders, bundled: &ModelFolders) -> &ClassModelState {
        let paths = match (&configured.hidit, &bundled.hidit) {
            (Some(folder), _) => Some((
                folder.clone(),
                configured.hidit_vae.clone(),
                configured.hidit_latents_stats.clone(),
            )),
            (None, Some(folder)) => Some((
                folder.clone(),
                bundled.hidit_vae.clone(),
                bundled.hidit_latents_stats.clone(),
            )),
            (None, None) => None,
        };
        let Some(paths) = paths else {
            self.read = None;
            return &ClassModelState::NotSet;
        };
        if self.read.as_ref().is_none_or(|(read, _)| *read != paths) {
            let (folder, vae, stats) = &paths;
            let state = match ClassModel::read(folder, vae.as_deref(), stats.as_deref()) {
                Ok(model) => ClassModelState::Ready(Box::new(model)),
                Err(problem) => ClassModelState::Problem(problem),
            };
            self.read = Some((paths, state));
        }
        self.read
            .as_ref()
            .map_or(&ClassModelState::NotSet, |(_, state)| state)
    }

    /// Forgets what was read, so changed files are looked at again.
    pub fn forget(&mut self) {
        self.read = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hidit")
            .join(rel)
    }

    #[test]
    fn the_fixture_finds_its_training_vae_and_statistics() {
        let model = ClassModel::read(&fixture("model"), None, None).unwrap();
        assert_eq!(model.count, 10);
        assert!(model.null_class && model.names.is_none());
        assert_eq!(model.label(3), "class 3");
        // args.json's vae_ckpt (files/vae/tiny-vae.pt) is relative to the folder's parent.
        assert_eq!(model.files.vae, Some(fixture("files/vae/tiny-vae.pt")));
        assert_eq!(
            model.files.latents_stats,
            Some(fixture("files/vae/tiny-vae-latents-stats.pt"))
        );
        assert_eq!(model.files.checkpoint, None);
    }

    #[test]
    fn the_configured_folder_else_the_bundled_one() {
        let mut cache = ClassModelCache::default();
        let none = ModelFolders::default();
        assert!(matches!(cache.get(&none, &none), ClassModelState::NotSet));
        let bundled = ModelFolders {
            hidit: Some(fixture("model")),
            ..ModelFolders::default()
        };
        let ClassModelState::Ready(model) = cache.get(&none, &bundled) else {
            panic!("the bundled folder stands in for an empty slot");
        };
        assert_eq!(model.files.model, fixture("model"));
        let configured = ModelFolders {
            hidit: Some(fixture("nowhere")),
            ..ModelFolders::default()
        };
        assert!(matches!(
            cache.get(&configured, &bundled),
            ClassModelState::Problem(p) if p.contains("nowhere")
        ));
    }

    #[test]
    fn missing_files_are_named() {
        let gone = ClassModel::read(&fixture("nowhere"), None, None).unwrap_err();
        assert!(gone.contains("does not exist"), "{gone}");
        let vae = fixture("files/vae/tiny-vae.pt");
        let stats = fixture("files/vae/none.pt");
        let e = ClassModel::read(&fixture("model"), Some(&vae), Some(&stats)).unwrap_err();
        assert!(
            e.contains("none.pt") && e.contains("choose it again"),
            "{e}"
        );
        let not_an_experiment = ClassModel::read(&fixture("files/vae"), None, None).unwrap_err();
        assert!(
            not_an_experiment.contains("args.json"),
            "{not_an_experiment}"
        );
    }
}
