//! Keeping results: the history database, and image files with their settings embedded.

mod atomic_file;
mod conversations;
mod favourites;
mod history;
mod png_metadata;

pub use atomic_file::{WriteError, write_atomically, write_atomically_with};
pub use conversations::ConversationSummary;
pub use history::UnreadableEntry;
pub use history::{EntryKind, History, HistoryError};
pub use history::{HistoryEntry, HistoryListing};
pub use png_metadata::{
    HIDIT_RECORD_KEY, MAX_INFLATED_TEXT, RECORD_KEY, StoredRecord, hidit_title, model_display_name,
    png_texts, png_with_edit_metadata, png_with_hidit_metadata, png_with_metadata, png_with_texts,
    read_stored_record,
};
