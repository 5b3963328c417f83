//! An agent turn as an engine job. The language model runs on the engine thread like every
//! other model, and the pictures its plan asks for are made there by the engine's own job code
//! (the same `load` and `run` a Generate or Apply edit button leads to), then kept in the
//! history with the same `History::add`, so they land there exactly as the window's own
//! results do. The window sees the turn as a stream of [`AgentUpdate`]s: the reply's text as
//! it is written, each job as it starts, each picture as it is kept, and the turn's end.

use std::path::{Path, PathBuf};

use super::backend::{HiDreamBackend, Job, JobOutput, LoadedModels, ModelKey};
use super::models::{EncoderMemory, HiDreamModels};
use super::{EditJob, GenerateJob};
use crate::agent::{Agent, AgentOptions, ChatModel, Conversation, EditorPrompt};
use crate::engine::{Backend, JobContext, JobError};
use crate::settings::{DeviceChoice, EditSettings, GenerateSettings, ModelSelection};
use crate::store::{History, HistoryEntry, StoredRecord};

/// One turn of a conversation with the agent.
#[derive(Debug, Clone)]
pub struct AgentJob {
    /// The agent model's folder (a Llama chat model: config.json, weights, tokenizer).
    pub model: PathBuf,
    pub device: DeviceChoice,
    /// The conversation so far; the turn's end carries it with the turn added.
    pub conversation: Conversation,
    /// What the user wrote.
    pub message: String,
    /// The picture sent with the message, if any.
    pub attached: Option<AttachedPicture>,
    /// How a new picture is made: the settings of the text-to-image model in use, whose
    /// prompt the plan writes. Each picture of a turn takes the next seed from this one's.
    /// The error (no model set, say) is said only if the plan makes a picture: a question
    /// needs no image model.
    pub generate: Result<GenerateSettings, String>,
    /// How a picture is changed, likewise (the plan fills in the image and the instruction).
    pub edit: Result<EditSettings, String>,
    /// How the editor in use wants its instruction written.
    pub editor_prompt: EditorPrompt,
    /// The history's folder, where the pictures are kept; `None` when the window could not
    /// open the history (the turn still answers, but makes no pictures).
    pub data_dir: Option<PathBuf>,
}

/// A picture attached to a message.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachedPicture {
    pub path: PathBuf,
    /// Its history entry, when it is one of the window's results.
    pub entry: Option<i64>,
    /// What it shows: its recorded prompt, when it has one.
    pub description: Option<String>,
}

/// The models an agent turn needs: consecutive turns on the same folder and device reuse them.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentModelKey {
    pub model: PathBuf,
    pub device: DeviceChoice,
    /// The text-to-image models whose Llama-3.1 text encoder is the agent's model (the same
    /// folder): the agent then runs on the encoder's loaded weights instead of a second copy
    /// (16 GB in bf16 for Llama-3.1-8B-Instruct).
    pub shared_llama: Option<ModelSelection>,
}

impl AgentJob {
    /// The text-to-image models to share the Llama of: those in use, when their Llama folder
    /// is the agent's folder.
    pub fn shares_llama(&self) -> Option<ModelSelection> {
        let settings = self.generate.as_ref().ok()?;
        same_folder(&settings.models.llama, &self.model).then(|| settings.models.clone())
    }
}

/// Whether two paths name one folder (as written, or once resolved).
fn same_folder(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(a), Ok(b)) if a == b
        )
}

/// What an agent turn reports to the window, in order.
#[derive(Debug, Clone)]
pub enum AgentUpdate {
    /// The assistant's current reply grew by this text.
    Text(String),
    /// A job of the plan started: "Generating: …", "Editing #1: …".
    JobStarted(String),
    /// A job of the plan made this picture, kept in the history as `entry`.
    Picture {
        /// Its name in the conversation (`#1`, `#2`, …).
        name: String,
        entry: Box<HistoryEntry>,
    },
    /// A note for the user: a job of the plan failed or was stopped.
    Note(String),
    /// The assistant's final words for the turn.
    Reply(String),
    /// The turn is over (its `Finished` output).
    Done(Box<TurnEnd>),
}

