//! The embedded SQLite run store: one file (WAL mode, `synchronous = FULL`: a committed
//! journal entry survives a power cut) that any number of processes open and write at
//! once.
//!
//! Every write, and every group of writes ([`RunStore::write`]: one commit, so one sync,
//! for all of them), is one `BEGIN IMMEDIATE` transaction: it takes the write lock before
//! reading anything, so it waits for other writers through the busy timeout instead of
//! failing (a read transaction upgraded to a write one fails at once with "database is
//! locked" when another connection wrote in between). Opening goes through
//! [`operonx_trace::sqlite::open_shared`], which makes twenty processes opening a fresh
//! file together safe. What is still reported busy (after the busy timeout) is retried
//! with a randomized backoff for a while.
//!
//! The run queue's statements are in `queue.rs`; SQLite has no notifications, so its
//! [`crate::RunStore::waiter`] only sleeps and workers poll.
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

use crate::events::EventRow;
use crate::group::{self, CreateRow, Fate, NewRow, Prepared, WriteRef};
use crate::journal::JournalRow;
use crate::key::{StoreKey, sqlite_key_file};
use crate::row::{self, Findings, RunRow, SummaryRow};
use crate::seal::Sealer;
use crate::{
    Cancelled, Enqueued, Lease, ListFilter, NewRun, RunStatus, RunStore, RunSummary, StoreError, StoredEvent,
    StoredRun, Write,
};

mod queue;

/// The schema version this build reads and writes (`PRAGMA user_version`): 1 the runs and
/// their journals, 2 the run queue ([`MIGRATE_2`]).
const SCHEMA_VERSION: i64 = 2;

/// The tables (see [`crate::row::RunRow`] for what the sealed columns of `runs` hold,
/// and [`crate::journal`] for a journal row). `meta` holds `key_id`, the id of the
/// store's key.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY NOT NULL,
    graph_name   TEXT NOT NULL,
    graph_path   TEXT,
    fingerprint  TEXT NOT NULL,
    spec         TEXT NOT NULL,
    scratch      TEXT,
    pending      TEXT,
    answers      TEXT,
    outcome      TEXT,
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
    run_id   TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    count    INTEGER NOT NULL,
    body     BLOB NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
";

/// Version 1 to 2, the run queue: a run's tenant, the hash of its idempotency key (unique
/// per tenant), its cancel flag, last event seq and usage stats (clear JSON, counts only:
/// see [`crate::RunStats`]), and the `events` table (one sealed row per write of events,
/// see [`crate::events`]).
const MIGRATE_2: &str = "
ALTER TABLE runs ADD COLUMN tenant TEXT;
ALTER TABLE runs ADD COLUMN stats TEXT;
ALTER TABLE runs ADD COLUMN idem TEXT;
ALTER TABLE runs ADD COLUMN cancel INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN events INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX runs_by_idem ON runs (COALESCE(tenant, ''), idem) WHERE idem IS NOT NULL;
CREATE INDEX runs_by_status ON runs (status, created_ms, run_id);
CREATE INDEX runs_by_tenant ON runs (tenant, created_ms, run_id);
CREATE TABLE events (
    run_id   TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    body     BLOB NOT NULL,
    PRIMARY KEY (run_id, seq)
);
";

/// The columns [`summary_row`] reads, in order.
const SUMMARY_COLS: &str = "run_id, graph_name, status, owner, heartbeat_ms, lease_ms, created_ms, updated_ms, \
    resumes, entries, reason, tenant, events, stats";

/// How many columns [`SUMMARY_COLS`] names.
const SUMMARY_LEN: usize = 14;

/// A new run's row, with what its later writes in the same group made of it (see
/// [`group::NewRow`]).
const INSERT_RUN: &str = "INSERT INTO runs (run_id, graph_name, graph_path, fingerprint, spec, scratch, pending,
    outcome, reason, status, owner, epoch, heartbeat_ms, lease_ms, created_ms, updated_ms, resumes, entries, tenant,
    events, stats)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, ?12, ?13, ?14, ?14, 0, ?15, ?16, ?17, ?18)
    ON CONFLICT (run_id) DO NOTHING";

