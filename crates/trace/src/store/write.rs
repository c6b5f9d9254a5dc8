//! Writing events to the store and keeping the `runs` table in step.
//!
//! A batch is stored as one row: its runs' events, one per line (see `codec`), run after
//! run; each run's row notes where its lines are (`segments`). A row per event cost SQLite
//! more than the rest of the trace path together, a row per run and batch still a fifth
//! of the store's time; runs are always read back whole.

use rusqlite::{CachedStatement, Connection, Statement, Transaction, params};

use super::read::summary_from_row;
use crate::error::StoreError;
use crate::recorded::EventView;
use crate::summary::{RunAggregate, RunSummary, format_time};

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Insert one version 2 chunk of one run's events (migrating version 1) unless the same
/// chunk (same run, same first event) is stored already. Returns whether it was new.
pub(super) fn insert_chunk<E: EventView>(
    stmt: &mut Statement<'_>,
    events: &[E],
    scratch: &mut Vec<u8>,
) -> Result<bool, StoreError> {
    let Some(first) = events.first() else { return Ok(false) };
    scratch.clear();
    super::codec::encode(events, scratch)?;
    let n = stmt.execute(params![
        first.request_id(),
        first.timestamp_micros(),
        to_i64(first.seq()),
        to_i64(events.len() as u64),
        &scratch[..]
    ])?;
    Ok(n == 1)
}

/// The statement [`insert_chunk`] runs.
pub(super) fn chunk_statement<'a>(tx: &'a Transaction<'_>) -> Result<CachedStatement<'a>, StoreError> {
    Ok(tx.prepare_cached(
        "INSERT OR IGNORE INTO chunks (request_id, first_ts, first_seq, event_count, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?)
}

/// Store the events (one batch: each run's consecutive events one segment of it) and fold
/// them into their runs' summaries, in one transaction. A batch stored before (same
/// first and last events, same size) is not stored again. Nothing is written if any event cannot be serialized.
pub(super) fn insert<E: EventView>(conn: &mut Connection, events: &[E], writer: &str) -> Result<usize, StoreError> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else { return Ok(0) };
    let mut data = Vec::with_capacity(events.len() * 64);
    let mut segments = Vec::new();
    for run in events.chunk_by(|a, b| a.request_id() == b.request_id()) {
        let at = data.len();
        super::codec::encode(run, &mut data)?;
        segments.push((run, at, data.len() - at));
    }
    let tx = conn.transaction()?;
    let added = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO batches (first_request, first_ts, first_seq, last_request, last_ts, last_seq,
             event_count, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            first.request_id(),
            first.timestamp_micros(),
            to_i64(first.seq()),
            last.request_id(),
            last.timestamp_micros(),
            to_i64(last.seq()),
            to_i64(events.len() as u64),
            &data[..]
        ])?;
    if added == 0 {
        return Ok(0);
    }
    let batch = tx.last_insert_rowid();
    {
        let mut add_run = tx.prepare_cached(&format!("INSERT OR IGNORE {SAVE_RUN}"))?;
        for (run, at, len) in segments {
            let request_id = run[0].request_id();
            let segment = format!("{batch}:{at}:{len}:{}", run[0].timestamp_micros());
            let mut agg = RunAggregate::default();
            run.iter().for_each(|e| agg.add(e));
            let mut summary = RunSummary::new(request_id);
            agg.apply(&mut summary);
            // A run seen for the first time (the common case) is one insert; one seen
            // before (an earlier batch, a resumed run) has its summary read and merged.
            if save(&mut add_run, &summary, &segment, writer)? {
                continue;
            }
            let (mut summary, known): (RunSummary, String) = tx
                .prepare_cached("SELECT * FROM runs WHERE request_id = ?1")?
                .query_row([request_id], |row| Ok((summary_from_row(row)?, row.get("segments")?)))?;
            agg.apply(&mut summary);
            let segments = if known.is_empty() { segment } else { format!("{known};{segment}") };
            let mut replace = tx.prepare_cached(&format!("INSERT OR REPLACE {SAVE_RUN}"))?;
            save(&mut replace, &summary, &segments, writer)?;
        }
    }
    tx.commit()?;
    Ok(events.len())
}

/// The columns of a `runs` row, after `INSERT [OR ...]`.
const SAVE_RUN: &str = "INTO runs (request_id, graph, started_at, ended_at, status, duration_ms, op_count,
     error_count, cancelled_count, interrupted_count, tokens, cost_usd, event_count, dropped_events, segments, writer)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

/// Run a [`SAVE_RUN`] statement for `s`, its `segments` and the process writing it;
/// returns whether a row was written.
fn save(stmt: &mut Statement<'_>, s: &RunSummary, segments: &str, writer: &str) -> Result<bool, StoreError> {
    let n = stmt.execute(params![
        s.request_id,
        s.graph,
        s.started_at.as_ref().map(format_time),
        s.ended_at.as_ref().map(format_time),
        s.status.as_str(),
        s.duration_ms,
        to_i64(s.op_count),
        to_i64(s.error_count),
        to_i64(s.cancelled_count),
        to_i64(s.interrupted_count),
        to_i64(s.tokens),
        s.cost_usd,
        to_i64(s.event_count),
        to_i64(s.dropped_events),
        segments,
        writer,
    ])?;
    Ok(n == 1)
}
