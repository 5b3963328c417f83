//! Finding the Llama-3.1-8B-Instruct text encoder, which the HiDream repositories name but do
//! not ship.

use std::path::{Path, PathBuf};

use crate::weights::{HubCache, StudioManifest};

/// Hugging Face ids under which the encoder is published, newest name first.
pub(crate) const LLAMA_REPOS: [&str; 2] = [
    "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Meta-Llama-3.1-8B-Instruct",
];

/// The Llama folder to use with `snapshot`: the one given, else the one a bundled model's
/// manifest names, else a `text_encoder_4/` bundled in
/// the snapshot (third-party mirrors do that), else one in the Hugging Face cache.
pub fn find_llama(
    given: Option<&Path>,
    snapshot: &Path,
    cache: Option<&HubCache>,
) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        if !dir.join("config.json").is_file() {
            anyhow::bail!(
                "{}: not a Llama-3.1-8B-Instruct folder (it has no config.json); --llama must point \
                 at the folder holding config.json, tokenizer.json and the model-*.safetensors files",
                dir.display()
            );
        }
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = StudioManifest::read(snapshot)?.and_then(|m| m.llama_dir(snapshot)) {
        return Ok(dir);
    }
    let bundled = snapshot.join("text_encoder_4");
    if bundled.join("config.json").is_file() {
        return Ok(bundled);
    }
    if let Some(cache) = cache {
        for repo in LLAMA_REPOS {
            if let Ok(dir) = cache.snapshot(repo, None) {
                return Ok(dir);
            }
        }
    }
    anyhow::bail!(
        "HiDream-I1 needs Llama-3.1-8B-Instruct as its fourth text encoder, and none was found: \
         pass its folder with --llama DIR, or download it with `hf download {}` (the repository \
         is gated: accept its licence on huggingface.co first)",
        LLAMA_REPOS[0]
    )
}
