//! Writing a history entry to a file the user chose: PNG keeps the settings, JPEG and WebP
//! are for sharing.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::store::{HistoryEntry, write_atomically};

/// The formats export writes, by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExportFormat {
    Png,
    Jpeg,
    WebP,
}

impl ExportFormat {
    /// The format for `path`'s extension; a path without one gets `.png`.
    pub(crate) fn for_path(path: &Path) -> anyhow::Result<(Self, PathBuf)> {
        let Some(ext) = path.extension() else {
            return Ok((Self::Png, path.with_extension("png")));
        };
        let format = match ext.to_string_lossy().to_ascii_lowercase().as_str() {
            "png" => Self::Png,
            "jpg" | "jpeg" => Self::Jpeg,
            "webp" => Self::WebP,
            other => anyhow::bail!(
                "cannot export as .{other}: name the file .png (keeps the settings), .jpg or .webp"
            ),
        };
        Ok((format, path.to_path_buf()))
    }
}

/// Exports `entry` to `path` and returns the path written (with `.png` added when the name
/// had no extension).
pub(crate) fn export_entry(entry: &HistoryEntry, path: &Path) -> anyhow::Result<PathBuf> {
    let (format, path) = ExportFormat::for_path(path)?;
    let stored = std::fs::read(&entry.image_path).with_context(|| {
        format!(
            "could not read the history image {}",
            entry.image_path.display()
        )
    })?;
    let bytes = match format {
        // The stored PNG already carries both settings records.
        ExportFormat::Png => stored,
        ExportFormat::Jpeg | ExportFormat::WebP => {
            let image = image::load_from_memory(&stored)
                .with_context(|| format!("{} is damaged", entry.image_path.display()))?
                .to_rgb8();
            let mut bytes = Vec::new();
            let mut cursor = std::io::Cursor::new(&mut bytes);
            match format {
                ExportFormat::Jpeg => {
                    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut cursor, 92)
                        .encode_image(&image)?;
                }
                _ => {
                    image::codecs::webp::WebPEncoder::new_lossless(&mut cursor).encode(
                        image.as_raw(),
                        image.width(),
                        image.height(),
                        image::ExtendedColorType::Rgb8,
                    )?;
                }
            }
            bytes
        }
    };
    // The error names the path and what is there (a folder, a device…) itself.
    write_atomically(&path, &bytes)?;
    Ok(path)
}

/// A file name for exporting `entry`: its first words and seed.
pub(crate) fn suggested_name(entry: &HistoryEntry) -> String {
    let words: Vec<String> = entry
        .prompt
        .split_whitespace()
        .take(6)
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '-')
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let stem = if words.is_empty() {
        "hidream".to_string()
    } else {
        words.join("-")
    };
    format!("{stem}-{}.png", entry.seed())
}
