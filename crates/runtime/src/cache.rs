//! The op cache: results of ops marked `cache` in graph.json, keyed by the op's
//! configuration fingerprint, its full name and its canonical inputs, so changing the
//! model, the prompt or any input misses.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::record::{Inputs, Outputs};

/// A cache key (a 128-bit digest, as two FNV-1a halves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub u64, pub u64);

/// Where cached op results live. Implementations must be cheap to call from the
/// scheduler's task (no blocking I/O on the hot path beyond a local lookup).
pub trait OpCache: Send + Sync + 'static {
    /// The cached outputs for `key`, if present and fresh.
    fn get(&self, key: CacheKey) -> Option<Map<String, Value>>;
    /// Store outputs for `key`, valid for `ttl` (`None` = until evicted).
    fn put(&self, key: CacheKey, outputs: Map<String, Value>, ttl: Option<Duration>);
}

/// Serialize with object keys sorted at every depth, so equal values hash equally.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                canonical(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The key of a call of op `op` (configuration `fingerprint`) with `inputs`.
pub fn cache_key(fingerprint: u64, op: &str, inputs: &Inputs) -> CacheKey {
    let mut text = format!("{fingerprint:016x}\u{0}{op}\u{0}");
    let mut pairs: Vec<(&str, &Value)> = inputs.iter().collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in pairs {
        text.push_str(k);
        text.push('=');
        canonical(v, &mut text);
        text.push('\u{0}');
    }
    let h = operonx_graph::digest::hash128(text.as_bytes());
    // The two halves of one 128-bit hash (truncation is the point).
    CacheKey((h >> 64) as u64, h as u64)
}

/// An in-memory cache with a bound on entries (the oldest entry goes first).
#[derive(Debug)]
pub struct MemoryCache {
    inner: Mutex<Entries>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<CacheKey, (Map<String, Value>, Option<Instant>)>,
    order: VecDeque<CacheKey>,
}

impl MemoryCache {
    /// A cache holding at most `capacity` results.
    pub fn new(capacity: usize) -> Self {
        Self { inner: Mutex::new(Entries::default()), capacity: capacity.max(1) }
    }

    /// Number of results held.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).map.len()
    }

    /// Holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl OpCache for MemoryCache {
    fn get(&self, key: CacheKey) -> Option<Map<String, Value>> {
        let mut e = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match e.map.get(&key) {
            Some((_, Some(expiry))) if *expiry <= Instant::now() => {
                e.map.remove(&key);
                None
            }
            Some((v, _)) => Some(v.clone()),
            None => None,
        }
    }

    fn put(&self, key: CacheKey, outputs: Map<String, Value>, ttl: Option<Duration>) {
        let mut e = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // A lifetime past the end of the clock never expires.
        let expiry = ttl.and_then(|t| Instant::now().checked_add(t));
        if e.map.insert(key, (outputs, expiry)).is_none() {
            e.order.push_back(key);
        }
        while e.map.len() > self.capacity {
            match e.order.pop_front() {
                Some(old) => {
                    e.map.remove(&old);
                }
                None => break,
            }
        }
    }
}

/// Outputs as a JSON object, for storing.
pub(crate) fn to_map(o: &Outputs) -> Map<String, Value> {
    o.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}
