//! The run queue of the SQLite store (see [`crate::queue`]): every change is one
//! `BEGIN IMMEDIATE` transaction, so concurrent claimers (threads or processes) are
//! serialized by the database's write lock and never get the same run.

use std::time::Duration;

use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::{Map, Value};

use super::{SUMMARY_COLS, SUMMARY_LEN, SqliteRunStore, summary_row};
use crate::events::{self, EventRow};
use crate::queue::{self, CancelAction};
use crate::row::{self, SummaryRow};
use crate::{Cancelled, DEFAULT_LEASE, Enqueued, Lease, NewRun, RunStatus, StoreError, StoredEvent, StoredRun};

/// A queued run's row: no owner, epoch 0, no heartbeat, no entries.
const ENQUEUE: &str = "INSERT INTO runs (run_id, graph_name, graph_path, fingerprint, spec, status, epoch, lease_ms,
    created_ms, updated_ms, resumes, entries, tenant, idem, cancel, events)
    VALUES (?1, ?2, ?3, ?4, ?5, 'queued', 0, ?6, ?7, ?7, 0, 0, ?8, ?9, 0, 0) ON CONFLICT (run_id) DO NOTHING";

/// The run a tenant's idempotency key (hashed) names.
const BY_IDEM: &str = "SELECT run_id FROM runs WHERE COALESCE(tenant, '') = COALESCE(?1, '') AND idem = ?2";

/// A run taken from the queue (or over from a crashed owner): a resume when it ran before.
const CLAIM_NEXT: &str = "UPDATE runs SET epoch = epoch + 1, status = 'running', owner = ?1, heartbeat_ms = ?2,
    updated_ms = ?2, lease_ms = ?3, resumes = resumes + (epoch > 0), reason = NULL WHERE run_id = ?4 RETURNING epoch";

/// A stopped run put back on the queue (a new epoch when it had one: its last owner can
/// write it no more).
const REQUEUE: &str = "UPDATE runs SET status = 'queued', owner = NULL, heartbeat_ms = NULL, reason = NULL,
    cancel = 0, answers = ?1, updated_ms = ?2, epoch = CASE WHEN epoch > 0 THEN epoch + 1 ELSE 0 END
    WHERE run_id = ?3";

/// A run cancelled at once.
const CANCEL_NOW: &str = "UPDATE runs SET status = 'cancelled', reason = ?1, owner = NULL, heartbeat_ms = NULL,
    cancel = 0, updated_ms = ?2, epoch = CASE WHEN epoch > 0 THEN epoch + 1 ELSE 0 END WHERE run_id = ?3";

const CANCEL_FLAG: &str = "UPDATE runs SET cancel = 1, updated_ms = ?1 WHERE run_id = ?2";

const CANCEL_ASKED: &str = "SELECT 1 FROM runs WHERE run_id = ?1 AND epoch = ?2 AND cancel = 1";

const EVENTS: &str = "SELECT seq, last_seq, body FROM events WHERE run_id = ?1 AND last_seq > ?2 ORDER BY seq LIMIT ?3";

impl SqliteRunStore {
    /// The summary row of a run, with its answers, as of this transaction.
    fn summary_with_answers(
        &self,
        tx: &Transaction<'_>,
        run_id: &str,
    ) -> Result<Option<(SummaryRow, Option<String>)>, StoreError> {
        let sql = format!("SELECT {SUMMARY_COLS}, answers FROM runs WHERE run_id = ?1");
        tx.prepare_cached(&sql)
            .and_then(|mut st| {
                st.query_row([run_id], |r| Ok((summary_row(r)?, r.get::<_, Option<String>>(SUMMARY_LEN)?))).optional()
            })
            .map_err(self.err())
    }

    pub(super) fn enqueue_run(&self, run: &NewRun) -> Result<Enqueued, StoreError> {
        let spec = row::seal_spec(&self.sealer, run)?;
        let idem = run.idempotency_key.as_deref().map(row::idempotency_hash);
        let lease_ms = row::duration_ms(DEFAULT_LEASE);
        self.write_tx(|tx| {
            if let Some(idem) = &idem {
                let existing: Option<String> = tx
                    .prepare_cached(BY_IDEM)
                    .and_then(|mut st| st.query_row(params![run.tenant, idem], |r| r.get(0)).optional())
                    .map_err(self.err())?;
                if let Some(run_id) = existing {
                    return Ok(Enqueued { run_id, created: false });
                }
            }
            let now = row::now_ms();
            let inserted = tx
                .prepare_cached(ENQUEUE)
                .and_then(|mut st| {
                    st.execute(params![
                        run.run_id,
                        run.graph_name,
                        run.graph_path,
                        run.fingerprint,
                        spec,
                        lease_ms,
                        now,
                        run.tenant,
                        idem
                    ])
                })
                .map_err(self.err())?;
            if inserted == 0 {
                return Err(StoreError::Exists { store: self.location.clone(), run_id: run.run_id.clone() });
            }
            Ok(Enqueued { run_id: run.run_id.clone(), created: true })
        })
    }

