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

/// The schema version this build reads and writes (`PRAGMA user_version`). Caches
/// written before the version was recorded (0) have the same table, and are adopted.
const SCHEMA_VERSION: i64 = 1;

/// The table of version 1.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS op_cache (
    key TEXT PRIMARY KEY, outputs TEXT NOT NULL, created REAL NOT NULL, expires REAL);
CREATE INDEX IF NOT EXISTS op_cache_created ON op_cache(created);";

/// Refuse a cache of a newer schema; create the table, or adopt an unversioned one,
/// inside the opening transaction.
fn migrate(tx: &rusqlite::Transaction<'_>, path: &Path) -> Result<(), StoreError> {
    let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(open_err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Version {
            what: "op cache",
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < SCHEMA_VERSION {
        tx.execute_batch(SCHEMA).map_err(open_err)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(open_err)?;
    }
    Ok(())
}

impl SqliteOpCache {
    /// Open (creating it and its directory if needed) the cache at `path`. Both are
    /// private (see [`crate::private`]).
    pub fn open(path: impl AsRef<Path>, max_entries: usize) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        crate::store::create_private_db(&path)?;
        // Created by one process at a time, safely while others open it (see `crate::sqlite`).
        let conn = crate::sqlite::open_shared(&path, OpenFlags::default(), &[], &|tx| migrate(tx, &path))?;
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

    /// A cache written before the schema version was recorded (the table as the first
    /// builds created it, `user_version` 0) opens with its entries and is marked version 1.
    #[test]
    fn an_unversioned_cache_is_adopted_with_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE op_cache (key TEXT PRIMARY KEY, outputs TEXT NOT NULL, created REAL NOT NULL, expires REAL);
                 CREATE INDEX op_cache_created ON op_cache(created);",
            )
            .unwrap();
            conn.execute(
                "INSERT INTO op_cache (key, outputs, created, expires) VALUES (?1, '{\"y\":7}', ?2, NULL)",
                params![key_text(CacheKey(5, 6)), now()],
            )
            .unwrap();
        }
        let c = SqliteOpCache::open(&path, 10).unwrap();
        assert_eq!(c.get(CacheKey(5, 6)), Some(map(serde_json::json!({"y": 7}))));
        drop(c);
        let version: i64 =
            Connection::open(&path).unwrap().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    /// A cache of a newer schema is refused, naming the file, and left as it was.
    #[test]
    fn a_newer_cache_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        drop(SqliteOpCache::open(&path, 10).unwrap());
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
        let err = SqliteOpCache::open(&path, 10).unwrap_err();
        assert!(matches!(err, StoreError::Version { found: 99, supported: SCHEMA_VERSION, .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("op cache") && text.contains("newer"),
            "{text}"
        );
        let version: i64 =
            Connection::open(&path).unwrap().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, 99, "left as it was");
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
