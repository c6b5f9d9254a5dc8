//! A run's journal: what completed (op calls, generator items) and what it asks for
//! (interrupts), so the run can be resumed without running finished work again.
//!
//! Keys are stable across runs of one graph: an op call is `op@context` (its full name
//! and its context path, loop iteration and item indexes included), never the order ops
//! happened to run in. A journal is seeded from an earlier run's entries; the scheduler
//! consults it before calling an op (a journaled call is answered from it) and before
//! starting a generator (a generator whose items all are journaled is replayed; one that
//! had not finished runs again, and the items it yields are checked against the
//! journaled ones, see [`Journal::stream`]).
//!
//! Where entries go: kept in memory (a [`crate::RunState`] carries them), or handed to
//! a [`JournalSink`] as they happen (a durable run store), which may refuse them: the run
//! then stops, and never goes on unjournaled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};

use crate::interrupt::Interrupt;
use crate::record::Outputs;

/// One thing a run journals, as it hands it to its [`JournalSink`]. Values are shared
/// with the run (building an entry copies none).
#[derive(Debug, Clone)]
pub enum JournalEntry {
    /// The op call `key` (`op@context`) completed with `outputs`.
    Op {
        /// The call.
        key: Arc<str>,
        /// Its outputs.
        outputs: Outputs,
    },
    /// The generator call `key` yielded its item `index`.
    Item {
        /// The generator call (`op@context`).
        key: Arc<str>,
        /// The item's position (from 0).
        index: u32,
        /// What it yielded.
        item: Outputs,
    },
    /// The generator call `key` yielded all its items: `count` of them.
    StreamEnd {
        /// The generator call.
        key: Arc<str>,
        /// How many items.
        count: u32,
    },
    /// An op asked for input.
    Interrupt(Interrupt),
}

/// Why a journal entry could not be kept: the run stops on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("journal: {0}")]
pub struct JournalError(pub String);

/// Where a durable run's journal entries go (a run store's writer). Called on the thread
/// driving the run: an implementation queues the entry (or, for synchronous durability,
/// waits until it is committed) and returns.
pub trait JournalSink: Send + Sync + std::fmt::Debug {
    /// Keep `entry`; an error stops the run.
    fn append(&self, entry: JournalEntry) -> Result<(), JournalError>;
}

/// A generator call as journaled: its items so far, and whether it had finished.
#[derive(Debug, Clone, Default)]
pub struct StreamRecord {
    /// The items, in order.
    pub items: Vec<Outputs>,
    /// All its items are journaled.
    pub finished: bool,
}

/// Completed op calls and generator items of a run, plus the answers to its interrupts.
/// Shared by a run and its nested runs.
#[derive(Debug, Default)]
pub struct Journal {
    state: Mutex<State>,
    answers: Map<String, Value>,
    sink: Option<Arc<dyn JournalSink>>,
    /// Recorded entries are only logged (for [`Journal::export`]), not kept for lookup
    /// and [`Journal::entries`] (see [`Journal::log_only`]).
    log_only: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Op calls in the order recorded: JSON values, or (a `null` here) shared outputs in
    /// `shared`.
    order: Map<String, Value>,
    shared: HashMap<String, Outputs>,
    streams: HashMap<String, StreamRecord>,
    /// What this run recorded in memory, in order (not what it was seeded with).
    log: Vec<JournalEntry>,
}

impl Journal {
    /// A journal seeded from an earlier run's op calls, with answers to its interrupts.
    pub fn new(entries: Map<String, Value>, answers: Map<String, Value>) -> Self {
        Self { state: Mutex::new(State { order: entries, ..State::default() }), answers, sink: None, log_only: false }
    }

    /// Keep what the run records only as the log [`Journal::export`] returns (a store
    /// writes it when the run stops), not for lookups or [`Journal::entries`]: cheaper
    /// when nothing reads them back during the run.
    pub fn log_only(mut self) -> Self {
        self.log_only = true;
        self
    }

    /// Send what the run records to `sink` instead of keeping it in memory (seeded
    /// entries stay, for replay).
    pub fn with_sink(mut self, sink: Arc<dyn JournalSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Seed the item `index` of generator call `key` (items are seeded in order).
    pub fn seed_item(&mut self, key: &str, index: u32, item: Map<String, Value>) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let record = state.streams.entry(key.to_string()).or_default();
        if record.items.len() == index as usize {
            record.items.push(Outputs::from_map(item));
        }
    }