const TOUCH: &str = "UPDATE runs SET heartbeat_ms = ?1, updated_ms = ?1, entries = entries + ?2,
    scratch = COALESCE(?3, scratch), pending = COALESCE(?4, pending)
    WHERE run_id = ?5 AND epoch = ?6 AND status = 'running'";

const INSERT_ROW: &str = "INSERT INTO journal (run_id, seq, last_seq, count, body) VALUES (?1, ?2, ?3, ?4, ?5)";

/// A write of events: the run's last event seq and heartbeat, if the lease holds.
const TOUCH_EVENTS: &str = "UPDATE runs SET heartbeat_ms = ?1, updated_ms = ?1, events = max(events, ?2)
    WHERE run_id = ?3 AND epoch = ?4 AND status = 'running'";

const INSERT_EVENTS: &str = "INSERT INTO events (run_id, seq, last_seq, body) VALUES (?1, ?2, ?3, ?4)";

/// A run's end (stats `NULL`: the stored ones kept).
const FINISH: &str = "UPDATE runs SET status = ?1, outcome = ?2, reason = ?3, scratch = NULL, pending = NULL,
    owner = NULL, heartbeat_ms = NULL, updated_ms = ?4, stats = COALESCE(?7, stats) WHERE run_id = ?5 AND epoch = ?6";

const CLAIM: &str = "UPDATE runs SET epoch = epoch + 1, status = 'running', owner = ?1, heartbeat_ms = ?2,
    updated_ms = ?2, lease_ms = ?3, resumes = resumes + 1, reason = NULL, answers = ?4, cancel = 0
    WHERE run_id = ?5 RETURNING epoch";

