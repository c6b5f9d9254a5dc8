//! The Postgres run store: tables `operonx_runs` and `operonx_journal` in the schema the
//! connection's `search_path` names first, created on first connect.
//!
//! JSON columns are `text`, not `jsonb`, so values are kept byte for byte (`jsonb`
//! reorders object keys). A write checks the run's epoch in the same statement that
//! renews its heartbeat (the row lock orders it against a claim); a claim and a prune
//! lock the rows they read (`SELECT ... FOR UPDATE`).
//!
//! The columns holding user data are sealed with the store key (see [`crate::seal`]);
//! the key's id is recorded in `operonx_store_meta`, and a process with another key is
//! refused when it connects.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::{Client, IsolationLevel, NoTls, Row, Statement, Transaction};
use serde_json::{Map, Value};

use crate::key::{StoreKey, default_user_key_file};
use crate::row::{self, EntryRow, RunRow, SEALED_COLUMNS, SummaryRow};
use crate::seal::Sealer;
use crate::{
    Batch, Lease, ListFilter, NewRun, RunEnd, RunStatus, RunStore, RunSummary, StoreError, StoredRun, redact_url,
};

/// Key of the advisory lock that serializes schema creation between first connects.
const SCHEMA_LOCK: i64 = 0x6f70_6572_6f6e_7852;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS operonx_runs (
    run_id       text PRIMARY KEY,
    graph_name   text NOT NULL,
    graph_path   text,
    graph        text NOT NULL,
    fingerprint  text NOT NULL,
    inputs       text NOT NULL,
    scratch      text NOT NULL,
    options      text NOT NULL,
    answers      text NOT NULL,
    pending      text NOT NULL,
    result       text,
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
    run_id text NOT NULL,
    seq    bigint NOT NULL,
    kind   text NOT NULL,
    key    text NOT NULL,
    idx    bigint,
    body   text NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS operonx_store_meta (
    name  text PRIMARY KEY,
    value text NOT NULL
);
";

/// The columns [`summary_row`] reads, in order.
macro_rules! summary_cols {
    () => {
        "run_id, graph_name, status, owner, heartbeat_ms, lease_ms, created_ms, updated_ms, resumes, entries, reason"
    };
}

const INSERT_RUN: &str = "INSERT INTO operonx_runs (run_id, graph_name, graph_path, graph, fingerprint, inputs,
    scratch, options, answers, pending, result, reason, status, owner, epoch, heartbeat_ms, lease_ms, created_ms,
    updated_ms, resumes, entries)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $12, $13, NULL, NULL, 'running', $9, 1, $10, $11, $10, $10, 0, 0)
    ON CONFLICT (run_id) DO NOTHING";

const TOUCH: &str = "UPDATE operonx_runs SET heartbeat_ms = $1, updated_ms = $1, entries = entries + $2,
    scratch = COALESCE($3, scratch), pending = COALESCE($4, pending)
    WHERE run_id = $5 AND epoch = $6 AND status = 'running'";

/// All entries of a batch in one statement (one round trip).
const INSERT_ENTRIES: &str = "INSERT INTO operonx_journal (run_id, seq, kind, key, idx, body)
    SELECT $1, t.seq, t.kind, t.key, t.idx, t.body
    FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[]) AS t(seq, kind, key, idx, body)";

const FINISH: &str = "UPDATE operonx_runs SET status = $1, result = $2, pending = $3, scratch = $4, reason = $5,
    owner = NULL, heartbeat_ms = NULL, updated_ms = $6 WHERE run_id = $7 AND epoch = $8";

const LOCK_FOR_CLAIM: &str =
    concat!("SELECT ", summary_cols!(), ", answers FROM operonx_runs WHERE run_id = $1 FOR UPDATE");

const CLAIM: &str = "UPDATE operonx_runs SET epoch = epoch + 1, status = 'running', owner = $1, heartbeat_ms = $2,
    updated_ms = $2, lease_ms = $3, resumes = resumes + 1, reason = NULL, answers = $4
    WHERE run_id = $5 RETURNING epoch";

const RUN: &str = concat!(
    "SELECT ",
    summary_cols!(),
    ", graph_path, graph, fingerprint, inputs, scratch, options, answers, pending, result
     FROM operonx_runs WHERE run_id = $1"
);

const JOURNAL: &str = "SELECT seq, kind, key, idx, body FROM operonx_journal WHERE run_id = $1 ORDER BY seq";

const LIST: &str = concat!(
    "SELECT ",
    summary_cols!(),
    " FROM operonx_runs WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR graph_name = $2)
     ORDER BY created_ms DESC, run_id DESC LIMIT $3"
);

