//! PNG files that carry their generation settings: an A1111-style `parameters` text (read by
//! most image tools) and the full JSON record, so an image can be reproduced from itself.

use std::fmt::Write as _;
use std::io::Cursor;
use std::path::Path;

use crate::models::hidit::Mode;
use crate::pipelines::GenerationRecord;
use crate::pipelines::edit::EditRecord;
use crate::pipelines::hidit::HiditRecord;
use crate::schedulers::SchedulerKind;

/// The text chunk key of the JSON record.
pub const RECORD_KEY: &str = "hidream-studio";
/// The key A1111 and compatible tools read.
pub(crate) const PARAMETERS_KEY: &str = "parameters";
/// The first bytes of every PNG file.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A readable name for a model folder: the repository name for a Hugging Face cache snapshot
/// (`…/models--HiDream-ai--HiDream-I1-Dev/snapshots/…` → `HiDream-I1-Dev`), else the folder name.
pub fn model_display_name(path: &Path) -> String {
    for part in path.iter().rev() {
        let part = part.to_string_lossy();
        if let Some(repo) = part.strip_prefix("models--") {
            return repo.rsplit("--").next().unwrap_or(repo).to_string();
        }
    }
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `prompt`, `Negative prompt: …`, then `Key: value` pairs, as Automatic1111 writes them.
pub(crate) fn parameters_text(record: &GenerationRecord) -> String {
    let s = &record.settings;
    let r = &record.resolved;
    let mut text = s.prompt.clone();
    if r.uses_cfg() {
        let _ = write!(
            text,
            "\nNegative prompt: {}",
            s.negative_prompt.as_deref().unwrap_or("")
        );
    }
    let sampler = match r.scheduler {
        SchedulerKind::FlowUnipc => "FlowUniPC",
        SchedulerKind::Flash => "Flash Euler",
    };
    let _ = write!(
        text,
        "\nSteps: {}, Sampler: {sampler}, CFG scale: {}, Seed: {}, Size: {}x{}, Model: {}, Preset: {}, Shift: {}, Version: {}",
        r.steps,
        r.guidance,
        s.seed,
        r.width,
        r.height,
        model_display_name(&s.models.model),
        s.preset.name(),
        r.shift,
        record.app,
    );
    text
}

/// `instruction`, `Negative prompt: …`, then `Key: value` pairs, as Automatic1111 writes them.
pub(crate) fn edit_parameters_text(record: &EditRecord) -> String {
    let r = &record.resolved;
    let s = &record.settings;
    format!(
        "{}\nNegative prompt: {}\nSteps: {}, Sampler: UniPC, CFG scale: {}, Image CFG scale: {}, \
         Seed: {}, Size: {}x{}, Model: {}, Edit: {}, CLIP CFG norm: {}, Refine strength: {}, \
         Refine model: {:?}, Shift: {}, Version: {}",
        r.prompt,
        r.negative_prompt,
        r.steps,
        r.guidance,
        r.image_guidance,
        s.seed,
        r.source_width,
        r.source_height,
        model_display_name(&s.models.model),
        r.form.name(),
        s.clip_cfg_norm,
        r.refine_strength,
        s.models.refine_model,
        r.shift,
        record.app
    )
}

/// Encodes an edit's result as PNG with both text records.
pub fn png_with_edit_metadata(
    image: &image::RgbImage,
    record: &EditRecord,
) -> anyhow::Result<Vec<u8>> {
    png_with_texts(
        image,
        edit_parameters_text(record),
        serde_json::to_string(record)?,
    )
}

/// Encodes `image` as PNG with both text records. Text that Latin-1 cannot hold goes into an
/// iTXt (UTF-8) chunk, as PIL does.
pub fn png_with_metadata(
    image: &image::RgbImage,
    record: &GenerationRecord,
) -> anyhow::Result<Vec<u8>> {
    png_with_texts(
        image,
        parameters_text(record),
        serde_json::to_string(record)?,
    )
}

/// Encodes `image` as PNG with a `parameters` text and a JSON record (any job kind).
pub fn png_with_texts(
    image: &image::RgbImage,
    parameters: String,
    record_json: String,
) -> anyhow::Result<Vec<u8>> {
    png_with_text_chunks(
        image,
        [(PARAMETERS_KEY, parameters), (RECORD_KEY, record_json)],
    )
}

/// The text chunk key of a Hi-DiT image's JSON record. Not [`RECORD_KEY`]: the window reads
/// that one as a text-to-image or edit record, which a class-conditional run is not.
pub const HIDIT_RECORD_KEY: &str = "hidream-studio-hidit";

/// Encodes a Hi-DiT result as PNG with a `parameters` text and its JSON record.
pub fn png_with_hidit_metadata(
    image: &image::RgbImage,
    record: &HiditRecord,
) -> anyhow::Result<Vec<u8>> {
    let s = &record.settings;
    let class = match &record.class_name {
        Some(name) => format!("class {} ({name})", s.class),
        None => format!("class {}", s.class),
    };
    let sampler = match s.mode {
        Mode::Ode => "Euler ODE",
        Mode::Sde => "Euler-Maruyama SDE",
    };
    let parameters = format!(
        "{class}\nSteps: {}, Sampler: {sampler}, CFG scale: {}, Guidance interval: [{}, {}], \
         Seed: {}, Size: {}x{}, Model: {}, Checkpoint: {}, Version: {}",
        s.steps,
        s.cfg_scale,
        s.guidance_low,
        s.guidance_high,
        s.seed,
        record.width,
        record.height,
        model_display_name(&record.files.model),
        record
            .checkpoint
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        record.app
    );
    png_with_text_chunks(
        image,
        [
            (PARAMETERS_KEY, parameters),
            (HIDIT_RECORD_KEY, serde_json::to_string(record)?),
        ],
    )
}

/// Encodes `image` as PNG with the text chunks `texts` (key, text).
fn png_with_text_chunks<const N: usize>(
    image: &image::RgbImage,
    texts: [(&str, String); N],
) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(Cursor::new(&mut bytes), image.width(), image.height());
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        for (key, text) in texts {
            add_text(&mut encoder, key, text)?;
        }
        let mut writer = encoder.write_header()?;
        writer.write_image_data(image.as_raw())?;
        writer.finish()?;
    }
    Ok(bytes)
}

