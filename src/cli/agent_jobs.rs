//! Running the agent's jobs from the command line: the bundled Shapes I1 (Dev) and Shapes E1.1
//! through the same engine and settings as `eval` and `eval --edits`, each picture written as
//! a PNG with its settings embedded.

use std::path::{Path, PathBuf};

use anyhow::Context;
use hidream_studio::agent::edit_description;
use hidream_studio::agent::{Conversation, EditorPrompt, Job, JobRunner, Picture, planned_picture};
use hidream_studio::engine::Engine;
use hidream_studio::pipelines::edit::{EditModelChoice, EditSettings};
use hidream_studio::pipelines::{
    ComputeDType, DeviceChoice, EditJob, GenerateJob, HiDreamBackend, JobOutput, Preset, find_llama,
};
use hidream_studio::settings::UserValues;
use hidream_studio::store::{png_with_edit_metadata, png_with_metadata, write_atomically};
use hidream_studio::weights::{StudioManifest, bundled_model};

use super::eval::{ShapesGenerator, shapes_generate_settings};
use super::job::wait_for;

/// The editor and how it wants its instruction.
struct Editor {
    model: PathBuf,
    llama: PathBuf,
    values: UserValues,
    prompt: EditorPrompt,
}

/// Runs jobs on the bundled Shapes models and writes their pictures into a folder.
pub(super) struct EngineRunner {
    engine: Engine<HiDreamBackend>,
    generator: ShapesGenerator,
    editor: Editor,
    out_dir: PathBuf,
    /// File names are `{stem}-{N}.png` for picture `#N`.
    stem: String,
    seed: u64,
}

/// A bundled model and the settings its manifest gives.
fn bundled(name: &str) -> anyhow::Result<(PathBuf, PathBuf, StudioManifest)> {
    let model = bundled_model(name).with_context(|| {
        format!(
            "the bundled model {name} was not found (looked in $HIDREAM_STUDIO_MODELS and \
             assets/models beside the executable): the agent's jobs run on it; use --dry-run to \
             plan without it"
        )
    })?;
    let manifest = StudioManifest::read(&model)?
        .with_context(|| format!("{} has no {}", model.display(), StudioManifest::FILE))?;
    let llama = find_llama(None, &model, None)?;
    Ok((model, llama, manifest))
}

impl EngineRunner {
    /// Finds the bundled models; pictures go to `out_dir` (created if missing).
    pub(super) fn new(out_dir: &Path, stem: &str, seed: u64) -> anyhow::Result<Self> {
        let (model, llama, manifest) = bundled("shapes-i1-dev")?;
        let generator = ShapesGenerator {
            model,
            llama,
            // Dev reads Shapes prompts as well as Full and is 2.4× faster (README, ShapesEval).
            preset: Preset::Dev,
            values: UserValues::default().over(Some(&manifest)),
            base: manifest.base_resolution,
        };
        let (model, llama, manifest) = bundled("shapes-e1.1")?;
        let editor = Editor {
            model,
            llama,
            values: UserValues::default().over(Some(&manifest)),
            // E1.1 takes the plain instruction; an E1-Full editor would take the two-part form.
            prompt: EditorPrompt::Plain,
        };
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("--out-dir {}: could not create it", out_dir.display()))?;
        Ok(Self {
            engine: Engine::spawn(HiDreamBackend::default()),
            generator,
            editor,
            out_dir: out_dir.to_owned(),
            stem: stem.to_owned(),
            seed,
        })
    }

    /// Pictures are written as `{stem}-{N}.png` from now on.
    pub(super) fn set_stem(&mut self, stem: &str) {
        stem.clone_into(&mut self.stem);
    }

    /// The side of the generator's pictures.
    pub(super) fn picture_size(&self) -> usize {
        self.generator.base as usize
    }

    /// A file name for picture `name` that does not replace an existing file.
    fn output_path(&self, name: &str) -> PathBuf {
        let n = name.trim_start_matches('#');
        let mut path = self.out_dir.join(format!("{}-{n}.png", self.stem));
        let mut k = 2;
        while path.exists() {
            path = self.out_dir.join(format!("{}-{n}-{k}.png", self.stem));
            k += 1;
        }
        path
    }

    fn make(&mut self, job: &Job, conversation: &Conversation) -> anyhow::Result<Picture> {
        let mut picture = planned_picture(conversation, job);
        // Each picture of a conversation gets its own seed, reproducible from --seed.
        let seed = self.seed.wrapping_add(conversation.pictures().len() as u64);
        let png = match job {
            Job::Generate { prompt } => {
                let settings = shapes_generate_settings(&self.generator, prompt.clone(), seed);
                let id = self.engine.submit(
                    GenerateJob {
                        settings,
                        noise: None,
                    }
                    .into(),
                );
                let JobOutput::Generation(g) = wait_for(&mut self.engine, id, |_| Ok(()))? else {
                    anyhow::bail!("internal error: a text-to-image job returned an edit");
                };
                png_with_metadata(&g.image, &g.record)?
            }
            Job::Edit { image, instruction } => {
                let source = conversation
                    .picture(image)
                    .with_context(|| format!("there is no picture {image}"))?;
                let path = source.path.clone().with_context(|| {
                    format!(
                        "picture {image} was only planned in a dry run, so it has no file to edit"
                    )
                })?;
                let models = EditModelChoice::new(
                    self.editor.model.clone(),
                    self.editor.llama.clone(),
                    ComputeDType::F32,
                    DeviceChoice::Cpu,
                );
                let mut settings =
                    EditSettings::new(models, path, instruction.clone(), &self.editor.values, seed);
                settings.description =
                    edit_description(self.editor.prompt, Some(source), instruction);
                let id = self.engine.submit(
                    EditJob {
                        settings,
                        noise: None,
                    }
                    .into(),
                );
                let JobOutput::Edit(e) = wait_for(&mut self.engine, id, |_| Ok(()))? else {
                    anyhow::bail!("internal error: an edit job returned a text-to-image result");
                };
                png_with_edit_metadata(&e.image, &e.record)?
            }
        };
        let path = self.output_path(&picture.name);
        write_atomically(&path, &png).with_context(|| format!("writing {}", path.display()))?;
        picture.path = Some(path);
        Ok(picture)
    }
}

impl JobRunner for EngineRunner {
    fn run(&mut self, job: &Job, conversation: &Conversation) -> Result<Picture, String> {
        self.make(job, conversation).map_err(|e| format!("{e:#}"))
    }
}
