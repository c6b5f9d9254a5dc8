//! The Postgres run store: tables `operonx_runs`, `operonx_journal` and `operonx_events`
//! in the schema the connection's `search_path` names first, created on first connect
//! (and migrated from the first layout; see `SCHEMA_VERSION`). The run queue's
//! statements, notifications and waiter are in `queue.rs`. Notification channels are
//! per database, not per schema: stores in two schemas of one database wake each other's
//! waiters (harmlessly: a waiter's caller looks for itself what there is to do).
//!
//! JSON columns are `text`, not `jsonb`, so values are kept byte for byte (`jsonb`
//! reorders object keys). A write checks the run's epoch in the same statement that
//! renews its heartbeat (the row lock orders it against a claim); a claim and a prune
//! lock the rows they read (`SELECT ... FOR UPDATE`).
//!
//! The columns holding user data are sealed with the store key (see [`crate::seal`]);
//! the key's id is recorded in `operonx_store_meta`, and a process with another key is
//! refused when it connects.

mod apply;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, NoTls, Row, Statement, Transaction};
use serde_json::{Map, Value};

use crate::group::{self, WriteRef};
use crate::journal::JournalRow;
use crate::key::{StoreKey, default_user_key_file};
use crate::row::{self, Findings, RunRow, SummaryRow};
use crate::seal::Sealer;
use crate::{
    Cancelled, Enqueued, Lease, ListFilter, NewRun, RunStatus, RunStore, RunSummary, StoreError, StoredEvent,
    StoredRun, Waiter, Write, redact_url,
};

/// Key of the advisory lock that serializes schema creation between first connects.
const SCHEMA_LOCK: i64 = 0x6f70_6572_6f6e_7852;

/// The layout this build reads and writes, recorded in `operonx_store_meta` as `schema`:
/// 1 the runs and their journals, 2 the run queue ([`MIGRATE_2`]).
const SCHEMA_VERSION: &str = "2";

/// Version 1 to 2, the run queue: a run's tenant, the hash of its idempotency key (unique
/// per tenant), its cancel flag, last event seq and usage stats (clear JSON, counts only:
/// see [`crate::RunStats`]), and `operonx_events` (one sealed row per write of events,
/// see [`crate::events`]).
const MIGRATE_2: &str = "
ALTER TABLE operonx_runs ADD COLUMN IF NOT EXISTS tenant text;
ALTER TABLE operonx_runs ADD COLUMN IF NOT EXISTS stats text;
ALTER TABLE operonx_runs ADD COLUMN IF NOT EXISTS idem text;
ALTER TABLE operonx_runs ADD COLUMN IF NOT EXISTS cancel boolean NOT NULL DEFAULT false;
ALTER TABLE operonx_runs ADD COLUMN IF NOT EXISTS events bigint NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX IF NOT EXISTS operonx_runs_by_idem ON operonx_runs ((COALESCE(tenant, '')), idem)
    WHERE idem IS NOT NULL;
CREATE INDEX IF NOT EXISTS operonx_runs_queued ON operonx_runs (created_ms, run_id) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS operonx_runs_running ON operonx_runs (created_ms, run_id) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS operonx_runs_by_tenant ON operonx_runs (tenant, created_ms, run_id);
CREATE TABLE IF NOT EXISTS operonx_events (
    run_id   text NOT NULL,
    seq      bigint NOT NULL,
    last_seq bigint NOT NULL,
    body     bytea NOT NULL,
    PRIMARY KEY (run_id, seq)
);
ALTER TABLE operonx_events ALTER COLUMN body SET STORAGE EXTERNAL;
";

/// The tables (see [`crate::row::RunRow`] for what the sealed columns of `operonx_runs`
/// hold, and [`crate::journal`] for a journal row). `operonx_store_meta` holds `key_id`,
/// the id of the store's key, and `schema`, the layout's version.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS operonx_runs (
    run_id       text PRIMARY KEY,
    graph_name   text NOT NULL,
    graph_path   text,
    fingerprint  text NOT NULL,
    spec         text NOT NULL,
    scratch      text,
    pending      text,
    answers      text,
    outcome      text,
    reason       text,
    status       text NOT NULL,
    owner        text,
    epoch        bigint NOT NULL,
    heartbeat_ms bigint,
    lease_ms     bigint NOT NULL,
    created_ms   bigint NOT NULL,
    updated_ms   bigint NOT NULL,
    resumes      bigint NOT NULL,
    entries      bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS operonx_runs_by_created ON operonx_runs (created_ms, run_id);
