//! Opening a SQLite database that other processes may be opening at the same moment
//! (twenty `operonx run` started together on a fresh directory): the trace store and the
//! op cache both go through [`open_shared`].
//!
//! A busy timeout makes most waits for another connection's lock silent, but not all:
//! SQLite answers `SQLITE_BUSY` at once, without calling the busy handler, when waiting
//! could deadlock — switching a new database to WAL while another connection does the
//! same, or upgrading a read transaction to a write after another connection wrote. So
//! the set-up (journal mode, schema) runs in an exclusive write transaction
//! (`BEGIN IMMEDIATE`, which takes the write lock before reading anything and so waits
//! through the busy handler), and the whole open is retried, with a short randomized
//! backoff, while SQLite says the database is busy or locked, for up to
//! [`OPEN_PATIENCE`].

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use crate::error::StoreError;

/// How long an open keeps retrying while the database is busy.
pub(crate) const OPEN_PATIENCE: Duration = Duration::from_secs(20);

/// How long one statement waits for another connection's lock.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Open `path` with `flags`, set it up, and run `init` inside a `BEGIN IMMEDIATE`
/// transaction (so a schema is created or migrated by one process at a time, each seeing
/// what the previous one committed). Busy and locked errors anywhere in this are retried
/// until [`OPEN_PATIENCE`] has passed.
pub(crate) fn open_shared(
    path: &Path,
    flags: OpenFlags,
    pragmas: &[(&str, i64)],
    init: &dyn Fn(&rusqlite::Transaction<'_>) -> Result<(), StoreError>,
) -> Result<Connection, StoreError> {
    let deadline = Instant::now() + OPEN_PATIENCE;
    let mut attempt = 0u32;
    loop {
        match open_once(path, flags, pragmas, init) {
            Ok(conn) => return Ok(conn),
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                attempt += 1;
                std::thread::sleep(backoff(attempt));
            }
            Err(e) => return Err(e),
        }
    }
}

fn open_once(
    path: &Path,
    flags: OpenFlags,
    pragmas: &[(&str, i64)],
    init: &dyn Fn(&rusqlite::Transaction<'_>) -> Result<(), StoreError>,
) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
    let mut conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    // Already WAL (every store after its first open): a read of the mode, no lock taken.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::debug!("{}: journal mode {mode} (WAL unavailable)", path.display());
    }
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
    for (name, value) in pragmas {
        conn.pragma_update(None, name, value).map_err(open_err)?;
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(open_err)?;
    init(&tx)?;
    tx.commit().map_err(open_err)?;
    Ok(conn)
}

/// Whether `e` is SQLite saying another connection holds a lock.
pub(crate) fn is_busy(e: &StoreError) -> bool {
    let sqlite = match e {
        StoreError::Open { source, .. } | StoreError::Sqlite(source) => source,
        _ => return false,
    };
    matches!(
        sqlite,
        rusqlite::Error::SqliteFailure(f, _) if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// 5 ms doubling to 200 ms, plus up to as much again at random (from the clock's
/// nanoseconds and the process id: processes started together spread out).
fn backoff(attempt: u32) -> Duration {
    let base = 5u64.saturating_mul(1 << attempt.min(6)).min(200);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let jitter = u64::from(nanos ^ std::process::id().wrapping_mul(2_654_435_761)) % (base + 1);
    Duration::from_millis(base + jitter)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for attempt in 0..100 {
            let d = backoff(attempt);
            assert!(d >= Duration::from_millis(5) && d <= Duration::from_millis(400), "{attempt}: {d:?}");
        }
        assert!(backoff(10) >= Duration::from_millis(200));
    }

    #[test]
    fn busy_and_locked_are_retried_other_errors_are_not() {
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(5), None);
        assert!(is_busy(&StoreError::Open { path: "x".into(), source: busy }));
        let locked = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(6), None);
        assert!(is_busy(&StoreError::Sqlite(locked)));
        let corrupt = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(26), None);
        assert!(!is_busy(&StoreError::Sqlite(corrupt)));
        assert!(!is_busy(&StoreError::Missing("x".into())));
    }

    /// Eight threads open one fresh database at once, each creating the schema: every
    /// open succeeds and the schema is there once.
    #[test]
    fn concurrent_first_opens_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        fn init(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
            let v: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if v == 0 {
                tx.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1); PRAGMA user_version = 1;")?;
            }
            Ok(())
        }
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || open_shared(&path, OpenFlags::default(), &[], &init).map(drop))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let conn = Connection::open(&path).unwrap();
        assert_eq!(conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 1);
    }
}