const JOURNAL: &str = "SELECT seq, last_seq, count, body FROM journal WHERE run_id = ?1 ORDER BY seq";

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
        let sealer = Sealer::new(&key, &location)?;
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

    fn write_tx<T>(&self, f: impl FnMut(&Transaction<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.with_tx(TransactionBehavior::Immediate, f)
    }

    fn read<T>(&self, f: impl FnMut(&Transaction<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.with_tx(TransactionBehavior::Deferred, f)
    }

    /// Why a lease's update matched no row: the run is gone, or taken.
    fn lost(&self, tx: &Transaction<'_>, run_id: &str) -> Result<Fate, StoreError> {
        let exists = tx
            .prepare_cached("SELECT 1 FROM runs WHERE run_id = ?1")
            .and_then(|mut st| st.query_row([run_id], |_| Ok(())).optional())
            .map_err(self.err())?;
        Ok(if exists.is_some() { Fate::LeaseLost } else { Fate::NotFound })
    }

    /// Apply prepared writes, in order, in this transaction: how each fared (a
    /// preparation error is skipped, its fate unused).
    fn apply(
        &self,
        tx: &Transaction<'_>,
        prepared: &[Result<Prepared<'_>, StoreError>],
    ) -> Result<Vec<Fate>, StoreError> {
        let now = row::now_ms();
        let mut folds = group::fold(prepared);
        let mut fates = vec![Fate::Done; prepared.len()];
        // Writes already applied with the create of their run.
        let mut applied = vec![false; prepared.len()];
        for (i, p) in prepared.iter().enumerate() {
            let Ok(p) = p else { continue };
            if applied.get(i).copied().unwrap_or(false) {
                continue;
            }
            let fate = match p {
                Prepared::Create(c) => {
                    let new = folds.get_mut(i).and_then(Option::take).unwrap_or_else(group::NewRow::plain);
                    if self.insert_run(tx, c, &new, now)? {
                        for &(j, fate) in &new.chain {
                            fates[j] = fate;
                            applied[j] = true;
                        }
                        for j in &new.rows {
                            self.insert_row(tx, &c.run.run_id, j)?;
                        }
                        for e in &new.event_rows {
                            self.insert_events(tx, &c.run.run_id, e)?;
                        }
                        Fate::Done
                    } else {
                        Fate::Exists
                    }
                }
                Prepared::Append(a) => {
                    let updated = tx
                        .prepare_cached(TOUCH)
                        .and_then(|mut st| st.execute(params![now, a.count, a.scratch, a.pending, a.run_id, a.epoch]))
                        .map_err(self.err())?;
                    if updated == 0 {
                        self.lost(tx, a.run_id)?
                    } else {
                        if let Some(j) = &a.row {
                            self.insert_row(tx, a.run_id, j)?;
                        }
                        Fate::Done
                    }
                }
                Prepared::Finish(f) => {
                    let updated = tx
                        .prepare_cached(FINISH)
                        .and_then(|mut st| {
                            st.execute(params![f.status, f.outcome, f.reason, now, f.run_id, f.epoch, f.stats])
                        })
                        .map_err(self.err())?;
                    if updated == 0 { self.lost(tx, f.run_id)? } else { Fate::Done }
                }
                Prepared::Events(e) => {
                    let updated = tx
                        .prepare_cached(TOUCH_EVENTS)
                        .and_then(|mut st| st.execute(params![now, e.last(), e.run_id, e.epoch]))
                        .map_err(self.err())?;
                    if updated == 0 {
                        self.lost(tx, e.run_id)?
                    } else {
                        if let Some(row) = &e.row {
                            self.insert_events(tx, e.run_id, row)?;
                        }
                        Fate::Done
                    }
                }
            };
            fates[i] = fate;
        }
        Ok(fates)
    }

    /// Insert a new run's row as `new` says; whether it was (not: the run exists).
    fn insert_run(
        &self,
        tx: &Transaction<'_>,
        c: &CreateRow<'_>,
        new: &NewRow<'_>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = c.run;
        let (owner, heartbeat) = if new.finished { (None, None) } else { (Some(c.owner), Some(now)) };
        let inserted = tx
            .prepare_cached(INSERT_RUN)
            .and_then(|mut st| {
                st.execute(params![
                    r.run_id,
                    r.graph_name,
                    r.graph_path,
                    r.fingerprint,
                    c.spec,
                    new.scratch,
                    new.pending,
                    new.outcome,
                    new.reason,
                    new.status,
                    owner,
                    heartbeat,
                    c.lease_ms,
                    now,
                    new.entries,
                    r.tenant,
                    new.events,
                    new.stats
                ])
            })
            .map_err(self.err())?;
        Ok(inserted > 0)
    }

    fn insert_events(&self, tx: &Transaction<'_>, run_id: &str, e: &EventRow) -> Result<(), StoreError> {
        tx.prepare_cached(INSERT_EVENTS)
            .and_then(|mut st| st.execute(params![run_id, e.seq, e.last_seq, e.body]))
            .map_err(self.err())?;
        Ok(())
    }

    fn insert_row(&self, tx: &Transaction<'_>, run_id: &str, j: &JournalRow) -> Result<(), StoreError> {
        tx.prepare_cached(INSERT_ROW)
            .and_then(|mut st| st.execute(params![run_id, j.seq, j.last_seq, j.count, j.body]))
            .map_err(self.err())?;
        Ok(())
    }

    /// [`RunStore::write`] of borrowed writes: prepared, then applied in one transaction.
    fn write_refs(&self, writes: &[WriteRef<'_>]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let prepared = group::prepare(&self.sealer, writes);
        let fates = if prepared.iter().any(Result::is_ok) {
            self.write_tx(|tx| self.apply(tx, &prepared))?
        } else {
            Vec::new()
        };
        Ok(group::results(&self.location, prepared, &fates))
    }

    fn not_found(&self, run_id: &str) -> StoreError {
        StoreError::NotFound { store: self.location.clone(), run_id: run_id.to_string() }
    }

    /// A run just claimed with `epoch`: its lease and what it holds.
    fn claimed(
        &self,
        tx: &Transaction<'_>,
        run_id: &str,
        owner: &str,
        epoch: i64,
        ttl: Duration,
        now: i64,
    ) -> Result<(Lease, StoredRun), StoreError> {
        let (run, journal) = self.read_run(tx, run_id)?.ok_or_else(|| self.not_found(run_id))?;
        let mut stored = row::stored_run(&self.sealer, run, journal, now)?;
        stored.summary.status = RunStatus::Running;
        let next_seq = stored.entries.last().map_or(1, |e| e.seq + 1);
        let lease = Lease { run_id: run_id.to_string(), owner: owner.to_string(), epoch, next_seq, ttl };
        Ok((lease, stored))
    }

    /// The run's row and journal rows, as of this transaction.
    fn read_run(&self, tx: &Transaction<'_>, run_id: &str) -> Result<Option<(RunRow, Vec<JournalRow>)>, StoreError> {
        let sql = format!(
            "SELECT {SUMMARY_COLS}, graph_path, fingerprint, spec, scratch, pending, answers, outcome
             FROM runs WHERE run_id = ?1"
        );
        let row = tx.prepare_cached(&sql).and_then(|mut st| st.query_row([run_id], run_row).optional());
        let Some(row) = row.map_err(self.err())? else { return Ok(None) };
        let mut st = tx.prepare_cached(JOURNAL).map_err(self.err())?;
        let journal = st
            .query_map([run_id], |r| {
                Ok(JournalRow { seq: r.get(0)?, last_seq: r.get(1)?, count: r.get(2)?, body: r.get(3)? })
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

/// Check the schema version, create the schema, and check the store's key (recording
/// it the first time), inside the opening transaction.
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
    if version < 1 {
        tx.execute_batch(SCHEMA).map_err(sqlite_err)?;
    }
    if version < 2 {
        tx.execute_batch(MIGRATE_2).map_err(sqlite_err)?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(sqlite_err)?;
    }
    check_key(tx, sealer)
}

/// Refuse a store written with another key; record this key in a store that has none
/// yet.
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
            tx.execute("INSERT INTO meta (name, value) VALUES ('key_id', ?1)", [sealer.key_id()])
                .map_err(sqlite_err)?;
            Ok(())
        }
    }
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
        tenant: r.get(11)?,
        events: r.get(12)?,
        stats: r.get(13)?,
    })
}

/// A whole run row: [`SUMMARY_COLS`], then the rest as [`SqliteRunStore::read_run`] selects.
fn run_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        summary: summary_row(r)?,
        graph_path: r.get(SUMMARY_LEN)?,
        fingerprint: r.get(SUMMARY_LEN + 1)?,
        spec: r.get(SUMMARY_LEN + 2)?,
        scratch: r.get(SUMMARY_LEN + 3)?,
        pending: r.get(SUMMARY_LEN + 4)?,
        answers: r.get(SUMMARY_LEN + 5)?,
        outcome: r.get(SUMMARY_LEN + 6)?,
    })
}

