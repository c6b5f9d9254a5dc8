//! The embedded SQLite run store: one file (WAL mode, `synchronous = FULL`: a committed
//! journal entry survives a power cut) that any number of processes open and write at
//! once.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction: it takes the write lock before
//! reading anything, so it waits for other writers through the busy timeout instead of
//! failing (a read transaction upgraded to a write one fails at once with "database is
//! locked" when another connection wrote in between). Opening goes through
//! [`operonx_trace::sqlite::open_shared`], which makes twenty processes opening a fresh
//! file together safe. What is still reported busy (after the busy timeout) is retried
//! with a randomized backoff for a while.
//!
//! The columns holding user data are sealed with the store key (see [`crate::seal`]);
//! the key's id is recorded in the `meta` table, and a process with another key is
//! refused when it opens the file.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use operonx_trace::sqlite::{OPEN_PATIENCE, OpenError, backoff, is_busy, open_shared};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use serde_json::{Map, Value};

use crate::key::{StoreKey, sqlite_key_file};
use crate::row::{self, EntryRow, RunRow, SEALED_COLUMNS, SummaryRow};
use crate::seal::Sealer;
use crate::{Batch, Lease, ListFilter, NewRun, RunEnd, RunStatus, RunStore, RunSummary, StoreError, StoredRun};

/// The schema version this build reads and writes (`PRAGMA user_version`): 1 had the
/// user data in clear; 2 has it sealed, and the `meta` table.
const SCHEMA_VERSION: i64 = 2;

/// What version 2 adds (the `meta` table: `key_id`, the id of the store's key).
const SCHEMA_META: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY NOT NULL,
    graph_name   TEXT NOT NULL,
    graph_path   TEXT,
    graph        TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    inputs       TEXT NOT NULL,
    scratch      TEXT NOT NULL,
    options      TEXT NOT NULL,
    answers      TEXT NOT NULL,
    pending      TEXT NOT NULL,
    result       TEXT,
    reason       TEXT,
    status       TEXT NOT NULL,
    owner        TEXT,
    epoch        INTEGER NOT NULL,
    heartbeat_ms INTEGER,
    lease_ms     INTEGER NOT NULL,
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL,
    resumes      INTEGER NOT NULL,
    entries      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_ms, run_id);
CREATE INDEX IF NOT EXISTS runs_by_updated ON runs (updated_ms);
CREATE TABLE IF NOT EXISTS journal (
    run_id TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    key    TEXT NOT NULL,
    idx    INTEGER,
    body   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
";

/// The columns [`summary_row`] reads, in order.
const SUMMARY_COLS: &str =
    "run_id, graph_name, status, owner, heartbeat_ms, lease_ms, created_ms, updated_ms, resumes, entries, reason";

const INSERT_RUN: &str = "INSERT INTO runs (run_id, graph_name, graph_path, graph, fingerprint, inputs, scratch,
    options, answers, pending, result, reason, status, owner, epoch, heartbeat_ms, lease_ms, created_ms, updated_ms,
    resumes, entries)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?12, ?13, NULL, NULL, 'running', ?9, 1, ?10, ?11, ?10, ?10, 0, 0)
    ON CONFLICT (run_id) DO NOTHING";

const TOUCH: &str = "UPDATE runs SET heartbeat_ms = ?1, updated_ms = ?1, entries = entries + ?2,
    scratch = COALESCE(?3, scratch), pending = COALESCE(?4, pending)
    WHERE run_id = ?5 AND epoch = ?6 AND status = 'running'";

const INSERT_ENTRY: &str = "INSERT INTO journal (run_id, seq, kind, key, idx, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

const FINISH: &str = "UPDATE runs SET status = ?1, result = ?2, pending = ?3, scratch = ?4, reason = ?5,
    owner = NULL, heartbeat_ms = NULL, updated_ms = ?6 WHERE run_id = ?7 AND epoch = ?8";

const CLAIM: &str = "UPDATE runs SET epoch = epoch + 1, status = 'running', owner = ?1, heartbeat_ms = ?2,
    updated_ms = ?2, lease_ms = ?3, resumes = resumes + 1, reason = NULL, answers = ?4
    WHERE run_id = ?5 RETURNING epoch";

const JOURNAL: &str = "SELECT seq, kind, key, idx, body FROM journal WHERE run_id = ?1 ORDER BY seq";

/// Statements kept prepared per connection.
const STATEMENT_CACHE: usize = 32;