fn add_text<W: std::io::Write>(
    encoder: &mut png::Encoder<'_, W>,
    key: &str,
    text: String,
) -> anyhow::Result<()> {
    if text.chars().all(|c| (c as u32) < 256) {
        encoder.add_text_chunk(key.into(), text)?;
    } else {
        encoder.add_itxt_chunk(key.into(), text)?;
    }
    Ok(())
}

/// The most text a PNG's compressed text chunks may inflate to, all together. A studio record
/// is a few KiB and a prompt of a whole chapter still fits; without a bound, a 1 MB file of
/// zlib "bombs" inflates to gigabytes.
pub const MAX_INFLATED_TEXT: usize = 1 << 20;

/// What reading a PNG's header and text chunks (as stored, before inflating) may allocate.
const MAX_STORED_TEXT: usize = 8 << 20;

/// The text chunks of a PNG, by key. Compressed chunks are inflated up to
/// [`MAX_INFLATED_TEXT`] bytes in all; beyond that the PNG is refused.
pub fn png_texts(bytes: &[u8]) -> anyhow::Result<Vec<(String, String)>> {
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: MAX_STORED_TEXT,
        },
    );
    decoder.set_ignore_text_chunk(false);
    // The colour profile is not needed here, and is compressed too.
    decoder.set_ignore_iccp_chunk(true);
    let reader = match decoder.read_info() {
        Err(png::DecodingError::LimitsExceeded) => anyhow::bail!(
            "its text chunks take more than {} MiB; HiDream Studio's settings take a few KiB, so              this file is damaged or was not made by HiDream Studio",
            MAX_STORED_TEXT >> 20
        ),
        other => other?,
    };
    let info = reader.info();
    let mut texts: Vec<(String, String)> = info
        .uncompressed_latin1_text
        .iter()
        .map(|t| (t.keyword.clone(), t.text.clone()))
        .collect();
    // Inflated here, within what is left of the budget: `get_text` alone inflates without
    // any bound.
    let mut budget = MAX_INFLATED_TEXT;
    // iTXt and zTXt chunks are different types with the same two methods.
    macro_rules! inflate_within_budget {
        ($chunks:expr) => {
            for t in $chunks {
                let mut t = t.clone();
                let text = t
                    .decompress_text_with_limit(budget)
                    .and_then(|()| t.get_text())
                    .map_err(|e| unreadable_text(&t.keyword, e))?;
                budget = budget.saturating_sub(text.len());
                texts.push((t.keyword, text));
            }
        };
    }
    inflate_within_budget!(&info.utf8_text);
    inflate_within_budget!(&info.compressed_latin1_text);
    Ok(texts)
}