    /// Seed the end of generator call `key` after `count` items (ignored unless every
    /// item was seeded).
    pub fn seed_end(&mut self, key: &str, count: u32) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let record = state.streams.entry(key.to_string()).or_default();
        record.finished = record.items.len() == count as usize;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the journal holds entries to replay (seeded from an earlier run, or
    /// recorded in memory by this one).
    pub fn is_seeded(&self) -> bool {
        let s = self.lock();
        !s.order.is_empty() || !s.streams.is_empty()
    }

    /// Whether entries go to a sink (a durable store) rather than memory.
    pub fn is_durable(&self) -> bool {
        self.sink.is_some()
    }

    /// The recorded outputs of the op call `key`.
    pub fn get(&self, key: &str) -> Option<Map<String, Value>> {
        self.outputs(key).map(Outputs::into_map)
    }

    /// The recorded outputs of the op call `key`, shared.
    pub(crate) fn outputs(&self, key: &str) -> Option<Outputs> {
        let s = self.lock();
        if let Some(o) = s.shared.get(key) {
            return Some(o.clone());
        }
        match s.order.get(key) {
            Some(Value::Object(m)) => Some(Outputs::from_map(m.clone())),
            _ => None,
        }
    }

    /// What is journaled of the generator call `key`.
    pub fn stream(&self, key: &str) -> Option<StreamRecord> {
        self.lock().streams.get(key).cloned()
    }

    /// Record the outputs of the op call `key`.
    pub fn record(&self, key: String, outputs: Map<String, Value>) {
        let mut s = self.lock();
        s.shared.remove(&key);
        s.order.insert(key, Value::Object(outputs));
    }

    /// Record the outputs of the op call `key`, sharing their values.
    pub(crate) fn record_shared(&self, key: Arc<str>, outputs: &Outputs) -> Result<(), JournalError> {
        if let Some(sink) = &self.sink {
            return sink.append(JournalEntry::Op { key, outputs: outputs.clone() });
        }
        let mut s = self.lock();
        if !self.log_only {
            s.order.insert(key.to_string(), Value::Null);
            s.shared.insert(key.to_string(), outputs.clone());
        }
        s.log.push(JournalEntry::Op { key, outputs: outputs.clone() });
        Ok(())
    }

    /// Record item `index` of the generator call `key`.
    pub(crate) fn record_item(&self, key: &Arc<str>, index: u32, item: &Outputs) -> Result<(), JournalError> {
        if let Some(sink) = &self.sink {
            return sink.append(JournalEntry::Item { key: key.clone(), index, item: item.clone() });
        }
        let mut s = self.lock();
        if self.log_only {
            s.log.push(JournalEntry::Item { key: key.clone(), index, item: item.clone() });
            return Ok(());
        }
        let record = s.streams.entry(key.to_string()).or_default();
        if record.items.len() == index as usize {
            record.items.push(item.clone());
            s.log.push(JournalEntry::Item { key: key.clone(), index, item: item.clone() });
        }
        Ok(())
    }

    /// Record that the generator call `key` yielded all its `count` items.
    pub(crate) fn record_end(&self, key: &Arc<str>, count: u32) -> Result<(), JournalError> {
        if let Some(sink) = &self.sink {
            return sink.append(JournalEntry::StreamEnd { key: key.clone(), count });
        }
        let mut s = self.lock();
        if self.log_only {
            s.log.push(JournalEntry::StreamEnd { key: key.clone(), count });
            return Ok(());
        }
        let record = s.streams.entry(key.to_string()).or_default();
        record.finished = record.items.len() == count as usize;
        if record.finished {
            s.log.push(JournalEntry::StreamEnd { key: key.clone(), count });
        }
        Ok(())
    }

    /// Record that an op asked for input.
    pub(crate) fn record_interrupt(&self, interrupt: &Interrupt) -> Result<(), JournalError> {
        match &self.sink {
            Some(sink) => sink.append(JournalEntry::Interrupt(interrupt.clone())),
            None => Ok(()),
        }
    }

    /// The answer supplied for interrupt `id`.
    pub fn answer(&self, id: &str) -> Option<&Value> {
        self.answers.get(id)
    }

    /// The op calls kept in memory (seeded or recorded), in order.
    pub fn entries(&self) -> Map<String, Value> {
        let s = self.lock();
        s.order
            .iter()
            .map(|(k, v)| match s.shared.get(k) {
                Some(o) => (k.clone(), Value::Object(o.clone().into_map())),
                None => (k.clone(), v.clone()),
            })
            .collect()
    }

    /// What this run recorded in memory (not what the journal was seeded with), in the
    /// order it happened: what a store writes when a run that was not journaled as it
    /// went stops.
    pub fn export(&self) -> Vec<JournalEntry> {
        self.lock().log.clone()
    }
}

/// Whether two item frames hold the same values under the same names (in any order).
pub(crate) fn same_item(a: &Outputs, b: &Outputs) -> bool {
    a.len() == b.len() && a.iter().all(|(name, v)| b.get(name) == Some(v))
}
