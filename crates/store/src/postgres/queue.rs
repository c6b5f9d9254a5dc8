//! The run queue of the Postgres store (see [`crate::queue`]): workers on any number of
//! hosts take queued runs with `SELECT ... FOR UPDATE SKIP LOCKED`, so two never get the
//! same run and none waits for another; what changes the queue, a run's events or its
//! cancellation is told to listeners with `NOTIFY` (delivered at commit), which a
//! [`PgWaiter`] receives on a connection of its own.

use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Row};
use serde_json::{Map, Value};

use super::{PostgresStore, SUMMARY_LEN, Tx, summary_row};
use crate::events::{self, EventRow};
use crate::queue::{self, CancelAction};
use crate::row::{self, SummaryRow};
use crate::{
    Cancelled, DEFAULT_LEASE, Enqueued, Lease, NewRun, Notice, RunStatus, StoreError, StoredEvent, StoredRun, Waiter,
};

/// A queued run's row: no owner, epoch 0, no heartbeat, no entries. A conflict (the run
/// id, or the tenant's idempotency key) inserts nothing.
const ENQUEUE: &str = "INSERT INTO operonx_runs (run_id, graph_name, graph_path, fingerprint, spec, status, epoch,
    lease_ms, created_ms, updated_ms, resumes, entries, tenant, idem)
    VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $7, 0, 0, $8, $9) ON CONFLICT DO NOTHING RETURNING run_id";

/// A new run's sealed spec and hashed idempotency key.
type Sealed = (String, Option<String>);

/// The run a tenant's idempotency key (hashed) names.
const BY_IDEM: &str =
    "SELECT run_id FROM operonx_runs WHERE COALESCE(tenant, '') = COALESCE($1::text, '') AND idem = $2";

/// Tell the workers there is work (`LISTEN operonx_runs`; the payload is the run queued).
const NOTIFY_WORK: &str = "SELECT pg_notify('operonx_runs', $1)";

/// Tell a run's owner its cancellation was asked for (`LISTEN operonx_cancel`).
const NOTIFY_CANCEL: &str = "SELECT pg_notify('operonx_cancel', $1)";

/// The `$1` oldest queued runs nobody else is taking, locked.
const NEXT_QUEUED: &str = concat!(
    "SELECT ",
    summary_cols!(),
    " FROM operonx_runs WHERE status = 'queued' ORDER BY created_ms, run_id LIMIT $1 FOR UPDATE SKIP LOCKED"
);

/// The running runs (some may have crashed), not locked.
const RUNNING: &str =
    concat!("SELECT ", summary_cols!(), " FROM operonx_runs WHERE status = 'running' ORDER BY created_ms, run_id");

/// A running run, locked unless someone else holds it.
const LOCK_RUNNING: &str = concat!(
    "SELECT ",
    summary_cols!(),
    " FROM operonx_runs WHERE run_id = $1 AND status = 'running' FOR UPDATE SKIP LOCKED"
);

/// A run with its answers, locked.
const LOCK_RUN: &str = concat!("SELECT ", summary_cols!(), ", answers FROM operonx_runs WHERE run_id = $1 FOR UPDATE");

/// A run taken from the queue (or over from a crashed owner): a resume when it ran before.
const CLAIM_NEXT: &str = "UPDATE operonx_runs SET epoch = epoch + 1, status = 'running', owner = $1,
    heartbeat_ms = $2, updated_ms = $2, lease_ms = $3, resumes = resumes + CASE WHEN epoch > 0 THEN 1 ELSE 0 END,
    reason = NULL WHERE run_id = $4 RETURNING epoch";

/// A stopped run put back on the queue (a new epoch when it had one: its last owner can
/// write it no more).
const REQUEUE: &str = "UPDATE operonx_runs SET status = 'queued', owner = NULL, heartbeat_ms = NULL, reason = NULL,
    cancel = false, answers = $1, updated_ms = $2, epoch = CASE WHEN epoch > 0 THEN epoch + 1 ELSE 0 END
    WHERE run_id = $3";

const SET_ANSWERS: &str = "UPDATE operonx_runs SET answers = $1 WHERE run_id = $2";

/// A run cancelled at once.
const CANCEL_NOW: &str = "UPDATE operonx_runs SET status = 'cancelled', reason = $1, owner = NULL,
    heartbeat_ms = NULL, cancel = false, updated_ms = $2, epoch = CASE WHEN epoch > 0 THEN epoch + 1 ELSE 0 END
    WHERE run_id = $3";

