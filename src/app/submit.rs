//! Turning the controls into jobs: which model folders a job uses, the settings it runs with
//! (the model's own defaults, then the controls' values), their validation, and handing the
//! job to the engine.

use std::path::{Path, PathBuf};

use super::brush::BrushMask;
use super::class_model::{ClassModel, ClassModelState};
use super::config::ModelSlot;
use super::generate_panel::SeedMode;
use super::jobs::PendingJob;
use super::queue::{MAX_BATCH, batch_seeds};
use super::{Mode, StudioApp};
use crate::engine::JobId;
use crate::pipelines::HiditJob;
use crate::pipelines::edit::{EditModelChoice, EditSettings};
use crate::pipelines::hidit::HiditSettings;
use crate::pipelines::{EditJob, GenerateJob, GenerateSettings, Job, ModelSelection, find_llama};
use crate::schedulers::ShiftMode;
use crate::settings::{DEFAULT_BASE_RESOLUTION, UserValues};
use crate::store::write_atomically;
use crate::weights::StudioManifest;

impl StudioApp {
    /// Submits what the shown controls describe.
    pub(super) fn submit(&mut self) {
        match self.mode {
            Mode::Generate => self.submit_generate(),
            Mode::Edit => self.submit_edit(),
            Mode::Class => self.submit_class(),
            Mode::Chat => self.send_message(),
        }
    }

    pub(super) fn submit_class(&mut self) {
        let (model, settings) = match self.class_settings() {
            Ok(chosen) => chosen,
            Err(e) => return self.error(e),
        };
        let title = format!("Class: {}", model.label(settings.class));
        let request = Job::Hidit(HiditJob {
            files: model.files,
            settings,
            device: self.config.device,
        });
        self.queue.push(title, None, true, vec![request]);
        self.start_next_job();
    }

    /// Hands the queue's next job to the engine when the engine has none.
    pub(super) fn start_next_job(&mut self) {
        if !self.jobs.is_empty() {
            return;
        }
        let Some(next) = self.queue.take_next() else {
            return;
        };
        let id = self.engine.submit(next.request);
        let mut job = PendingJob::new(id, next.title, next.parent);
        job.class_job = next.class_job;
        self.jobs.push(job);
    }

    /// Job `id` ended early: a queued job's batch drops its remaining images (returned how
    /// many); a chat turn, which the engine got directly, leaves the queue as it is.
    pub(super) fn end_queued(&mut self, id: JobId) -> usize {
        if self.chat.turn == Some(id) {
            0
        } else {
            self.queue.end_current()
        }
    }

    /// The first seed of a batch of `count`; in +1 mode the field moves past the whole batch.
    fn take_batch_seed(&mut self, count: u32) -> u64 {
        let seed = self.generate.take_seed();
        if self.generate.seed_mode == SeedMode::Increment {
            self.generate.seed = seed.wrapping_add(u64::from(count.clamp(1, MAX_BATCH)));
        }
        seed
    }

    /// The Hi-DiT model (read afresh: its files may have changed since the models view looked)
    /// and the settings the class controls describe, validated. Takes the seed. The error is
    /// the status line.
    fn class_settings(&mut self) -> Result<(ClassModel, HiditSettings), String> {
        self.class_model.forget();
        let in_use = self.config.models_in_use(&self.bundled);
        let model = match self.class_model.get(&in_use, &self.bundled) {
            ClassModelState::Ready(model) => (**model).clone(),
            ClassModelState::NotSet => {
                return Err(
                    "No Hi-DiT model is set: open Models and choose its experiment \
                            folder (args.json and checkpoints/)."
                        .into(),
                );
            }
            ClassModelState::Problem(problem) => {
                return Err(format!("The Hi-DiT model cannot be used: {problem}"));
            }
        };
        let Some(class) = self.class.class else {
            return Err(
                "Choose a class first: type part of its name in Search classes and click it."
                    .into(),
            );
        };
        let panel = &self.class;
        let settings = HiditSettings {
            class,
            steps: panel.steps,
            mode: panel.sampler,
            cfg_scale: panel.cfg_scale,
            guidance_low: panel.guidance_low,
            guidance_high: panel.guidance_high,
            seed: self.generate.take_seed(),
            // The folder's own gate and its pixel stream where it has one.
            tau: None,
            latent_only: false,
        };
        settings
            .validate(model.count, model.null_class)
            .map_err(|e| format!("Cannot generate: {}", class_words(&e.to_string())))?;
        Ok((model, settings))
    }

    pub(super) fn submit_generate(&mut self) {
        // Said by the prompt box, where the user looks, rather than in the status area.
        if self.generate.missing_prompt() {
            self.generate.ask_for_prompt();
            return;
        }
        let settings = match self.generate_settings() {
            Ok(settings) => settings,
            Err(e) => return self.error(e),
        };
        let title = if settings.prompt.is_empty() {
            "Generate (unconditional)".to_string()
        } else {
            format!("Generate: {}", short(&settings.prompt))
        };
        // Image-to-image from a result: that result is the new one's parent.
        let parent = settings
            .init
            .as_ref()
            .and(self.start.start.as_ref())
            .and_then(|s| s.entry);
        let (seed, count) = (settings.seed, self.generate.batch);
        self.queue_batch(title, parent, seed, count, |seed| {
            Job::Generate(GenerateJob {
                settings: GenerateSettings {
                    seed,
                    ..settings.clone()
                },
                noise: None,
            })
        });
    }