const PRUNE_CANDIDATES: &str = concat!(
    "SELECT ",
    summary_cols!(),
    " FROM operonx_runs WHERE updated_ms < $1 AND ($2::text IS NULL OR status = $2) ORDER BY run_id FOR UPDATE"
);

/// The connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

/// A run store in a Postgres database. One connection, shared by the threads of this
/// process; other processes (on any host) connect alongside.
///
/// The `postgres` client runs a small async runtime of its own: call this store from
/// plain threads, never from inside an async task (a `tokio` runtime panics when another
/// is started within it; use `spawn_blocking` there). Connections are made without TLS.
pub struct PostgresStore {
    conn: Mutex<Conn>,
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
        let sealer = Sealer::new(key, &location);
        prepare_schema(&mut client, &sealer)?;
        let conn = Mutex::new(Conn { client, statements: HashMap::new() });
        Ok(Self { conn, url: url.to_string(), location, sealer })
    }

    fn open_client(url: &str, location: &str) -> Result<Client, StoreError> {
        Client::connect(url, NoTls).map_err(|source| StoreError::Postgres { store: location.to_string(), source })
    }

    fn err(&self) -> impl Fn(postgres::Error) -> StoreError + '_ {
        |source| StoreError::Postgres { store: self.location.clone(), source }
    }

    /// The connection, made again when the last one was closed (the server restarted).
    fn conn(&self) -> Result<MutexGuard<'_, Conn>, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if conn.client.is_closed() {
            tracing::warn!("run store {}: connection closed; connecting again", self.location);
            let mut client = Self::open_client(&self.url, &self.location)?;
            prepare_schema(&mut client, &self.sealer)?;
            conn.client = client;
            conn.statements.clear();
        }
        Ok(conn)
    }

    /// Run `f` in one transaction (read-only and on one snapshot when `read_only`) and
    /// commit it.
    fn with_tx<T>(
        &self,
        read_only: bool,
        f: impl FnOnce(&mut Tx<'_, '_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.conn()?;
        let Conn { client, statements } = &mut *guard;
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

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let st = self.statement(sql)?;
        self.tx.execute(&st, params).map_err(self.store.err())
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let st = self.statement(sql)?;
        self.tx.query(&st, params).map_err(self.store.err())
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let st = self.statement(sql)?;
        self.tx.query_opt(&st, params).map_err(self.store.err())
    }

    /// The error for a lease whose update matched no row: the run is gone, or taken.
    fn lost(&mut self, run_id: &str) -> StoreError {
        match self.query_opt("SELECT 1 FROM operonx_runs WHERE run_id = $1", &[&run_id]) {
            Ok(Some(_)) => StoreError::LeaseLost { store: self.store.location.clone(), run_id: run_id.to_string() },
            Ok(None) => self.store.not_found(run_id),
            Err(e) => e,
        }
    }

    /// The run's row and journal, as of this transaction.
    fn read_run(&mut self, run_id: &str) -> Result<Option<(RunRow, Vec<EntryRow>)>, StoreError> {
        let Some(r) = self.query_opt(RUN, &[&run_id])? else { return Ok(None) };
        let run = run_row(&r).map_err(self.err())?;
        let journal = self
            .query(JOURNAL, &[&run_id])?
            .iter()
            .map(|r| {
                Ok(EntryRow {
                    seq: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    key: r.try_get(2)?,
                    idx: r.try_get(3)?,
                    body: r.try_get(4)?,
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
}

/// Create the tables when missing and check the store's key (recording it, and sealing
/// what an older build stored in clear, the first time), one connection at a time.
fn prepare_schema(client: &mut Client, sealer: &Sealer) -> Result<(), StoreError> {
    let location = sealer.store();
    let err = |source| StoreError::Postgres { store: location.to_string(), source };
    let mut tx = client.transaction().map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).map_err(err)?;
    tx.batch_execute(SCHEMA).map_err(err)?;
    let stored: Option<String> = tx
        .query_opt("SELECT value FROM operonx_store_meta WHERE name = 'key_id'", &[])
        .map_err(err)?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(err)?;
    match stored {
        Some(id) if id == sealer.key_id() => {}
        Some(id) => {
            return Err(StoreError::WrongKey {
                store: location.to_string(),
                stored: id,
                current: sealer.key_id().to_string(),
            });
        }
        None => {
            seal_legacy(&mut tx, sealer)?;
            tx.execute("INSERT INTO operonx_store_meta (name, value) VALUES ('key_id', $1)", &[&sealer.key_id()])
                .map_err(err)?;
        }
    }
    tx.commit().map_err(err)
}

/// Seal every value stored in clear (by a build before sealing).
fn seal_legacy(tx: &mut Transaction<'_>, sealer: &Sealer) -> Result<(), StoreError> {
    let err = |source| StoreError::Postgres { store: sealer.store().to_string(), source };
    let columns = SEALED_COLUMNS.join(", ");
    let set: Vec<String> = SEALED_COLUMNS.iter().enumerate().map(|(i, c)| format!("{c} = ${}", i + 2)).collect();
    let update = format!("UPDATE operonx_runs SET {} WHERE run_id = $1", set.join(", "));
    let rows = tx.query(format!("SELECT run_id, {columns} FROM operonx_runs FOR UPDATE").as_str(), &[]).map_err(err)?;
    let mut sealed_runs = 0;
    for r in &rows {
        let run_id: String = r.try_get(0).map_err(err)?;
        let values =
            (1..=SEALED_COLUMNS.len()).map(|i| r.try_get::<_, Option<String>>(i)).collect::<Result<Vec<_>, _>>();
        if let Some(sealed) = row::seal_legacy_run(sealer, &run_id, &values.map_err(err)?)? {
            let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&run_id];
            params.extend(sealed.iter().map(|v| v as &(dyn postgres::types::ToSql + Sync)));
            tx.execute(update.as_str(), &params).map_err(err)?;
            sealed_runs += 1;
        }
    }
    let journal = tx
        .query(
            "SELECT run_id, seq, kind, key, idx, body FROM operonx_journal WHERE body NOT LIKE 'x1:%' FOR UPDATE",
            &[],
        )
        .map_err(err)?;
    for r in &journal {
        let run_id: String = r.try_get(0).map_err(err)?;
        let entry = EntryRow {
            seq: r.try_get(1).map_err(err)?,
            kind: r.try_get(2).map_err(err)?,
            key: r.try_get(3).map_err(err)?,
            idx: r.try_get(4).map_err(err)?,
            body: r.try_get(5).map_err(err)?,
        };
        if let Some(body) = row::seal_legacy_body(sealer, &run_id, &entry)? {
            tx.execute(
                "UPDATE operonx_journal SET body = $1 WHERE run_id = $2 AND seq = $3",
                &[&body, &run_id, &entry.seq],
            )
            .map_err(err)?;
        }
    }
    if sealed_runs > 0 {
        tracing::info!("run store {}: sealed the values of {sealed_runs} runs stored in clear", sealer.store());
    }
    Ok(())
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
    })
}

/// A whole run row, as [`RUN`] selects it.
fn run_row(r: &Row) -> Result<RunRow, postgres::Error> {
    Ok(RunRow {
        summary: summary_row(r)?,
        graph_path: r.try_get(11)?,
        graph: r.try_get(12)?,
        fingerprint: r.try_get(13)?,
        inputs: r.try_get(14)?,
        scratch: r.try_get(15)?,
        options: r.try_get(16)?,
        answers: r.try_get(17)?,
        pending: r.try_get(18)?,
        result: r.try_get(19)?,
    })
}

impl RunStore for PostgresStore {
    fn location(&self) -> &str {
        &self.location
    }

    fn create(&self, run: &NewRun, owner: &str, ttl: Duration) -> Result<Lease, StoreError> {
        let (store, sealer, id) = (self.location.as_str(), &self.sealer, run.run_id.as_str());
        let graph = row::seal_json(sealer, id, "graph", &run.graph)?;
        let inputs = row::seal_json(sealer, id, "inputs", &run.inputs)?;
        let scratch = row::seal_json(sealer, id, "scratch", &run.scratch)?;
        let options = row::seal_json(sealer, id, "options", &run.options)?;
        let answers = row::seal_json(sealer, id, "answers", &Map::new())?;
        let pending = row::seal_json(sealer, id, "pending", &[] as &[Value])?;
        let lease_ms = row::duration_ms(ttl);
        let now = row::now_ms();
        let inserted = self.with_tx(false, |tx| {
            tx.execute(
                INSERT_RUN,
                &[
                    &id,
                    &run.graph_name,
                    &run.graph_path,
                    &graph,
                    &run.fingerprint,
                    &inputs,
                    &scratch,
                    &options,
                    &owner,
                    &now,
                    &lease_ms,
                    &answers,
                    &pending,
                ],
            )
        })?;
        if inserted == 0 {
            return Err(StoreError::Exists { store: store.to_string(), run_id: id.to_string() });
        }
        Ok(Lease { run_id: id.to_string(), owner: owner.to_string(), epoch: 1, next_seq: 1, ttl })
    }

    fn append(&self, lease: &Lease, batch: &Batch) -> Result<(), StoreError> {
        let (sealer, id) = (&self.sealer, lease.run_id.as_str());
        let scratch = row::seal_json_opt(sealer, id, "scratch", batch.scratch.as_ref())?;
        let pending = row::seal_json_opt(sealer, id, "pending", batch.pending.as_ref())?;
        let bodies =
            batch.entries.iter().map(|e| row::seal_body(sealer, id, e)).collect::<Result<Vec<_>, StoreError>>()?;
        let count = i64::try_from(batch.entries.len()).unwrap_or(i64::MAX);
        let now = row::now_ms();
        self.with_tx(false, |tx| {
            let updated = tx.execute(TOUCH, &[&now, &count, &scratch, &pending, &id, &lease.epoch])?;
            if updated == 0 {
                return Err(tx.lost(id));
            }
            if batch.entries.is_empty() {
                return Ok(());
            }
            let seqs: Vec<i64> = batch.entries.iter().map(|e| e.seq).collect();
            let kinds: Vec<&str> = batch.entries.iter().map(|e| e.kind.as_str()).collect();
            let keys: Vec<&str> = batch.entries.iter().map(|e| e.key.as_str()).collect();
            let indexes: Vec<Option<i64>> = batch.entries.iter().map(|e| e.index.map(i64::from)).collect();
            tx.execute(INSERT_ENTRIES, &[&id, &seqs, &kinds, &keys, &indexes, &bodies])?;
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
        let now = row::now_ms();
        self.with_tx(false, |tx| {
            let status = end.status.as_str();
            let updated =
                tx.execute(FINISH, &[&status, &result, &pending, &scratch, &reason, &now, &id, &lease.epoch])?;
            if updated == 0 {
                return Err(tx.lost(id));
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
        self.with_tx(false, |tx| {
            let Some(r) = tx.query_opt(LOCK_FOR_CLAIM, &[&run_id])? else { return Err(self.not_found(run_id)) };
            let current = summary_row(&r).map_err(self.err())?;
            let stored_answers: String = r.try_get(11).map_err(self.err())?;
            let now = row::now_ms();
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
                .query_opt(CLAIM, &[&owner, &now, &lease_ms, &merged, &run_id])?
                .ok_or_else(|| self.not_found(run_id))?
                .try_get(0)
                .map_err(self.err())?;
            let (run, journal) = tx.read_run(run_id)?.ok_or_else(|| self.not_found(run_id))?;
            let mut stored = row::stored_run(&self.sealer, run, journal, now)?;
            stored.summary.status = RunStatus::Running;
            let next_seq = stored.entries.last().map_or(1, |e| e.seq + 1);
            let lease = Lease { run_id: run_id.to_string(), owner: owner.to_string(), epoch, next_seq, ttl };
            Ok((lease, stored))
        })
    }

    fn load(&self, run_id: &str) -> Result<StoredRun, StoreError> {
        let (run, journal) = self.with_tx(true, |tx| tx.read_run(run_id))?.ok_or_else(|| self.not_found(run_id))?;
        row::stored_run(&self.sealer, run, journal, row::now_ms())
    }

    fn list(&self, filter: &ListFilter) -> Result<Vec<RunSummary>, StoreError> {
        let status = row::stored_status(filter.status);
        let limit = row::sql_limit(filter);
        let rows = self.with_tx(true, |tx| tx.query(LIST, &[&status, &filter.graph, &limit]))?;
        let rows = rows.iter().map(summary_row).collect::<Result<Vec<_>, _>>().map_err(self.err())?;
        row::filter_summaries(&self.sealer, rows, filter, row::now_ms())
    }

    fn prune(&self, older_than: DateTime<Utc>, status: Option<RunStatus>) -> Result<u64, StoreError> {
        if status == Some(RunStatus::Running) {
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
            tx.execute("DELETE FROM operonx_runs WHERE run_id = ANY($1)", &[&doomed])
        })
    }

    fn check(&self) -> Result<(), StoreError> {
        let (orphans, miscounted) = self.with_tx(true, |tx| {
            let orphans = tx
                .query(
                    "SELECT DISTINCT j.run_id FROM operonx_journal j LEFT JOIN operonx_runs r ON r.run_id = j.run_id
                     WHERE r.run_id IS NULL ORDER BY j.run_id",
                    &[],
                )?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<Vec<String>, _>>()
                .map_err(self.err())?;
            let miscounted = tx
                .query(
                    "SELECT r.run_id, r.entries, COALESCE(j.n, 0) FROM operonx_runs r
                     LEFT JOIN (SELECT run_id, count(*) AS n FROM operonx_journal GROUP BY run_id) j
                     ON j.run_id = r.run_id WHERE r.entries <> COALESCE(j.n, 0) ORDER BY r.run_id",
                    &[],
                )?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect::<Result<Vec<(String, i64, i64)>, postgres::Error>>()
                .map_err(self.err())?;
            Ok((orphans, miscounted))
        })?;
        match row::problems(&orphans, &miscounted, &[]) {
            None => Ok(()),
            Some(problems) => Err(StoreError::Integrity { store: self.location.clone(), problems }),
        }
    }
}
