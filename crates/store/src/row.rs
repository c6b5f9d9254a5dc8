//! What both backends share: a run's row as read from either database, how its status
//! is derived (a `running` row whose lease expired or whose owner is gone reads as
//! crashed), and the conversions between stored text and the crate's types.

use std::time::Duration;

use chrono::{DateTime, Utc};
use operonx_runtime::Interrupt;
use serde_json::{Map, Value};

use crate::{Entry, EntryKind, ListFilter, RunStatus, RunSummary, StoreError, StoredRun};

/// The columns of a run's row that a listing needs.
#[derive(Debug, Clone)]
pub(crate) struct SummaryRow {
    pub run_id: String,
    pub graph_name: String,
    pub status: String,
    pub owner: Option<String>,
    pub heartbeat_ms: Option<i64>,
    pub lease_ms: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub resumes: i64,
    pub entries: i64,
    pub reason: Option<String>,
}

/// A run's whole row (the JSON columns as stored text).
#[derive(Debug, Clone)]
pub(crate) struct RunRow {
    pub summary: SummaryRow,
    pub graph_path: Option<String>,
    pub graph: String,
    pub fingerprint: String,
    pub inputs: String,
    pub scratch: String,
    pub options: String,
    pub answers: String,
    pub pending: String,
    pub result: Option<String>,
}

/// A journal row as stored.
#[derive(Debug, Clone)]
pub(crate) struct EntryRow {
    pub seq: i64,
    pub kind: String,
    pub key: String,
    pub idx: Option<i64>,
    pub body: String,
}

/// Now, in unix milliseconds (the local clock).
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A duration in milliseconds, as stored (saturating).
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Unix milliseconds as a time (the epoch when out of range).
pub(crate) fn time_of(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// How a row's status reads at `now`: a `running` row whose heartbeat is older than its
/// lease (or missing), or whose owner is known to be gone, is crashed.
pub(crate) fn derive_status(store: &str, row: &SummaryRow, now: i64) -> Result<RunStatus, StoreError> {
    let status: RunStatus = row.status.parse().map_err(|message| StoreError::Corrupt {
        store: store.to_string(),
        run_id: row.run_id.clone(),
        what: "status".into(),
        message,
    })?;
    if status != RunStatus::Running {
        return Ok(status);
    }
    let expired = row.heartbeat_ms.is_none_or(|hb| now.saturating_sub(hb) > row.lease_ms);
    let gone = row.owner.as_deref().is_some_and(operonx_trace::ProcessIdentity::is_gone);
    Ok(if expired || gone { RunStatus::Crashed } else { RunStatus::Running })
}

/// The summary of a row with its status as derived at `now`.
pub(crate) fn summary(store: &str, row: SummaryRow, now: i64) -> Result<RunSummary, StoreError> {
    let status = derive_status(store, &row, now)?;
    Ok(RunSummary {
        run_id: row.run_id,
        graph: row.graph_name,
        status,
        created_at: time_of(row.created_ms),
        updated_at: time_of(row.updated_ms),
        entries: u64::try_from(row.entries).unwrap_or(0),
        resumes: u32::try_from(row.resumes).unwrap_or(0),
        reason: row.reason,
    })
}

/// The stored status text a listing or prune filter selects in the database (a filter on
/// `running` or `crashed` selects `running` rows, the rest is told once derived).
pub(crate) fn stored_status(status: Option<RunStatus>) -> Option<&'static str> {
    status.map(|s| match s {
        RunStatus::Crashed => RunStatus::Running.as_str(),
        other => other.as_str(),
    })
}

/// The row limit a listing can leave to the database (none when the status filter is
/// decided after derivation).
pub(crate) fn sql_limit(filter: &ListFilter) -> Option<i64> {
    match filter.status {
        Some(RunStatus::Running | RunStatus::Crashed) => None,
        _ => Some(i64::try_from(filter.limit).unwrap_or(i64::MAX)),
    }
}

/// Summaries of `rows` (newest first) that pass `filter`, at most `filter.limit`.
pub(crate) fn filter_summaries(
    store: &str,
    rows: impl IntoIterator<Item = SummaryRow>,
    filter: &ListFilter,
    now: i64,
) -> Result<Vec<RunSummary>, StoreError> {
    let mut out = Vec::new();
    for row in rows {
        if out.len() >= filter.limit {
            break;
        }
        let s = summary(store, row, now)?;
        if filter.status.is_none_or(|want| want == s.status) {
            out.push(s);
        }
    }
    Ok(out)
}

/// Whether prune may delete a row: not running (crashed is fine), and of `status` when
/// given.
pub(crate) fn prunable(store: &str, row: &SummaryRow, status: Option<RunStatus>, now: i64) -> Result<bool, StoreError> {
    let derived = derive_status(store, row, now)?;
    Ok(derived != RunStatus::Running && status.is_none_or(|want| want == derived))
}

/// JSON text of a value.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(
    store: &str,
    run_id: &str,
    what: &str,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| corrupt(store, run_id, what, &e))
}

fn corrupt(store: &str, run_id: &str, what: &str, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        store: store.to_string(),
        run_id: run_id.to_string(),
        what: what.to_string(),
        message: e.to_string(),
    }
}

fn from_json<T: serde::de::DeserializeOwned>(
    store: &str,
    run_id: &str,
    what: &str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(store, run_id, what, &e))
}