CREATE INDEX IF NOT EXISTS operonx_runs_by_updated ON operonx_runs (updated_ms);
CREATE TABLE IF NOT EXISTS operonx_journal (
    run_id   text NOT NULL,
    seq      bigint NOT NULL,
    last_seq bigint NOT NULL,
    count    bigint NOT NULL,
    body     bytea NOT NULL,
    PRIMARY KEY (run_id, seq)
);
DO $$ BEGIN
    -- Sealed bytes do not compress: stored out of line as they are, without trying.
    IF (SELECT attstorage FROM pg_attribute WHERE attrelid = 'operonx_journal'::regclass AND attname = 'body') <> 'e'
    THEN
        ALTER TABLE operonx_journal ALTER COLUMN body SET STORAGE EXTERNAL;
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS operonx_store_meta (
    name  text PRIMARY KEY,
    value text NOT NULL
);
";

/// The columns [`summary_row`] reads, in order.
macro_rules! summary_cols {
    () => {
        "run_id, graph_name, status, owner, heartbeat_ms, lease_ms, created_ms, updated_ms, resumes, entries, reason, \
         tenant, events, stats"
    };
}

/// How many columns `summary_cols!` names.
const SUMMARY_LEN: usize = 14;

// After `summary_cols!`, which it uses.
mod queue;

/// The runs a group creates, in one statement, each with what its later writes in the
/// group made of it (see [`crate::group::NewRow`]); returns those inserted (the others
/// exist).
const INSERT_RUNS: &str = "INSERT INTO operonx_runs (run_id, graph_name, graph_path, fingerprint, spec, scratch,
    pending, outcome, reason, status, owner, epoch, heartbeat_ms, lease_ms, created_ms, updated_ms, resumes, entries,
    tenant, events, stats)
    SELECT t.run_id, t.graph_name, t.graph_path, t.fingerprint, t.spec, t.scratch, t.pending, t.outcome, t.reason,
        t.status, t.owner, 1, t.heartbeat_ms, t.lease_ms, $1, $1, 0, t.entries, t.tenant, t.events, t.stats
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
        $10::text[], $11::text[], $12::text[], $13::bigint[], $14::bigint[], $15::bigint[], $16::text[],
        $17::bigint[], $18::text[])
        AS t(run_id, graph_name, graph_path, fingerprint, spec, scratch, pending, outcome, reason, status, owner,
            heartbeat_ms, lease_ms, entries, tenant, events, stats)
    ON CONFLICT (run_id) DO NOTHING RETURNING run_id";

/// The journal batches of a group (their runs' heartbeats, counts, scratch and pending),
/// in one statement; returns the runs written (the others' leases are lost).
const TOUCH_RUNS: &str = "UPDATE operonx_runs r SET heartbeat_ms = $1, updated_ms = $1, entries = r.entries + t.count,
    scratch = COALESCE(t.scratch, r.scratch), pending = COALESCE(t.pending, r.pending)
    FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[])
        AS t(run_id, epoch, count, scratch, pending)
    WHERE r.run_id = t.run_id AND r.epoch = t.epoch AND r.status = 'running' RETURNING r.run_id";

/// The journal rows of a group, in one statement.
const INSERT_ROWS: &str = "INSERT INTO operonx_journal (run_id, seq, last_seq, count, body)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bytea[])";

/// The events writes of a group (their runs' heartbeats and last event seqs), in one
/// statement; returns the runs written (the others' leases are lost).
const TOUCH_EVENTS: &str = "UPDATE operonx_runs r SET heartbeat_ms = $1, updated_ms = $1,
    events = GREATEST(r.events, t.last)
    FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS t(run_id, epoch, last)
    WHERE r.run_id = t.run_id AND r.epoch = t.epoch AND r.status = 'running' RETURNING r.run_id";

