//! Opening a SQLite database that other processes may be opening at the same moment
//! (twenty `operonx run` started together on a fresh directory): the trace store, the
//! op cache and the run store (`operonx-store`) all go through [`open_shared`], each with
//! its own error type (see [`OpenError`]).
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
use std::time::{Duration, Instant};

use operonx_graph::backoff::{Backoff, SplitMix};
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use crate::error::StoreError;

/// How long an open keeps retrying while the database is busy.
pub const OPEN_PATIENCE: Duration = Duration::from_secs(20);

/// How long one statement waits for another connection's lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The error type of a store opened through [`open_shared`]: how a SQLite error met while
/// opening becomes one, and the SQLite error inside one (to tell busy errors, which are
/// retried, from the others).
pub trait OpenError: Sized {
    /// `source`, met while opening or setting up the database at `path`.
    fn open_failed(path: &Path, source: rusqlite::Error) -> Self;

    /// The SQLite error this one holds, if any.
    fn sqlite_error(&self) -> Option<&rusqlite::Error>;
}

impl OpenError for StoreError {
    fn open_failed(path: &Path, source: rusqlite::Error) -> Self {
        StoreError::Open { path: path.to_path_buf(), source }
    }

    fn sqlite_error(&self) -> Option<&rusqlite::Error> {
        match self {
            StoreError::Open { source, .. } | StoreError::Sqlite(source) => Some(source),
            _ => None,
        }
    }
}

/// Open `path` with `flags`, set it up, and run `init` inside a `BEGIN IMMEDIATE`
/// transaction (so a schema is created or migrated by one process at a time, each seeing
/// what the previous one committed). Busy and locked errors anywhere in this are retried
/// until [`OPEN_PATIENCE`] has passed.
///
/// The connection gets a [`BUSY_TIMEOUT`], WAL mode (when the file system allows it) and
/// `synchronous = NORMAL`, then `pragmas` in order (a later `synchronous` wins).
pub fn open_shared<E: OpenError>(
    path: &Path,
    flags: OpenFlags,
    pragmas: &[(&str, i64)],
    init: &dyn Fn(&rusqlite::Transaction<'_>) -> Result<(), E>,
) -> Result<Connection, E> {
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

fn open_once<E: OpenError>(
    path: &Path,
    flags: OpenFlags,
    pragmas: &[(&str, i64)],
    init: &dyn Fn(&rusqlite::Transaction<'_>) -> Result<(), E>,
) -> Result<Connection, E> {
    let open_err = |source| E::open_failed(path, source);
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
pub fn is_busy<E: OpenError>(e: &E) -> bool {
    e.sqlite_error().is_some_and(is_busy_sqlite)
}

/// Whether `e` is SQLite saying another connection holds a lock (busy or locked).
pub fn is_busy_sqlite(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _) if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// The waits between tries while SQLite says the database is busy: retry `n` waits at
/// least `min(200 ms, 5 ms × 2^n)` and less than twice that — the schedule 10 ms doubling
/// to 400 ms, jittered into its upper half.
pub const BUSY_BACKOFF: Backoff =
    Backoff::doubling(Duration::from_millis(10), Duration::from_millis(400)).with_jitter(true);

/// How long to wait before retry `attempt` of something SQLite found busy
/// ([`BUSY_BACKOFF`]), with a random draw of its own, so processes started together
/// spread out.
pub fn backoff(attempt: u32) -> Duration {
    BUSY_BACKOFF.wait(attempt, &SplitMix::from_entropy())
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
                std::thread::spawn(move || open_shared::<StoreError>(&path, OpenFlags::default(), &[], &init).map(drop))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let conn = Connection::open(&path).unwrap();
        assert_eq!(conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 1);
    }
}
