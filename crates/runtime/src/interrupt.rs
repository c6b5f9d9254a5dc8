//! Human-in-the-loop interrupts and resumable runs.
//!
//! An op body asks for input with [`crate::OpContext::interrupt`]. The first time, the
//! call fails with an interrupt: the op does not complete, nothing downstream of it runs,
//! independent work finishes, and the run ends reporting what it awaits under a stable
//! id derived from the op's path and context (not from the order ops ran in). Resuming
//! replays the run: ops that completed before are answered from the run's journal (their
//! bodies do not run again), and the interrupted calls receive the values supplied for
//! their ids. A [`RunState`] is plain data (serde), so it can be stored and resumed later
//! by another process.

use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::record::Outputs;

/// What an interrupted op asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interrupt {
    /// Stable id: the op's full name, `@` and its item context when inside a stream
    /// (`main.review@[2]`), and `#n` for the n-th interrupt of one call (n > 0).
    pub id: String,
    /// Full name of the op.
    pub op: String,
    /// What the op sent (a question, a draft to approve, ...).
    pub payload: Value,
}

/// Completed op results of a run, keyed by op path and context, plus the answers to its
/// interrupts. Shared by a run and its nested runs. Results recorded by the run share
/// their values with it: journaling copies nothing until the run's state is saved.
#[derive(Debug, Default)]
pub struct Journal {
    entries: Mutex<Entries>,
    answers: Map<String, Value>,
}

/// Journal entries in the order recorded: JSON values, or (a `null` in `order`) shared
/// outputs in `shared`.
#[derive(Debug, Default)]
struct Entries {
    order: Map<String, Value>,
    shared: std::collections::HashMap<String, Outputs>,
}

impl Journal {
    /// A journal seeded from an earlier run's entries, with answers to its interrupts.
    pub fn new(entries: Map<String, Value>, answers: Map<String, Value>) -> Self {
        Self { entries: Mutex::new(Entries { order: entries, shared: Default::default() }), answers }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The recorded outputs of the op call `key`.
    pub fn get(&self, key: &str) -> Option<Map<String, Value>> {
        let e = self.lock();
        if let Some(o) = e.shared.get(key) {
            return Some(o.clone().into_map());
        }
        match e.order.get(key) {
            Some(Value::Object(m)) => Some(m.clone()),
            _ => None,
        }
    }

    /// Record the outputs of the op call `key`.
    pub fn record(&self, key: String, outputs: Map<String, Value>) {
        let mut e = self.lock();
        e.shared.remove(&key);
        e.order.insert(key, Value::Object(outputs));
    }

    /// Record the outputs of the op call `key`, sharing their values (nothing is copied).
    pub(crate) fn record_shared(&self, key: String, outputs: &Outputs) {
        let mut e = self.lock();
        e.order.insert(key.clone(), Value::Null);
        e.shared.insert(key, outputs.clone());
    }

    /// The answer supplied for interrupt `id`.
    pub fn answer(&self, id: &str) -> Option<&Value> {
        self.answers.get(id)
    }

    /// Everything recorded so far.
    pub fn entries(&self) -> Map<String, Value> {
        let e = self.lock();
        e.order
            .iter()
            .map(|(k, v)| match e.shared.get(k) {
                Some(o) => (k.clone(), Value::Object(o.clone().into_map())),
                None => (k.clone(), v.clone()),
            })
            .collect()
    }
}

/// Everything needed to resume an interrupted run: plain data, no closures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The run's id.
    pub request_id: String,
    /// Digest of the compiled graph's document; resuming against another graph is refused.
    pub graph_fingerprint: String,
    /// The run's inputs.
    pub inputs: Map<String, Value>,
    /// The scratch space when the run stopped.
    pub scratch: Map<String, Value>,
    /// Completed op results (`op@context` → outputs).
    pub journal: Map<String, Value>,
    /// Answers given so far (`interrupt id` → value).
    pub answers: Map<String, Value>,
    /// What the run awaits.
    pub pending: Vec<Interrupt>,
}
