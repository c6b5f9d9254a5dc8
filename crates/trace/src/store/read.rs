//! Reading runs and their events back.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use operonx_runtime::{EventKind, TraceEvent};
use rusqlite::{OptionalExtension, Row};
use serde_json::Value;

use super::SqliteStore;
use crate::error::StoreError;
use crate::summary::{RunStatus, RunSummary};

fn time(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok()).map(|t| t.with_timezone(&Utc))
}

fn count(row: &Row<'_>, col: &str) -> rusqlite::Result<u64> {
    row.get::<_, i64>(col).map(|n| u64::try_from(n).unwrap_or(0))
}

/// A `runs` row as a summary.
pub(super) fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<RunSummary> {
    Ok(RunSummary {
        request_id: row.get("request_id")?,
        graph: row.get("graph")?,
        started_at: time(row.get("started_at")?),
        ended_at: time(row.get("ended_at")?),
        status: RunStatus::parse(&row.get::<_, String>("status")?),
        duration_ms: row.get("duration_ms")?,
        op_count: count(row, "op_count")?,
        error_count: count(row, "error_count")?,
        cancelled_count: count(row, "cancelled_count")?,
        interrupted_count: count(row, "interrupted_count")?,
        tokens: count(row, "tokens")?,
        cost_usd: row.get("cost_usd")?,
        event_count: count(row, "event_count")?,
        dropped_events: count(row, "dropped_events")?,
    })
}

/// The raw columns of an `events` row.
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

/// `prefix` with the `LIKE` wildcards escaped, then `%`.
fn like_prefix(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

impl SqliteStore {
    /// The newest `limit` runs (by start time), newest first.
    pub fn list_runs(&self, limit: usize) -> Result<Vec<RunSummary>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT * FROM runs ORDER BY started_at DESC, request_id DESC LIMIT ?1")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let runs = stmt.query_map([limit], summary_from_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(runs)
    }

    /// The full id of the run whose id is `id_or_prefix`, or the only one starting with it.
    pub fn resolve_run(&self, id_or_prefix: &str) -> Result<String, StoreError> {
        if id_or_prefix.is_empty() {
            return Err(StoreError::RunNotFound(String::new()));
        }
        let conn = self.conn();
        let exact: Option<String> = conn
            .query_row("SELECT request_id FROM runs WHERE request_id = ?1", [id_or_prefix], |r| r.get(0))
            .optional()?;
        if let Some(id) = exact {
            return Ok(id);
        }
        let mut stmt = conn.prepare_cached(
            "SELECT request_id FROM runs WHERE request_id LIKE ?1 ESCAPE '\\' ORDER BY started_at DESC LIMIT 6",
        )?;
        let mut ids =
            stmt.query_map([like_prefix(id_or_prefix)], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
        match ids.len() {
            0 => Err(StoreError::RunNotFound(id_or_prefix.to_string())),
            1 => Ok(ids.remove(0)),
            _ => Err(StoreError::Ambiguous { prefix: id_or_prefix.to_string(), candidates: ids }),
        }
    }

    /// The summary of one run (by id or unique prefix).
    pub fn run(&self, id_or_prefix: &str) -> Result<RunSummary, StoreError> {
        let id = self.resolve_run(id_or_prefix)?;
        Ok(self.conn().query_row("SELECT * FROM runs WHERE request_id = ?1", [&id], summary_from_row)?)
    }

    /// Every event of one run (by id or unique prefix), in `(timestamp, seq)` order.
    pub fn run_events(&self, id_or_prefix: &str) -> Result<Vec<TraceEvent>, StoreError> {
        let id = self.resolve_run(id_or_prefix)?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT request_id, seq, event_id, timestamp, kind, op_name, ctx, payload FROM events
             WHERE request_id = ?1 ORDER BY timestamp, seq, id",
        )?;
        let rows = stmt
            .query_map([&id], |r| {
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
        rows.into_iter().map(EventRow::into_event).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::like_prefix;

    #[test]
    fn like_wildcards_in_prefixes_are_literal() {
        assert_eq!(like_prefix("a_b%c\\"), "a\\_b\\%c\\\\%");
    }
}
