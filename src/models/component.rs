//! What loading a component folder will ask of its checkpoint, worked out without loading it:
//! the config parsed into the model's own `Config` and every tensor name and shape the model's
//! constructor requests. `info` checks a download with exactly what `generate` will load, so
//! the two cannot disagree about a folder.

use std::path::Path;

use super::LoadError;
use super::hidream::{Config as TransformerConfig, GGUF_ARCHITECTURE, HiDreamTransformer};
use super::text::{
    CLIP_UNREAD, ClipConfig, ClipTextEncoder, LLAMA_UNREAD, LlamaConfig, LlamaEncoder, T5_UNREAD,
    T5Config, T5Encoder,
};
use super::vae::{AutoencoderKl, VaeConfig};
use crate::weights::{TensorStore, check_tensors, read_json, requested_tensors};

/// Tensor names and shapes, in the order a constructor asks for them.
type Requested = Vec<(String, Vec<usize>)>;

/// The model classes HiDream Studio loads, by the class name their folder declares
/// (`model_index.json`'s entry, or `architectures` / `_class_name` in config.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ComponentKind {
    Transformer,
    Autoencoder,
    ClipText,
    T5,
    Llama,
}

impl ComponentKind {
    pub(crate) fn from_class(class: &str) -> Option<Self> {
        Some(match class {
            "HiDreamImageTransformer2DModel" => Self::Transformer,
            "AutoencoderKL" => Self::Autoencoder,
            "CLIPTextModelWithProjection" | "CLIPTextModel" => Self::ClipText,
            "T5EncoderModel" => Self::T5,
            "LlamaForCausalLM" | "LlamaModel" => Self::Llama,
            _ => return None,
        })
    }

    /// Checks `dir` (config.json and weights) the way loading it would, reporting every
    /// mismatch at once: a config field of the wrong type or value, tensors missing, renamed,
    /// of another shape or stored as integers.
    pub fn check(self, dir: &Path) -> Result<(), LoadError> {
        let (requested, unread) = self.plan(dir)?;
        let store = match self.gguf_standing_in(dir) {
            Some((gguf, architecture)) => TensorStore::open_gguf(&gguf, architecture)?,
            None => TensorStore::open_dir(dir)?,
        };
        check_tensors(&store, &requested, unread)?;
        Ok(())
    }

    /// The GGUF file that loading takes instead of `dir`'s missing safetensors, with the
    /// architecture it must name: a transformer's in its folder or beside it in the snapshot,
    /// T5's and Llama's in their folder.
    pub(crate) fn gguf_standing_in(self, dir: &Path) -> Option<(std::path::PathBuf, &'static str)> {
        let found = TensorStore::gguf_standing_in(dir)?;
        let inside = found.parent() == Some(dir);
        match self {
            Self::Transformer => Some((found, GGUF_ARCHITECTURE)),
            Self::T5 if inside => Some((found, crate::weights::gguf::t5::ARCHITECTURES[0])),
            Self::Llama if inside => Some((found, crate::weights::gguf::llama_cpp::ARCHITECTURE)),
            _ => None,
        }
    }

    /// Checks a transformer weights file (a GGUF, say) against the config in `config_dir`,
    /// as loading it with that config would.
    pub(crate) fn check_transformer_file(
        config_dir: &Path,
        weights: &Path,
    ) -> Result<(), LoadError> {
        let (requested, unread) = Self::Transformer.plan(config_dir)?;
        let store = TensorStore::open_path(weights, GGUF_ARCHITECTURE)?;
        check_tensors(&store, &requested, unread)?;
        Ok(())
    }

    /// The tensors the model's constructor asks for, and the checkpoint tensors it knowingly
    /// leaves unread: the same configs, constructors and lists loading uses.
    fn plan(self, dir: &Path) -> Result<(Requested, &'static [&'static str]), LoadError> {
        let config = dir.join("config.json");
        let build_error = |what: &'static str| {
            move |cause| LoadError::Build {
                what,
                dir: dir.to_path_buf(),
                cause: Box::new(cause),
            }
        };
        Ok(match self {
            Self::Transformer => {
                let what = "HiDream transformer";
                let cfg = TransformerConfig::from_file(&config)?;
                let requested = requested_tensors(|vb| HiDreamTransformer::new(&cfg, vb))
                    .map_err(build_error(what))?;
                (requested, &[])
            }
            Self::Autoencoder => {
                let what = "autoencoder";
                let cfg = VaeConfig::from_file(&config)?;
                let requested = requested_tensors(|vb| AutoencoderKl::new(&cfg, vb))
                    .map_err(build_error(what))?;
                (requested, &[])
            }
            Self::ClipText => {
                let what = "CLIP text encoder";
                let cfg: ClipConfig = read_json(&config, "CLIP text encoder config")?;
                let requested = requested_tensors(|vb| ClipTextEncoder::new(&cfg, vb))
                    .map_err(build_error(what))?;
                (requested, CLIP_UNREAD)
            }
            Self::T5 => {
                let what = "T5 encoder";
                let cfg: T5Config = read_json(&config, "T5 encoder config")?;
                let requested =
                    requested_tensors(|vb| T5Encoder::new(&cfg, vb)).map_err(build_error(what))?;
                (requested, T5_UNREAD)
            }
            Self::Llama => {
                let what = "Llama text encoder";
                let cfg: LlamaConfig = read_json(&config, "Llama config")?;
                let requested = requested_tensors(|vb| LlamaEncoder::new(&cfg, vb))
                    .map_err(build_error(what))?;
                (requested, LLAMA_UNREAD)
            }
        })
    }
}
