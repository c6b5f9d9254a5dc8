//! The durable run store: every run's graph, inputs, status and journal, so a run killed
//! at any moment (or waiting for input, cancelled, timed out) can be resumed by any
//! process that reaches the store, without redoing the work it journaled.
//!
//! Two backends behind one trait, [`RunStore`], with the same semantics and the same
//! tests: embedded SQLite (the default, `.operonx/runs.db`) and Postgres (a
//! `postgres://` URL; the `postgres` feature). [`open`] picks one from what the user
//! gave. [`DurableRun`] is what a run writes through: it owns the run's lease and a
//! writer thread that commits the journal in the chosen [`Durability`].
//!
//! # Ownership
//! A run being executed is owned by one process: its row names the owner (a process
//! identity, see [`operonx_trace::ProcessIdentity`]), an `epoch` bumped at every claim,
//! and a heartbeat renewed by the writer. Every journal write checks the epoch in the
//! same transaction, so a process that lost its run (it was declared crashed and another
//! process resumed it) cannot write to it any more. A `running` run whose heartbeat is
//! older than its lease, or whose owner is known to be gone (same host, process ended),
//! reads as [`RunStatus::Crashed`].
//!
//! # Secrets
//! The store is lossless: a resumed run gets exactly the values it had, so it cannot
//! redact secrets the way traces do (a password given as an input, formatted into a
//! prompt and output by an op is in the journal as it was). Instead every column that
//! holds user data is encrypted at rest: a run's graph, inputs, options and seed scratch
//! (one value, `spec`, written once), its scratch and pending interrupts as journaled,
//! its answers, its `outcome` (result, pending interrupts and scratch when it last
//! stopped) and its `reason`, and its journal: the entries of each appended batch are
//! packed into one journal row (`seq`, `last_seq`, `count`, `body`), whose body (every
//! entry's kind, key, index and recorded value) is one sealed value; a run's stored
//! events likewise, one sealed row per write (see [`RunStore::events`]). Each value is
//! sealed with XChaCha20-Poly1305 under the store key, with a nonce never used before (a
//! random per-process prefix and a counter, see `seal.rs`): a run's values are stored as
//! text (`x1:` and the base64 of nonce, ciphertext and tag), a journal row's body as
//! bytes. Its associated data names the run and the column (for a journal row its seq
//! range and entry count), so a value altered, or moved to another row, fails to open
//! ([`StoreError::Corrupt`], naming the run and the column). What a listing and lookups
//! need stays clear: run ids, graph names and paths, fingerprints, statuses, owners,
//! tenants, times, counters, a run's usage stats (`stats`, see [`RunStats`]: counts and a
//! cost, no user data), and the journal and events rows' seq ranges and counts. An
//! idempotency key (chosen by the caller, it may carry data) is stored as its xxh3-128
//! hash, never in clear. [`RunStore`] callers see plain values, one [`Entry`] per journal
//! entry.
//!
//! The key ([`StoreKey`], 32 bytes) is, in this order:
//! - `OPERONX_STORE_KEY` ([`STORE_KEY_ENV`]) in the environment: 64 hex digits
//!   (anything else is an error that names the variable, never its value);
//! - else a key file, created with a fresh random key the first time (mode 0600, its
//!   folder 0700): beside a SQLite store, its name with `.key` added
//!   (`.operonx/runs.db.key`); for Postgres `$XDG_CONFIG_HOME/operonx/store.key`, else
//!   `$HOME/.config/operonx/store.key`.
//!
//! [`SqliteRunStore::open`], [`PostgresStore::connect`] and [`open`] find the key so;
//! `open_with_key` and `connect_with_key` take one. The store records the key's id (16
//! hex digits of a hash of the key, never the key) the first time it is opened (the
//! `meta` table in SQLite, `operonx_store_meta` in Postgres), and a process with another
//! key is refused at once ([`StoreError::WrongKey`]): "run store X was written with key
//! ID1, this process has key ID2: set OPERONX_STORE_KEY to the key the store's other
//! processes use".
//!
//! Several hosts sharing a store (Postgres, or a SQLite file on a shared disk) must share
//! its key: set the same `OPERONX_STORE_KEY` on each (the content of the key file that
//! the first process created, e.g. `OPERONX_STORE_KEY=$(cat ~/.config/operonx/store.key)`).
//! Back the key up apart from the store: a copy of the store is unreadable without its
//! key, and one kept with its key is not protected by it. Losing the key loses what the
//! store holds: no process can open it any more (another key is refused) and there is
//! no recovery; start a new store (another SQLite file; for Postgres, drop the
//! `operonx_*` tables or use another schema) with a new key.

