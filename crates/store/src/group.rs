//! Group writes, as both backends apply them (see [`crate::RunStore::write`]): each write
//! is prepared first, outside any transaction (its values sealed, its journal batch
//! packed), then the backend applies the prepared writes in one transaction. `create`,
//! `append` and `finish` are groups of one.

use std::time::Duration;

use crate::events::{self, EventRow};
use crate::journal::{self, JournalRow};
use crate::row;
use crate::seal::Sealer;
use crate::{Batch, Lease, NewRun, RunEnd, StoreError, StoredEvent, Write};

/// A write of a group, borrowed (so `create`, `append` and `finish` need no copy).
#[derive(Debug, Clone, Copy)]
pub(crate) enum WriteRef<'a> {
    /// A new run.
    Create { run: &'a NewRun, owner: &'a str, ttl: Duration },
    /// A journal batch.
    Append { lease: &'a Lease, batch: &'a Batch },
    /// A run's end.
    Finish { lease: &'a Lease, end: &'a RunEnd },
    /// A run's events.
    Events { lease: &'a Lease, events: &'a [StoredEvent] },
}

impl<'a> From<&'a Write> for WriteRef<'a> {
    fn from(w: &'a Write) -> Self {
        match w {
            Write::Create { run, owner, ttl } => WriteRef::Create { run, owner, ttl: *ttl },
            Write::Append { lease, batch } => WriteRef::Append { lease, batch },
            Write::Finish { lease, end } => WriteRef::Finish { lease, end },
            Write::Events { lease, events } => WriteRef::Events { lease, events },
        }
    }
}

/// A new run's row, its values sealed.
#[derive(Debug)]
pub(crate) struct CreateRow<'a> {
    pub run: &'a NewRun,
    pub owner: &'a str,
    pub lease_ms: i64,
    pub spec: String,
}

/// A journal batch, sealed and packed.
#[derive(Debug)]
pub(crate) struct AppendRow<'a> {
    pub run_id: &'a str,
    pub epoch: i64,
    /// How many entries it adds.
    pub count: i64,
    pub scratch: Option<String>,
    pub pending: Option<String>,
    /// The journal row (none for a heartbeat).
    pub row: Option<JournalRow>,
}

/// A run's end, sealed.
#[derive(Debug)]
pub(crate) struct FinishRow<'a> {
    pub run_id: &'a str,
    pub epoch: i64,
    pub status: &'static str,
    pub outcome: String,
    pub reason: Option<String>,
    /// The stats, JSON text (clear); `None` keeps the stored ones.
    pub stats: Option<String>,
}

/// A run's events, sealed and packed.
#[derive(Debug)]
pub(crate) struct EventsRow<'a> {
    pub run_id: &'a str,
    pub epoch: i64,
    /// The events row (none when there are no events: the write only checks the lease).
    pub row: Option<EventRow>,
}

impl EventsRow<'_> {
    /// The run's last event seq once written (0: none in this write).
    pub(crate) fn last(&self) -> i64 {
        self.row.as_ref().map_or(0, |r| r.last_seq)
    }
}

/// A write ready to apply.
#[derive(Debug)]
pub(crate) enum Prepared<'a> {
    Create(CreateRow<'a>),
    Append(AppendRow<'a>),
    Finish(FinishRow<'a>),
    Events(EventsRow<'a>),
}

impl Prepared<'_> {
    /// The run it writes.
    pub(crate) fn run_id(&self) -> &str {
        match self {
            Prepared::Create(c) => &c.run.run_id,
            Prepared::Append(a) => a.run_id,
            Prepared::Finish(f) => f.run_id,
            Prepared::Events(e) => e.run_id,
        }
    }
}

/// Each write prepared: its values sealed, its batch packed (an error for a write that
/// cannot be, which is then not applied).
pub(crate) fn prepare<'a>(sealer: &Sealer, writes: &[WriteRef<'a>]) -> Vec<Result<Prepared<'a>, StoreError>> {
    writes.iter().map(|w| prepare_one(sealer, *w)).collect()
}

fn prepare_one<'a>(sealer: &Sealer, write: WriteRef<'a>) -> Result<Prepared<'a>, StoreError> {
    Ok(match write {
        WriteRef::Create { run, owner, ttl } => Prepared::Create(CreateRow {
            run,
            owner,
            lease_ms: row::duration_ms(ttl),
            spec: row::seal_spec(sealer, run)?,
        }),
        WriteRef::Append { lease, batch } => {
            let id = lease.run_id.as_str();
            Prepared::Append(AppendRow {
                run_id: id,
                epoch: lease.epoch,
                count: i64::try_from(batch.entries.len()).unwrap_or(i64::MAX),
                scratch: row::seal_json_opt(sealer, id, "scratch", batch.scratch.as_ref())?,
                pending: row::seal_json_opt(sealer, id, "pending", batch.pending.as_ref())?,
                row: journal::pack(sealer, id, &batch.entries)?,
            })
        }
        WriteRef::Finish { lease, end } => {
            let id = lease.run_id.as_str();
            Prepared::Finish(FinishRow {
                run_id: id,
                epoch: lease.epoch,
                status: end.status.as_str(),
                outcome: row::seal_outcome(sealer, id, end)?,
                reason: row::seal_reason(sealer, id, end.reason.as_deref())?,
                stats: row::stats_json(sealer.store(), id, end)?,
            })
        }
        WriteRef::Events { lease, events } => {
            let id = lease.run_id.as_str();
            Prepared::Events(EventsRow { run_id: id, epoch: lease.epoch, row: events::pack(sealer, id, events)? })
        }
    })
}