const CANCEL_FLAG: &str = "UPDATE operonx_runs SET cancel = true, updated_ms = $1 WHERE run_id = $2";

const CANCEL_ASKED: &str = "SELECT r.run_id FROM operonx_runs r
    JOIN unnest($1::text[], $2::bigint[]) AS t(run_id, epoch) ON r.run_id = t.run_id AND r.epoch = t.epoch
    WHERE r.cancel";

const EXISTS: &str = "SELECT 1 FROM operonx_runs WHERE run_id = $1";

const EVENTS: &str =
    "SELECT seq, last_seq, body FROM operonx_events WHERE run_id = $1 AND last_seq > $2 ORDER BY seq LIMIT $3";

const GROUPED: &str = "SELECT status, count(*) FROM operonx_runs WHERE status <> 'running'
    AND ($1::text IS NULL OR tenant = $1) GROUP BY status";

const RUNNING_OF: &str = concat!(
    "SELECT ",
    summary_cols!(),
    " FROM operonx_runs WHERE status = 'running' AND ($1::text IS NULL OR tenant = $1)"
);

/// The channels a [`PgWaiter`] listens on.
const LISTEN: &str = "LISTEN operonx_runs; LISTEN operonx_events; LISTEN operonx_cancel";

impl PostgresStore {
    fn summaries(&self, rows: &[Row]) -> Result<Vec<SummaryRow>, StoreError> {
        rows.iter().map(summary_row).collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// The run's summary row and answers, locked ([`StoreError::NotFound`] when missing).
    fn lock_run(&self, tx: &mut Tx<'_, '_>, run_id: &str) -> Result<(SummaryRow, Option<String>), StoreError> {
        let r = tx.query_opt(LOCK_RUN, &[&run_id])?.ok_or_else(|| self.not_found(run_id))?;
        let current = summary_row(&r).map_err(self.err())?;
        let answers = r.try_get(SUMMARY_LEN).map_err(self.err())?;
        Ok((current, answers))
    }

    pub(super) fn enqueue_run(&self, run: &NewRun) -> Result<Enqueued, StoreError> {
        let sealed = self.seal_new(run)?;
        self.with_tx(false, |tx| self.enqueue_in(tx, run, &sealed))?.ok_or_else(|| self.taken(run))
    }

    /// Several runs queued in one transaction: how each fared, in order (a database error
    /// fails them all: then none was queued).
    pub(super) fn enqueue_runs(&self, runs: &[NewRun]) -> Result<Vec<Result<Enqueued, StoreError>>, StoreError> {
        let mut sealed: Vec<Result<Sealed, StoreError>> = runs.iter().map(|run| self.seal_new(run)).collect();
        let queued = self.with_tx(false, |tx| {
            let mut queued = Vec::with_capacity(runs.len());
            for (run, sealed) in runs.iter().zip(&sealed) {
                queued.push(match sealed {
                    Ok(sealed) => self.enqueue_in(tx, run, sealed)?,
                    Err(_) => None,
                });
            }
            Ok(queued)
        })?;
        let fared = runs
            .iter()
            .zip(queued)
            .zip(sealed.drain(..))
            .map(|((run, queued), sealed)| sealed.and_then(|_| queued.ok_or_else(|| self.taken(run))));
        Ok(fared.collect())
    }

    /// A new run's sealed spec and hashed idempotency key.
    fn seal_new(&self, run: &NewRun) -> Result<Sealed, StoreError> {
        let spec = row::seal_spec(&self.sealer, run)?;
        Ok((spec, run.idempotency_key.as_deref().map(row::idempotency_hash)))
    }

    fn taken(&self, run: &NewRun) -> StoreError {
        StoreError::Exists { store: self.location.clone(), run_id: run.run_id.clone() }
    }

    /// Queue `run` in `tx`, or give the run its tenant's idempotency key names; `None`
    /// when its run id is taken.
    fn enqueue_in(&self, tx: &mut Tx<'_, '_>, run: &NewRun, sealed: &Sealed) -> Result<Option<Enqueued>, StoreError> {
        let (spec, idem) = sealed;
        let lease_ms = row::duration_ms(DEFAULT_LEASE);
        let existing = |tx: &mut Tx<'_, '_>| -> Result<Option<String>, StoreError> {
            let Some(idem) = idem else { return Ok(None) };
            tx.query_opt(BY_IDEM, &[&run.tenant, idem])?.map(|r| r.try_get(0)).transpose().map_err(self.err())
        };
        if let Some(run_id) = existing(tx)? {
            return Ok(Some(Enqueued { run_id, created: false }));
        }
        let now = row::now_ms();
        let params: [&(dyn postgres::types::ToSql + Sync); 9] =
            [&run.run_id, &run.graph_name, &run.graph_path, &run.fingerprint, spec, &lease_ms, &now, &run.tenant, idem];
        if tx.query_opt(ENQUEUE, &params)?.is_some() {
            tx.execute(NOTIFY_WORK, &[&run.run_id])?;
            return Ok(Some(Enqueued { run_id: run.run_id.clone(), created: true }));
        }
        // Inserted by another transaction meanwhile (same key), or the run id is taken.
        Ok(existing(tx)?.map(|run_id| Enqueued { run_id, created: false }))
    }

    /// Up to `max` claimable runs for `owner` in one transaction: the oldest queued ones;
    /// with none queued, one run whose owner is gone.
    pub(super) fn claim_runs(
        &self,
        owner: &str,
        ttl: Duration,
        max: usize,
    ) -> Result<Vec<(Lease, StoredRun)>, StoreError> {
        let lease_ms = row::duration_ms(ttl);
        let limit = i64::try_from(max.max(1)).unwrap_or(i64::MAX);
        self.with_tx(false, |tx| {
            let now = row::now_ms();
            let mut next = self.summaries(&tx.query(NEXT_QUEUED, &[&limit])?)?;
            if next.is_empty() {
                let running = self.summaries(&tx.query(RUNNING, &[])?)?;
                for candidate in running {
                    if row::derive_status(&self.location, &candidate, now)? != RunStatus::Crashed {
                        continue;
                    }
                    // Locked, and read again: another worker may have taken it meanwhile.
                    let Some(r) = tx.query_opt(LOCK_RUNNING, &[&candidate.run_id])? else { continue };
                    let locked = summary_row(&r).map_err(self.err())?;
                    if row::derive_status(&self.location, &locked, now)? == RunStatus::Crashed {
                        next.push(locked);
                        break;
                    }
                }
            }
            let mut claimed = Vec::with_capacity(next.len());
            for run in next {
                let run_id = run.run_id.as_str();
                let epoch: i64 = tx
                    .query_opt(CLAIM_NEXT, &[&owner, &now, &lease_ms, &run_id])?
                    .ok_or_else(|| self.not_found(run_id))?
                    .try_get(0)
                    .map_err(self.err())?;
                claimed.push(tx.claimed(run_id, owner, epoch, ttl, now)?);
            }
            Ok(claimed)
        })
    }

    pub(super) fn requeue_run(&self, run_id: &str, answers: &Map<String, Value>) -> Result<(), StoreError> {
        self.with_tx(false, |tx| {
            let now = row::now_ms();
            let (current, stored) = self.lock_run(tx, run_id)?;
            let queued = queue::requeue_check(&self.location, &current, now)?;
            let merged = row::merge_answers(&self.sealer, run_id, stored.as_deref(), answers)?;
            if queued {
                tx.execute(SET_ANSWERS, &[&merged, &run_id])?;
            } else {
                tx.execute(REQUEUE, &[&merged, &now, &run_id])?;
            }
            tx.execute(NOTIFY_WORK, &[&run_id])?;
            Ok(())
        })
    }

    pub(super) fn cancel_run(&self, run_id: &str, reason: &str) -> Result<Cancelled, StoreError> {
        let sealed = row::seal_reason(&self.sealer, run_id, Some(reason))?;
        self.with_tx(false, |tx| {
            let now = row::now_ms();
            let (current, _) = self.lock_run(tx, run_id)?;
            match CancelAction::of(row::derive_status(&self.location, &current, now)?) {
                CancelAction::Ended(status) => Ok(Cancelled::AlreadyEnded(status)),
                CancelAction::End => {
                    tx.execute(CANCEL_NOW, &[&sealed, &now, &run_id])?;
                    Ok(Cancelled::Now)
                }
                CancelAction::Flag => {
                    tx.execute(CANCEL_FLAG, &[&now, &run_id])?;
                    tx.execute(NOTIFY_CANCEL, &[&run_id])?;
                    Ok(Cancelled::Requested)
                }
            }
        })
    }

    pub(super) fn cancel_requested(&self, leases: &[Lease]) -> Result<Vec<String>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let run_ids: Vec<&str> = leases.iter().map(|l| l.run_id.as_str()).collect();
        let epochs: Vec<i64> = leases.iter().map(|l| l.epoch).collect();
        let rows = self.with_tx(true, |tx| tx.query(CANCEL_ASKED, &[&run_ids, &epochs]))?;
        rows.iter().map(|r| r.try_get(0)).collect::<Result<Vec<String>, _>>().map_err(self.err())
    }