mod durable;
mod error;
mod events;
mod group;
mod journal;
mod key;
mod open;
#[cfg(feature = "postgres")]
mod postgres;
mod queue;
mod replay;
mod row;
mod seal;
mod sqlite;
mod status;
mod writer;

use std::time::Duration;

use chrono::{DateTime, Utc};
use operonx_runtime::Interrupt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use durable::{Durability, DurableRun, Journaler, OnFailure, WriterOptions};
pub use error::StoreError;
pub use key::{KeyError, STORE_KEY_ENV, StoreKey, sqlite_key_file, user_key_file};
pub use open::{DEFAULT_RUN_STORE, open, redact_url};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use queue::{Cancelled, Cursor, Enqueued, Notice, Sleeper, StoredEvent, Waiter};
pub use sqlite::SqliteRunStore;
pub use status::RunStatus;

/// How long a run's lease lasts without a heartbeat before the run reads as crashed.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// What a new run's row holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    /// The run id (a UUID, or the 32 lowercase hex digits of earlier versions).
    pub run_id: String,
    /// The root graph's name.
    pub graph_name: String,
    /// The graph file the run was started from, when there was one.
    pub graph_path: Option<String>,
    /// The graph document (graph.json) itself: a run resumes from any directory.
    pub graph: Value,
    /// Strong digest of the compiled graph (see `operonx_graph::digest`).
    pub fingerprint: String,
    /// The run's inputs.
    pub inputs: Map<String, Value>,
    /// The scratch space the run started with.
    pub scratch: Map<String, Value>,
    /// Options to apply again on resume (timeout, fail-fast, ...), as the caller keeps them.
    pub options: Map<String, Value>,
    /// The tenant the run belongs to (`operonx serve --tokens`); `None` for runs of the
    /// CLI and of a server without tokens.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The caller's idempotency key: [`RunStore::enqueue`] of a run with the tenant and
    /// key of an existing run gives that run instead (unique per tenant).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// A process's hold on a run: only the holder of the current epoch may write the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The run.
    pub run_id: String,
    /// The owner's identity, as stored.
    pub owner: String,
    /// Bumped by every claim; writes with an older epoch are refused.
    pub epoch: i64,
    /// The sequence number the next journal entry takes.
    pub next_seq: i64,
    /// How long the lease lasts without a heartbeat.
    pub ttl: Duration,
}

/// What a journal entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// An op call completed: `key` is `op@context`, the body its outputs (an object).
    Op,
    /// A generator produced item `index`: `key` is the generator call's `op@context`,
    /// the body the item's outputs.
    Item,
    /// A generator produced all its items: `index` is how many.
    StreamEnd,
    /// An op asked for input: `key` is the interrupt id, the body the interrupt.
    Interrupt,
}

impl EntryKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Op => "op",
            EntryKind::Item => "item",
            EntryKind::StreamEnd => "stream_end",
            EntryKind::Interrupt => "interrupt",
        }
    }

    /// The kind of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "op" => EntryKind::Op,
            "item" => EntryKind::Item,
            "stream_end" => EntryKind::StreamEnd,
            "interrupt" => EntryKind::Interrupt,
            _ => return None,
        })
    }
}

