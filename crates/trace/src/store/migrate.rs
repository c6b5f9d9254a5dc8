//! Bringing older stores up to date. Version 1 kept a row per event in an `events`
//! table; version 2 a `chunks` row per run and batch (version 1's events are moved
//! there); version 3 a `batches` row per batch, found through the runs' `segments`
//! (version 2's chunks stay where they are and are still read).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use operonx_runtime::{EventKind, TraceEvent};
use rusqlite::Transaction;
use serde_json::Value;

use super::write::{chunk_statement, insert_chunk};
use crate::error::StoreError;

/// The columns of a version 1 `events` row.
struct EventRow {
    request_id: String,
    seq: i64,
    event_id: String,
    timestamp: String,
    kind: String,
    op_name: Option<String>,
    ctx: String,
    payload: String,
}

impl EventRow {
    fn into_event(self) -> Result<TraceEvent, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt { event_id: self.event_id.clone(), reason };
        let timestamp = DateTime::parse_from_rfc3339(&self.timestamp)
            .map_err(|e| corrupt(format!("timestamp {:?}: {e}", self.timestamp)))?
            .with_timezone(&Utc);
        let kind: EventKind = serde_json::from_value(Value::String(self.kind.clone()))
            .map_err(|_| corrupt(format!("unknown kind {:?}", self.kind)))?;
        let ctx: Vec<String> = serde_json::from_str(&self.ctx).map_err(|e| corrupt(format!("ctx: {e}")))?;
        let payload: BTreeMap<String, Value> =
            serde_json::from_str(&self.payload).map_err(|e| corrupt(format!("payload: {e}")))?;
        Ok(TraceEvent {
            seq: u64::try_from(self.seq).map_err(|_| corrupt(format!("seq {}", self.seq)))?,
            event_id: self.event_id,
            request_id: self.request_id,
            kind,
            op_name: self.op_name,
            ctx,
            timestamp,
            payload,
        })
    }
}

/// Move every event of the version 1 `events` table into chunks (one per run) and drop
/// the table. Runs inside the caller's transaction: a failure leaves the store as it was.
pub(super) fn events_to_chunks(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let exists: bool =
        tx.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'", [], |r| {
            r.get::<_, i64>(0).map(|n| n > 0)
        })?;
    if !exists {
        return Ok(());
    }
    let runs: Vec<String> =
        tx.prepare("SELECT DISTINCT request_id FROM events")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let mut read = tx.prepare(
        "SELECT request_id, seq, event_id, timestamp, kind, op_name, ctx, payload FROM events
         WHERE request_id = ?1 ORDER BY timestamp, seq, id",
    )?;
    let mut chunks = chunk_statement(tx)?;
    let mut scratch = Vec::new();
    for run in runs {
        let rows = read
            .query_map([&run], |r| {
                Ok(EventRow {
                    request_id: r.get(0)?,
                    seq: r.get(1)?,
                    event_id: r.get(2)?,
                    timestamp: r.get(3)?,
                    kind: r.get(4)?,
                    op_name: r.get(5)?,
                    ctx: r.get(6)?,
                    payload: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let events = rows.into_iter().map(EventRow::into_event).collect::<Result<Vec<_>, _>>()?;
        insert_chunk(&mut chunks, &events, &mut scratch)?;
    }
    drop((read, chunks));
    tx.execute_batch("DROP TABLE events")?;
    tracing::info!("trace store migrated from schema 1 to 2");
    Ok(())
}

/// Give a `runs` table of version 1 or 2 its `segments` column (version 3).
pub(super) fn add_segments(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let has: bool =
        tx.query_row("SELECT count(*) > 0 FROM pragma_table_info('runs') WHERE name = 'segments'", [], |r| r.get(0))?;
    if !has {
        tx.execute_batch("ALTER TABLE runs ADD COLUMN segments TEXT NOT NULL DEFAULT ''")?;
        tracing::info!("trace store: runs now list their segments (schema 3)");
    }
    Ok(())
}

/// Give a `runs` table of version 3 or earlier its `writer` column (version 4).
pub(super) fn add_writer(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let has: bool =
        tx.query_row("SELECT count(*) > 0 FROM pragma_table_info('runs') WHERE name = 'writer'", [], |r| r.get(0))?;
    if !has {
        tx.execute_batch("ALTER TABLE runs ADD COLUMN writer TEXT")?;
        tracing::info!("trace store: runs now record their writer (schema 4)");
    }
    Ok(())
}