    /// Queues a batch of `count` jobs `make` builds for seeds `seed`, `seed + 1`, ... and
    /// starts it when the engine is free.
    fn queue_batch(
        &mut self,
        title: String,
        parent: Option<i64>,
        seed: u64,
        count: u32,
        make: impl Fn(u64) -> Job,
    ) {
        let requests = batch_seeds(seed, count).map(make).collect();
        self.queue.push(title, parent, false, requests);
        self.start_next_job();
    }

    /// The text-to-image settings the controls describe, on the preset's model, validated.
    /// Takes the seed (it advances in increment mode). The error is the status line.
    pub(super) fn generate_settings(&mut self) -> Result<GenerateSettings, String> {
        let slot = ModelSlot::for_preset(self.generate.preset);
        let Some(model) = self.model_for(slot) else {
            return Err(format!(
                "No folder is set for {}: open Models and choose it (or pick another preset).",
                slot.label()
            ));
        };
        let llama = self.llama_for(&model)?;
        let (width, height) = self.generate.requested_size();
        let base_resolution = self.base_resolution_for(&model);
        let uses_guidance = self.generate.uses_guidance();
        let settings = GenerateSettings {
            models: ModelSelection {
                model,
                llama,
                dtype: self.config.dtype(),
                device: self.config.device,
                // Only with a chosen snapshot: a GGUF of a released model does not fit the
                // bundled Shapes model that stands in for an empty slot.
                transformer: {
                    let in_use = self.config.models_in_use(&self.bundled);
                    in_use
                        .get(slot)
                        .and(in_use.transformer_file(slot))
                        .map(Path::to_path_buf)
                },
                placement: crate::settings::PlacementChoice::default(),
            },
            prompt: self.generate.job_prompt(),
            negative_prompt: uses_guidance.then(|| self.generate.negative_prompt.clone()),
            preset: self.generate.preset,
            steps: Some(self.generate.steps),
            guidance: Some(self.generate.guidance),
            shift: Some(self.generate.shift),
            shift_mode: ShiftMode::Dynamic,
            width,
            height,
            base_resolution,
            seed: self.take_batch_seed(self.generate.batch),
            init: self.init_image()?,
        };
        settings
            .resolve(8)
            .map_err(|e| format!("Cannot generate: {}", e.for_window()))?;
        Ok(settings)
    }

    pub(super) fn submit_edit(&mut self) {
        let settings = match self.edit_settings() {
            Ok(settings) => settings,
            Err(e) => return self.error(e),
        };
        let parent = self.edit_source.as_ref().and_then(|s| s.entry);
        let title = format!("Edit: {}", short(&settings.instruction));
        let (seed, count) = (settings.seed, self.edit.batch);
        self.queue_batch(title, parent, seed, count, |seed| {
            Job::Edit(EditJob {
                settings: EditSettings {
                    seed,
                    ..settings.clone()
                },
                noise: None,
            })
        });
    }

    /// The edit settings the controls describe, on the chosen editor, validated. Writes the
    /// brushed mask (the settings name its file) and takes the seed. The error is the status
    /// line.
    fn edit_settings(&mut self) -> Result<EditSettings, String> {
        let Some(source) = &self.edit_source else {
            return Err(
                "Pick the image to edit first: select it in the history or open a file.".into(),
            );
        };
        let image = source.path.clone();
        let instruction = self.edit.instruction.clone();
        let seed = self.take_batch_seed(self.edit.batch);
        let settings = self.edit_settings_for(image, instruction, seed)?;
        let settings = EditSettings {
            mask: self.write_mask(self.mask.as_ref())?,
            ..settings
        };
        settings
            .validate()
            .map_err(|e| format!("Cannot edit: {}", e.for_window()))?;
        Ok(settings)
    }

    /// Edit settings for `image` and `instruction` on the chosen editor with the edit
    /// controls' values and `seed`, not validated, no mask. The error is the status line.
    pub(super) fn edit_settings_for(
        &mut self,
        image: PathBuf,
        instruction: String,
        seed: u64,
    ) -> Result<EditSettings, String> {
        let slot = ModelSlot::Editor(self.edit.editor);
        let Some(model) = self.model_for(slot) else {
            return Err(format!(
                "No folder is set for {}: open Models and choose it.",
                slot.label()
            ));
        };
        let base_model = self.model_for(ModelSlot::I1Full);
        let llama = self.llama_for(base_model.as_deref().unwrap_or(&model))?;
        // A bundled editor's own steps, shift and refine share (the Shapes editor does not
        // refine); real snapshots have no manifest and keep the form's values. The released
        // editors have their own working sizes (E1.1 1024², E1-Full 768²): a configured base
        // resolution other than 1024 marks small models, which work at that size.
        let values = UserValues {
            guidance: Some(self.edit.guidance),
            image_guidance: Some(self.edit.image_guidance),
            ..UserValues::default()
        }
        .over(StudioManifest::read(&model).ok().flatten().as_ref());
        let base_resolution = values
            .base_resolution
            .or(Some(self.config.base_resolution))
            .filter(|&base| base != DEFAULT_BASE_RESOLUTION);
        let models = EditModelChoice {
            base_model,
            ..EditModelChoice::new(model, llama, self.config.dtype(), self.config.device)
        };
        Ok(EditSettings {
            base_resolution,
            ..EditSettings::new(models, image, instruction, &values, seed)
        })
    }

