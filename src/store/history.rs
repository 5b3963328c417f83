//! The history of results: each one an image file plus a row in a SQLite database, in the
//! studio's data folder.
//!
//! Crash safety: an image and its thumbnail are written to temporary files, flushed and renamed
//! before the row that names them is inserted in a transaction, so a crash leaves at worst an
//! unreferenced file, never a row pointing at a half-written image. Deleting removes the row
//! first and the files after.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use image::RgbImage;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::atomic_file::{WriteError, remove_stale_temporaries, write_atomically};
use super::png_metadata::{StoredRecord, hidit_title};

/// Longest side of a thumbnail, in pixels.
pub(crate) const THUMBNAIL_SIDE: u32 = 192;

/// The newest schema this version knows. 1: text-to-image and edit entries; 2: also Hi-DiT
/// class entries (the `kind` check allows `class`). A history is written as 1 until its first
/// class entry, so older versions keep reading it until then.
const SCHEMA_VERSION: i64 = 2;

/// The `entries` table; `{kinds}` is the list its `kind` check allows.
const ENTRIES_TABLE: &str = "CREATE TABLE IF NOT EXISTS {table} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ms INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ({kinds})),
    prompt TEXT NOT NULL,
    image_file TEXT NOT NULL,
    thumbnail_file TEXT NOT NULL,
    parent_id INTEGER REFERENCES entries(id) ON DELETE SET NULL,
    record_json TEXT NOT NULL
)";

/// The table of schema `version` under the name `table`.
fn entries_table(table: &str, version: i64) -> String {
    let kinds = if version >= 2 {
        "'generate', 'edit', 'class'"
    } else {
        "'generate', 'edit'"
    };
    ENTRIES_TABLE
        .replace("{table}", table)
        .replace("{kinds}", kinds)
}

/// The database's file name in the data folder.
const DATABASE_FILE: &str = "history.sqlite3";

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(
        "could not open the history database {path}: {cause}. Check that the folder is \
         writable; if the file is damaged, move it away and HiDream Studio starts a new history"
    )]
    Open {
        path: PathBuf,
        cause: rusqlite::Error,
    },
    #[error(
        "the history database {path} was written by a newer HiDream Studio (schema {found}, this \
         version knows {SCHEMA_VERSION}); update HiDream Studio"
    )]
    NewerSchema { path: PathBuf, found: i64 },
    #[error(
        "the history database {} is damaged ({problem}). HiDream Studio neither reads nor writes \
         it, so nothing more is lost. To start a new history, close HiDream Studio and move it \
         away (for example to history.damaged.sqlite3); your images stay in {}. The \
         sqlite3 tool's `.recover` command can rescue entries from the moved file",
        path.display(),
        images.display()
    )]
    Damaged {
        path: PathBuf,
        images: PathBuf,
        problem: String,
    },
    #[error(
        "the history database {} passed its check but its entries cannot be listed ({cause}). \
         HiDream Studio does not write to a history it cannot show, so nothing more is lost. \
         To start a new history, close HiDream Studio and move it away (for example to \
         history.unlisted.sqlite3); your images stay in {}",
        path.display(),
        images.display()
    )]
    Unlisted {
        path: PathBuf,
        images: PathBuf,
        cause: Box<HistoryError>,
    },
    #[error("the history database failed: {0}")]
    Database(rusqlite::Error),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("could not create the history folder {path}: {cause}")]
    Folder {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("could not encode the image: {0}")]
    Encode(String),
    #[error("history entry {id} cannot be read: {reason}")]
    Record { id: i64, reason: String },
}

// A hand-written From, not #[from]: the cause is in the message, not chained as a source,
// so `{:#}` says it once.
impl From<rusqlite::Error> for HistoryError {
    fn from(cause: rusqlite::Error) -> Self {
        Self::Database(cause)
    }
}

/// What kind of job made an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Generate,
    Edit,
    /// A Hi-DiT image of a class.
    Class,
}

impl EntryKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Generate => "generate",
            Self::Edit => "edit",
            Self::Class => "class",
        }
    }
}

