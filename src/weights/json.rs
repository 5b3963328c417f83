use std::path::Path;

use serde::de::DeserializeOwned;

use super::error::{Result, WeightsError};

/// Reads and parses a JSON file. `what` names the kind of file for the error message
/// ("model config", "safetensors index", …).
pub fn read_json<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| WeightsError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| WeightsError::JsonParse {
        path: path.to_path_buf(),
        what,
        source,
    })
}