impl RunStore for SqliteRunStore {
    fn location(&self) -> &str {
        &self.location
    }

    fn write(&self, writes: &[Write]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let refs: Vec<WriteRef<'_>> = writes.iter().map(WriteRef::from).collect();
        self.write_refs(&refs)
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
        self.write_tx(|tx| {
            let now = row::now_ms();
            let sql = format!("SELECT {SUMMARY_COLS}, answers FROM runs WHERE run_id = ?1");
            let found = tx
                .prepare_cached(&sql)
                .and_then(|mut st| {
                    st.query_row([run_id], |r| Ok((summary_row(r)?, r.get::<_, Option<String>>(SUMMARY_LEN)?)))
                        .optional()
                })
                .map_err(self.err())?;
            let Some((current, stored_answers)) = found else { return Err(self.not_found(run_id)) };
            row::claimable(store, &current, now)?;
            let merged = row::merge_answers(&self.sealer, run_id, stored_answers.as_deref(), answers)?;
            let epoch: i64 = tx
                .prepare_cached(CLAIM)
                .and_then(|mut st| st.query_row(params![owner, now, lease_ms, merged, run_id], |r| r.get(0)))
                .map_err(self.err())?;
            self.claimed(tx, run_id, owner, epoch, ttl, now)
        })
    }

    fn load(&self, run_id: &str) -> Result<StoredRun, StoreError> {
        let (run, journal) = self.read(|tx| self.read_run(tx, run_id))?.ok_or_else(|| self.not_found(run_id))?;
        row::stored_run(&self.sealer, run, journal, row::now_ms())
    }