/// One result in the history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
    pub kind: EntryKind,
    /// The prompt, the edit instruction, or the class's name.
    pub prompt: String,
    pub image_path: PathBuf,
    pub thumbnail_path: PathBuf,
    /// For edits: the entry that was edited (`None` when that entry was deleted or the source
    /// came from outside the history).
    pub parent: Option<i64>,
    pub record: StoredRecord,
}

impl HistoryEntry {
    pub fn seed(&self) -> u64 {
        self.record.seed()
    }
}

/// A row of the history that cannot be read.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadableEntry {
    pub id: i64,
    /// Why, in a user's words: "its settings record does not parse (…)".
    pub reason: String,
}

/// The history as it can be shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryListing {
    /// Newest first.
    pub entries: Vec<HistoryEntry>,
    /// Rows left in the database, untouched, but not shown.
    pub unreadable: Vec<UnreadableEntry>,
}

/// The database and the folders it points into.
pub struct History {
    /// Also the favourites' table (`favourites.rs`).
    pub(super) db: Connection,
    /// The database's `user_version`.
    schema: i64,
    images: PathBuf,
    thumbnails: PathBuf,
}

impl History {
    /// Opens (or creates) the history in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, HistoryError> {
        let images = data_dir.join("images");
        let thumbnails = data_dir.join("thumbnails");
        for dir in [data_dir, &images, &thumbnails] {
            std::fs::create_dir_all(dir).map_err(|cause| HistoryError::Folder {
                path: dir.to_path_buf(),
                cause,
            })?;
        }
        let db_path = data_dir.join(DATABASE_FILE);
        let open_err = |cause| HistoryError::Open {
            path: db_path.clone(),
            cause,
        };
        let db = Connection::open(&db_path).map_err(open_err)?;
        // Two studio windows may share a data folder; let one wait for the other's write.
        db.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        // Before anything is written: a damaged database would otherwise take new rows into
        // damaged pages (and show as an empty history).
        if let Some(problem) = damage(&db).map_err(open_err)? {
            return Err(HistoryError::Damaged {
                path: db_path,
                images,
                problem,
            });
        }
        db.pragma_update(None, "foreign_keys", true)
            .map_err(open_err)?;
        let found: i64 = db
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(open_err)?;
        if found > SCHEMA_VERSION {
            return Err(HistoryError::NewerSchema {
                path: db_path,
                found,
            });
        }
        // Only what is missing is written: a history that is complete is opened without a
        // write, so one that is then refused (it cannot be listed) is left as it was.
        let has_table: bool = db
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = \
                 'entries')",
                [],
                |row| row.get(0),
            )
            .map_err(open_err)?;
        let schema = if found < 1 || !has_table {
            // A new history is written as schema 1 (see SCHEMA_VERSION).
            db.execute_batch(&format!(
                "BEGIN; {}; PRAGMA user_version = 1; COMMIT;",
                entries_table("entries", 1)
            ))
            .map_err(open_err)?;
            1
        } else {
            found
        };
        let history = Self {
            db,
            schema,
            images,
            thumbnails,
        };
        // What a crash left: writes also do this, but a crash may be followed by no write.
        remove_stale_temporaries(&history.images);
        remove_stale_temporaries(&history.thumbnails);
        Ok(history)
    }

    /// Opens the history in `data_dir` and lists it, for a window that shows it and files new
    /// results in it. A history whose entries cannot be listed is refused like a damaged one:
    /// rows written to it could not be shown either, and might land next to what is wrong.
    pub fn open_listed(data_dir: &Path) -> Result<(Self, HistoryListing), HistoryError> {
        let history = Self::open(data_dir)?;
        match history.listing() {
            Ok(listing) => Ok((history, listing)),
            Err(cause) => Err(HistoryError::Unlisted {
                path: data_dir.join(DATABASE_FILE),
                images: history.images.clone(),
                cause: Box::new(cause),
            }),
        }
    }

    /// Keeps a finished image: writes the PNG (settings embedded) and a thumbnail, then records
    /// it. Returns the new entry.
    pub fn add(
        &mut self,
        image: &RgbImage,
        record: &StoredRecord,
        parent: Option<i64>,
    ) -> Result<HistoryEntry, HistoryError> {
        let created_ms = now_ms();
        let (kind, prompt) = match record {
            StoredRecord::Generation(r) => (EntryKind::Generate, r.settings.prompt.clone()),
            StoredRecord::Edit(r) => (EntryKind::Edit, r.settings.instruction.clone()),
            StoredRecord::Hidit(r) => (EntryKind::Class, hidit_title(r)),
        };
        if kind == EntryKind::Class && self.schema < 2 {
            self.upgrade_to_class_entries()?;
        }
        let png = record
            .png(image)
            .map_err(|e| HistoryError::Encode(format!("{e:#}")))?;
        let record_json = record
            .to_json()
            .map_err(|e| HistoryError::Encode(e.to_string()))?;
        let stem = self.unused_stem(created_ms);
        let image_file = format!("{stem}.png");
        let thumbnail_file = format!("{stem}.thumb.png");
        let image_path = self.images.join(&image_file);
        let thumbnail_path = self.thumbnails.join(&thumbnail_file);
        write_file(&image_path, &png)?;
        write_file(&thumbnail_path, &thumbnail_png(image)?)?;
        // A parent that was deleted meanwhile is not an error: the edit simply has no parent.
        let tx = self.db.transaction()?;
        let parent = match parent {
            Some(id) => tx
                .query_row("SELECT id FROM entries WHERE id = ?1", [id], |r| r.get(0))
                .optional()?,
            None => None,
        };
        tx.execute(
            "INSERT INTO entries (created_ms, kind, prompt, image_file, thumbnail_file, parent_id, \
             record_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                created_ms,
                kind.as_str(),
                prompt,
                image_file,
                thumbnail_file,
                parent,
                record_json
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(HistoryEntry {
            id,
            created_ms,
            kind,
            prompt,
            image_path,
            thumbnail_path,
            parent,
            record: record.clone(),
        })
    }

    /// The entries that can be read, newest first, and the rows that cannot (damaged, or
    /// written by a newer version): one bad row never hides the others.
    pub fn listing(&self) -> Result<HistoryListing, HistoryError> {
        let mut statement = self.db.prepare(
            "SELECT id, created_ms, kind, prompt, image_file, thumbnail_file, parent_id, \
             record_json FROM entries ORDER BY id DESC",
        )?;
        // The id always reads (an INTEGER PRIMARY KEY); a failure to step through the table is
        // an error of the whole history, a failure within a row is that row's.
        let rows = statement.query_map([], |row| Ok((row.get::<_, i64>(0)?, self.entry(row))))?;
        let mut listing = HistoryListing::default();
        for row in rows {
            match row? {
                (_, Ok(entry)) => listing.entries.push(entry),
                (id, Err(reason)) => listing.unreadable.push(UnreadableEntry { id, reason }),
            }
        }
        Ok(listing)
    }

    /// Every entry, newest first; an error names the first row that cannot be read.
    pub fn entries(&self) -> Result<Vec<HistoryEntry>, HistoryError> {
        let listing = self.listing()?;
        match listing.unreadable.into_iter().next() {
            Some(UnreadableEntry { id, reason }) => Err(HistoryError::Record { id, reason }),
            None => Ok(listing.entries),
        }
    }

    /// The entry a row of `listing`'s query holds, or why it cannot be read.
    fn entry(&self, row: &rusqlite::Row<'_>) -> Result<HistoryEntry, String> {
        let columns = || -> rusqlite::Result<_> {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, Option<i64>>(6)?,
                row.get::<_, String>(7)?,
            ))
        };
        let (id, created_ms, kind, prompt, image_file, thumbnail_file, parent, json) =
            columns().map_err(|e| format!("its row is damaged ({e})"))?;
        let record = match kind.as_str() {
            "edit" => serde_json::from_str(&json)
                .map(|r| (EntryKind::Edit, StoredRecord::Edit(Box::new(r)))),
            "class" => serde_json::from_str(&json)
                .map(|r| (EntryKind::Class, StoredRecord::Hidit(Box::new(r)))),
            _ => serde_json::from_str(&json)
                .map(|r| (EntryKind::Generate, StoredRecord::Generation(Box::new(r)))),
        };
        let (kind, record) = record.map_err(|e| {
            format!(
                "its settings record does not parse ({e}); it is damaged or comes from a newer \
                 version of HiDream Studio"
            )
        })?;
        Ok(HistoryEntry {
            id,
            created_ms,
            kind,
            prompt,
            image_path: self.images.join(image_file),
            thumbnail_path: self.thumbnails.join(thumbnail_file),
            parent,
            record,
        })
    }

    /// Deletes an entry and its files. Edits made from it keep their own images and lose the
    /// link.
    pub fn delete(&mut self, id: i64) -> Result<(), HistoryError> {
        let tx = self.db.transaction()?;
        let files: Option<(String, String)> = tx
            .query_row(
                "SELECT image_file, thumbnail_file FROM entries WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        tx.execute("DELETE FROM entries WHERE id = ?1", [id])?;
        tx.commit()?;
        if let Some((image, thumbnail)) = files {
            // After the commit: a crash here leaves unreferenced files, which are harmless.
            let _ = std::fs::remove_file(self.images.join(image));
            let _ = std::fs::remove_file(self.thumbnails.join(thumbnail));
        }
        Ok(())
    }

    /// Schema 1 to 2, before the first class entry: SQLite cannot change a column's check, so
    /// the table is rebuilt (SQLite's twelve-step ALTER TABLE procedure), ids, links and the
    /// id counter kept, in one transaction.
    fn upgrade_to_class_entries(&mut self) -> Result<(), HistoryError> {
        // Off for the rebuild (it cannot change inside a transaction): dropping the old table
        // must not run its ON DELETE actions on the copied rows.
        self.db.pragma_update(None, "foreign_keys", false)?;
        let upgraded = (|| -> Result<(), rusqlite::Error> {
            let tx = self.db.transaction()?;
            let counter: Option<i64> = tx
                .query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'entries'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            tx.execute_batch(&format!(
                "{};
                 INSERT INTO entries_v2 SELECT id, created_ms, kind, prompt, image_file, \
                 thumbnail_file, parent_id, record_json FROM entries;
                 DROP TABLE entries;
                 ALTER TABLE entries_v2 RENAME TO entries;
                 PRAGMA user_version = 2;",
                entries_table("entries_v2", 2)
            ))?;
            if let Some(counter) = counter {
                tx.execute("DELETE FROM sqlite_sequence WHERE name = 'entries'", [])?;
                tx.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ('entries', ?1)",
                    [counter],
                )?;
            }
            tx.commit()
        })();
        self.db.pragma_update(None, "foreign_keys", true)?;
        upgraded?;
        self.schema = 2;
        Ok(())
    }

    /// A file name no entry uses yet: the creation time, made unique with a counter.
    fn unused_stem(&self, created_ms: i64) -> String {
        let base = format!("{created_ms}");
        let mut stem = base.clone();
        let mut n = 1;
        while self.images.join(format!("{stem}.png")).exists() {
            stem = format!("{base}-{n}");
            n += 1;
        }
        stem
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), HistoryError> {
    Ok(write_atomically(path, bytes)?)
}

