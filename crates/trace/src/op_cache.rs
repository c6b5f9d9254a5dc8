//! A persistent op cache in SQLite: results of ops marked `cache` survive the process,
//! so a second `operonx run` does not pay for the same model call again.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use operonx_runtime::OpCache;
use operonx_runtime::cache::CacheKey;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::{Map, Value};

use crate::error::StoreError;

/// Op results in a SQLite file, bounded in entries (the oldest go first).
#[derive(Debug)]
pub struct SqliteOpCache {
    conn: Mutex<Connection>,
    path: PathBuf,
    max_entries: usize,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn key_text(key: CacheKey) -> String {
    format!("{:016x}{:016x}", key.0, key.1)
}

impl SqliteOpCache {
    /// Open (creating it and its directory if needed) the cache at `path`. Both are
    /// private (see [`crate::private`]).
    pub fn open(path: impl AsRef<Path>, max_entries: usize) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        crate::store::create_private_db(&path)?;
        // Created by one process at a time, safely while others open it (see `crate::sqlite`).
        let conn = crate::sqlite::open_shared(&path, OpenFlags::default(), &[], &|tx| {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS op_cache (
                     key TEXT PRIMARY KEY, outputs TEXT NOT NULL, created REAL NOT NULL, expires REAL);
                 CREATE INDEX IF NOT EXISTS op_cache_created ON op_cache(created);",
            )
            .map_err(|source| StoreError::Open { path: path.clone(), source })
        })?;
        crate::private::restrict_sqlite(&path).unwrap_or_else(|e| crate::store::not_private(&path, &e));
        Ok(Self { conn: Mutex::new(conn), path, max_entries: max_entries.max(1) })
    }

    /// Where the cache lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of results held.
    pub fn len(&self) -> usize {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.query_row("SELECT COUNT(*) FROM op_cache", [], |r| r.get::<_, i64>(0)).map_or(0, |n| n as usize)
    }

    /// Holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl OpCache for SqliteOpCache {
    fn get(&self, key: CacheKey) -> Option<Map<String, Value>> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let row: Option<(String, Option<f64>)> = conn
            .query_row("SELECT outputs, expires FROM op_cache WHERE key = ?1", params![key_text(key)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "op cache read failed; running the op");
                None
            });
        let (text, expires) = row?;
        if expires.is_some_and(|t| t <= now()) {
            let _ = conn.execute("DELETE FROM op_cache WHERE key = ?1", params![key_text(key)]);
            return None;
        }
        match serde_json::from_str(&text) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        }
    }

    fn put(&self, key: CacheKey, outputs: Map<String, Value>, ttl: Option<Duration>) {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let text = Value::Object(outputs).to_string();
        let t = now();
        let result = conn
            .execute(
                "INSERT OR REPLACE INTO op_cache (key, outputs, created, expires) VALUES (?1, ?2, ?3, ?4)",
                params![key_text(key), text, t, ttl.map(|d| t + d.as_secs_f64())],
            )
            .and_then(|_| {
                conn.execute(
                    "DELETE FROM op_cache WHERE key IN (SELECT key FROM op_cache ORDER BY created DESC LIMIT -1 OFFSET ?1)",
                    params![self.max_entries as i64],
                )
            });
        if let Err(e) = result {
            tracing::warn!(error = %e, "op cache write failed; the result is not cached");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn results_survive_reopening_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        {
            let c = SqliteOpCache::open(&path, 10).unwrap();
            c.put(CacheKey(1, 2), map(serde_json::json!({"y": 1})), None);
            c.put(CacheKey(3, 4), map(serde_json::json!({"y": 2})), Some(Duration::from_millis(1)));
        }
        std::thread::sleep(Duration::from_millis(20));
        let c = SqliteOpCache::open(&path, 10).unwrap();
        assert_eq!(c.get(CacheKey(1, 2)), Some(map(serde_json::json!({"y": 1}))));
        assert_eq!(c.get(CacheKey(3, 4)), None, "expired");
        assert_eq!(c.get(CacheKey(9, 9)), None);
    }

    #[test]
    fn the_oldest_entries_go_first_beyond_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let c = SqliteOpCache::open(dir.path().join("c.db"), 3).unwrap();
        for k in 0..5u64 {
            c.put(CacheKey(k, 0), map(serde_json::json!({"k": k})), None);
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(CacheKey(0, 0)), None);
        assert!(c.get(CacheKey(4, 0)).is_some());
    }
}