    fn list(&self, filter: &ListFilter) -> Result<Vec<RunSummary>, StoreError> {
        let sql = format!(
            "SELECT {SUMMARY_COLS} FROM runs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR graph_name = ?2)
             AND (?4 IS NULL OR tenant = ?4)
             AND (?5 IS NULL OR created_ms < ?5 OR (created_ms = ?5 AND run_id < ?6))
             ORDER BY created_ms DESC, run_id DESC LIMIT ?3"
        );
        let status = row::stored_status(filter.status);
        let limit = row::sql_limit(filter).unwrap_or(-1);
        let after_ms = filter.after.as_ref().map(|c| c.created_at.timestamp_millis());
        let after_id = filter.after.as_ref().map(|c| c.run_id.as_str());
        let rows = self.read(|tx| {
            let mut st = tx.prepare_cached(&sql).map_err(self.err())?;
            st.query_map(params![status, filter.graph, limit, filter.tenant, after_ms, after_id], summary_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(self.err())
        })?;
        row::filter_summaries(&self.sealer, rows, filter, row::now_ms())
    }

    fn prune(&self, older_than: DateTime<Utc>, status: Option<RunStatus>) -> Result<u64, StoreError> {
        if matches!(status, Some(RunStatus::Running | RunStatus::Queued)) {
            return Ok(0);
        }
        let cutoff = older_than.timestamp_millis();
        let stored = row::stored_status(status);
        let sql = format!("SELECT {SUMMARY_COLS} FROM runs WHERE updated_ms < ?1 AND (?2 IS NULL OR status = ?2)");
        self.write_tx(|tx| {
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
                tx.prepare_cached("DELETE FROM events WHERE run_id = ?1")
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
        let found = self.read(|tx| {
            let strings = |sql: &str| -> Result<Vec<String>, StoreError> {
                tx.prepare(sql)
                    .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect::<Result<Vec<_>, _>>())
                    .map_err(self.err())
            };
            let integrity = strings("PRAGMA integrity_check")?;
            let orphans = strings(
                "SELECT j.run_id FROM (SELECT run_id FROM journal UNION SELECT run_id FROM events) j
                 LEFT JOIN runs r ON r.run_id = j.run_id WHERE r.run_id IS NULL ORDER BY j.run_id",
            )?;
            let triples = |sql: &str| -> Result<Vec<(String, i64, i64)>, StoreError> {
                tx.prepare(sql)
                    .and_then(|mut st| {
                        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<Vec<_>, _>>()
                    })
                    .map_err(self.err())
            };
            let miscounted = triples(
                "SELECT run_id, entries, held FROM (SELECT r.run_id, r.entries,
                     (SELECT COALESCE(sum(j.count), 0) FROM journal j WHERE j.run_id = r.run_id) AS held FROM runs r)
                 WHERE entries <> held ORDER BY run_id",
            )?;
            let overlaps = triples(&row::OVERLAPS.replace("{journal}", "journal"))?;
            let bad_rows = tx
                .prepare(&row::BAD_ROWS.replace("{journal}", "journal"))
                .and_then(|mut st| {
                    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.err())?;
            let other = if integrity.iter().map(String::as_str).eq(["ok"]) {
                Vec::new()
            } else {
                vec![format!("SQLite integrity check: {}", integrity.join("; "))]
            };
            Ok(Findings { orphans, miscounted, bad_rows, overlaps, other })
        })?;
        match row::problems(&found) {
            None => Ok(()),
            Some(problems) => Err(StoreError::Integrity { store: self.location.clone(), problems }),
        }
    }

    fn enqueue(&self, run: &NewRun) -> Result<Enqueued, StoreError> {
        self.enqueue_run(run)
    }

    fn claim_next(&self, owner: &str, ttl: Duration) -> Result<Option<(Lease, StoredRun)>, StoreError> {
        Ok(self.claim_runs(owner, ttl, 1)?.pop())
    }

    fn claim_many(&self, owner: &str, ttl: Duration, max: usize) -> Result<Vec<(Lease, StoredRun)>, StoreError> {
        self.claim_runs(owner, ttl, max)
    }

    fn requeue(&self, run_id: &str, answers: &Map<String, Value>) -> Result<(), StoreError> {
        self.requeue_run(run_id, answers)
    }

    fn cancel(&self, run_id: &str, reason: &str) -> Result<Cancelled, StoreError> {
        self.cancel_run(run_id, reason)
    }

    fn cancel_requests(&self, leases: &[Lease]) -> Result<Vec<String>, StoreError> {
        self.cancel_requested(leases)
    }

    fn events(&self, run_id: &str, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_events(run_id, after, limit)
    }

    fn counts(&self, tenant: Option<&str>) -> Result<Vec<(RunStatus, u64)>, StoreError> {
        self.count_runs(tenant)
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