    /// After a preset switch, or when the preset's model changes, shows the model's own
    /// defaults if its manifest has them (the preset's are already shown otherwise).
    pub(super) fn show_model_defaults(&mut self) {
        let editor = self.model_for(ModelSlot::Editor(self.edit.editor));
        self.edit.note_model(editor);
        let preset = self.generate.preset;
        let model = self.model_for(ModelSlot::for_preset(preset));
        let key = Some((preset, model.clone()));
        if self.defaults_shown_for == key {
            return;
        }
        self.defaults_shown_for = key;
        let manifest = model.and_then(|m| StudioManifest::read(&m).ok().flatten());
        self.note_model(manifest.as_ref());
        self.generate
            .set_model_defaults(manifest.and_then(|m| m.defaults));
    }

    /// What the controls show about the preset's model without touching the values: its
    /// defaults for the summary, its base resolution for the sizes, its example prompts.
    pub(super) fn note_model(&mut self, manifest: Option<&StudioManifest>) {
        let panel = &mut self.generate;
        panel.model_defaults = manifest.and_then(|m| m.defaults);
        panel.model_base = manifest.map(|m| m.base_resolution);
        panel.examples = manifest.map_or_else(Vec::new, |m| m.examples.clone());
    }

    /// The folder for a slot: the configured one (unless the top bar switched its mode to
    /// the bundled model), else the bundled one.
    pub(super) fn model_for(&self, slot: ModelSlot) -> Option<PathBuf> {
        self.config
            .models_in_use(&self.bundled)
            .get(slot)
            .or_else(|| self.bundled.get(slot))
            .map(Path::to_path_buf)
    }

    /// A bundled model's own base resolution (its manifest's), else the configured one.
    fn base_resolution_for(&self, model: &Path) -> u32 {
        StudioManifest::read(model)
            .ok()
            .flatten()
            .map_or(self.config.base_resolution, |m| m.base_resolution)
    }

    /// The Llama folder: a bundled model's own, else the configured one, else next to the
    /// model or in the cache.
    fn llama_for(&self, model: &Path) -> Result<PathBuf, String> {
        if let Some(own) = StudioManifest::read(model)
            .ok()
            .flatten()
            .and_then(|m| m.llama_dir(model))
        {
            return Ok(own);
        }
        match &self.config.models.llama {
            Some(llama) => Ok(llama.clone()),
            None => find_llama(None, model, self.cache.as_ref())
                .map_err(|e| format!("{e:#}. Choose the Llama-3.1-8B-Instruct folder in Models.")),
        }
    }

    /// Writes the brushed mask as a PNG in the data folder (kept: the edit's record names it);
    /// `None` when nothing is painted.
    pub(super) fn write_mask(&self, mask: Option<&BrushMask>) -> Result<Option<PathBuf>, String> {
        let Some(mask) = mask.filter(|m| !m.is_empty()) else {
            return Ok(None);
        };
        let dir = self.paths.data_dir.join("masks");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("could not create {}: {e}", dir.display()))?;
        let Some(image) = mask.to_image() else {
            return Err("internal error: the mask has the wrong size".into());
        };
        let mut bytes = Vec::new();
        image
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .map_err(|e| format!("could not encode the mask: {e}"))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let path = dir.join(format!("{stamp}-{}.png", self.jobs.len()));
        write_atomically(&path, &bytes)
            .map_err(|e| format!("could not write the mask {}: {e}", path.display()))?;
        Ok(Some(path))
    }

    pub(super) fn cancel_running(&mut self) {
        if let Some(job) = self.jobs.iter().find(|j| j.is_running()) {
            self.engine.cancel(job.id);
        }
    }
}

/// The first line of a prompt, shortened for lists.
pub(super) fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > 48 {
        format!("{}…", line.chars().take(48).collect::<String>())
    } else {
        line.to_string()
    }
}

/// A Hi-DiT message in the window's words: the `hidit` command's flags become the labels of
/// the class controls and the models view.
pub(super) fn class_words(message: &str) -> String {
    const WORDS: [(&str, &str); 7] = [
        ("--guidance-low", "Guidance from"),
        ("--guidance-high", "Guidance to"),
        ("--cfg-scale", "CFG scale"),
        ("--steps", "Steps"),
        ("--class", "Class"),
        ("--latents-stats", "the latent statistics file (in Models)"),
        ("--vae", "the autoencoder (in Models)"),
    ];
    WORDS
        .iter()
        .fold(message.to_string(), |text, (flag, label)| {
            text.replace(flag, label)
        })
}