    pub(super) fn read_events(&self, run_id: &str, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let after_sql = i64::try_from(after).unwrap_or(i64::MAX);
        let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.with_tx(true, |tx| {
            if tx.query_opt(EXISTS, &[&run_id])?.is_none() {
                return Err(self.not_found(run_id));
            }
            tx.query(EVENTS, &[&run_id, &after_sql, &limit_sql])
        })?;
        let rows = rows
            .iter()
            .map(|r| Ok(EventRow { seq: r.try_get(0)?, last_seq: r.try_get(1)?, body: r.try_get(2)? }))
            .collect::<Result<Vec<_>, postgres::Error>>()
            .map_err(self.err())?;
        events::unpack(&self.sealer, run_id, rows, after, limit)
    }

    pub(super) fn count_runs(&self, tenant: Option<&str>) -> Result<Vec<(RunStatus, u64)>, StoreError> {
        let (grouped, running) =
            self.with_tx(true, |tx| Ok((tx.query(GROUPED, &[&tenant])?, tx.query(RUNNING_OF, &[&tenant])?)))?;
        let grouped = grouped
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<(String, i64)>, postgres::Error>>()
            .map_err(self.err())?;
        queue::tally(&self.location, grouped, &self.summaries(&running)?, row::now_ms())
    }
}