/// The events rows of a group, in one statement.
const INSERT_EVENTS: &str = "INSERT INTO operonx_events (run_id, seq, last_seq, body)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[])";

/// Tell the listeners which runs have new events (`LISTEN operonx_events`).
const NOTIFY_EVENTS: &str = "SELECT pg_notify('operonx_events', id) FROM unnest($1::text[]) AS t(id)";

/// The ends of a group's runs, in one statement (stats `NULL`: the stored ones kept);
/// returns the runs written.
const FINISH_RUNS: &str = "UPDATE operonx_runs r SET status = t.status, outcome = t.outcome, reason = t.reason,
    scratch = NULL, pending = NULL, owner = NULL, heartbeat_ms = NULL, updated_ms = $1,
    stats = COALESCE(t.stats, r.stats)
    FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
        AS t(run_id, epoch, status, outcome, reason, stats)
    WHERE r.run_id = t.run_id AND r.epoch = t.epoch RETURNING r.run_id";

/// Which of some runs exist.
const EXISTING: &str = "SELECT run_id FROM operonx_runs WHERE run_id = ANY($1)";

const LOCK_FOR_CLAIM: &str =
    concat!("SELECT ", summary_cols!(), ", answers FROM operonx_runs WHERE run_id = $1 FOR UPDATE");

const CLAIM: &str = "UPDATE operonx_runs SET epoch = epoch + 1, status = 'running', owner = $1, heartbeat_ms = $2,
    updated_ms = $2, lease_ms = $3, resumes = resumes + 1, reason = NULL, answers = $4, cancel = false
    WHERE run_id = $5 RETURNING epoch";

const RUN: &str = concat!(
    "SELECT ",
    summary_cols!(),
    ", graph_path, fingerprint, spec, scratch, pending, answers, outcome FROM operonx_runs WHERE run_id = $1"
);

const JOURNAL: &str = "SELECT seq, last_seq, count, body FROM operonx_journal WHERE run_id = $1 ORDER BY seq";

const LIST: &str = concat!(
    "SELECT ",
    summary_cols!(),
    " FROM operonx_runs WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR graph_name = $2)
     AND ($4::text IS NULL OR tenant = $4) AND ($5::bigint IS NULL OR (created_ms, run_id) < ($5, $6::text))
     ORDER BY created_ms DESC, run_id DESC LIMIT $3"
);

const PRUNE_CANDIDATES: &str = concat!(
    "SELECT ",
    summary_cols!(),
    " FROM operonx_runs WHERE updated_ms < $1 AND ($2::text IS NULL OR status = $2) ORDER BY run_id FOR UPDATE"
);

/// Parameters of a statement.
type Params<'p> = [&'p (dyn ToSql + Sync)];

/// The connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

/// Most connections a store opens (the first when it connects, the others when threads
/// use the store at once: the journal writer, request handlers, workers claiming).
const POOL: usize = 4;

/// A run store in a Postgres database. A few connections ([`POOL`]), shared by the
/// threads of this process; other processes (on any host) connect alongside.
///
/// The `postgres` client runs a small async runtime of its own: call this store from
/// plain threads, never from inside an async task (a `tokio` runtime panics when another
/// is started within it; use `spawn_blocking` there). Connections are made without TLS.
pub struct PostgresStore {
    /// The connections; `None` until first needed (the first is made by `connect`).
    conns: Vec<Mutex<Option<Conn>>>,
    /// Where the next look for a free connection starts.
    next: std::sync::atomic::AtomicUsize,
    /// The URL as given (with its password: it is needed to reconnect). Never shown.
    url: String,
    /// The URL without its password.
    location: String,
    sealer: Sealer,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("location", &self.location).finish()
    }
}

