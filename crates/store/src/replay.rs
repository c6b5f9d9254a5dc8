//! Journal entries to and from their stored form: an entry serialized (with secret
//! values redacted) as the writer stores it, and the journal a stored run replays.

use operonx_graph::SecretSet;
use operonx_runtime::{Journal, JournalEntry};
use serde_json::{Map, Value};

use crate::{Entry, EntryKind, StoreError, StoredRun};

/// An entry as stored: its body serialized (shared values are not copied first), with
/// the secret values redacted.
pub(crate) fn encode(entry: JournalEntry, seq: i64, secrets: &SecretSet) -> Entry {
    let (kind, key, index, body) = match entry {
        JournalEntry::Op { key, outputs } => (EntryKind::Op, key.to_string(), None, serde_json::to_string(&outputs)),
        JournalEntry::Item { key, index, item } => {
            (EntryKind::Item, key.to_string(), Some(index), serde_json::to_string(&item))
        }
        JournalEntry::StreamEnd { key, count } => {
            (EntryKind::StreamEnd, key.to_string(), Some(count), Ok("null".into()))
        }
        JournalEntry::Interrupt(i) => (EntryKind::Interrupt, i.id.clone(), None, serde_json::to_string(&i)),
    };
    // Serializing a JSON value cannot fail (keys are strings); `null` if it ever did.
    let body = body.unwrap_or_else(|_| "null".into());
    let body = if secrets.is_empty() { body } else { secrets.redact(&body).into_owned() };
    Entry { seq, kind, key, index, body }
}

/// The journal a stored run replays: its op calls, generator items and ends, and its
/// answers.
pub(crate) fn replay_journal(store: &str, run: &StoredRun) -> Result<Journal, StoreError> {
    let corrupt = |what: String, message: String| StoreError::Corrupt {
        store: store.to_string(),
        run_id: run.summary.run_id.clone(),
        what,
        message,
    };
    let mut ops = Map::new();
    let mut items: Vec<(&str, u32, Map<String, Value>)> = Vec::new();
    let mut ends: Vec<(&str, u32)> = Vec::new();
    for e in &run.entries {
        let object = || match serde_json::from_str::<Value>(&e.body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(corrupt(
                format!("journal entry {}", e.seq),
                format!("expected an object, got {}", operonx_graph::document::kind_of(&other)),
            )),
            Err(err) => Err(corrupt(format!("journal entry {}", e.seq), err.to_string())),
        };
        match (e.kind, e.index) {
            (EntryKind::Op, _) => {
                ops.insert(e.key.clone(), Value::Object(object()?));
            }
            (EntryKind::Item, Some(i)) => items.push((&e.key, i, object()?)),
            (EntryKind::StreamEnd, Some(n)) => ends.push((&e.key, n)),
            (EntryKind::Interrupt, _) => {}
            (kind, None) => {
                return Err(corrupt(format!("journal entry {}", e.seq), format!("{} without an index", kind.as_str())));
            }
        }
    }
    let mut journal = Journal::new(ops, run.answers.clone());
    // Items in order per generator (a generator run again re-journals none it matched).
    items.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
    for (key, index, item) in items {
        journal.seed_item(key, index, item);
    }
    for (key, count) in ends {
        journal.seed_end(key, count);
    }
    Ok(journal)
}