/// How a prepared write fared when applied: done, or refused for its own reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Written.
    Done,
    /// Not written: the run already exists (a create).
    Exists,
    /// Not written: the run exists but the lease is not its current one, or it is not
    /// running any more (an append).
    LeaseLost,
    /// Not written: there is no such run.
    NotFound,
}

/// What a run created in a group holds at the end of the group, if its create succeeds:
/// its later writes in the group folded into the row the create inserts (one insert
/// instead of an insert and an update per write). When the create is refused (the run
/// exists), the later writes are applied one by one as usual.
#[derive(Debug)]
pub(crate) struct NewRow<'p> {
    /// The status: `running`, or the status of the end that came last.
    pub status: &'static str,
    /// Whether an end came (the run is released: no owner, no heartbeat).
    pub finished: bool,
    /// How many entries its journal rows hold.
    pub entries: i64,
    pub scratch: Option<&'p str>,
    pub pending: Option<&'p str>,
    pub outcome: Option<&'p str>,
    pub reason: Option<&'p str>,
    /// The stats of the last end that had some.
    pub stats: Option<&'p str>,
    /// The journal rows, in order.
    pub rows: Vec<&'p JournalRow>,
    /// The last event seq (0: none).
    pub events: i64,
    /// The events rows, in order.
    pub event_rows: Vec<&'p EventRow>,
    /// The run's later writes in the group, and how each fares once the create
    /// succeeded: as it would applied in order after it.
    pub chain: Vec<(usize, Fate)>,
}

impl<'p> NewRow<'p> {
    /// A new run's row as the create alone makes it.
    pub(crate) fn plain() -> Self {
        NewRow {
            status: "running",
            finished: false,
            entries: 0,
            scratch: None,
            pending: None,
            outcome: None,
            reason: None,
            stats: None,
            rows: Vec::new(),
            events: 0,
            event_rows: Vec::new(),
            chain: Vec::new(),
        }
    }

    /// Fold `p` (written at `i`, after the create) in.
    fn fold(&mut self, i: usize, p: &'p Prepared<'_>) {
        let fate = match p {
            // The create succeeded, so the run exists.
            Prepared::Create(_) => Fate::Exists,
            // A new run has epoch 1; it takes batches until it ends.
            Prepared::Append(a) if a.epoch == 1 && !self.finished => {
                self.entries = self.entries.saturating_add(a.count);
                self.scratch = a.scratch.as_deref().or(self.scratch);
                self.pending = a.pending.as_deref().or(self.pending);
                self.rows.extend(a.row.as_ref());
                Fate::Done
            }
            // An end replaces any before it (as `finish` does), and clears what batches
            // changed (kept in the outcome).
            Prepared::Finish(f) if f.epoch == 1 => {
                self.finished = true;
                self.status = f.status;
                self.outcome = Some(f.outcome.as_str());
                self.reason = f.reason.as_deref();
                self.stats = f.stats.as_deref().or(self.stats);
                self.scratch = None;
                self.pending = None;
                Fate::Done
            }
            // Events are taken while the run goes, as batches are.
            Prepared::Events(e) if e.epoch == 1 && !self.finished => {
                self.events = self.events.max(e.last());
                self.event_rows.extend(e.row.as_ref());
                Fate::Done
            }
            Prepared::Append(_) | Prepared::Finish(_) | Prepared::Events(_) => Fate::LeaseLost,
        };
        self.chain.push((i, fate));
    }
}

/// For each create of a group (by index), the row it inserts with the run's later writes
/// folded in (see [`NewRow`]); `None` for the other writes.
pub(crate) fn fold<'p>(prepared: &'p [Result<Prepared<'_>, StoreError>]) -> Vec<Option<NewRow<'p>>> {
    let mut out: Vec<Option<NewRow<'p>>> = prepared.iter().map(|_| None).collect();
    let mut created: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, p) in prepared.iter().enumerate() {
        let Ok(p) = p else { continue };
        match created.get(p.run_id()).and_then(|&c| out.get_mut(c)).and_then(Option::as_mut) {
            Some(row) => row.fold(i, p),
            None => {
                if let Prepared::Create(c) = p {
                    created.insert(&c.run.run_id, i);
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(NewRow::plain());
                    }
                }
            }
        }
    }
    out
}

/// The results of a group: the preparation errors, else the fates.
pub(crate) fn results(
    store: &str,
    prepared: Vec<Result<Prepared<'_>, StoreError>>,
    fates: &[Fate],
) -> Vec<Result<(), StoreError>> {
    prepared
        .into_iter()
        .zip(fates.iter().copied().chain(std::iter::repeat(Fate::Done)))
        .map(|(p, fate)| {
            let p = p?;
            let run_id = p.run_id().to_string();
            let store = store.to_string();
            match fate {
                Fate::Done => Ok(()),
                Fate::Exists => Err(StoreError::Exists { store, run_id }),
                Fate::LeaseLost => Err(StoreError::LeaseLost { store, run_id }),
                Fate::NotFound => Err(StoreError::NotFound { store, run_id }),
            }
        })
        .collect()
}

/// The result of a group of one.
pub(crate) fn single(results: Vec<Result<(), StoreError>>) -> Result<(), StoreError> {
    // A group's results are as many as its writes: one here.
    results.into_iter().next().unwrap_or(Ok(()))
}

/// The lease a new run gets.
pub(crate) fn new_lease(run: &NewRun, owner: &str, ttl: Duration) -> Lease {
    Lease { run_id: run.run_id.clone(), owner: owner.to_string(), epoch: 1, next_seq: 1, ttl }
}