impl PostgresStore {
    /// Connect to the database at `url` (`postgres://user:password@host:port/db`, with
    /// any parameter the client accepts, such as `connect_timeout` or `options`) and
    /// create the tables when missing (safely while other processes do the same), with
    /// the key `OPERONX_STORE_KEY` holds, else the key in
    /// `$XDG_CONFIG_HOME/operonx/store.key` or `$HOME/.config/operonx/store.key`
    /// (created 0600 with a fresh key when missing; see [`StoreKey::resolve`]). Fails
    /// ([`StoreError::WrongKey`]) when the database was written with another key.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let location = redact_url(url);
        // Connected first: nothing is read or written for a server that does not answer.
        let client = Self::open_client(url, &location)?;
        let key = StoreKey::from_environment(default_user_key_file().as_deref())
            .map_err(|source| StoreError::Key { store: location.clone(), source })?;
        Self::with_client(client, url, location, &key)
    }

    /// Connect as [`PostgresStore::connect`] does, with `key` (no key file is read or
    /// written).
    pub fn connect_with_key(url: &str, key: StoreKey) -> Result<Self, StoreError> {
        let location = redact_url(url);
        let client = Self::open_client(url, &location)?;
        Self::with_client(client, url, location, &key)
    }

    fn with_client(mut client: Client, url: &str, location: String, key: &StoreKey) -> Result<Self, StoreError> {
        let sealer = Sealer::new(key, &location)?;
        prepare_schema(&mut client, &sealer)?;
        let mut conns: Vec<Mutex<Option<Conn>>> = (0..POOL).map(|_| Mutex::new(None)).collect();
        conns[0] = Mutex::new(Some(Conn { client, statements: HashMap::new() }));
        Ok(Self { conns, next: Default::default(), url: url.to_string(), location, sealer })
    }

    fn open_client(url: &str, location: &str) -> Result<Client, StoreError> {
        Client::connect(url, NoTls).map_err(|source| StoreError::Postgres { store: location.to_string(), source })
    }

    fn err(&self) -> impl Fn(postgres::Error) -> StoreError + '_ {
        |source| StoreError::Postgres { store: self.location.clone(), source }
    }

    /// A connection no other thread uses now (the next one in turn when all are busy),
    /// made when it was never made or was closed (the server restarted).
    fn conn(&self) -> Result<MutexGuard<'_, Option<Conn>>, StoreError> {
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.conns.len();
        let free = (0..n).find_map(|i| self.conns.get((start + i) % n).and_then(|m| m.try_lock().ok()));
        let mut slot = match free {
            Some(slot) => slot,
            None => self.conns.get(start % n).map_or_else(
                || Err(StoreError::unsupported(&self.location, "a store without connections")),
                |m| Ok(m.lock().unwrap_or_else(PoisonError::into_inner)),
            )?,
        };
        let closed = slot.as_ref().is_none_or(|c| c.client.is_closed());
        if closed {
            if slot.is_some() {
                tracing::warn!("run store {}: connection closed; connecting again", self.location);
            }
            let mut client = Self::open_client(&self.url, &self.location)?;
            prepare_schema(&mut client, &self.sealer)?;
            *slot = Some(Conn { client, statements: HashMap::new() });
        }
        Ok(slot)
    }

    /// Run `f` in one transaction (read-only and on one snapshot when `read_only`) and
    /// commit it.
    fn with_tx<T>(
        &self,
        read_only: bool,
        f: impl FnOnce(&mut Tx<'_, '_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.conn()?;
        let Some(Conn { client, statements }) = &mut *guard else {
            return Err(StoreError::unsupported(&self.location, "a store without connections"));
        };
        let tx = if read_only {
            client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()
        } else {
            client.transaction()
        };
        let mut tx = Tx { tx: tx.map_err(self.err())?, statements, store: self };
        let out = f(&mut tx)?;
        tx.tx.commit().map_err(self.err())?;
        Ok(out)
    }
}

/// A transaction with the store's prepared statements.
struct Tx<'a, 'c> {
    tx: Transaction<'c>,
    statements: &'a mut HashMap<&'static str, Statement>,
    store: &'a PostgresStore,
}