/// `synchronous = FULL`: a commit is on disk (the WAL synced) before it returns.
const SYNCHRONOUS_FULL: i64 = 2;

impl OpenError for StoreError {
    fn open_failed(path: &Path, source: rusqlite::Error) -> Self {
        StoreError::Sqlite { store: path.display().to_string(), source }
    }

    fn sqlite_error(&self) -> Option<&rusqlite::Error> {
        match self {
            StoreError::Sqlite { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A run store in a SQLite file. One connection, shared by the threads of this process
/// (statements are short); other processes open the file alongside.
pub struct SqliteRunStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    location: String,
    sealer: Sealer,
}

impl std::fmt::Debug for SqliteRunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRunStore").field("path", &self.path).finish()
    }
}

impl SqliteRunStore {
    /// Open the store at `path`, creating the file and its folder when missing, both
    /// private (see [`operonx_trace::private`]), with the key `OPERONX_STORE_KEY` holds,
    /// else the key in the key file beside it (`runs.db.key` for `runs.db`, created
    /// 0600 with a fresh key when missing; see [`StoreKey::resolve`]). Safe while other
    /// processes open and write the same file. Fails, naming the file, when it is not a
    /// run store this build can read (not a database, or written by a newer build), and
    /// ([`StoreError::WrongKey`]) when it was written with another key.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let location = path.display().to_string();
        prepare_file(path, &location)?;
        let key = StoreKey::from_environment(Some(&sqlite_key_file(path)))
            .map_err(|source| StoreError::Key { store: location.clone(), source })?;
        Self::open_with_key(path, key)
    }

    /// Open the store at `path` as [`SqliteRunStore::open`] does, with `key` (no key
    /// file is read or written).
    pub fn open_with_key(path: impl AsRef<Path>, key: StoreKey) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let location = path.display().to_string();
        prepare_file(&path, &location)?;
        let sealer = Sealer::new(&key, &location);
        let pragmas = [("synchronous", SYNCHRONOUS_FULL)];
        let conn = open_shared(&path, OpenFlags::default(), &pragmas, &|tx| migrate(tx, &sealer))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if let Err(e) = operonx_trace::private::restrict_sqlite(&path) {
            tracing::warn!("cannot make {location} private (mode 0600): {e}");
        }
        Ok(Self { conn: Mutex::new(conn), path, location, sealer })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite { store: self.location.clone(), source }
    }

    /// Run `f` in one transaction and commit it; the whole transaction is retried (with
    /// backoff, for [`OPEN_PATIENCE`]) while SQLite reports the database busy.
    fn with_tx<T>(
        &self,
        behavior: TransactionBehavior,
        mut f: impl FnMut(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let deadline = Instant::now() + OPEN_PATIENCE;
        let mut attempt = 0;
        loop {
            let result = (|| {
                let tx = conn.transaction_with_behavior(behavior).map_err(self.err())?;
                let out = f(&tx)?;
                tx.commit().map_err(self.err())?;
                Ok(out)
            })();
            match result {
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    attempt += 1;
                    std::thread::sleep(backoff(attempt));
                }
                other => return other,
            }
        }
    }

    fn write<T>(&self, f: impl FnMut(&Transaction<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.with_tx(TransactionBehavior::Immediate, f)
    }

    fn read<T>(&self, f: impl FnMut(&Transaction<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.with_tx(TransactionBehavior::Deferred, f)
    }

    /// The error for a lease whose update matched no row: the run is gone, or taken.
    fn lost(&self, tx: &Transaction<'_>, run_id: &str) -> StoreError {
        let exists = tx
            .prepare_cached("SELECT 1 FROM runs WHERE run_id = ?1")
            .and_then(|mut st| st.query_row([run_id], |_| Ok(())).optional());
        match exists {
            Ok(Some(())) => StoreError::LeaseLost { store: self.location.clone(), run_id: run_id.to_string() },
            Ok(None) => self.not_found(run_id),
            Err(e) => self.err()(e),
        }
    }

    fn not_found(&self, run_id: &str) -> StoreError {
        StoreError::NotFound { store: self.location.clone(), run_id: run_id.to_string() }
    }

    /// The run's row and journal, as of this transaction.
    fn read_run(&self, tx: &Transaction<'_>, run_id: &str) -> Result<Option<(RunRow, Vec<EntryRow>)>, StoreError> {
        let sql = format!(
            "SELECT {SUMMARY_COLS}, graph_path, graph, fingerprint, inputs, scratch, options, answers, pending, result
             FROM runs WHERE run_id = ?1"
        );
        let row = tx.prepare_cached(&sql).and_then(|mut st| st.query_row([run_id], run_row).optional());
        let Some(row) = row.map_err(self.err())? else { return Ok(None) };
        let mut st = tx.prepare_cached(JOURNAL).map_err(self.err())?;
        let journal = st
            .query_map([run_id], |r| {
                Ok(EntryRow { seq: r.get(0)?, kind: r.get(1)?, key: r.get(2)?, idx: r.get(3)?, body: r.get(4)? })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.err())?;
        Ok(Some((row, journal)))
    }
}

/// Create the database file and its folder when missing, private.
fn prepare_file(path: &Path, location: &str) -> Result<(), StoreError> {
    let open_err = |what: &str, p: &Path, e: std::io::Error| StoreError::Open {
        store: location.to_string(),
        message: format!("cannot create {what} {}: {e}", p.display()),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        operonx_trace::private::create_dir_all(dir).map_err(|e| open_err("folder", dir, e))?;
    }
    operonx_trace::private::create_file(path).map_err(|e| open_err("file", path, e))
}

/// Check the schema version, create or upgrade the schema, and check the store's key
/// (recording it, and sealing what an older build stored in clear, the first time),
/// inside the opening transaction.
fn migrate(tx: &Transaction<'_>, sealer: &Sealer) -> Result<(), StoreError> {
    let location = sealer.store();
    let sqlite_err = |source| StoreError::Sqlite { store: location.to_string(), source };
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sqlite_err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Open {
            store: location.to_string(),
            message: format!(
                "the run store has schema version {version}, newer than this build's ({SCHEMA_VERSION}): \
                 it was written by a newer operonx; upgrade operonx or use another store"
            ),
        });
    }
    if version < SCHEMA_VERSION {
        tx.execute_batch(SCHEMA).map_err(sqlite_err)?;
        tx.execute_batch(SCHEMA_META).map_err(sqlite_err)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(sqlite_err)?;
    }
    check_key(tx, sealer)
}