/// The stored answers (`stored`, JSON text) with `new` merged in (new keys win), as text.
pub(crate) fn merge_answers(
    store: &str,
    run_id: &str,
    stored: &str,
    new: &Map<String, Value>,
) -> Result<String, StoreError> {
    if new.is_empty() {
        return Ok(stored.to_string());
    }
    let mut answers: Map<String, Value> = from_json(store, run_id, "answers", stored)?;
    for (k, v) in new {
        answers.insert(k.clone(), v.clone());
    }
    to_json(store, run_id, "answers", &answers)
}

/// A journal entry from its row.
pub(crate) fn entry(store: &str, run_id: &str, row: EntryRow) -> Result<Entry, StoreError> {
    let what = || format!("journal entry {}", row.seq);
    let kind = EntryKind::parse(&row.kind)
        .ok_or_else(|| corrupt(store, run_id, &what(), &format!("unknown kind {:?}", row.kind)))?;
    let index = row
        .idx
        .map(u32::try_from)
        .transpose()
        .map_err(|e| corrupt(store, run_id, &what(), &format!("index out of range: {e}")))?;
    Ok(Entry { seq: row.seq, kind, key: row.key, index, body: row.body })
}

/// A stored run from its row and journal rows, its status as derived at `now`.
pub(crate) fn stored_run(store: &str, row: RunRow, journal: Vec<EntryRow>, now: i64) -> Result<StoredRun, StoreError> {
    let run_id = row.summary.run_id.clone();
    let id = run_id.as_str();
    let entries = journal.into_iter().map(|e| entry(store, id, e)).collect::<Result<Vec<_>, _>>()?;
    let mut summary = summary(store, row.summary, now)?;
    summary.entries = entries.len() as u64;
    Ok(StoredRun {
        summary,
        graph_path: row.graph_path,
        graph: from_json(store, id, "graph", &row.graph)?,
        fingerprint: row.fingerprint,
        inputs: from_json(store, id, "inputs", &row.inputs)?,
        scratch: from_json(store, id, "scratch", &row.scratch)?,
        options: from_json(store, id, "options", &row.options)?,
        answers: from_json(store, id, "answers", &row.answers)?,
        pending: from_json::<Vec<Interrupt>>(store, id, "pending", &row.pending)?,
        result: row.result.as_deref().map(|r| from_json(store, id, "result", r)).transpose()?,
        entries,
    })
}

/// Problems found by a consistency check, as one message (`None` when there are none).
pub(crate) fn problems(orphans: &[String], miscounted: &[(String, i64, i64)], other: &[String]) -> Option<String> {
    const SHOWN: usize = 10;
    let mut out: Vec<String> = other.to_vec();
    if !orphans.is_empty() {
        let names: Vec<&str> = orphans.iter().take(SHOWN).map(String::as_str).collect();
        let more = if orphans.len() > SHOWN { format!(" and {} more", orphans.len() - SHOWN) } else { String::new() };
        out.push(format!("journal entries of runs that do not exist: {}{more}", names.join(", ")));
    }
    if !miscounted.is_empty() {
        let shown: Vec<String> = miscounted
            .iter()
            .take(SHOWN)
            .map(|(id, counted, rows)| format!("{id} (counts {counted}, has {rows})"))
            .collect();
        let more =
            if miscounted.len() > SHOWN { format!(" and {} more", miscounted.len() - SHOWN) } else { String::new() };
        out.push(format!("runs whose entry count differs from their journal: {}{more}", shown.join(", ")));
    }
    (!out.is_empty()).then(|| out.join("; "))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(status: &str, owner: Option<&str>, heartbeat_ms: Option<i64>) -> SummaryRow {
        SummaryRow {
            run_id: "r".into(),
            graph_name: "g".into(),
            status: status.into(),
            owner: owner.map(String::from),
            heartbeat_ms,
            lease_ms: 1000,
            created_ms: 0,
            updated_ms: 0,
            resumes: 0,
            entries: 0,
            reason: None,
        }
    }

    #[test]
    fn running_rows_read_as_crashed_when_the_lease_expired() {
        let now = 10_000;
        assert_eq!(derive_status("s", &row("running", Some("x"), Some(9_500)), now).unwrap(), RunStatus::Running);
        assert_eq!(derive_status("s", &row("running", Some("x"), Some(9_000)), now).unwrap(), RunStatus::Running);
        assert_eq!(derive_status("s", &row("running", Some("x"), Some(8_999)), now).unwrap(), RunStatus::Crashed);
        assert_eq!(derive_status("s", &row("running", Some("x"), None), now).unwrap(), RunStatus::Crashed);
        assert_eq!(derive_status("s", &row("waiting", None, None), now).unwrap(), RunStatus::Waiting);
        assert!(matches!(derive_status("s", &row("bogus", None, None), now), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn answers_merge_with_new_keys_winning_and_order_kept() {
        let new: Map<String, Value> = serde_json::from_str(r#"{"b": 3, "c": 4}"#).unwrap();
        let merged = merge_answers("s", "r", r#"{"a":1,"b":2}"#, &new).unwrap();
        assert_eq!(merged, r#"{"a":1,"b":3,"c":4}"#);
        assert_eq!(merge_answers("s", "r", r#"{"z":1}"#, &Map::new()).unwrap(), r#"{"z":1}"#);
    }

    #[test]
    fn problems_are_listed_and_bounded() {
        assert_eq!(problems(&[], &[], &[]), None);
        let orphans: Vec<String> = (0..12).map(|i| format!("r{i}")).collect();
        let p = problems(&orphans, &[("x".into(), 2, 3)], &[]).unwrap();
        assert!(p.contains("r0, r1") && p.contains("and 2 more") && p.contains("x (counts 2, has 3)"), "{p}");
    }
}