impl Tx<'_, '_> {
    fn err(&self) -> impl Fn(postgres::Error) -> StoreError + '_ {
        self.store.err()
    }

    /// `sql` prepared (once per connection).
    fn statement(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let st = self.tx.prepare(sql).map_err(self.store.err())?;
        self.statements.insert(sql, st.clone());
        Ok(st)
    }

    fn execute(&mut self, sql: &'static str, params: &Params<'_>) -> Result<u64, StoreError> {
        let st = self.statement(sql)?;
        self.tx.execute(&st, params).map_err(self.store.err())
    }

    fn query(&mut self, sql: &'static str, params: &Params<'_>) -> Result<Vec<Row>, StoreError> {
        let st = self.statement(sql)?;
        self.tx.query(&st, params).map_err(self.store.err())
    }

    fn query_opt(&mut self, sql: &'static str, params: &Params<'_>) -> Result<Option<Row>, StoreError> {
        let st = self.statement(sql)?;
        self.tx.query_opt(&st, params).map_err(self.store.err())
    }

    /// A run just claimed with `epoch`: its lease and what it holds.
    fn claimed(
        &mut self,
        run_id: &str,
        owner: &str,
        epoch: i64,
        ttl: Duration,
        now: i64,
    ) -> Result<(Lease, StoredRun), StoreError> {
        let store = self.store;
        let (run, journal) = self.read_run(run_id)?.ok_or_else(|| store.not_found(run_id))?;
        let mut stored = row::stored_run(&store.sealer, run, journal, now)?;
        stored.summary.status = RunStatus::Running;
        let next_seq = stored.entries.last().map_or(1, |e| e.seq + 1);
        let lease = Lease { run_id: run_id.to_string(), owner: owner.to_string(), epoch, next_seq, ttl };
        Ok((lease, stored))
    }

    /// The run's row and journal rows, as of this transaction.
    fn read_run(&mut self, run_id: &str) -> Result<Option<(RunRow, Vec<JournalRow>)>, StoreError> {
        let Some(r) = self.query_opt(RUN, &[&run_id])? else { return Ok(None) };
        let run = run_row(&r).map_err(self.err())?;
        let journal = self
            .query(JOURNAL, &[&run_id])?
            .iter()
            .map(|r| {
                Ok(JournalRow {
                    seq: r.try_get(0)?,
                    last_seq: r.try_get(1)?,
                    count: r.try_get(2)?,
                    body: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, postgres::Error>>()
            .map_err(self.err())?;
        Ok(Some((run, journal)))
    }
}

impl PostgresStore {
    fn not_found(&self, run_id: &str) -> StoreError {
        StoreError::NotFound { store: self.location.clone(), run_id: run_id.to_string() }
    }

    /// [`RunStore::write`] of borrowed writes: prepared, then applied in one transaction.
    fn write_refs(&self, writes: &[WriteRef<'_>]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let prepared = group::prepare(&self.sealer, writes);
        let fates = if prepared.iter().any(Result::is_ok) {
            self.with_tx(false, |tx| tx.apply(&prepared))?
        } else {
            Vec::new()
        };
        Ok(group::results(&self.location, prepared, &fates))
    }
}

/// Create the tables when missing and check the store's key and layout (recording them
/// the first time), one connection at a time.
fn prepare_schema(client: &mut Client, sealer: &Sealer) -> Result<(), StoreError> {
    let location = sealer.store();
    let err = |source| StoreError::Postgres { store: location.to_string(), source };
    let mut tx = client.transaction().map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).map_err(err)?;
    tx.batch_execute(SCHEMA).map_err(err)?;
    let meta = |tx: &mut Transaction<'_>, name: &str| -> Result<Option<String>, postgres::Error> {
        tx.query_opt("SELECT value FROM operonx_store_meta WHERE name = $1", &[&name])?
            .map(|r| r.try_get(0))
            .transpose()
    };
    match meta(&mut tx, "schema").map_err(err)? {
        Some(v) if v == SCHEMA_VERSION => {}
        Some(v) if v == "1" => {
            tx.batch_execute(MIGRATE_2).map_err(err)?;
            tx.execute("UPDATE operonx_store_meta SET value = $1 WHERE name = 'schema'", &[&SCHEMA_VERSION])
                .map_err(err)?;
        }
        Some(v) => {
            return Err(StoreError::Open {
                store: location.to_string(),
                message: format!(
                    "the run store has schema version {v}, not this build's ({SCHEMA_VERSION}): it was written by \
                     another operonx; use that one, or another store"
                ),
            });
        }
        None => {
            tx.batch_execute(MIGRATE_2).map_err(err)?;
            tx.execute("INSERT INTO operonx_store_meta (name, value) VALUES ('schema', $1)", &[&SCHEMA_VERSION])
                .map_err(err)?;
        }
    }
    match meta(&mut tx, "key_id").map_err(err)? {
        Some(id) if id == sealer.key_id() => {}
        Some(id) => {
            return Err(StoreError::WrongKey {
                store: location.to_string(),
                stored: id,
                current: sealer.key_id().to_string(),
            });
        }
        None => {
            tx.execute("INSERT INTO operonx_store_meta (name, value) VALUES ('key_id', $1)", &[&sealer.key_id()])
                .map_err(err)?;
        }
    }
    tx.commit().map_err(err)
}

/// The columns of `summary_cols!` from the start of a row.
fn summary_row(r: &Row) -> Result<SummaryRow, postgres::Error> {
    Ok(SummaryRow {
        run_id: r.try_get(0)?,
        graph_name: r.try_get(1)?,
        status: r.try_get(2)?,
        owner: r.try_get(3)?,
        heartbeat_ms: r.try_get(4)?,
        lease_ms: r.try_get(5)?,
        created_ms: r.try_get(6)?,
        updated_ms: r.try_get(7)?,
        resumes: r.try_get(8)?,
        entries: r.try_get(9)?,
        reason: r.try_get(10)?,
        tenant: r.try_get(11)?,
        events: r.try_get(12)?,
        stats: r.try_get(13)?,
    })
}

/// A whole run row, as [`RUN`] selects it.
fn run_row(r: &Row) -> Result<RunRow, postgres::Error> {
    Ok(RunRow {
        summary: summary_row(r)?,
        graph_path: r.try_get(SUMMARY_LEN)?,
        fingerprint: r.try_get(SUMMARY_LEN + 1)?,
        spec: r.try_get(SUMMARY_LEN + 2)?,
        scratch: r.try_get(SUMMARY_LEN + 3)?,
        pending: r.try_get(SUMMARY_LEN + 4)?,
        answers: r.try_get(SUMMARY_LEN + 5)?,
        outcome: r.try_get(SUMMARY_LEN + 6)?,
    })
}

impl RunStore for PostgresStore {
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
        self.with_tx(false, |tx| {
            let Some(r) = tx.query_opt(LOCK_FOR_CLAIM, &[&run_id])? else { return Err(self.not_found(run_id)) };
            let current = summary_row(&r).map_err(self.err())?;
            let stored_answers: Option<String> = r.try_get(SUMMARY_LEN).map_err(self.err())?;
            let now = row::now_ms();
            row::claimable(store, &current, now)?;
            let merged = row::merge_answers(&self.sealer, run_id, stored_answers.as_deref(), answers)?;
            let epoch: i64 = tx
                .query_opt(CLAIM, &[&owner, &now, &lease_ms, &merged, &run_id])?
                .ok_or_else(|| self.not_found(run_id))?
                .try_get(0)
                .map_err(self.err())?;
            tx.claimed(run_id, owner, epoch, ttl, now)
        })
    }

    fn load(&self, run_id: &str) -> Result<StoredRun, StoreError> {
        let (run, journal) = self.with_tx(true, |tx| tx.read_run(run_id))?.ok_or_else(|| self.not_found(run_id))?;
        row::stored_run(&self.sealer, run, journal, row::now_ms())
    }

    fn list(&self, filter: &ListFilter) -> Result<Vec<RunSummary>, StoreError> {
        let status = row::stored_status(filter.status);
        let limit = row::sql_limit(filter);
        let after_ms = filter.after.as_ref().map(|c| c.created_at.timestamp_millis());
        let after_id = filter.after.as_ref().map(|c| c.run_id.as_str());
        let rows = self.with_tx(true, |tx| {
            tx.query(LIST, &[&status, &filter.graph, &limit, &filter.tenant, &after_ms, &after_id])
        })?;
        let rows = rows.iter().map(summary_row).collect::<Result<Vec<_>, _>>().map_err(self.err())?;
        row::filter_summaries(&self.sealer, rows, filter, row::now_ms())
    }

    fn prune(&self, older_than: DateTime<Utc>, status: Option<RunStatus>) -> Result<u64, StoreError> {
        if matches!(status, Some(RunStatus::Running | RunStatus::Queued)) {
            return Ok(0);
        }
        let cutoff = older_than.timestamp_millis();
        let stored = row::stored_status(status);
        self.with_tx(false, |tx| {
            let rows = tx.query(PRUNE_CANDIDATES, &[&cutoff, &stored])?;
            let now = row::now_ms();
            let mut doomed = Vec::new();
            for r in &rows {
                let candidate = summary_row(r).map_err(self.err())?;
                if row::prunable(&self.location, &candidate, status, now)? {
                    doomed.push(candidate.run_id);
                }
            }
            if doomed.is_empty() {
                return Ok(0);
            }
            tx.execute("DELETE FROM operonx_journal WHERE run_id = ANY($1)", &[&doomed])?;
            tx.execute("DELETE FROM operonx_events WHERE run_id = ANY($1)", &[&doomed])?;
            tx.execute("DELETE FROM operonx_runs WHERE run_id = ANY($1)", &[&doomed])
        })
    }

    fn check(&self) -> Result<(), StoreError> {
        let found = self.with_tx(true, |tx| {
            let err = self.err();
            let orphans = tx
                .query(
                    "SELECT j.run_id FROM (SELECT run_id FROM operonx_journal UNION SELECT run_id FROM operonx_events) j
                     LEFT JOIN operonx_runs r ON r.run_id = j.run_id WHERE r.run_id IS NULL ORDER BY j.run_id",
                    &[],
                )?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<Vec<String>, _>>()
                .map_err(&err)?;
            let triples = |rows: Vec<Row>| {
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                    .collect::<Result<Vec<(String, i64, i64)>, postgres::Error>>()
            };
            let miscounted = triples(tx.query(
                "SELECT r.run_id, r.entries, COALESCE(j.n, 0)::bigint FROM operonx_runs r
                 LEFT JOIN (SELECT run_id, sum(count) AS n FROM operonx_journal GROUP BY run_id) j
                 ON j.run_id = r.run_id WHERE r.entries <> COALESCE(j.n, 0) ORDER BY r.run_id",
                &[],
            )?)
            .map_err(&err)?;
            let overlaps = tx.tx.query(&row::OVERLAPS.replace("{journal}", "operonx_journal"), &[]).map_err(&err)?;
            let overlaps = triples(overlaps).map_err(&err)?;
            let bad_rows = tx
                .tx
                .query(&row::BAD_ROWS.replace("{journal}", "operonx_journal"), &[])
                .map_err(&err)?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
                .collect::<Result<Vec<_>, postgres::Error>>()
                .map_err(&err)?;
            Ok(Findings { orphans, miscounted, bad_rows, overlaps, other: Vec::new() })
        })?;
        match row::problems(&found) {
            None => Ok(()),
            Some(problems) => Err(StoreError::Integrity { store: self.location.clone(), problems }),
        }
    }

    fn enqueue(&self, run: &NewRun) -> Result<Enqueued, StoreError> {
        self.enqueue_run(run)
    }

    fn enqueue_many(&self, runs: &[NewRun]) -> Result<Vec<Result<Enqueued, StoreError>>, StoreError> {
        self.enqueue_runs(runs)
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

    fn waiter(&self) -> Result<Box<dyn Waiter>, StoreError> {
        Ok(Box::new(queue::PgWaiter::listen(&self.url, &self.location)?))
    }
}
