//! Writing events to the store and keeping the `runs` table in step.

use std::collections::HashMap;

use operonx_runtime::TraceEvent;
use rusqlite::{Connection, OptionalExtension, params};

use super::read::summary_from_row;
use crate::error::StoreError;
use crate::summary::{RunAggregate, RunSummary, format_time};

/// The serialized columns of one event's row (the others are read from the event).
#[derive(Debug)]
struct Row {
    timestamp: String,
    ctx: String,
    payload: String,
}

/// Serialize one event's columns.
fn row(e: &TraceEvent) -> Result<Row, StoreError> {
    let corrupt =
        |err: serde_json::Error| StoreError::Corrupt { event_id: e.event_id.clone(), reason: err.to_string() };
    Ok(Row {
        timestamp: format_time(&e.timestamp),
        ctx: serde_json::to_string(&e.ctx).map_err(corrupt)?,
        payload: serde_json::to_string(&e.payload).map_err(corrupt)?,
    })
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Insert the events and fold the new ones into their runs' summaries, in one
/// transaction. Nothing is written if any event cannot be serialized.
pub(super) fn insert(conn: &mut Connection, events: &[TraceEvent]) -> Result<usize, StoreError> {
    let rows = events.iter().map(row).collect::<Result<Vec<Row>, StoreError>>()?;
    let tx = conn.transaction()?;
    let mut added: HashMap<&str, RunAggregate> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO events (request_id, seq, event_id, timestamp, kind, op_name, ctx, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (e, row) in events.iter().zip(&rows) {
            let n = stmt.execute(params![
                e.request_id,
                to_i64(e.seq),
                e.event_id,
                row.timestamp,
                e.kind.as_str(),
                e.op_name,
                row.ctx,
                row.payload
            ])?;
            if n == 1 {
                let agg = added.entry(e.request_id.as_str()).or_insert_with(|| {
                    order.push(e.request_id.as_str());
                    RunAggregate::default()
                });
                agg.add(e);
            }
        }
    }
    let mut new_events = 0usize;
    for request_id in order {
        let Some(agg) = added.get(request_id) else { continue };
        let mut summary = tx
            .query_row("SELECT * FROM runs WHERE request_id = ?1", [request_id], summary_from_row)
            .optional()?
            .unwrap_or_else(|| RunSummary::new(request_id));
        let before = summary.event_count;
        agg.apply(&mut summary);
        new_events += usize::try_from(summary.event_count - before).unwrap_or(usize::MAX);
        save(&tx, &summary)?;
    }
    tx.commit()?;
    Ok(new_events)
}

fn save(conn: &Connection, s: &RunSummary) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO runs (request_id, graph, started_at, ended_at, status, duration_ms, op_count,
             error_count, cancelled_count, interrupted_count, tokens, cost_usd, event_count, dropped_events)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
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
    ])?;
    Ok(())
}
