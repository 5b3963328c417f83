//! Keeping results: image files with their settings embedded.

mod png_metadata;

pub use png_metadata::{
    PARAMETERS_KEY, RECORD_KEY, model_display_name, parameters_text, png_texts, png_with_metadata,
    png_with_texts, read_record, write_atomically,
};
