//! A group of writes applied in few round trips: the group is cut into rounds, and each
//! round is one statement for all its creates, one for all its journal batches (and one
//! for their rows), one for all its ends, each over arrays (`unnest`). A refused write
//! does not raise an SQL error (which would abort the transaction): creates are
//! `ON CONFLICT DO NOTHING` and updates match on the epoch, each `RETURNING` the runs it
//! wrote; the runs missing from it are looked up, in one statement, only when there are
//! any, to tell a lost lease from a missing run.

use std::collections::{HashMap, HashSet};

use postgres::Row;

use super::{
    EXISTING, FINISH_RUNS, INSERT_EVENTS, INSERT_ROWS, INSERT_RUNS, NOTIFY_EVENTS, TOUCH_EVENTS, TOUCH_RUNS, Tx,
};
use crate::StoreError;
use crate::events::EventRow;
use crate::group::{self, AppendRow, CreateRow, EventsRow, Fate, FinishRow, NewRow, Prepared};
use crate::journal::JournalRow;
use crate::row;

/// The order writes of one run take within a round: its create, its batch, its events,
/// its end.
fn phase(p: &Prepared<'_>) -> u8 {
    match p {
        Prepared::Create(_) => 0,
        Prepared::Append(_) => 1,
        Prepared::Events(_) => 2,
        Prepared::Finish(_) => 3,
    }
}