/// How a turn ended.
#[derive(Debug, Clone)]
pub struct TurnEnd {
    /// The assistant's last words.
    pub reply: String,
    /// What the user should know besides: the conversation was shortened, a tool call could
    /// not be read, a request was refused.
    pub notes: Vec<String>,
    /// Whether the user's Stop cut the plan short.
    pub stopped: bool,
    /// The conversation with this turn in it.
    pub conversation: Box<Conversation>,
}

/// The agent's models as the engine keeps them: the language model, and the image model the
/// last job of a plan used (kept for the next job, as the engine keeps one model between jobs).
pub struct AgentModels {
    agent: Agent<ChatModel>,
    images: Option<(ModelKey, LoadedModels)>,
}

impl AgentModels {
    /// Loads the agent model; says which folder is missing when it is not there. With
    /// `key.shared_llama` (and `memory`, how the engine holds those models' encoders) the
    /// text-to-image models are loaded and kept for the plan's pictures, and the agent runs on
    /// their Llama. Encoders loaded one at a time (the engine's setting, or the placement
    /// planner's on a small GPU) hold no resident Llama: the agent's folder is then loaded on
    /// its own.
    pub(super) fn load(key: &AgentModelKey, memory: Option<EncoderMemory>) -> anyhow::Result<Self> {
        let mut images = None;
        if let (Some(selection), Some(memory)) = (&key.shared_llama, memory) {
            let mut models = HiDreamModels::load(selection, memory)?;
            // The planner may have chosen one at a time inside the load: read it back.
            let shared = if models.encoder_memory().one_at_a_time() {
                None
            } else {
                Some(models.chat_model()?)
            };
            images = Some((
                ModelKey::Generate(selection.clone()),
                LoadedModels::from_generate(models),
            ));
            if let Some(chat) = shared {
                return Ok(Self {
                    agent: Agent::new(chat, AgentOptions::default()),
                    images,
                });
            }
        }
        if !key.model.join("config.json").is_file() {
            anyhow::bail!(
                "the agent model is missing: {} has no config.json. It is bundled with HiDream \
                 Studio in assets/models/shapes-agent; reinstall, or set the folder of a Llama \
                 chat model as `agent` under `models` in config.json",
                key.model.display()
            );
        }
        let device = key.device.device()?;
        let chat = ChatModel::load(&key.model, &device)?;
        Ok(Self {
            agent: Agent::new(chat, AgentOptions::default()),
            images,
        })
    }

    /// The coordinator, and a maker of `job`'s pictures on the image models kept here.
    pub(super) fn split<'a, 'c>(
        &'a mut self,
        backend: &'a mut HiDreamBackend,
        ctx: &'a mut JobContext<'c, JobOutput>,
        job: &'a AgentJob,
    ) -> (&'a Agent<ChatModel>, PictureMaker<'a, 'c>) {
        let maker = PictureMaker {
            backend,
            images: &mut self.images,
            ctx,
            job,
            history: None,
            made: 0,
        };
        (&self.agent, maker)
    }
}

/// Makes the pictures a plan asks for, on the engine thread, with the engine's own job code,
/// and keeps them in the history.
pub(crate) struct PictureMaker<'a, 'c> {
    backend: &'a mut HiDreamBackend,
    images: &'a mut Option<(ModelKey, LoadedModels)>,
    ctx: &'a mut JobContext<'c, JobOutput>,
    job: &'a AgentJob,
    history: Option<History>,
    /// Pictures made so far this turn, for their seeds.
    made: u64,
}

/// A picture made and kept.
#[derive(Debug, Clone)]
pub(crate) struct Made {
    pub entry: HistoryEntry,
}

