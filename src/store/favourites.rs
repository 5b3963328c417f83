//! Favourite history entries: a table of their ids beside the entries, in the same database.
//!
//! A table of its own rather than a column of `entries`: the entries' schema stays as it is
//! (older versions keep reading the history), and the table is created on the first star, so
//! opening a history never writes. A favourite whose entry is deleted goes with it.

use std::collections::HashSet;

use super::history::{History, HistoryError};

const FAVOURITES_TABLE: &str = "CREATE TABLE IF NOT EXISTS favourites (
    entry_id INTEGER PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE
)";

impl History {
    /// The ids of the favourite entries; none while no entry was ever starred.
    pub fn favourites(&self) -> Result<HashSet<i64>, HistoryError> {
        let exists: bool = self.db.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = \
             'favourites')",
            [],
            |row| row.get(0),
        )?;
        if !exists {
            return Ok(HashSet::new());
        }
        let mut statement = self.db.prepare("SELECT entry_id FROM favourites")?;
        let ids = statement.query_map([], |row| row.get(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }

    /// Stars or unstars entry `id`. An id with no entry is ignored (it was deleted meanwhile).
    pub fn set_favourite(&mut self, id: i64, favourite: bool) -> Result<(), HistoryError> {
        self.db.execute_batch(FAVOURITES_TABLE)?;
        if favourite {
            self.db.execute(
                "INSERT OR IGNORE INTO favourites (entry_id) SELECT id FROM entries WHERE id = ?1",
                [id],
            )?;
        } else {
            self.db
                .execute("DELETE FROM favourites WHERE entry_id = ?1", [id])?;
        }
        Ok(())
    }
}
