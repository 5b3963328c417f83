//! Keeping results: the history database, and image files with their settings embedded.

mod atomic_file;
mod history;
mod png_metadata;

pub use atomic_file::{WriteError, write_atomically};
pub use history::{
    EntryKind, History, HistoryEntry, HistoryError, HistoryListing, THUMBNAIL_SIDE, UnreadableEntry,
};
pub use png_metadata::{
    MAX_INFLATED_TEXT, PARAMETERS_KEY, RECORD_KEY, StoredRecord, edit_parameters_text,
    model_display_name, parameters_text, png_texts, png_with_edit_metadata, png_with_metadata,
    png_with_texts, read_record, read_stored_record,
};