fn unreadable_text(keyword: &str, error: png::DecodingError) -> anyhow::Error {
    anyhow::anyhow!(
        "its `{keyword}` text cannot be read within {} MiB ({error}); HiDream Studio's settings \
         take a few KiB, so this file is damaged or was not made by HiDream Studio",
        MAX_INFLATED_TEXT >> 20
    )
}

/// Any kind of record a studio PNG carries.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredRecord {
    Generation(Box<GenerationRecord>),
    Edit(Box<EditRecord>),
    /// A Hi-DiT class-conditional image.
    Hidit(Box<HiditRecord>),
}

impl StoredRecord {
    /// The PNG of `image` with this record embedded, as the job's own command writes it.
    pub fn png(&self, image: &image::RgbImage) -> anyhow::Result<Vec<u8>> {
        match self {
            Self::Generation(r) => png_with_metadata(image, r),
            Self::Edit(r) => png_with_edit_metadata(image, r),
            Self::Hidit(r) => png_with_hidit_metadata(image, r),
        }
    }

    /// The record as JSON, as the PNG and the history keep it.
    pub fn to_json(&self) -> serde_json::Result<String> {
        match self {
            Self::Generation(r) => serde_json::to_string(r),
            Self::Edit(r) => serde_json::to_string(r),
            Self::Hidit(r) => serde_json::to_string(r),
        }
    }

    pub fn seed(&self) -> u64 {
        match self {
            Self::Generation(r) => r.settings.seed,
            Self::Edit(r) => r.settings.seed,
            Self::Hidit(r) => r.settings.seed,
        }
    }
}

/// The words a Hi-DiT image goes by in lists: its class's name, else its number.
pub fn hidit_title(record: &HiditRecord) -> String {
    match &record.class_name {
        Some(name) => name.clone(),
        None => format!("class {}", record.settings.class),
    }
}

/// The record (text-to-image, edit or Hi-DiT) a PNG made by HiDream Studio carries, if any.
/// Any other image (not a PNG, or a PNG without a record) carries none; a record that is there
/// but does not parse is an error, never `None`.
pub fn read_stored_record(bytes: &[u8]) -> anyhow::Result<Option<StoredRecord>> {
    if !bytes.starts_with(PNG_SIGNATURE) {
        return Ok(None);
    }
    let texts = png_texts(bytes)?;
    if let Some((_, json)) = texts.iter().find(|(k, _)| k == HIDIT_RECORD_KEY) {
        let record: HiditRecord = serde_json::from_str(json).map_err(|e| {
            anyhow::anyhow!(
                "its `{HIDIT_RECORD_KEY}` text is not a Hi-DiT record ({e}); it may come from a \
                 newer version of HiDream Studio"
            )
        })?;
        return Ok(Some(StoredRecord::Hidit(Box::new(record))));
    }
    let Some((_, json)) = texts.into_iter().find(|(k, _)| k == RECORD_KEY) else {
        return Ok(None);
    };
    if let Ok(record) = serde_json::from_str::<GenerationRecord>(&json) {
        return Ok(Some(StoredRecord::Generation(Box::new(record))));
    }
    let record: EditRecord = serde_json::from_str(&json).map_err(|e| {
        anyhow::anyhow!(
            "its `{RECORD_KEY}` text is neither a text-to-image nor an edit record ({e}); it may \
             come from a newer version of HiDream Studio"
        )
    })?;
    Ok(Some(StoredRecord::Edit(Box::new(record))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_cache_snapshots_and_folders() {
        assert_eq!(
            model_display_name(Path::new(
                "/c/hub/models--HiDream-ai--HiDream-I1-Dev/snapshots/abc"
            )),
            "HiDream-I1-Dev"
        );
        assert_eq!(
            model_display_name(Path::new("/data/HiDream-I1-Full")),
            "HiDream-I1-Full"
        );
    }
}
