use std::path::PathBuf;

/// Everything that can be wrong with a model folder on disk.
///
/// Each message names the file (and tensor or field) and says what to do, because the person
/// reading it is usually looking at a 47 GB download that went wrong somewhere.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: cannot read: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error(
        "{path}: does not parse as JSON ({cause}); the file is damaged or not a {what}: \
         download it again"
    )]
    JsonParse {
        path: PathBuf,
        what: &'static str,
        cause: serde_json::Error,
    },

    #[error("{path}: field `{field}` {problem}")]
    JsonField {
        path: PathBuf,
        field: String,
        problem: String,
    },

    #[error(
        "{dir}: not a model folder: it has no model_index.json (a diffusers pipeline) and no \
         config.json (a single model); point at the snapshot folder that holds these files"
    )]
    NotAModelFolder { dir: PathBuf },

    #[error(
        "{snapshot}: component `{component}` ({class}) is listed in model_index.json but its \
         folder {expected} is missing; the download is incomplete: fetch the `{component}/` \
         folder again"
    )]
    ComponentMissing {
        snapshot: PathBuf,
        component: String,
        class: String,
        expected: PathBuf,
    },

    #[error(
        "{snapshot}: has no component `{component}` in model_index.json; this folder is not the \
         model that was asked for"
    )]
    ComponentNotListed {
        snapshot: PathBuf,
        component: String,
    },

    #[error(
        "{dir}: no weights found: expected `diffusion_pytorch_model.safetensors`, \
         `model.safetensors` or a sharded `*.safetensors.index.json` (PyTorch .bin and \
         .pt files are not read: convert them to safetensors)"
    )]
    NoWeights { dir: PathBuf },

    #[error(
        "{index}: names shard `{shard}`, which is not in {dir}; the download is incomplete: \
         fetch {shard} again"
    )]
    ShardMissing {
        index: PathBuf,
        dir: PathBuf,
        shard: String,
    },

    #[error(
        "{dir}: holds sharded weights ({shards}) but not the `*.safetensors.index.json` that \
         lists them; the download is incomplete: fetch the index file again"
    )]
    IndexMissing { dir: PathBuf, shards: String },

    #[error(
        "{index}: says tensor `{tensor}` is in {shard}, but that shard does not hold it; the \
         index and the shards come from different downloads: fetch the folder again"
    )]
    IndexEntryMissing {
        index: PathBuf,
        shard: PathBuf,
        tensor: String,
    },

    #[error(
        "{path}: truncated: {detail}; the download is incomplete or was interrupted: delete \
         this file and fetch it again"
    )]
    Truncated { path: PathBuf, detail: String },

    #[error("{path}: not a valid safetensors file: {detail}; delete it and fetch it again")]
    CorruptHeader { path: PathBuf, detail: String },

    #[error(
        "tensor `{tensor}` is missing from {location}; this checkpoint does not match the model \
         it is loaded as (wrong folder, or a different model version)"
    )]
    TensorMissing { tensor: String, location: PathBuf },

    #[error(
        "{file}: tensor `{tensor}` has shape {found:?}, but the model's config.json asks for \
         {expected:?}; config.json and the weights do not belong together"
    )]
    ShapeMismatch {
        file: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error(
        "{file}: tensor `{tensor}` is stored as {dtype}, which HiDream Studio cannot load; \
         weights must be float32, float16 or bfloat16 in safetensors (FP8 exports are not \
         supported; quantised weights load from GGUF files)"
    )]
    UnsupportedDtype {
        file: PathBuf,
        tensor: String,
        dtype: String,
    },

    #[error("{path}: not a GGUF file (it does not start with `GGUF`); give a `.gguf` file")]
    NotGguf { path: PathBuf },

    #[error("{path}: not a valid GGUF file: {detail}; delete it and fetch it again")]
    CorruptGguf { path: PathBuf, detail: String },

    #[error(
        "{file}: tensor `{tensor}` is stored as {found}, which HiDream Studio cannot load \
         (it reads {supported}); use a GGUF of one of those types"
    )]
    UnsupportedGgmlType {
        file: PathBuf,
        tensor: String,
        found: String,
        supported: String,
    },

    #[error("{path}: is a GGUF of {found}, not of {expected}; give the GGUF made from {expected}")]
    GgufArchitecture {
        path: PathBuf,
        found: String,
        expected: String,
    },

    #[error(
        "{location}: the checkpoint does not match the model {described_by} describes \
         (the model expects {expected} tensors, the checkpoint holds {found}):{details}\n\
         this is not the checkpoint of this model, or a different version of it"
    )]
    Mismatch {
        location: PathBuf,
        /// What states the model's architecture: "its config.json", "args.json's `vae`".
        described_by: String,
        expected: usize,
        found: usize,
        details: String,
    },

    #[error("{path}: {detail}; fetch the tokenizer files of this model again")]
    Tokenizer { path: PathBuf, detail: String },

    #[error("{file}: tensor `{tensor}` could not be loaded: {detail}")]
    TensorLoad {
        file: PathBuf,
        tensor: String,
        detail: String,
    },

    #[error(
        "model `{repo}` is not in the Hugging Face cache at {cache}; download it first \
         (for example `hf download {repo}`) or pass the folder's path instead"
    )]
    NotInCache { repo: String, cache: PathBuf },

    #[error(
        "no Hugging Face cache folder could be determined (HF_HUB_CACHE, HF_HOME and HOME are \
         all unset); pass the model folder's path instead of `{repo}`"
    )]
    NoCache { repo: String },

    #[error(
        "{repo_dir}: has no downloaded snapshot{revision}; the download did not finish: \
         fetch the model again"
    )]
    NoSnapshot { repo_dir: PathBuf, revision: String },

    #[error(
        "`{given}` is neither an existing folder nor a Hugging Face model id (ORG/NAME); check \
         the path"
    )]
    BadModelPath { given: String },
}

pub type Result<T, E = WeightsError> = std::result::Result<T, E>;

impl WeightsError {
    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            cause,
        }
    }
}