/// One journal entry as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the run's journal (unique per run, increasing).
    pub seq: i64,
    /// What it records.
    pub kind: EntryKind,
    /// The op call (`op@context`) or interrupt id.
    pub key: String,
    /// The item index ([`EntryKind::Item`]) or item count ([`EntryKind::StreamEnd`]).
    pub index: Option<u32>,
    /// The recorded value as JSON text (kept as text: stored byte for byte).
    pub body: String,
}

/// Entries committed together, with the scratch space when it changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// The entries, in order.
    pub entries: Vec<Entry>,
    /// The scratch space now, when it changed since the last batch.
    pub scratch: Option<Map<String, Value>>,
    /// Interrupts the run now waits for, when one was raised in this batch.
    pub pending: Option<Vec<Interrupt>>,
}

/// What a run used: op calls, failures, model calls, tokens and cost, as the caller
/// counted them (the server counts them from the run's trace events).
///
/// Stored in clear (the `stats` column, JSON text) so listings can show them without the
/// store key: it holds counts and a cost only, never user data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunStats {
    /// Op calls that ended (whatever their status).
    pub ops: u64,
    /// Op calls that failed.
    pub errors: u64,
    /// Model (LLM) calls.
    pub llm_calls: u64,
    /// The model calls' total tokens.
    pub tokens: u64,
    /// The model calls' cost, in US dollars.
    pub cost_usd: f64,
}

impl RunStats {
    /// These stats and `other` summed (counts saturating): a resumed run's totals are
    /// what it had before plus what it did since.
    pub fn plus(&self, other: &RunStats) -> RunStats {
        RunStats {
            ops: self.ops.saturating_add(other.ops),
            errors: self.errors.saturating_add(other.errors),
            llm_calls: self.llm_calls.saturating_add(other.llm_calls),
            tokens: self.tokens.saturating_add(other.tokens),
            cost_usd: self.cost_usd + other.cost_usd,
        }
    }
}

/// How a run ended (or stopped), as [`RunStore::finish`] records it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    /// The status: anything but [`RunStatus::Running`] and [`RunStatus::Crashed`].
    pub status: RunStatus,
    /// The result as the CLI prints it (`$errors`, `$interrupts`, `$stopped` included).
    pub result: Option<Value>,
    /// What the run waits for (status [`RunStatus::Waiting`]).
    pub pending: Vec<Interrupt>,
    /// The scratch space at the end.
    pub scratch: Map<String, Value>,
    /// Why the run stopped (timed out, cancelled, a failure), when it did.
    pub reason: Option<String>,
    /// What the run used, in total: the caller passes the run's totals over all its
    /// attempts (the store does not add them up; a resumed run's are its stored
    /// [`RunSummary::stats`] plus what it did since). `None` keeps the stats stored
    /// before, if any.
    pub stats: Option<RunStats>,
}

impl RunEnd {
    /// How a run with `outcome` ended: `waiting` when it asks for input, `done` without
    /// failures, `failed` with some; stopped early: `timed_out` by its timeout,
    /// `failed` by fail-fast or a journal that could not be written, else `cancelled`
    /// (Ctrl-C, SIGTERM, a cancel request). The result is the outcome as the CLI prints it.
    /// No stats (`None`: the stored ones are kept); set [`RunEnd::stats`] to record some.
    pub fn from_outcome(outcome: &operonx_runtime::RunOutcome, scratch: Map<String, Value>) -> Self {
        let status = match outcome.stopped.as_deref() {
            None if !outcome.interrupts.is_empty() => RunStatus::Waiting,
            None if outcome.failures.is_empty() => RunStatus::Done,
            None => RunStatus::Failed,
            Some(r) if r.starts_with("timed out") => RunStatus::TimedOut,
            Some(r) if r.starts_with("fail-fast") || r.starts_with("journal:") => RunStatus::Failed,
            Some(_) => RunStatus::Cancelled,
        };
        RunEnd {
            status,
            result: Some(outcome.to_json()),
            pending: outcome.interrupts.clone(),
            scratch,
            reason: outcome.stopped.clone(),
            stats: None,
        }
    }
}