impl PictureMaker<'_, '_> {
    /// A new picture of `prompt` with the text-to-image model in use.
    pub(crate) fn generate(&mut self, prompt: &str) -> Result<Made, JobError> {
        let template = self
            .job
            .generate
            .as_ref()
            .map_err(|why| failed(why.clone()))?;
        let settings = GenerateSettings {
            prompt: prompt.to_owned(),
            seed: self.next_seed(template.seed),
            ..template.clone()
        };
        settings
            .resolve(8)
            .map_err(|e| failed(format!("Cannot generate: {}", e.for_window())))?;
        let job = Job::Generate(GenerateJob {
            settings,
            noise: None,
        });
        self.make(&job, None)
    }

    /// `source` changed by `instruction` with the editing model in use; `parent` is the
    /// source's history entry, kept as the edit's parent like Edit this does.
    /// `description` is the target description E1-Full is given (see `agent::edit_description`).
    pub(crate) fn edit(
        &mut self,
        source: &Path,
        parent: Option<i64>,
        instruction: &str,
        description: Option<String>,
    ) -> Result<Made, JobError> {
        let template = self.job.edit.as_ref().map_err(|why| failed(why.clone()))?;
        let settings = EditSettings {
            image: source.to_path_buf(),
            instruction: instruction.to_owned(),
            description,
            seed: self.next_seed(template.seed),
            ..template.clone()
        };
        settings
            .validate()
            .map_err(|e| failed(format!("Cannot edit: {}", e.for_window())))?;
        let job = Job::Edit(EditJob {
            settings,
            noise: None,
        });
        self.make(&job, parent)
    }

    fn next_seed(&mut self, base: u64) -> u64 {
        self.made += 1;
        base.wrapping_add(self.made - 1)
    }

    /// Runs one image job on the engine's models (loading them when the last job used
    /// others) and keeps its picture in the history.
    fn make(&mut self, job: &Job, parent: Option<i64>) -> Result<Made, JobError> {
        // A Stop that came while the model wrote the call starts nothing.
        self.ctx.check_cancelled()?;
        let key = self.backend.model_key(job);
        if !matches!(self.images, Some((loaded, _)) if *loaded == key) {
            // Free the old models first, as the engine does between jobs.
            *self.images = None;
            self.ctx
                .stage(format!("loading {}", self.backend.describe(&key)))?;
            *self.images = Some((key.clone(), self.backend.load(&key)?));
        }
        let Some((_, models)) = self.images.as_mut() else {
            return Err(failed(
                "internal error: the image models were not loaded".into(),
            ));
        };
        let output = self.backend.run(models, job, self.ctx)?;
        let (image, record) = match output {
            JobOutput::Generation(g) => (g.image, StoredRecord::Generation(Box::new(g.record))),
            JobOutput::Edit(e) => (e.image, StoredRecord::Edit(Box::new(e.record))),
            JobOutput::Hidit(_) | JobOutput::Agent(_) => {
                return Err(failed(
                    "internal error: a plan's job made no picture".into(),
                ));
            }
        };
        let history = self.history()?;
        let entry = history
            .add(&image, &record, parent)
            .map_err(|e| failed(format!("The picture could not be kept: {e}")))?;
        Ok(Made { entry })
    }

    /// The history, opened on the first picture (the window keeps its own connection; SQLite
    /// lets both write, one after the other).
    fn history(&mut self) -> Result<&mut History, JobError> {
        if self.history.is_none() {
            let Some(dir) = &self.job.data_dir else {
                return Err(failed(
                    "The picture could not be kept: the history is not available.".into(),
                ));
            };
            let history = History::open(dir)
                .map_err(|e| failed(format!("The picture could not be kept: {e}")))?;
            self.history = Some(history);
        }
        self.history
            .as_mut()
            .ok_or_else(|| failed("internal error: the history was not opened".into()))
    }

    /// Tells the window something during the turn.
    pub(crate) fn report(&self, update: AgentUpdate) {
        self.ctx.partial(JobOutput::Agent(update));
    }
}

fn failed(message: String) -> JobError {
    JobError::Failed(anyhow::anyhow!(message))
}
