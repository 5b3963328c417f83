//! Conversations kept in the history database: they survive reopening, link to the entries of
//! their pictures, and join a history written before they existed without touching its
//! entries (also across the schema's later upgrade for class entries).

use hidream_studio::agent::{Conversation, ConversationMessage, Picture, PictureOrigin};
use hidream_studio::store::History;

use crate::history_store::{first_and_second, hidit_record, image, record};

fn picture(history_id: Option<i64>) -> Picture {
    Picture {
        name: String::new(),
        origin: PictureOrigin::Generated,
        path: Some("/out/agent-1.png".into()),
        prompt: Some("a red circle on the left, on white".into()),
        instruction: None,
        made_from: None,
        history_id,
    }
}

/// "draw a red circle" and its answer, the picture filed as history entry `entry`.
fn conversation(entry: i64) -> Conversation {
    let mut c = Conversation::new();
    c.push_message(ConversationMessage::user("draw a red circle on the left"));
    let name = c.push_picture(picture(Some(entry)));
    let mut tool = ConversationMessage::tool(r##"{"image": "#1", "prompt": "a red circle"}"##);
    tool.pictures.push(name);
    c.push_message(tool);
    c.push_message(ConversationMessage::assistant("Here it is."));
    c
}

fn user_version(dir: &std::path::Path) -> i64 {
    let db = rusqlite::Connection::open(dir.join("history.sqlite3")).unwrap();
    db.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn a_conversation_survives_reopening_and_grows_by_appending() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = History::open(dir.path()).unwrap();
    assert!(history.conversations().unwrap().is_empty());
    let entry = history
        .add(&image(1), &record("a red circle", 1), None)
        .unwrap();
    let mut c = conversation(entry.id);
    let id = history.save_conversation(&mut c).unwrap();
    assert_eq!(c.id, Some(id));
    drop(history);

    let mut history = History::open(dir.path()).unwrap();
    let back = history.conversation(id).unwrap();
    assert_eq!(back, c);
    assert_eq!(back.pictures()[0].history_id, Some(entry.id));
    let list = history.conversations().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].title, "draw a red circle on the left");
    assert_eq!(list[0].messages, 3);

    let mut more = back.clone();
    more.push_message(ConversationMessage::user("now make it blue"));
    history.save_conversation(&mut more).unwrap();
    assert_eq!(history.conversation(id).unwrap().messages().len(), 4);
    // A stale copy (fewer messages than kept) is refused, and nothing changes.
    let mut stale = Conversation::from_parts(Some(id), vec![], vec![]);
    let err = history
        .save_conversation(&mut stale)
        .unwrap_err()
        .to_string();
    assert!(err.contains("has more messages"), "{err}");
    assert_eq!(history.conversation(id).unwrap(), more);

    // Deleting the picture's entry unlinks it; deleting the conversation keeps the entries.
    history.delete(entry.id).unwrap();
    assert_eq!(
        history.conversation(id).unwrap().pictures()[0].history_id,
        None
    );
    let other = history.add(&image(2), &record("other", 2), None).unwrap();
    history.delete_conversation(id).unwrap();
    assert!(history.conversation(id).is_err());
    assert_eq!(history.entries().unwrap()[0].id, other.id);
}

#[test]
fn an_existing_history_gains_conversations_without_losing_entries() {
    let dir = tempfile::tempdir().unwrap();
    // Today's history, before conversations: schema 1, two entries.
    let (first, second) = first_and_second(dir.path());
    assert_eq!(user_version(dir.path()), 1);

    let mut history = History::open(dir.path()).unwrap();
    let mut c = conversation(second.id);
    let id = history.save_conversation(&mut c).unwrap();
    // The schema version is unchanged: older studios keep reading this history.
    assert_eq!(user_version(dir.path()), 1);
    let entries = history.entries().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].parent, Some(first.id));

    // The upgrade for class entries rebuilds `entries`; the link must survive it.
    history.add(&image(3), &hidit_record(3, 1), None).unwrap();
    assert_eq!(user_version(dir.path()), 2);
    drop(history);
    let history = History::open(dir.path()).unwrap();
    assert_eq!(history.entries().unwrap().len(), 3);
    assert_eq!(
        history.conversation(id).unwrap().pictures()[0].history_id,
        Some(second.id)
    );
}