/// A run as stored, with its journal.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    /// The run's row.
    pub summary: RunSummary,
    /// The graph file the run was started from, when there was one.
    pub graph_path: Option<String>,
    /// The graph document.
    pub graph: Value,
    /// Digest of the compiled graph.
    pub fingerprint: String,
    /// The run's inputs.
    pub inputs: Map<String, Value>,
    /// The scratch space as last journaled (the seed when nothing was).
    pub scratch: Map<String, Value>,
    /// Options kept by the caller.
    pub options: Map<String, Value>,
    /// Answers given to the run's interrupts so far.
    pub answers: Map<String, Value>,
    /// What the run waits for.
    pub pending: Vec<Interrupt>,
    /// The result recorded when the run last stopped.
    pub result: Option<Value>,
    /// The journal, in `seq` order.
    pub entries: Vec<Entry>,
}

/// One run in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// The root graph's name.
    pub graph: String,
    /// The status (a `running` run whose owner is gone reads as `crashed`).
    pub status: RunStatus,
    /// When the run was created.
    pub created_at: DateTime<Utc>,
    /// When its row last changed (a journal write, a heartbeat, its end).
    pub updated_at: DateTime<Utc>,
    /// How many journal entries it has.
    pub entries: u64,
    /// How many times it was resumed.
    pub resumes: u32,
    /// Why it stopped, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The tenant it belongs to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The seq of its last stored event (0: none; see [`RunStore::events`]).
    #[serde(default)]
    pub events: u64,
    /// What it used, as its last end with stats recorded them (`None`: none recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<RunStats>,
}

/// Which runs [`RunStore::list`] returns, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs of this graph.
    pub graph: Option<String>,
    /// At most this many.
    pub limit: usize,
    /// Only runs of this tenant.
    pub tenant: Option<String>,
    /// Only runs listed after this one (the next page).
    pub after: Option<Cursor>,
}

impl Default for ListFilter {
    fn default() -> Self {
        Self { status: None, graph: None, limit: 50, tenant: None, after: None }
    }
}

/// A durable run store. Every method is one transaction; every backend has the same
/// semantics (the tests in `tests/` run against each). `create`, `append` and `finish`
/// are [`RunStore::write`] of one write in the stores of this crate.
pub trait RunStore: Send + Sync + std::fmt::Debug {
    /// Where the store is, for messages (a path, or a URL without its password).
    fn location(&self) -> &str;

    /// Record a new run, `running` and owned by `owner` (epoch 1).
    fn create(&self, run: &NewRun, owner: &str, ttl: Duration) -> Result<Lease, StoreError> {
        let write = Write::Create { run: run.clone(), owner: owner.to_string(), ttl };
        group::single(self.write(std::slice::from_ref(&write))?)?;
        Ok(group::new_lease(run, owner, ttl))
    }

    /// Append `batch` to the run's journal and renew its heartbeat, in one transaction.
    /// The batch's entries are stored together, as one journal row, in seq order (a
    /// batch giving one seq twice is refused: [`StoreError::Corrupt`]).
    /// [`StoreError::LeaseLost`] when the run was claimed by another process since.
    fn append(&self, lease: &Lease, batch: &Batch) -> Result<(), StoreError> {
        let write = Write::Append { lease: lease.clone(), batch: batch.clone() };
        group::single(self.write(std::slice::from_ref(&write))?)
    }

    /// Renew the run's heartbeat ([`StoreError::LeaseLost`] as for `append`).
    fn heartbeat(&self, lease: &Lease) -> Result<(), StoreError> {
        self.append(lease, &Batch::default())
    }

    /// Record how the run ended and release it.
    fn finish(&self, lease: &Lease, end: &RunEnd) -> Result<(), StoreError> {
        let write = Write::Finish { lease: lease.clone(), end: end.clone() };
        group::single(self.write(std::slice::from_ref(&write))?)
    }

