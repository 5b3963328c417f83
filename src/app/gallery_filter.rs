//! Which history entries the gallery shows: the search words, the model, kind and date
//! filters and "Favourites only". Pure, so the rules are tested without a window.

use std::collections::HashSet;

use crate::store::{EntryKind, HistoryEntry, StoredRecord, model_display_name};

/// A day, in milliseconds.
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How far back the gallery looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DateRange {
    /// The last 24 hours.
    Today,
    LastWeek,
    #[default]
    All,
}

impl DateRange {
    pub const ALL: [Self; 3] = [Self::Today, Self::LastWeek, Self::All];

    pub fn label(self) -> &'static str {
        match self {
            Self::Today => "Today",
            Self::LastWeek => "7 days",
            Self::All => "All time",
        }
    }

    /// The oldest creation time shown at `now_ms`, if any limit.
    fn since(self, now_ms: i64) -> Option<i64> {
        match self {
            Self::Today => Some(now_ms - DAY_MS),
            Self::LastWeek => Some(now_ms - 7 * DAY_MS),
            Self::All => None,
        }
    }
}

/// The words a kind goes by in the gallery's filter.
pub fn kind_label(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Generate => "Generated",
        EntryKind::Edit => "Edited",
        EntryKind::Class => "Class",
    }
}

/// The name of the model that made `entry` (its folder's or repository's name).
pub fn entry_model(entry: &HistoryEntry) -> String {
    match &entry.record {
        StoredRecord::Generation(r) => model_display_name(&r.settings.models.model),
        StoredRecord::Edit(r) => model_display_name(&r.settings.models.model),
        StoredRecord::Hidit(r) => model_display_name(&r.files.model),
    }
}

/// The gallery's filters. The default shows everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GalleryFilter {
    /// Matched anywhere in the prompt, ignoring case; blank matches all.
    pub query: String,
    pub model: Option<String>,
    pub kind: Option<EntryKind>,
    pub dates: DateRange,
    pub favourites_only: bool,
}

impl GalleryFilter {
    /// Whether `entry` is shown at `now_ms`.
    pub fn matches(&self, entry: &HistoryEntry, favourite: bool, now_ms: i64) -> bool {
        let query = self.query.trim();
        (query.is_empty() || contains_ignoring_case(&entry.prompt, query))
            && self.kind.is_none_or(|k| k == entry.kind)
            && self.model.as_ref().is_none_or(|m| *m == entry_model(entry))
            && self
                .dates
                .since(now_ms)
                .is_none_or(|t| entry.created_ms >= t)
            && (!self.favourites_only || favourite)
    }

    /// The ids of the entries shown, in the history's order (newest first).
    pub fn shown(
        &self,
        entries: &[HistoryEntry],
        favourites: &HashSet<i64>,
        now_ms: i64,
    ) -> Vec<i64> {
        entries
            .iter()
            .filter(|e| self.matches(e, favourites.contains(&e.id), now_ms))
            .map(|e| e.id)
            .collect()
    }
}

/// Every model that made an entry, sorted, for the model filter's list.
pub fn models_of(entries: &[HistoryEntry]) -> Vec<String> {
    let mut models: Vec<String> = entries.iter().map(entry_model).collect();
    models.sort();
    models.dedup();
    models
}

fn contains_ignoring_case(text: &str, words: &str) -> bool {
    text.to_lowercase().contains(&words.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_ignores_case_beyond_ascii() {
        assert!(contains_ignoring_case("A Red Circle", "red c"));
        assert!(!contains_ignoring_case("A Red Circle", "square"));
        assert!(contains_ignoring_case("ÉTÉ", "été"));
    }

    #[test]
    fn date_ranges_count_back_from_now() {
        let now = 100 * DAY_MS;
        assert_eq!(DateRange::Today.since(now), Some(99 * DAY_MS));
        assert_eq!(DateRange::LastWeek.since(now), Some(93 * DAY_MS));
        assert_eq!(DateRange::All.since(now), None);
    }
}