    /// Up to `max` claimable runs for `owner` in one write transaction: the oldest queued
    /// ones; with none queued, one run whose owner is gone.
    pub(super) fn claim_runs(
        &self,
        owner: &str,
        ttl: Duration,
        max: usize,
    ) -> Result<Vec<(Lease, StoredRun)>, StoreError> {
        let lease_ms = row::duration_ms(ttl);
        let limit = i64::try_from(max.max(1)).unwrap_or(i64::MAX);
        let queued =
            format!("SELECT {SUMMARY_COLS} FROM runs WHERE status = 'queued' ORDER BY created_ms, run_id LIMIT ?1");
        let running = format!("SELECT {SUMMARY_COLS} FROM runs WHERE status = 'running' ORDER BY created_ms, run_id");
        self.write_tx(|tx| {
            let now = row::now_ms();
            let mut next = tx
                .prepare_cached(&queued)
                .and_then(|mut st| st.query_map([limit], summary_row)?.collect::<Result<Vec<_>, _>>())
                .map_err(self.err())?;
            if next.is_empty() {
                let rows = tx
                    .prepare_cached(&running)
                    .and_then(|mut st| st.query_map([], summary_row)?.collect::<Result<Vec<_>, _>>())
                    .map_err(self.err())?;
                for r in rows {
                    if row::derive_status(&self.location, &r, now)? == RunStatus::Crashed {
                        next.push(r);
                        break;
                    }
                }
            }
            let mut claimed = Vec::with_capacity(next.len());
            for run in next {
                let run_id = run.run_id.as_str();
                let epoch: i64 = tx
                    .prepare_cached(CLAIM_NEXT)
                    .and_then(|mut st| st.query_row(params![owner, now, lease_ms, run_id], |r| r.get(0)))
                    .map_err(self.err())?;
                claimed.push(self.claimed(tx, run_id, owner, epoch, ttl, now)?);
            }
            Ok(claimed)
        })
    }

    pub(super) fn requeue_run(&self, run_id: &str, answers: &Map<String, Value>) -> Result<(), StoreError> {
        self.write_tx(|tx| {
            let now = row::now_ms();
            let (current, stored) = self.summary_with_answers(tx, run_id)?.ok_or_else(|| self.not_found(run_id))?;
            let queued = queue::requeue_check(&self.location, &current, now)?;
            let merged = row::merge_answers(&self.sealer, run_id, stored.as_deref(), answers)?;
            let result = if queued {
                tx.prepare_cached("UPDATE runs SET answers = ?1 WHERE run_id = ?2")
                    .and_then(|mut st| st.execute(params![merged, run_id]))
            } else {
                tx.prepare_cached(REQUEUE).and_then(|mut st| st.execute(params![merged, now, run_id]))
            };
            result.map_err(self.err())?;
            Ok(())
        })
    }

    pub(super) fn cancel_run(&self, run_id: &str, reason: &str) -> Result<Cancelled, StoreError> {
        let sealed = row::seal_reason(&self.sealer, run_id, Some(reason))?;
        self.write_tx(|tx| {
            let now = row::now_ms();
            let (current, _) = self.summary_with_answers(tx, run_id)?.ok_or_else(|| self.not_found(run_id))?;
            let result = match CancelAction::of(row::derive_status(&self.location, &current, now)?) {
                CancelAction::Ended(status) => return Ok(Cancelled::AlreadyEnded(status)),
                CancelAction::End => tx
                    .prepare_cached(CANCEL_NOW)
                    .and_then(|mut st| st.execute(params![sealed, now, run_id]))
                    .map(|_| Cancelled::Now),
                CancelAction::Flag => tx
                    .prepare_cached(CANCEL_FLAG)
                    .and_then(|mut st| st.execute(params![now, run_id]))
                    .map(|_| Cancelled::Requested),
            };
            result.map_err(self.err())
        })
    }

    pub(super) fn cancel_requested(&self, leases: &[Lease]) -> Result<Vec<String>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        self.read(|tx| {
            let mut st = tx.prepare_cached(CANCEL_ASKED).map_err(self.err())?;
            let mut out = Vec::new();
            for lease in leases {
                let asked = st.query_row(params![lease.run_id, lease.epoch], |_| Ok(())).optional();
                if asked.map_err(self.err())?.is_some() {
                    out.push(lease.run_id.clone());
                }
            }
            Ok(out)
        })
    }

    pub(super) fn read_events(&self, run_id: &str, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let after_sql = i64::try_from(after).unwrap_or(i64::MAX);
        let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.read(|tx| {
            let exists = tx
                .prepare_cached("SELECT 1 FROM runs WHERE run_id = ?1")
                .and_then(|mut st| st.query_row([run_id], |_| Ok(())).optional())
                .map_err(self.err())?;
            if exists.is_none() {
                return Err(self.not_found(run_id));
            }
            tx.prepare_cached(EVENTS)
                .and_then(|mut st| {
                    st.query_map(params![run_id, after_sql, limit_sql], |r| {
                        Ok(EventRow { seq: r.get(0)?, last_seq: r.get(1)?, body: r.get(2)? })
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.err())
        })?;
        events::unpack(&self.sealer, run_id, rows, after, limit)
    }

    pub(super) fn count_runs(&self, tenant: Option<&str>) -> Result<Vec<(RunStatus, u64)>, StoreError> {
        let running =
            format!("SELECT {SUMMARY_COLS} FROM runs WHERE status = 'running' AND (?1 IS NULL OR tenant = ?1)");
        let (grouped, running) = self.read(|tx| {
            let grouped = tx
                .prepare_cached(
                    "SELECT status, count(*) FROM runs WHERE status <> 'running' AND (?1 IS NULL OR tenant = ?1)
                     GROUP BY status",
                )
                .and_then(|mut st| st.query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                .map_err(self.err())?;
            let running = tx
                .prepare_cached(&running)
                .and_then(|mut st| st.query_map([tenant], summary_row)?.collect::<Result<Vec<_>, _>>())
                .map_err(self.err())?;
            Ok((grouped, running))
        })?;
        queue::tally(&self.location, grouped, &running, row::now_ms())
    }
}