/// The prepared writes (their indexes) cut into rounds, in order: within a round each
/// run has at most one write of each phase, in phase order, so applying a round's
/// creates, then its batches, then its ends gives what applying its writes one by one
/// in order would (writes of different runs do not interact). A run's second batch, or
/// its batch after its end, starts a new round.
fn rounds(prepared: &[Result<Prepared<'_>, StoreError>]) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut phases: HashMap<&str, u8> = HashMap::new();
    for (i, p) in prepared.iter().enumerate() {
        let Ok(p) = p else { continue };
        let phase = phase(p);
        if phases.get(p.run_id()).is_some_and(|&before| before >= phase) {
            out.push(std::mem::take(&mut current));
            phases.clear();
        }
        phases.insert(p.run_id(), phase);
        current.push(i);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Journal rows and events rows to insert, each with its run.
type RowsOf<'p> = (Vec<(&'p str, &'p JournalRow)>, Vec<(&'p str, &'p EventRow)>);

/// The first column of rows, as text.
fn ids(rows: &[Row]) -> Result<HashSet<String>, postgres::Error> {
    rows.iter().map(|r| r.try_get(0)).collect()
}

/// What applying a group keeps across its rounds.
struct State<'p> {
    now: i64,
    fates: Vec<Fate>,
    /// Writes already applied with the create of their run.
    applied: Vec<bool>,
    folds: Vec<Option<NewRow<'p>>>,
}

impl Tx<'_, '_> {
    /// Apply prepared writes, in order, in this transaction: how each fared (a
    /// preparation error is skipped, its fate unused).
    pub(super) fn apply(&mut self, prepared: &[Result<Prepared<'_>, StoreError>]) -> Result<Vec<Fate>, StoreError> {
        let mut state = State {
            now: row::now_ms(),
            fates: vec![Fate::Done; prepared.len()],
            applied: vec![false; prepared.len()],
            folds: group::fold(prepared),
        };
        for round in rounds(prepared) {
            let mut creates = Vec::new();
            let mut appends = Vec::new();
            let mut finishes = Vec::new();
            let mut events = Vec::new();
            for i in round {
                match &prepared[i] {
                    Ok(Prepared::Create(c)) => creates.push((i, c)),
                    Ok(Prepared::Append(a)) => appends.push((i, a)),
                    Ok(Prepared::Finish(f)) => finishes.push((i, f)),
                    Ok(Prepared::Events(e)) => events.push((i, e)),
                    Err(_) => {}
                }
            }
            let (mut rows, mut event_rows) = self.creates(&creates, &mut state)?;
            let appends: Vec<_> = appends.into_iter().filter(|(i, _)| !state.applied[*i]).collect();
            rows.extend(self.appends(&appends, &mut state)?);
            self.insert_rows(&rows)?;
            let events: Vec<_> = events.into_iter().filter(|(i, _)| !state.applied[*i]).collect();
            event_rows.extend(self.events(&events, &mut state)?);
            self.insert_events(&event_rows)?;
            let finishes: Vec<_> = finishes.into_iter().filter(|(i, _)| !state.applied[*i]).collect();
            self.finishes(state.now, &finishes, &mut state.fates)?;
        }
        Ok(state.fates)
    }

    /// Insert the new runs' rows (one statement); the journal rows and events rows to
    /// insert with them.
    fn creates<'p>(
        &mut self,
        creates: &[(usize, &'p CreateRow<'_>)],
        state: &mut State<'p>,
    ) -> Result<RowsOf<'p>, StoreError> {
        let mut rows = Vec::new();
        let mut event_rows = Vec::new();
        let creates: Vec<_> = creates.iter().filter(|(i, _)| !state.applied[*i]).collect();
        if creates.is_empty() {
            return Ok((rows, event_rows));
        }
        let news: Vec<NewRow<'p>> = creates
            .iter()
            .map(|(i, _)| state.folds.get_mut(*i).and_then(Option::take).unwrap_or_else(NewRow::plain))
            .collect();
        let now = state.now;
        let run_ids: Vec<&str> = creates.iter().map(|(_, c)| c.run.run_id.as_str()).collect();
        let names: Vec<&str> = creates.iter().map(|(_, c)| c.run.graph_name.as_str()).collect();
        let paths: Vec<Option<&str>> = creates.iter().map(|(_, c)| c.run.graph_path.as_deref()).collect();
        let fingerprints: Vec<&str> = creates.iter().map(|(_, c)| c.run.fingerprint.as_str()).collect();
        let specs: Vec<&str> = creates.iter().map(|(_, c)| c.spec.as_str()).collect();
        let scratches: Vec<Option<&str>> = news.iter().map(|n| n.scratch).collect();
        let pendings: Vec<Option<&str>> = news.iter().map(|n| n.pending).collect();
        let outcomes: Vec<Option<&str>> = news.iter().map(|n| n.outcome).collect();
        let reasons: Vec<Option<&str>> = news.iter().map(|n| n.reason).collect();
        let statuses: Vec<&str> = news.iter().map(|n| n.status).collect();
        let owners: Vec<Option<&str>> =
            creates.iter().zip(&news).map(|((_, c), n)| (!n.finished).then_some(c.owner)).collect();
        let heartbeats: Vec<Option<i64>> = news.iter().map(|n| (!n.finished).then_some(now)).collect();
        let leases: Vec<i64> = creates.iter().map(|(_, c)| c.lease_ms).collect();
        let entries: Vec<i64> = news.iter().map(|n| n.entries).collect();
        let tenants: Vec<Option<&str>> = creates.iter().map(|(_, c)| c.run.tenant.as_deref()).collect();
        let events: Vec<i64> = news.iter().map(|n| n.events).collect();
        let stats: Vec<Option<&str>> = news.iter().map(|n| n.stats).collect();
        let inserted = self.query(
            INSERT_RUNS,
            &[
                &now,
                &run_ids,
                &names,
                &paths,
                &fingerprints,
                &specs,
                &scratches,
                &pendings,
                &outcomes,
                &reasons,
                &statuses,
                &owners,
                &heartbeats,
                &leases,
                &entries,
                &tenants,
                &events,
                &stats,
            ],
        )?;
        let inserted = ids(&inserted).map_err(self.err())?;
        for ((i, c), new) in creates.into_iter().zip(news) {
            if !inserted.contains(&c.run.run_id) {
                state.fates[*i] = Fate::Exists;
                continue;
            }
            for &(j, fate) in &new.chain {
                state.fates[j] = fate;
                state.applied[j] = true;
            }
            rows.extend(new.rows.iter().map(|r| (c.run.run_id.as_str(), *r)));
            event_rows.extend(new.event_rows.iter().map(|r| (c.run.run_id.as_str(), *r)));
        }
        Ok((rows, event_rows))
    }

    /// Apply events writes (one statement); the events rows of those written.
    fn events<'p>(
        &mut self,
        writes: &[(usize, &'p EventsRow<'_>)],
        state: &mut State<'p>,
    ) -> Result<Vec<(&'p str, &'p EventRow)>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let run_ids: Vec<&str> = writes.iter().map(|(_, e)| e.run_id).collect();
        let epochs: Vec<i64> = writes.iter().map(|(_, e)| e.epoch).collect();
        let lasts: Vec<i64> = writes.iter().map(|(_, e)| e.last()).collect();
        let rows = self.query(TOUCH_EVENTS, &[&state.now, &run_ids, &epochs, &lasts])?;
        let touched = ids(&rows).map_err(self.err())?;
        let lost = writes.iter().filter(|(_, e)| !touched.contains(e.run_id)).map(|(i, e)| (*i, e.run_id));
        self.lost(lost, &mut state.fates)?;
        Ok(writes
            .iter()
            .filter(|(_, e)| touched.contains(e.run_id))
            .filter_map(|(_, e)| e.row.as_ref().map(|r| (e.run_id, r)))
            .collect())
    }

    /// Insert events rows (one statement) and tell the listeners which runs have new
    /// events (delivered when the transaction commits).
    fn insert_events(&mut self, rows: &[(&str, &EventRow)]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let run_ids: Vec<&str> = rows.iter().map(|(id, _)| *id).collect();
        let seqs: Vec<i64> = rows.iter().map(|(_, r)| r.seq).collect();
        let lasts: Vec<i64> = rows.iter().map(|(_, r)| r.last_seq).collect();
        let bodies: Vec<&[u8]> = rows.iter().map(|(_, r)| r.body.as_slice()).collect();
        self.execute(INSERT_EVENTS, &[&run_ids, &seqs, &lasts, &bodies])?;
        let mut notified: Vec<&str> = run_ids.clone();
        notified.sort_unstable();
        notified.dedup();
        self.query(NOTIFY_EVENTS, &[&notified])?;
        Ok(())
    }

    /// Apply journal batches (one statement); the journal rows of those written.
    fn appends<'p>(
        &mut self,
        appends: &[(usize, &'p AppendRow<'_>)],
        state: &mut State<'p>,
    ) -> Result<Vec<(&'p str, &'p JournalRow)>, StoreError> {
        if appends.is_empty() {
            return Ok(Vec::new());
        }
        let run_ids: Vec<&str> = appends.iter().map(|(_, a)| a.run_id).collect();
        let epochs: Vec<i64> = appends.iter().map(|(_, a)| a.epoch).collect();
        let counts: Vec<i64> = appends.iter().map(|(_, a)| a.count).collect();
        let scratches: Vec<Option<&str>> = appends.iter().map(|(_, a)| a.scratch.as_deref()).collect();
        let pendings: Vec<Option<&str>> = appends.iter().map(|(_, a)| a.pending.as_deref()).collect();
        let rows = self.query(TOUCH_RUNS, &[&state.now, &run_ids, &epochs, &counts, &scratches, &pendings])?;
        let touched = ids(&rows).map_err(self.err())?;
        let lost = appends.iter().filter(|(_, a)| !touched.contains(a.run_id)).map(|(i, a)| (*i, a.run_id));
        self.lost(lost, &mut state.fates)?;
        Ok(appends
            .iter()
            .filter(|(_, a)| touched.contains(a.run_id))
            .filter_map(|(_, a)| a.row.as_ref().map(|r| (a.run_id, r)))
            .collect())
    }

    /// Insert journal rows (one statement).
    fn insert_rows(&mut self, journal: &[(&str, &JournalRow)]) -> Result<(), StoreError> {
        if journal.is_empty() {
            return Ok(());
        }
        let run_ids: Vec<&str> = journal.iter().map(|(id, _)| *id).collect();
        let seqs: Vec<i64> = journal.iter().map(|(_, r)| r.seq).collect();
        let lasts: Vec<i64> = journal.iter().map(|(_, r)| r.last_seq).collect();
        let counts: Vec<i64> = journal.iter().map(|(_, r)| r.count).collect();
        let bodies: Vec<&[u8]> = journal.iter().map(|(_, r)| r.body.as_slice()).collect();
        self.execute(INSERT_ROWS, &[&run_ids, &seqs, &lasts, &counts, &bodies])?;
        Ok(())
    }

    fn finishes(
        &mut self,
        now: i64,
        finishes: &[(usize, &FinishRow<'_>)],
        fates: &mut [Fate],
    ) -> Result<(), StoreError> {
        if finishes.is_empty() {
            return Ok(());
        }
        let run_ids: Vec<&str> = finishes.iter().map(|(_, f)| f.run_id).collect();
        let epochs: Vec<i64> = finishes.iter().map(|(_, f)| f.epoch).collect();
        let statuses: Vec<&str> = finishes.iter().map(|(_, f)| f.status).collect();
        let outcomes: Vec<&str> = finishes.iter().map(|(_, f)| f.outcome.as_str()).collect();
        let reasons: Vec<Option<&str>> = finishes.iter().map(|(_, f)| f.reason.as_deref()).collect();
        let stats: Vec<Option<&str>> = finishes.iter().map(|(_, f)| f.stats.as_deref()).collect();
        let rows = self.query(FINISH_RUNS, &[&now, &run_ids, &epochs, &statuses, &outcomes, &reasons, &stats])?;
        let written = ids(&rows).map_err(self.err())?;
        let lost = finishes.iter().filter(|(_, f)| !written.contains(f.run_id)).map(|(i, f)| (*i, f.run_id));
        self.lost(lost, fates)
    }

    /// The fates of writes whose update matched no row: their run is gone, or taken.
    fn lost<'r>(&mut self, lost: impl Iterator<Item = (usize, &'r str)>, fates: &mut [Fate]) -> Result<(), StoreError> {
        let lost: Vec<(usize, &str)> = lost.collect();
        if lost.is_empty() {
            return Ok(());
        }
        let run_ids: Vec<&str> = lost.iter().map(|(_, id)| *id).collect();
        let rows = self.query(EXISTING, &[&run_ids])?;
        let existing = ids(&rows).map_err(self.err())?;
        for (i, id) in lost {
            fates[i] = if existing.contains(id) { Fate::LeaseLost } else { Fate::NotFound };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;
    use crate::group::{WriteRef, prepare};
    use crate::seal::Sealer;
    use crate::{Batch, Lease, NewRun, RunEnd, RunStatus, StoreKey};

    #[test]
    fn rounds_keep_each_runs_writes_in_order() {
        let sealer = Sealer::new(&StoreKey::from_bytes([1; 32]), "s").unwrap();
        let run = |id: &str| NewRun {
            run_id: id.into(),
            graph_name: "g".into(),
            graph_path: None,
            graph: serde_json::Value::Null,
            fingerprint: "f".into(),
            inputs: Default::default(),
            scratch: Default::default(),
            options: Default::default(),
            ..NewRun::default()
        };
        let (a, b) = (run("a"), run("b"));
        let lease =
            |id: &str| Lease { run_id: id.into(), owner: "o".into(), epoch: 1, next_seq: 1, ttl: Duration::ZERO };
        let (la, lb) = (lease("a"), lease("b"));
        let batch = Batch::default();
        let end = RunEnd {
            status: RunStatus::Done,
            result: None,
            pending: Vec::new(),
            scratch: Default::default(),
            reason: None,
            stats: None,
        };
        let ttl = Duration::ZERO;
        let writes = [
            WriteRef::Create { run: &a, owner: "o", ttl },
            WriteRef::Create { run: &b, owner: "o", ttl },
            WriteRef::Append { lease: &la, batch: &batch },
            WriteRef::Finish { lease: &la, end: &end },
            WriteRef::Append { lease: &lb, batch: &batch },
            WriteRef::Append { lease: &lb, batch: &batch },
            WriteRef::Finish { lease: &lb, end: &end },
            WriteRef::Append { lease: &la, batch: &batch },
            WriteRef::Create { run: &a, owner: "o", ttl },
        ];
        let prepared = prepare(&sealer, &writes);
        assert_eq!(rounds(&prepared), vec![vec![0, 1, 2, 3, 4], vec![5, 6, 7], vec![8]]);
    }
}