/// A [`Waiter`] on a Postgres store: a connection of its own that listens on
/// `operonx_runs` (work was queued; the payload is the run id), `operonx_events` (a run's events were stored; the
/// payload is the run id) and `operonx_cancel` (a run's cancellation was asked for).
/// Connected again, and listening again, if the connection closes.
pub(crate) struct PgWaiter {
    client: Client,
    url: String,
    location: String,
}

impl PgWaiter {
    /// Connect to `url` and listen.
    pub(super) fn listen(url: &str, location: &str) -> Result<Self, StoreError> {
        let client = Self::connect(url, location)?;
        Ok(Self { client, url: url.to_string(), location: location.to_string() })
    }

    fn connect(url: &str, location: &str) -> Result<Client, StoreError> {
        let mut client = PostgresStore::open_client(url, location)?;
        client.batch_execute(LISTEN).map_err(|source| StoreError::Postgres { store: location.to_string(), source })?;
        Ok(client)
    }

    fn err(&self) -> impl Fn(postgres::Error) -> StoreError + '_ {
        |source| StoreError::Postgres { store: self.location.clone(), source }
    }
}

/// Add a notification to `out` as a notice (once; unknown channels ignored).
fn push_notice(out: &mut Vec<Notice>, channel: &str, payload: &str) {
    let notice = match channel {
        "operonx_runs" => Notice::Work,
        "operonx_events" => Notice::Events(payload.to_string()),
        "operonx_cancel" => Notice::Cancel(payload.to_string()),
        _ => return,
    };
    if !out.contains(&notice) {
        out.push(notice);
    }
}

impl Waiter for PgWaiter {
    fn wait(&mut self, timeout: Duration) -> Result<Vec<Notice>, StoreError> {
        if self.client.is_closed() {
            tracing::warn!("run store {}: listening connection closed; connecting again", self.location);
            self.client = Self::connect(&self.url, &self.location)?;
            // What was notified while no connection listened is lost: wake the caller
            // to look for itself.
            return Ok(vec![Notice::Work]);
        }
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let first = self.client.notifications().timeout_iter(left).next();
            match first.map_err(self.err())? {
                Some(n) => {
                    push_notice(&mut out, n.channel(), n.payload());
                    let mut notifications = self.client.notifications();
                    let mut pending = notifications.iter();
                    while let Some(n) = pending
                        .next()
                        .map_err(|source| StoreError::Postgres { store: self.location.clone(), source })?
                    {
                        push_notice(&mut out, n.channel(), n.payload());
                    }
                    return Ok(out);
                }
                None if Instant::now() >= deadline || self.client.is_closed() => return Ok(out),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_map_to_notices_once() {
        let mut out = Vec::new();
        for (channel, payload) in [
            ("operonx_runs", ""),
            ("operonx_events", "r1"),
            ("operonx_runs", ""),
            ("operonx_cancel", "r2"),
            ("operonx_events", "r1"),
            ("other", "x"),
        ] {
            push_notice(&mut out, channel, payload);
        }
        assert_eq!(out, vec![Notice::Work, Notice::Events("r1".into()), Notice::Cancel("r2".into())]);
    }
}
