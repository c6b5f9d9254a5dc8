//! The per-run scratch space: a free-form map shared by every op of a run, nested graphs
//! included, seeded by the caller.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value};

/// A handle to a run's scratch space. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Scratch(Arc<Mutex<Map<String, Value>>>);

impl Scratch {
    /// A scratch space holding `seed`.
    pub fn new(seed: Map<String, Value>) -> Self {
        Self(Arc::new(Mutex::new(seed)))
    }

    fn lock(&self) -> MutexGuard<'_, Map<String, Value>> {
        // A panic while holding the lock cannot leave the map half-written: every
        // operation below is a single insert, remove or clone.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value at `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.lock().get(key).cloned()
    }

    /// Set `key` to `value`, returning the previous value.
    pub fn set(&self, key: impl Into<String>, value: Value) -> Option<Value> {
        self.lock().insert(key.into(), value)
    }

    /// Remove `key`.
    pub fn remove(&self, key: &str) -> Option<Value> {
        self.lock().shift_remove(key)
    }

    /// A copy of the whole map.
    pub fn snapshot(&self) -> Map<String, Value> {
        self.lock().clone()
    }
}
