//! Conversations with the agent, kept in the history database beside the entries: one row per
//! conversation, one per message (in order) and one per picture, a picture's row linking to
//! the history entry it was filed as and to the message that brought it in.
//!
//! The tables are created the first time a conversation is kept. They only add to the
//! database: `entries` is untouched, so the schema version stays and older versions of the
//! studio go on reading the history (they ignore tables they do not know). Deleting an entry
//! unlinks it from its picture (`ON DELETE SET NULL`); the conversation keeps its words.

use rusqlite::{OptionalExtension, Transaction, params};

use super::history::{History, HistoryError, now_ms};
use crate::agent::{Conversation, ConversationMessage, Picture};

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    title TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS conversation_messages (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    message_json TEXT NOT NULL,
    PRIMARY KEY (conversation_id, position)
);
CREATE TABLE IF NOT EXISTS conversation_pictures (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    message_position INTEGER,
    entry_id INTEGER REFERENCES entries(id) ON DELETE SET NULL,
    picture_json TEXT NOT NULL,
    PRIMARY KEY (conversation_id, position)
);";

/// A conversation as listed: enough to show and pick it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationSummary {
    pub id: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Its first message, shortened.
    pub title: String,
    pub messages: usize,
}

/// Longest title kept, in characters.
const TITLE_CHARS: usize = 80;

fn title_of(conversation: &Conversation) -> String {
    let first = conversation
        .messages()
        .first()
        .and_then(|m| m.content.as_deref())
        .unwrap_or("");
    // The attachment line names a picture, not the request.
    let text = first
        .lines()
        .find(|l| !l.starts_with("[image #"))
        .unwrap_or(first);
    text.chars().take(TITLE_CHARS).collect()
}

fn corrupt(id: i64, what: &str, e: impl std::fmt::Display) -> HistoryError {
    HistoryError::Record {
        id,
        reason: format!("conversation {id}: {what} does not read back ({e})"),
    }
}

