//! What both backends share: a run's row as read from either database, how its status
//! is derived (a `running` row whose lease expired or whose owner is gone reads as
//! crashed), and the conversions between stored text and the crate's types, which seal
//! the columns holding user data on the way in and open them on the way out (see
//! [`crate::seal`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use operonx_runtime::Interrupt;
use serde_json::{Map, Value};

use crate::seal::{Place, Sealer, is_sealed};
use crate::{Entry, EntryKind, ListFilter, RunStatus, RunSummary, StoreError, StoredRun};

/// The columns of a run's row that hold user data, sealed (the rest are clear: ids,
/// names, status, owner, times, counters). The journal's `body` is sealed too.
pub(crate) const SEALED_COLUMNS: [&str; 8] =
    ["graph", "inputs", "scratch", "options", "answers", "pending", "result", "reason"];

/// The columns of a run's row that a listing needs (`reason` as stored: sealed).
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

/// A run's whole row (the JSON columns as stored text: sealed).
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

/// A journal row as stored (`body` sealed).
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

/// The summary of a row with its status as derived at `now` (its reason opened).
pub(crate) fn summary(sealer: &Sealer, row: SummaryRow, now: i64) -> Result<RunSummary, StoreError> {
    let status = derive_status(sealer.store(), &row, now)?;
    let reason = sealer.open_opt(&Place::Run { run_id: &row.run_id, column: "reason" }, row.reason.as_deref())?;
    Ok(RunSummary {
        run_id: row.run_id,
        graph: row.graph_name,
        status,
        created_at: time_of(row.created_ms),
        updated_at: time_of(row.updated_ms),
        entries: u64::try_from(row.entries).unwrap_or(0),
        resumes: u32::try_from(row.resumes).unwrap_or(0),
        reason,
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
    sealer: &Sealer,
    rows: impl IntoIterator<Item = SummaryRow>,
    filter: &ListFilter,
    now: i64,
) -> Result<Vec<RunSummary>, StoreError> {
    let mut out = Vec::new();
    for row in rows {
        if out.len() >= filter.limit {
            break;
        }
        let s = summary(sealer, row, now)?;
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

/// `value` as JSON text, sealed for the run's `column`.
pub(crate) fn seal_json<T: serde::Serialize + ?Sized>(
    sealer: &Sealer,
    run_id: &str,
    column: &str,
    value: &T,
) -> Result<String, StoreError> {
    let text = to_json(sealer.store(), run_id, column, value)?;
    sealer.seal(&Place::Run { run_id, column }, &text)
}

/// [`seal_json`] of a value that may be missing.
pub(crate) fn seal_json_opt<T: serde::Serialize>(
    sealer: &Sealer,
    run_id: &str,
    column: &str,
    value: Option<&T>,
) -> Result<Option<String>, StoreError> {
    value.map(|v| seal_json(sealer, run_id, column, v)).transpose()
}

/// The JSON value the run's `column` holds, sealed as `stored`.
fn open_json<T: serde::de::DeserializeOwned>(
    sealer: &Sealer,
    run_id: &str,
    column: &str,
    stored: &str,
) -> Result<T, StoreError> {
    let text = sealer.open(&Place::Run { run_id, column }, stored)?;
    from_json(sealer.store(), run_id, column, &text)
}

/// The run's `reason`, sealed (`None` kept).
pub(crate) fn seal_reason(sealer: &Sealer, run_id: &str, reason: Option<&str>) -> Result<Option<String>, StoreError> {
    sealer.seal_opt(&Place::Run { run_id, column: "reason" }, reason)
}

/// Where a journal entry's body is stored (what its sealing binds it to).
fn entry_place<'a>(run_id: &'a str, seq: i64, kind: &'a str, key: &'a str, idx: Option<i64>) -> Place<'a> {
    Place::Entry { run_id, seq, kind, key, idx }
}

/// The body of `entry` of the run, sealed.
pub(crate) fn seal_body(sealer: &Sealer, run_id: &str, entry: &Entry) -> Result<String, StoreError> {
    let place = entry_place(run_id, entry.seq, entry.kind.as_str(), &entry.key, entry.index.map(i64::from));
    sealer.seal(&place, &entry.body)
}

/// The stored answers (`stored`, sealed JSON text) with `new` merged in (new keys win),
/// sealed again (`stored` itself when there is nothing new).
pub(crate) fn merge_answers(
    sealer: &Sealer,
    run_id: &str,
    stored: &str,
    new: &Map<String, Value>,
) -> Result<String, StoreError> {
    if new.is_empty() {
        return Ok(stored.to_string());
    }
    let mut answers: Map<String, Value> = open_json(sealer, run_id, "answers", stored)?;
    for (k, v) in new {
        answers.insert(k.clone(), v.clone());
    }
    seal_json(sealer, run_id, "answers", &answers)
}

/// A journal entry from its row (its body opened).
pub(crate) fn entry(sealer: &Sealer, run_id: &str, row: EntryRow) -> Result<Entry, StoreError> {
    let store = sealer.store();
    let what = || format!("journal entry {}", row.seq);
    let kind = EntryKind::parse(&row.kind)
        .ok_or_else(|| corrupt(store, run_id, &what(), &format!("unknown kind {:?}", row.kind)))?;
    let index = row
        .idx
        .map(u32::try_from)
        .transpose()
        .map_err(|e| corrupt(store, run_id, &what(), &format!("index out of range: {e}")))?;
    let body = sealer.open(&entry_place(run_id, row.seq, &row.kind, &row.key, row.idx), &row.body)?;
    Ok(Entry { seq: row.seq, kind, key: row.key, index, body })
}

/// A stored run from its row and journal rows (opened), its status as derived at `now`.
pub(crate) fn stored_run(
    sealer: &Sealer,
    row: RunRow,
    journal: Vec<EntryRow>,
    now: i64,
) -> Result<StoredRun, StoreError> {
    let run_id = row.summary.run_id.clone();
    let id = run_id.as_str();
    let entries = journal.into_iter().map(|e| entry(sealer, id, e)).collect::<Result<Vec<_>, _>>()?;
    let mut summary = summary(sealer, row.summary, now)?;
    summary.entries = entries.len() as u64;
    Ok(StoredRun {
        summary,
        graph_path: row.graph_path,
        graph: open_json(sealer, id, "graph", &row.graph)?,
        fingerprint: row.fingerprint,
        inputs: open_json(sealer, id, "inputs", &row.inputs)?,
        scratch: open_json(sealer, id, "scratch", &row.scratch)?,
        options: open_json(sealer, id, "options", &row.options)?,
        answers: open_json(sealer, id, "answers", &row.answers)?,
        pending: open_json::<Vec<Interrupt>>(sealer, id, "pending", &row.pending)?,
        result: row.result.as_deref().map(|r| open_json(sealer, id, "result", r)).transpose()?,
        entries,
    })
}

/// A run row's [`SEALED_COLUMNS`] values as a store written before sealing holds them,
/// sealed (values already sealed, and missing ones, kept). `None` when none changed.
pub(crate) fn seal_legacy_run(
    sealer: &Sealer,
    run_id: &str,
    values: &[Option<String>],
) -> Result<Option<Vec<Option<String>>>, StoreError> {
    let mut changed = false;
    let mut out = Vec::with_capacity(values.len());
    for (column, value) in SEALED_COLUMNS.iter().zip(values) {
        match value {
            Some(v) if !is_sealed(v) => {
                changed = true;
                out.push(Some(sealer.seal(&Place::Run { run_id, column }, v)?));
            }
            other => out.push(other.clone()),
        }
    }
    Ok(changed.then_some(out))
}

/// A journal row's body as a store written before sealing holds it, sealed (`None` when
/// it already is).
pub(crate) fn seal_legacy_body(sealer: &Sealer, run_id: &str, row: &EntryRow) -> Result<Option<String>, StoreError> {
    if is_sealed(&row.body) {
        return Ok(None);
    }
    sealer.seal(&entry_place(run_id, row.seq, &row.kind, &row.key, row.idx), &row.body).map(Some)
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
        let sealer = Sealer::new(&crate::StoreKey::from_bytes([1; 32]), "s");
        let answers = Place::Run { run_id: "r", column: "answers" };
        let new: Map<String, Value> = serde_json::from_str(r#"{"b": 3, "c": 4}"#).unwrap();
        let stored = sealer.seal(&answers, r#"{"a":1,"b":2}"#).unwrap();
        let merged = merge_answers(&sealer, "r", &stored, &new).unwrap();
        assert_eq!(sealer.open(&answers, &merged).unwrap(), r#"{"a":1,"b":3,"c":4}"#);
        assert_eq!(merge_answers(&sealer, "r", &stored, &Map::new()).unwrap(), stored);
        assert!(matches!(merge_answers(&sealer, "q", &stored, &new), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn legacy_values_are_sealed_once() {
        let sealer = Sealer::new(&crate::StoreKey::from_bytes([1; 32]), "s");
        let sealed = sealer.seal(&Place::Run { run_id: "r", column: "inputs" }, "{}").unwrap();
        let mut values: Vec<Option<String>> = vec![Some("{}".into()); SEALED_COLUMNS.len()];
        values[1] = Some(sealed.clone());
        values[7] = None;
        let out = seal_legacy_run(&sealer, "r", &values).unwrap().unwrap();
        assert_eq!((out[1].as_deref(), out[7].as_deref()), (Some(sealed.as_str()), None));
        assert_eq!(
            sealer.open(&Place::Run { run_id: "r", column: "graph" }, out[0].as_deref().unwrap()).unwrap(),
            "{}"
        );
        assert_eq!(seal_legacy_run(&sealer, "r", &out).unwrap(), None);
    }

    #[test]
    fn problems_are_listed_and_bounded() {
        assert_eq!(problems(&[], &[], &[]), None);
        let orphans: Vec<String> = (0..12).map(|i| format!("r{i}")).collect();
        let p = problems(&orphans, &[("x".into(), 2, 3)], &[]).unwrap();
        assert!(p.contains("r0, r1") && p.contains("and 2 more") && p.contains("x (counts 2, has 3)"), "{p}");
    }
}
