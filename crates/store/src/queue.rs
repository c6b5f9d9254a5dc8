//! The run queue: runs put in the store for a worker to execute (`operonx serve` and
//! `operonx worker`), their cancellation asked for from any process, and the events
//! they emit kept so a live stream can be followed (and picked up again) from any
//! process that reaches the store.
//!
//! A queued run is a row like any other (status [`RunStatus::Queued`], no owner, epoch
//! 0). [`RunStore::claim_next`] hands the oldest claimable run to one worker (Postgres:
//! `FOR UPDATE SKIP LOCKED`, so workers never wait on each other); a run whose worker
//! died (lease expired, or owner gone on this host) is claimable again and resumes from
//! its journal. [`RunStore::requeue`] puts a stopped run back (answers added) for a
//! worker to resume; [`RunStore::cancel`] stops one wherever it is.
//!
//! [`RunStatus::Queued`]: crate::RunStatus::Queued
//! [`RunStore::claim_next`]: crate::RunStore::claim_next
//! [`RunStore::requeue`]: crate::RunStore::requeue
//! [`RunStore::cancel`]: crate::RunStore::cancel

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::row::SummaryRow;
use crate::{RunStatus, StoreError};

/// What [`crate::RunStore::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The run's id: the new run's, or the existing run's with the same tenant and
    /// idempotency key.
    pub run_id: String,
    /// `false` when a run with the same tenant and idempotency key existed already (it is
    /// returned as it is; nothing was written).
    pub created: bool,
}

/// What [`crate::RunStore::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The run was queued, waiting or crashed: it is `cancelled` now.
    Now,
    /// The run is running: its owner was asked to stop it (it finds out through
    /// [`crate::RunStore::cancel_requests`] and ends the run `cancelled`).
    Requested,
    /// The run had already ended with this status; nothing changed.
    AlreadyEnded(RunStatus),
}

/// One event a run emitted, as kept for its live stream (the JSON line of
/// `operonx run --stream`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Position in the run's stream: 1, 2, ... across resumes (the SSE `id`).
    pub seq: u64,
    /// The event.
    pub event: Value,
}

/// Where a listing goes on from: the last run of the previous page (listings are newest
/// first, by creation time then run id). Printed as an opaque token (`Display`,
/// `FromStr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// When the last run listed was created.
    pub created_at: DateTime<Utc>,
    /// Its id.
    pub run_id: String,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.created_at.timestamp_millis(), self.run_id)
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("not a cursor: {s:?} (pass back the `next_cursor` of a listing)");
        let (ms, run_id) = s.split_once('.').ok_or_else(bad)?;
        let ms: i64 = ms.parse().map_err(|_| bad())?;
        let created_at = DateTime::from_timestamp_millis(ms).ok_or_else(bad)?;
        if run_id.is_empty() || !run_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(bad());
        }
        Ok(Cursor { created_at, run_id: run_id.to_string() })
    }
}

/// What woke a [`Waiter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A run was enqueued or requeued: there may be work to claim.
    Work,
    /// The run emitted events (they are committed).
    Events(String),
    /// The run's cancellation was asked for.
    Cancel(String),
}

/// Waits for what other processes do to the store (Postgres: `LISTEN` on a connection of
/// its own; a store without notifications returns after the timeout with nothing, and
/// its callers poll).
pub trait Waiter: Send {
    /// Wait up to `timeout` for notices; those that came (empty: none in time). Never
    /// returns before `timeout` when nothing came, so a caller can loop on it.
    fn wait(&mut self, timeout: Duration) -> Result<Vec<Notice>, StoreError>;
}

/// A [`Waiter`] that only sleeps (stores without notifications).
#[derive(Debug, Default)]
pub struct Sleeper;

impl Waiter for Sleeper {
    fn wait(&mut self, timeout: Duration) -> Result<Vec<Notice>, StoreError> {
        std::thread::sleep(timeout);
        Ok(Vec::new())
    }
}

/// What [`crate::RunStore::cancel`] does to a run, by its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelAction {
    /// End it `cancelled` now (queued, waiting, crashed).
    End,
    /// Flag it for its owner (running).
    Flag,
    /// Nothing: it ended with this status.
    Ended(RunStatus),
}

impl CancelAction {
    /// What cancelling a run with `status` (as derived) does.
    pub(crate) fn of(status: RunStatus) -> Self {
        match status {
            RunStatus::Queued | RunStatus::Waiting | RunStatus::Crashed => CancelAction::End,
            RunStatus::Running => CancelAction::Flag,
            ended @ (RunStatus::Done | RunStatus::Failed | RunStatus::Cancelled | RunStatus::TimedOut) => {
                CancelAction::Ended(ended)
            }
        }
    }
}

/// Whether a run may be requeued, from its row: `Ok(true)` when it is queued already
/// (only its answers change), `Ok(false)` when it goes back on the queue, refused as
/// [`crate::RunStore::claim`] refuses (busy while running, finished once done).
pub(crate) fn requeue_check(store: &str, row: &SummaryRow, now: i64) -> Result<bool, StoreError> {
    match crate::row::claimable(store, row, now) {
        Err(StoreError::Queued { .. }) => Ok(true),
        Err(e) => Err(e),
        Ok(_) => Ok(false),
    }
}

/// Runs counted by status: `grouped` the stored statuses but `running` with their
/// counts, `running` the running rows (each counted as running or crashed, as derived
/// at `now`). Every status is listed, in [`RunStatus::ALL`] order.
pub(crate) fn tally(
    store: &str,
    grouped: Vec<(String, i64)>,
    running: &[SummaryRow],
    now: i64,
) -> Result<Vec<(RunStatus, u64)>, StoreError> {
    let mut counts: Vec<(RunStatus, u64)> = RunStatus::ALL.iter().map(|s| (*s, 0)).collect();
    let mut add = |status: RunStatus, n: u64| {
        if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == status) {
            slot.1 += n;
        }
    };
    for (status, n) in grouped {
        let parsed: RunStatus = status.parse().map_err(|message| StoreError::Corrupt {
            store: store.to_string(),
            run_id: String::new(),
            what: "status".into(),
            message,
        })?;
        add(parsed, u64::try_from(n).unwrap_or(0));
    }
    for row in running {
        add(crate::row::derive_status(store, row, now)?, 1);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_prints_and_refuses_anything_else() {
        let c =
            Cursor { created_at: DateTime::from_timestamp_millis(1_765_000_000_123).unwrap(), run_id: "ab12".into() };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        for bad in ["", "12", "x.ab", "12.", "12.a b", "12.a'b"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }
}