    /// Take a run over to resume it: allowed when it is not running (waiting, failed,
    /// cancelled, timed out) or crashed; refused ([`StoreError::Busy`]) while its owner
    /// holds it and ([`StoreError::Finished`]) once it is done. `answers` are added to
    /// the answers given so far. The run becomes `running`, owned by `owner`, with a new
    /// epoch; what it held is returned with the lease.
    fn claim(
        &self,
        run_id: &str,
        owner: &str,
        ttl: Duration,
        answers: &Map<String, Value>,
    ) -> Result<(Lease, StoredRun), StoreError>;

    /// A run with its journal ([`StoreError::NotFound`] when there is none).
    fn load(&self, run_id: &str) -> Result<StoredRun, StoreError>;

    /// A run's row without its journal ([`StoreError::NotFound`] when there is none):
    /// what a status check needs. The default loads the whole run.
    fn summary(&self, run_id: &str) -> Result<RunSummary, StoreError> {
        self.load(run_id).map(|run| run.summary)
    }

    /// Runs, newest first.
    fn list(&self, filter: &ListFilter) -> Result<Vec<RunSummary>, StoreError>;

    /// Delete runs (journal included) last changed before `older_than`, only those with
    /// `status` when given. Runs that are running (not crashed) are never deleted.
    /// Returns how many were deleted.
    fn prune(&self, older_than: DateTime<Utc>, status: Option<RunStatus>) -> Result<u64, StoreError>;

    /// Check the store's consistency (the database's own check, journal and events rows
    /// that belong to no run, journal rows that overlap in seq or whose entry count does not fit
    /// their seqs, runs whose entry count is not their rows' sum); the problems found, if
    /// any, as an error.
    fn check(&self) -> Result<(), StoreError>;

    /// Apply `writes` in order in one transaction, with one commit for all of them (the
    /// journal writer's group commit: many runs' creates, journal batches and ends at
    /// once). Returns one result per write: a write refused for its own reason
    /// ([`StoreError::Exists`], [`StoreError::LeaseLost`], [`StoreError::NotFound`]) does
    /// not stop the others, nor does one that cannot be prepared (a batch giving one seq
    /// twice: [`StoreError::Corrupt`]); an error of the database itself fails the whole
    /// transaction (nothing is written) and is returned as the outer error. The default
    /// applies each write on its own (one transaction each); the stores of this crate
    /// apply a group natively.
    fn write(&self, writes: &[Write]) -> Result<Vec<Result<(), StoreError>>, StoreError>;

    /// Put a new run on the queue: status [`RunStatus::Queued`], no owner, epoch 0, for
    /// [`RunStore::claim_next`] to hand to a worker (Postgres: `NOTIFY`, see
    /// [`RunStore::waiter`]). With an idempotency key, a run of the same tenant with the
    /// same key is returned instead, untouched (`created: false`).
    fn enqueue(&self, run: &NewRun) -> Result<Enqueued, StoreError> {
        let _ = run;
        Err(StoreError::unsupported(self.location(), "a run queue"))
    }

    /// Put several new runs on the queue, as [`RunStore::enqueue`] puts one: how each
    /// fared, in order. The Postgres store queues them in one transaction (a failed
    /// transaction fails them all); by default, one after another.
    fn enqueue_many(&self, runs: &[NewRun]) -> Result<Vec<Result<Enqueued, StoreError>>, StoreError> {
        Ok(runs.iter().map(|run| self.enqueue(run)).collect())
    }

    /// Claim the oldest claimable run for `owner`: queued (oldest first), or running
    /// with its owner gone (lease expired; or its process ended, same host), which then
    /// resumes from its journal. As [`RunStore::claim`]: running, owned by `owner`, a new
    /// epoch. `None` when there is nothing to claim. Concurrent callers never get the same
    /// run (Postgres: `FOR UPDATE SKIP LOCKED`).
    fn claim_next(&self, owner: &str, ttl: Duration) -> Result<Option<(Lease, StoredRun)>, StoreError> {
        let _ = (owner, ttl);
        Err(StoreError::unsupported(self.location(), "a run queue"))
    }

