//! The per-run scratch space: a free-form map shared by every op of a run, nested graphs
//! included, seeded by the caller.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value};

/// A handle to a run's scratch space. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Scratch(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    map: Mutex<Map<String, Value>>,
    /// Bumped by every change (a journal writer saves the map only when it changed).
    version: AtomicU64,
}

impl Scratch {
    /// A scratch space holding `seed`.
    pub fn new(seed: Map<String, Value>) -> Self {
        Self(Arc::new(Inner { map: Mutex::new(seed), version: AtomicU64::new(0) }))
    }

    fn lock(&self) -> MutexGuard<'_, Map<String, Value>> {
        // A panic while holding the lock cannot leave the map half-written: every
        // operation below is a single insert, remove or clone.
        self.0.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many changes the space has seen (compare two readings to tell whether it changed).
    pub fn version(&self) -> u64 {
        self.0.version.load(Ordering::Acquire)
    }

    /// The value at `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.lock().get(key).cloned()
    }

    /// Set `key` to `value`, returning the previous value.
    pub fn set(&self, key: impl Into<String>, value: Value) -> Option<Value> {
        let old = self.lock().insert(key.into(), value);
        self.0.version.fetch_add(1, Ordering::Release);
        old
    }

    /// Remove `key`.
    pub fn remove(&self, key: &str) -> Option<Value> {
        let old = self.lock().shift_remove(key);
        if old.is_some() {
            self.0.version.fetch_add(1, Ordering::Release);
        }
        old
    }

    /// A copy of the whole map.
    pub fn snapshot(&self) -> Map<String, Value> {
        self.lock().clone()
    }
}