/// What `PRAGMA quick_check` finds wrong, if anything: every page of every b-tree is read and
/// checked for structure (what `integrity_check` also does, less the comparison of indexes with
/// their tables, which makes it fast enough for every start).
fn damage(db: &Connection) -> Result<Option<String>, rusqlite::Error> {
    let lines: Result<Vec<String>, rusqlite::Error> = db
        .prepare("PRAGMA quick_check(3)")
        .and_then(|mut check| check.query_map([], |row| row.get(0))?.collect());
    match lines {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(None),
        Ok(lines) => Ok(Some(lines.join("; "))),
        // Damage bad enough that SQLite cannot even check; anything else (a lock held too
        // long, a full disk) is not damage and is reported as it is.
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
            ) =>
        {
            Ok(Some(e.to_string()))
        }
        Err(e) => Err(e),
    }
}

fn thumbnail_png(image: &RgbImage) -> Result<Vec<u8>, HistoryError> {
    let (w, h) = image.dimensions();
    let scale = (THUMBNAIL_SIDE as f32 / w.max(h).max(1) as f32).min(1.0);
    let tw = ((w as f32 * scale).round() as u32).max(1);
    let th = ((h as f32 * scale).round() as u32).max(1);
    let thumb = image::imageops::thumbnail(image, tw, th);
    let mut bytes = Vec::new();
    thumb
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| HistoryError::Encode(e.to_string()))?;
    Ok(bytes)
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