    /// Claim up to `max` runs at once for `owner`, as [`RunStore::claim_next`] claims one
    /// (the oldest queued first; with none queued, a run whose owner is gone; empty when
    /// there is nothing to claim). The stores of this crate take them in one
    /// transaction; by default, one claim after another.
    fn claim_many(&self, owner: &str, ttl: Duration, max: usize) -> Result<Vec<(Lease, StoredRun)>, StoreError> {
        let mut claimed = Vec::new();
        while claimed.len() < max.max(1) {
            match self.claim_next(owner, ttl)? {
                Some(run) => claimed.push(run),
                None => break,
            }
        }
        Ok(claimed)
    }

    /// Put a stopped run (waiting, failed, cancelled, timed out, crashed) back on the
    /// queue with `answers` added to its answers, for a worker to resume; refused as
    /// [`RunStore::claim`] refuses (busy while running, finished once done).
    fn requeue(&self, run_id: &str, answers: &Map<String, Value>) -> Result<(), StoreError> {
        let _ = (run_id, answers);
        Err(StoreError::unsupported(self.location(), "a run queue"))
    }

    /// Cancel a run: queued, waiting or crashed runs end `cancelled` at once (`reason`
    /// recorded); a running one is flagged for its owner to stop (see
    /// [`RunStore::cancel_requests`]); an ended one is left as it is.
    fn cancel(&self, run_id: &str, reason: &str) -> Result<Cancelled, StoreError> {
        let _ = (run_id, reason);
        Err(StoreError::unsupported(self.location(), "a run queue"))
    }

    /// Of the runs held with `leases`, those whose cancellation was asked for (by run id).
    fn cancel_requests(&self, leases: &[Lease]) -> Result<Vec<String>, StoreError> {
        let _ = leases;
        Err(StoreError::unsupported(self.location(), "a run queue"))
    }

    /// The run's stored events with seq after `after`, in order, at most `limit`
    /// ([`StoreError::NotFound`] when there is no such run).
    fn events(&self, run_id: &str, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let _ = (run_id, after, limit);
        Err(StoreError::unsupported(self.location(), "run events"))
    }

    /// How many runs have each status (of `tenant` when given; crashed runs counted as
    /// crashed, not running): every status once, in [`RunStatus::ALL`] order, zeros
    /// included.
    fn counts(&self, tenant: Option<&str>) -> Result<Vec<(RunStatus, u64)>, StoreError> {
        let _ = tenant;
        Err(StoreError::unsupported(self.location(), "run counts"))
    }

    /// A waiter for what other processes do to this store (Postgres: notifications; by
    /// default a [`Sleeper`], and callers poll).
    fn waiter(&self) -> Result<Box<dyn Waiter>, StoreError> {
        Ok(Box::new(Sleeper))
    }
}

/// One write of a group (see [`RunStore::write`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// [`RunStore::create`]: the lease is the one a new run gets (epoch 1, next seq 1).
    Create {
        /// The run.
        run: NewRun,
        /// Its owner.
        owner: String,
        /// Its lease's time to live.
        ttl: Duration,
    },
    /// [`RunStore::append`].
    Append {
        /// The run's lease.
        lease: Lease,
        /// The entries.
        batch: Batch,
    },
    /// [`RunStore::finish`].
    Finish {
        /// The run's lease.
        lease: Lease,
        /// How it ended.
        end: RunEnd,
    },
    /// Events the run emitted (see [`RunStore::events`]), stored together as one sealed
    /// row; refused ([`StoreError::LeaseLost`]) as an append is. The run's last event seq
    /// becomes the last of these.
    Events {
        /// The run's lease.
        lease: Lease,
        /// The events, in seq order.
        events: Vec<StoredEvent>,
    },
}