/// Refuse a store written with another key; record this key in a store that has none
/// yet, sealing the values it holds in clear (a store of schema version 1).
fn check_key(tx: &Transaction<'_>, sealer: &Sealer) -> Result<(), StoreError> {
    let location = sealer.store();
    let sqlite_err = |source| StoreError::Sqlite { store: location.to_string(), source };
    let stored: Option<String> = tx
        .query_row("SELECT value FROM meta WHERE name = 'key_id'", [], |r| r.get(0))
        .optional()
        .map_err(sqlite_err)?;
    match stored {
        Some(id) if id == sealer.key_id() => Ok(()),
        Some(id) => {
            Err(StoreError::WrongKey { store: location.to_string(), stored: id, current: sealer.key_id().to_string() })
        }
        None => {
            seal_legacy(tx, sealer)?;
            tx.execute("INSERT INTO meta (name, value) VALUES ('key_id', ?1)", [sealer.key_id()])
                .map_err(sqlite_err)?;
            Ok(())
        }
    }
}

/// Seal every value stored in clear (by a build before sealing). The space the clear
/// values took is zeroed (`secure_delete` while they are replaced), so no copy of them
/// stays in the file once the WAL is checkpointed.
fn seal_legacy(tx: &Transaction<'_>, sealer: &Sealer) -> Result<(), StoreError> {
    let sqlite_err = |source| StoreError::Sqlite { store: sealer.store().to_string(), source };
    let legacy: i64 = tx
        .query_row("SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM journal)", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    if legacy == 0 {
        return Ok(());
    }
    tx.pragma_update(None, "secure_delete", 1).map_err(sqlite_err)?;
    let sealed = seal_legacy_rows(tx, sealer);
    tx.pragma_update(None, "secure_delete", 0).map_err(sqlite_err)?;
    sealed
}

fn seal_legacy_rows(tx: &Transaction<'_>, sealer: &Sealer) -> Result<(), StoreError> {
    let sqlite_err = |source| StoreError::Sqlite { store: sealer.store().to_string(), source };
    let columns = SEALED_COLUMNS.join(", ");
    let rows: Vec<(String, Vec<Option<String>>)> = tx
        .prepare(&format!("SELECT run_id, {columns} FROM runs"))
        .and_then(|mut st| {
            st.query_map([], |r| {
                let values = (1..=SEALED_COLUMNS.len()).map(|i| r.get(i)).collect::<Result<Vec<_>, _>>()?;
                Ok((r.get(0)?, values))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sqlite_err)?;
    let set: Vec<String> = SEALED_COLUMNS.iter().enumerate().map(|(i, c)| format!("{c} = ?{}", i + 2)).collect();
    let update = format!("UPDATE runs SET {} WHERE run_id = ?1", set.join(", "));
    let mut sealed_runs = 0;
    for (run_id, values) in rows {
        if let Some(sealed) = row::seal_legacy_run(sealer, &run_id, &values)? {
            let mut params: Vec<&dyn rusqlite::ToSql> = vec![&run_id];
            params.extend(sealed.iter().map(|v| v as &dyn rusqlite::ToSql));
            tx.execute(&update, params.as_slice()).map_err(sqlite_err)?;
            sealed_runs += 1;
        }
    }
    let journal: Vec<(String, EntryRow)> = tx
        .prepare("SELECT run_id, seq, kind, key, idx, body FROM journal")
        .and_then(|mut st| {
            st.query_map([], |r| {
                let row = EntryRow { seq: r.get(1)?, kind: r.get(2)?, key: r.get(3)?, idx: r.get(4)?, body: r.get(5)? };
                Ok((r.get(0)?, row))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sqlite_err)?;
    for (run_id, entry) in &journal {
        if let Some(body) = row::seal_legacy_body(sealer, run_id, entry)? {
            tx.execute("UPDATE journal SET body = ?1 WHERE run_id = ?2 AND seq = ?3", params![body, run_id, entry.seq])
                .map_err(sqlite_err)?;
        }
    }
    if sealed_runs > 0 {
        tracing::info!("run store {}: sealed the values of {sealed_runs} runs stored in clear", sealer.store());
    }
    Ok(())
}

/// The columns of [`SUMMARY_COLS`] from the start of a row.
fn summary_row(r: &Row<'_>) -> rusqlite::Result<SummaryRow> {
    Ok(SummaryRow {
        run_id: r.get(0)?,
        graph_name: r.get(1)?,
        status: r.get(2)?,
        owner: r.get(3)?,
        heartbeat_ms: r.get(4)?,
        lease_ms: r.get(5)?,
        created_ms: r.get(6)?,
        updated_ms: r.get(7)?,
        resumes: r.get(8)?,
        entries: r.get(9)?,
        reason: r.get(10)?,
    })
}

/// A whole run row: [`SUMMARY_COLS`], then the rest as [`SqliteRunStore::read_run`] selects.
fn run_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        summary: summary_row(r)?,
        graph_path: r.get(11)?,
        graph: r.get(12)?,
        fingerprint: r.get(13)?,
        inputs: r.get(14)?,
        scratch: r.get(15)?,
        options: r.get(16)?,
        answers: r.get(17)?,
        pending: r.get(18)?,
        result: r.get(19)?,
    })
}

impl RunStore for SqliteRunStore {
    fn location(&self) -> &str {
        &self.location
    }

    fn create(&self, run: &NewRun, owner: &str, ttl: Duration) -> Result<Lease, StoreError> {
        let (sealer, id) = (&self.sealer, run.run_id.as_str());
        let graph = row::seal_json(sealer, id, "graph", &run.graph)?;
        let inputs = row::seal_json(sealer, id, "inputs", &run.inputs)?;
        let scratch = row::seal_json(sealer, id, "scratch", &run.scratch)?;
        let options = row::seal_json(sealer, id, "options", &run.options)?;
        let answers = row::seal_json(sealer, id, "answers", &Map::new())?;
        let pending = row::seal_json(sealer, id, "pending", &[] as &[Value])?;
        let lease_ms = row::duration_ms(ttl);
        self.write(|tx| {
            let now = row::now_ms();
            let inserted = tx
                .prepare_cached(INSERT_RUN)
                .and_then(|mut st| {
                    st.execute(params![
                        id,
                        run.graph_name,
                        run.graph_path,
                        graph,
                        run.fingerprint,
                        inputs,
                        scratch,
                        options,
                        owner,
                        now,
                        lease_ms,
                        answers,
                        pending
                    ])
                })
                .map_err(self.err())?;
            if inserted == 0 {
                return Err(StoreError::Exists { store: self.location.clone(), run_id: id.to_string() });
            }
            Ok(())
        })?;
        Ok(Lease { run_id: id.to_string(), owner: owner.to_string(), epoch: 1, next_seq: 1, ttl })
    }

    fn append(&self, lease: &Lease, batch: &Batch) -> Result<(), StoreError> {
        let (sealer, id) = (&self.sealer, lease.run_id.as_str());
        let scratch = row::seal_json_opt(sealer, id, "scratch", batch.scratch.as_ref())?;
        let pending = row::seal_json_opt(sealer, id, "pending", batch.pending.as_ref())?;
        let bodies =
            batch.entries.iter().map(|e| row::seal_body(sealer, id, e)).collect::<Result<Vec<_>, StoreError>>()?;
        let count = i64::try_from(batch.entries.len()).unwrap_or(i64::MAX);
        self.write(|tx| {
            let now = row::now_ms();
            let updated = tx
                .prepare_cached(TOUCH)
                .and_then(|mut st| st.execute(params![now, count, scratch, pending, id, lease.epoch]))
                .map_err(self.err())?;
            if updated == 0 {
                return Err(self.lost(tx, id));
            }
            let mut insert = tx.prepare_cached(INSERT_ENTRY).map_err(self.err())?;
            for (e, body) in batch.entries.iter().zip(&bodies) {
                insert.execute(params![id, e.seq, e.kind.as_str(), e.key, e.index, body]).map_err(self.err())?;
            }
            Ok(())
        })
    }

    fn heartbeat(&self, lease: &Lease) -> Result<(), StoreError> {
        self.append(lease, &Batch::default())
    }

    fn finish(&self, lease: &Lease, end: &RunEnd) -> Result<(), StoreError> {
        let (sealer, id) = (&self.sealer, lease.run_id.as_str());
        let result = row::seal_json_opt(sealer, id, "result", end.result.as_ref())?;
        let pending = row::seal_json(sealer, id, "pending", &end.pending)?;
        let scratch = row::seal_json(sealer, id, "scratch", &end.scratch)?;
        let reason = row::seal_reason(sealer, id, end.reason.as_deref())?;
        self.write(|tx| {
            let now = row::now_ms();
            let updated = tx
                .prepare_cached(FINISH)
                .and_then(|mut st| {
                    st.execute(params![end.status.as_str(), result, pending, scratch, reason, now, id, lease.epoch])
                })
                .map_err(self.err())?;
            if updated == 0 {
                return Err(self.lost(tx, id));
            }
            Ok(())
        })
    }

    fn claim(
        &self,
        run_id: &str,
        owner: &str,
        ttl: Duration,
        answers: &Map<String, Value>,
    ) -> Result<(Lease, StoredRun), StoreError> {
        let store = self.location.as_str();
        let lease_ms = row::duration_ms(ttl);
        self.write(|tx| {
            let now = row::now_ms();
            let sql = format!("SELECT {SUMMARY_COLS}, answers FROM runs WHERE run_id = ?1");
            let found = tx
                .prepare_cached(&sql)
                .and_then(|mut st| {
                    st.query_row([run_id], |r| Ok((summary_row(r)?, r.get::<_, String>(11)?))).optional()
                })
                .map_err(self.err())?;
            let Some((current, stored_answers)) = found else { return Err(self.not_found(run_id)) };
            match row::derive_status(store, &current, now)? {
                RunStatus::Done => {
                    return Err(StoreError::Finished { store: store.to_string(), run_id: run_id.to_string() });
                }
                RunStatus::Running => {
                    let owner = current.owner.unwrap_or_default();
                    return Err(StoreError::Busy { store: store.to_string(), run_id: run_id.to_string(), owner });
                }
                _ => {}
            }
            let merged = row::merge_answers(&self.sealer, run_id, &stored_answers, answers)?;
            let epoch: i64 = tx
                .prepare_cached(CLAIM)
                .and_then(|mut st| st.query_row(params![owner, now, lease_ms, merged, run_id], |r| r.get(0)))
                .map_err(self.err())?;
            let (run, journal) = self.read_run(tx, run_id)?.ok_or_else(|| self.not_found(run_id))?;
            let mut stored = row::stored_run(&self.sealer, run, journal, now)?;
            stored.summary.status = RunStatus::Running;
            let next_seq = stored.entries.last().map_or(1, |e| e.seq + 1);
            let lease = Lease { run_id: run_id.to_string(), owner: owner.to_string(), epoch, next_seq, ttl };
            Ok((lease, stored))
        })
    }

    fn load(&self, run_id: &str) -> Result<StoredRun, StoreError> {
        let (run, journal) = self.read(|tx| self.read_run(tx, run_id))?.ok_or_else(|| self.not_found(run_id))?;
        row::stored_run(&self.sealer, run, journal, row::now_ms())
    }

    fn list(&self, filter: &ListFilter) -> Result<Vec<RunSummary>, StoreError> {
        let sql = format!(
            "SELECT {SUMMARY_COLS} FROM runs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR graph_name = ?2)
             ORDER BY created_ms DESC, run_id DESC LIMIT ?3"
        );
        let status = row::stored_status(filter.status);
        let limit = row::sql_limit(filter).unwrap_or(-1);
        let rows = self.read(|tx| {
            let mut st = tx.prepare_cached(&sql).map_err(self.err())?;
            st.query_map(params![status, filter.graph, limit], summary_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(self.err())
        })?;
        row::filter_summaries(&self.sealer, rows, filter, row::now_ms())
    }

    fn prune(&self, older_than: DateTime<Utc>, status: Option<RunStatus>) -> Result<u64, StoreError> {
        if status == Some(RunStatus::Running) {
            return Ok(0);
        }
        let cutoff = older_than.timestamp_millis();
        let stored = row::stored_status(status);
        let sql = format!("SELECT {SUMMARY_COLS} FROM runs WHERE updated_ms < ?1 AND (?2 IS NULL OR status = ?2)");
        self.write(|tx| {
            let now = row::now_ms();
            let candidates = tx
                .prepare_cached(&sql)
                .and_then(|mut st| st.query_map(params![cutoff, stored], summary_row)?.collect::<Result<Vec<_>, _>>())
                .map_err(self.err())?;
            let mut deleted = 0;
            for candidate in candidates {
                if !row::prunable(&self.location, &candidate, status, now)? {
                    continue;
                }
                tx.prepare_cached("DELETE FROM journal WHERE run_id = ?1")
                    .and_then(|mut st| st.execute([&candidate.run_id]))
                    .map_err(self.err())?;
                tx.prepare_cached("DELETE FROM runs WHERE run_id = ?1")
                    .and_then(|mut st| st.execute([&candidate.run_id]))
                    .map_err(self.err())?;
                deleted += 1;
            }
            Ok(deleted)
        })
    }

    fn check(&self) -> Result<(), StoreError> {
        let (integrity, orphans, miscounted) = self.read(|tx| {
            let integrity: Vec<String> = tx
                .prepare("PRAGMA integrity_check")
                .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect::<Result<Vec<_>, _>>())
                .map_err(self.err())?;
            let orphans: Vec<String> = tx
                .prepare(
                    "SELECT DISTINCT j.run_id FROM journal j LEFT JOIN runs r ON r.run_id = j.run_id
                     WHERE r.run_id IS NULL ORDER BY j.run_id",
                )
                .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect::<Result<Vec<_>, _>>())
                .map_err(self.err())?;
            let miscounted: Vec<(String, i64, i64)> = tx
                .prepare(
                    "SELECT run_id, entries, rows FROM (SELECT r.run_id, r.entries,
                         (SELECT count(*) FROM journal j WHERE j.run_id = r.run_id) AS rows FROM runs r)
                     WHERE entries <> rows ORDER BY run_id",
                )
                .and_then(|mut st| {
                    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.err())?;
            Ok((integrity, orphans, miscounted))
        })?;
        let other: Vec<String> = if integrity.iter().map(String::as_str).eq(["ok"]) {
            Vec::new()
        } else {
            vec![format!("SQLite integrity check: {}", integrity.join("; "))]
        };
        match row::problems(&orphans, &miscounted, &other) {
            None => Ok(()),
            Some(problems) => Err(StoreError::Integrity { store: self.location.clone(), problems }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn connection_is_wal_synchronous_full_with_a_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteRunStore::open(dir.path().join("runs.db")).unwrap();
        let conn = store.conn();
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap();
        let timeout: i64 = conn.pragma_query_value(None, "busy_timeout", |r| r.get(0)).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!((mode.as_str(), synchronous, version), ("wal", SYNCHRONOUS_FULL, SCHEMA_VERSION));
        assert!(timeout >= 1000, "{timeout}");
    }
}
