use std::path::Path;

use serde::de::DeserializeOwned;

use super::error::{Result, WeightsError};

/// Reads and parses a JSON file. `what` names the kind of file for the error message
/// ("model config", "safetensors index", …). A file that is not JSON at all is reported as
/// damaged; valid JSON with a field of the wrong type or a missing field names that field.
pub fn read_json<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| WeightsError::io(path, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|cause| WeightsError::JsonParse {
            path: path.to_path_buf(),
            what,
            cause,
        })?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        WeightsError::JsonField {
            path: path.to_path_buf(),
            // A missing field is reported at the object that lacks it; the message names it.
            field: if field == "." {
                "(top level)".to_string()
            } else {
                field
            },
            problem: format!("is not what a {what} holds: {}", e.into_inner()),
        }
    })
}