impl History {
    fn has_conversations(&self) -> Result<bool, HistoryError> {
        Ok(self.db.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = \
             'conversations')",
            [],
            |row| row.get(0),
        )?)
    }

    /// Keeps `conversation`: a new one gets its id, a kept one gets the messages and
    /// pictures it has grown by. What was kept is never rewritten, so a conversation that is
    /// not a continuation of the kept one is refused.
    pub fn save_conversation(
        &mut self,
        conversation: &mut Conversation,
    ) -> Result<i64, HistoryError> {
        let now = now_ms();
        let tx = self.db.transaction()?;
        tx.execute_batch(TABLES)?;
        let id = if let Some(id) = conversation.id {
            let updated = tx.execute(
                "UPDATE conversations SET updated_ms = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            if updated == 0 {
                return Err(HistoryError::Record {
                    id,
                    reason: format!(
                        "conversation {id} is not in the history (it was deleted); start a new \
                         conversation"
                    ),
                });
            }
            id
        } else {
            tx.execute(
                "INSERT INTO conversations (created_ms, updated_ms, title) VALUES (?1, ?1, ?2)",
                params![now, title_of(conversation)],
            )?;
            tx.last_insert_rowid()
        };
        append_rows(&tx, id, conversation)?;
        tx.commit()?;
        conversation.id = Some(id);
        Ok(id)
    }

    /// The conversations kept, newest first.
    pub fn conversations(&self) -> Result<Vec<ConversationSummary>, HistoryError> {
        if !self.has_conversations()? {
            return Ok(Vec::new());
        }
        let mut statement = self.db.prepare(
            "SELECT c.id, c.created_ms, c.updated_ms, c.title, \
             (SELECT COUNT(*) FROM conversation_messages m WHERE m.conversation_id = c.id) \
             FROM conversations c ORDER BY c.updated_ms DESC, c.id DESC",
        )?;
        let rows = statement.query_map([], |r| {
            Ok(ConversationSummary {
                id: r.get(0)?,
                created_ms: r.get(1)?,
                updated_ms: r.get(2)?,
                title: r.get(3)?,
                messages: r.get::<_, i64>(4)? as usize,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The conversation `id` as kept, each picture linked to its history entry (none once the
    /// entry was deleted).
    pub fn conversation(&self, id: i64) -> Result<Conversation, HistoryError> {
        let missing = || HistoryError::Record {
            id,
            reason: format!("conversation {id} is not in the history"),
        };
        if !self.has_conversations()? {
            return Err(missing());
        }
        self.db
            .query_row(
                "SELECT 1 FROM conversations WHERE id = ?1",
                [id],
                |_| Ok(()),
            )
            .optional()?
            .ok_or_else(missing)?;
        let mut statement = self.db.prepare(
            "SELECT message_json FROM conversation_messages WHERE conversation_id = ?1 \
             ORDER BY position",
        )?;
        let messages = statement
            .query_map([id], |r| r.get::<_, String>(0))?
            .map(|json| {
                let json = json?;
                serde_json::from_str::<ConversationMessage>(&json)
                    .map_err(|e| corrupt(id, "a message", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut statement = self.db.prepare(
            "SELECT picture_json, entry_id FROM conversation_pictures WHERE conversation_id = \
             ?1 ORDER BY position",
        )?;
        let pictures = statement
            .query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
            })?
            .map(|row| {
                let (json, entry) = row?;
                let mut picture: Picture =
                    serde_json::from_str(&json).map_err(|e| corrupt(id, "a picture", e))?;
                picture.history_id = entry;
                Ok(picture)
            })
            .collect::<Result<Vec<_>, HistoryError>>()?;
        Ok(Conversation::from_parts(Some(id), messages, pictures))
    }

    /// Forgets a conversation; the history entries of its pictures stay.
    pub fn delete_conversation(&mut self, id: i64) -> Result<(), HistoryError> {
        if self.has_conversations()? {
            self.db
                .execute("DELETE FROM conversations WHERE id = ?1", [id])?;
        }
        Ok(())
    }
}

/// Inserts the messages and pictures past those already kept for conversation `id`.
fn append_rows(tx: &Transaction, id: i64, conversation: &Conversation) -> Result<(), HistoryError> {
    let count = |table: &str| -> Result<usize, rusqlite::Error> {
        tx.query_row(
            &format!("SELECT COUNT(*) FROM {table} WHERE conversation_id = ?1"),
            [id],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as usize)
    };
    let (kept_messages, kept_pictures) = (
        count("conversation_messages")?,
        count("conversation_pictures")?,
    );
    let messages = conversation.messages();
    let pictures = conversation.pictures();
    if kept_messages > messages.len() || kept_pictures > pictures.len() {
        return Err(HistoryError::Record {
            id,
            reason: format!(
                "conversation {id} in the history has more messages than the one being saved \
                 (another window added to it); reopen it"
            ),
        });
    }
    for (position, message) in messages.iter().enumerate().skip(kept_messages) {
        let json = serde_json::to_string(message).map_err(|e| corrupt(id, "a message", e))?;
        tx.execute(
            "INSERT INTO conversation_messages (conversation_id, position, message_json) \
             VALUES (?1, ?2, ?3)",
            params![id, position as i64, json],
        )?;
    }
    for (position, picture) in pictures.iter().enumerate().skip(kept_pictures) {
        let json = serde_json::to_string(picture).map_err(|e| corrupt(id, "a picture", e))?;
        let message_position = messages
            .iter()
            .position(|m| m.pictures.contains(&picture.name))
            .map(|p| p as i64);
        // An entry that is not (or no longer) in the history is not linked.
        let entry = match picture.history_id {
            Some(entry) => tx
                .query_row("SELECT id FROM entries WHERE id = ?1", [entry], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?,
            None => None,
        };
        tx.execute(
            "INSERT INTO conversation_pictures (conversation_id, position, message_position, \
             entry_id, picture_json) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, position as i64, message_position, entry, json],
        )?;
    }
    Ok(())
}
