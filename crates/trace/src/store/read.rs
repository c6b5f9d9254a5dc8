//! Reading runs and their events back.

use chrono::{DateTime, Utc};
use operonx_runtime::TraceEvent;
use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, Row, params};

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

/// The bytes of a text or blob column (empty for anything else).
fn bytes(v: ValueRef<'_>) -> &[u8] {
    match v {
        ValueRef::Blob(b) | ValueRef::Text(b) => b,
        _ => &[],
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

/// A `runs` row as read by `trace list` and `trace show`: a `running` run whose writer
/// is known to be gone is [`RunStatus::Crashed`] (see `writer.rs`). Never used where a
/// summary is merged and written back: the derived status is not stored.
fn read_summary(row: &Row<'_>) -> rusqlite::Result<RunSummary> {
    let mut summary = summary_from_row(row)?;
    if summary.status == RunStatus::Running {
        let writer: Option<String> = row.get("writer")?;
        if writer.is_some_and(|w| super::writer::Writer::is_gone(&w)) {
            summary.status = RunStatus::Crashed;
        }
    }
    Ok(summary)
}

impl SqliteStore {
    /// The newest `limit` runs (by start time), newest first. A run left `running` by a
    /// process that no longer exists is [`RunStatus::Crashed`].
    pub fn list_runs(&self, limit: usize) -> Result<Vec<RunSummary>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT * FROM runs ORDER BY started_at DESC, request_id DESC LIMIT ?1")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let runs = stmt.query_map([limit], read_summary)?.collect::<Result<Vec<_>, _>>()?;
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

    /// The summary of one run (by id or unique prefix); `crashed` as in
    /// [`SqliteStore::list_runs`].
    pub fn run(&self, id_or_prefix: &str) -> Result<RunSummary, StoreError> {
        let id = self.resolve_run(id_or_prefix)?;
        Ok(self.conn().query_row("SELECT * FROM runs WHERE request_id = ?1", [&id], read_summary)?)
    }

    /// Every event of one run (by id or unique prefix), in `(timestamp, seq)` order.
    pub fn run_events(&self, id_or_prefix: &str) -> Result<Vec<TraceEvent>, StoreError> {
        let id = self.resolve_run(id_or_prefix)?;
        let conn = self.conn();
        let mut events = Vec::new();
        // Written by version 2: a row per run and batch.
        let mut stmt = conn.prepare_cached("SELECT first_ts, data FROM chunks WHERE request_id = ?1")?;
        let mut rows = stmt.query([&id])?;
        while let Some(row) = rows.next()? {
            let first_ts: i64 = row.get(0)?;
            super::codec::decode(&id, first_ts, bytes(row.get_ref(1)?), &mut events)?;
        }
        // Since: segments of batches.
        let segments: String =
            conn.query_row("SELECT segments FROM runs WHERE request_id = ?1", [&id], |r| r.get(0))?;
        let mut stmt = conn.prepare_cached("SELECT substr(data, ?2, ?3) FROM batches WHERE id = ?1")?;
        for segment in segments.split(';').filter(|s| !s.is_empty()) {
            let corrupt = |reason: &str| StoreError::Corrupt {
                event_id: format!("{id} (segment {segment:?} of its run)"),
                reason: reason.to_string(),
            };
            let parts: Vec<i64> = segment
                .split(':')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| corrupt("not batch:offset:length:time"))?;
            let [batch, at, len, first_ts] = parts[..] else { return Err(corrupt("not batch:offset:length:time")) };
            let data: Option<Vec<u8>> =
                stmt.query_row(params![batch, at + 1, len], |r| Ok(bytes(r.get_ref(0)?).to_vec())).optional()?;
            let data = data.ok_or_else(|| corrupt("its batch is missing"))?;
            if i64::try_from(data.len()).ok() != Some(len) {
                return Err(corrupt("its batch is shorter"));
            }
            super::codec::decode(&id, first_ts, &data, &mut events)?;
        }
        // Segments of a resumed run may interleave with earlier ones.
        events.sort_by_key(TraceEvent::sort_key);
        Ok(events)
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
