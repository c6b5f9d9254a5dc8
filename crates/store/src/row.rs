//! What both backends share: a run's row as read from either database, how its status
//! is derived (a `running` row whose lease expired or whose owner is gone reads as
//! crashed), and the conversions between stored text and the crate's types, which seal
//! the columns holding user data on the way in and open them on the way out (see
//! [`crate::seal`]; journal rows are packed and unpacked by [`crate::journal`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use operonx_runtime::Interrupt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::journal::{self, JournalRow};
use crate::seal::{Place, Sealer};
use crate::{ListFilter, NewRun, RunEnd, RunStatus, RunSummary, StoreError, StoredRun};

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
    pub tenant: Option<String>,
    /// The last event seq.
    pub events: i64,
    /// The usage stats, JSON text (clear: counts only).
    pub stats: Option<String>,
}

/// A run's whole row (the sealed columns as stored text).
///
/// What a run holds is spread over its sealed columns so that each write seals as few
/// values as it can: `spec` (written once, by the create) holds the graph, the inputs,
/// the options and the seed scratch space; `outcome` (written by each finish) holds the
/// result, the pending interrupts and the scratch space the run stopped with; `scratch`
/// and `pending` hold what a journal batch changed since (a finish clears them);
/// `answers` the answers given so far. Missing (`NULL`) means: `scratch` as the outcome
/// says, else the seed; `pending` as the outcome says, else none; no answers; no outcome.
#[derive(Debug, Clone)]
pub(crate) struct RunRow {
    pub summary: SummaryRow,
    pub graph_path: Option<String>,
    pub fingerprint: String,
    pub spec: String,
    pub scratch: Option<String>,
    pub pending: Option<String>,
    pub answers: Option<String>,
    pub outcome: Option<String>,
}

/// What the `spec` column holds, as written.
#[derive(Serialize)]
struct SpecRef<'a> {
    graph: &'a Value,
    inputs: &'a Map<String, Value>,
    options: &'a Map<String, Value>,
    scratch: &'a Map<String, Value>,
}

/// What the `spec` column holds, as read.
#[derive(Deserialize)]
struct Spec {
    graph: Value,
    inputs: Map<String, Value>,
    options: Map<String, Value>,
    scratch: Map<String, Value>,
}

/// What the `outcome` column holds, as written.
#[derive(Serialize)]
struct OutcomeRef<'a> {
    result: Option<&'a Value>,
    pending: &'a [Interrupt],
    scratch: &'a Map<String, Value>,
}

/// What the `outcome` column holds, as read.
#[derive(Deserialize)]
struct Outcome {
    result: Option<Value>,
    pending: Vec<Interrupt>,
    scratch: Map<String, Value>,
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
    let stats = row.stats.as_deref().map(|s| from_json(sealer.store(), &row.run_id, "stats", s)).transpose()?;
    Ok(RunSummary {
        run_id: row.run_id,
        graph: row.graph_name,
        status,
        created_at: time_of(row.created_ms),
        updated_at: time_of(row.updated_ms),
        entries: u64::try_from(row.entries).unwrap_or(0),
        resumes: u32::try_from(row.resumes).unwrap_or(0),
        reason,
        tenant: row.tenant,
        events: u64::try_from(row.events).unwrap_or(0),
        stats,
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

/// Whether prune may delete a row: not running (crashed is fine), not queued (a worker
/// will run it), and of `status` when given.
pub(crate) fn prunable(store: &str, row: &SummaryRow, status: Option<RunStatus>, now: i64) -> Result<bool, StoreError> {
    let derived = derive_status(store, row, now)?;
    Ok(!matches!(derived, RunStatus::Running | RunStatus::Queued) && status.is_none_or(|want| want == derived))
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

/// The stored form of an idempotency key: its xxh3-128 hash in hex (the key is chosen by
/// the caller and may carry data; only equality is needed).
pub(crate) fn idempotency_hash(key: &str) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(key.as_bytes()))
}

/// The status of a run about to be claimed, when it may be: refused with `Busy` while it
/// runs, `Queued` while it waits for a worker, `Finished` once done.
pub(crate) fn claimable(store: &str, row: &SummaryRow, now: i64) -> Result<RunStatus, StoreError> {
    let status = derive_status(store, row, now)?;
    let run_id = row.run_id.clone();
    match status {
        RunStatus::Done => Err(StoreError::Finished { store: store.to_string(), run_id }),
        RunStatus::Running => {
            let owner = row.owner.clone().unwrap_or_default();
            Err(StoreError::Busy { store: store.to_string(), run_id, owner })
        }
        RunStatus::Queued => Err(StoreError::Queued { store: store.to_string(), run_id }),
        other => Ok(other),
    }
}

/// The `spec` column of a new run: its graph, inputs, options and seed scratch, sealed.
pub(crate) fn seal_spec(sealer: &Sealer, run: &NewRun) -> Result<String, StoreError> {
    let spec = SpecRef { graph: &run.graph, inputs: &run.inputs, options: &run.options, scratch: &run.scratch };
    seal_json(sealer, &run.run_id, "spec", &spec)
}

/// The `outcome` column of how a run ended: its result, pending interrupts and scratch,
/// sealed.
pub(crate) fn seal_outcome(sealer: &Sealer, run_id: &str, end: &RunEnd) -> Result<String, StoreError> {
    let outcome = OutcomeRef { result: end.result.as_ref(), pending: &end.pending, scratch: &end.scratch };
    seal_json(sealer, run_id, "outcome", &outcome)
}

/// The `stats` column of how a run ended: its stats as JSON text, in clear (counts
/// only); `None` keeps what the column holds.
pub(crate) fn stats_json(store: &str, run_id: &str, end: &RunEnd) -> Result<Option<String>, StoreError> {
    end.stats.as_ref().map(|s| to_json(store, run_id, "stats", s)).transpose()
}

/// The stored answers (`stored`, sealed JSON text; `None`: none) with `new` merged in
/// (new keys win), sealed again (`stored` itself when there is nothing new).
pub(crate) fn merge_answers(
    sealer: &Sealer,
    run_id: &str,
    stored: Option<&str>,
    new: &Map<String, Value>,
) -> Result<Option<String>, StoreError> {
    if new.is_empty() {
        return Ok(stored.map(str::to_string));
    }
    let mut answers: Map<String, Value> = match stored {
        Some(s) => open_json(sealer, run_id, "answers", s)?,
        None => Map::new(),
    };
    for (k, v) in new {
        answers.insert(k.clone(), v.clone());
    }
    seal_json(sealer, run_id, "answers", &answers).map(Some)
}

/// A stored run from its row and journal rows (opened), its status as derived at `now`.
pub(crate) fn stored_run(
    sealer: &Sealer,
    row: RunRow,
    journal: Vec<JournalRow>,
    now: i64,
) -> Result<StoredRun, StoreError> {
    let run_id = row.summary.run_id.clone();
    let id = run_id.as_str();
    let entries = journal::unpack(sealer, id, journal)?;
    let mut summary = summary(sealer, row.summary, now)?;
    summary.entries = entries.len() as u64;
    let spec: Spec = open_json(sealer, id, "spec", &row.spec)?;
    let outcome: Option<Outcome> = row.outcome.as_deref().map(|o| open_json(sealer, id, "outcome", o)).transpose()?;
    let (result, stopped_pending, stopped_scratch) = match outcome {
        Some(o) => (o.result, Some(o.pending), Some(o.scratch)),
        None => (None, None, None),
    };
    let scratch = match row.scratch.as_deref() {
        Some(s) => open_json(sealer, id, "scratch", s)?,
        None => stopped_scratch.unwrap_or(spec.scratch),
    };
    let pending = match row.pending.as_deref() {
        Some(p) => open_json(sealer, id, "pending", p)?,
        None => stopped_pending.unwrap_or_default(),
    };
    let answers = row.answers.as_deref().map(|a| open_json(sealer, id, "answers", a)).transpose()?;
    Ok(StoredRun {
        summary,
        graph_path: row.graph_path,
        graph: spec.graph,
        fingerprint: row.fingerprint,
        inputs: spec.inputs,
        scratch,
        options: spec.options,
        answers: answers.unwrap_or_default(),
        pending,
        result,
        entries,
    })
}

/// What a consistency check found.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Runs that journal rows or events rows belong to, but that do not exist.
    pub orphans: Vec<String>,
    /// Runs whose entry count (first) is not the sum of their rows' counts (second).
    pub miscounted: Vec<(String, i64, i64)>,
    /// Rows `(run, seq, last_seq, count)` whose count does not fit their seq range.
    pub bad_rows: Vec<(String, i64, i64, i64)>,
    /// Rows `(run, seq, end of the row before)` that overlap the row before.
    pub overlaps: Vec<(String, i64, i64)>,
    /// Anything else, as messages.
    pub other: Vec<String>,
}

/// What the check queries share: rows whose count does not fit their seq range (a row
/// holds at least one entry, and at most one per seq of its range).
pub(crate) const BAD_ROWS: &str = "SELECT run_id, seq, last_seq, count FROM {journal}
    WHERE count < 1 OR last_seq < seq OR count > last_seq - seq + 1 ORDER BY run_id, seq";

/// Rows that begin at or before the end of the row before them (of the same run).
pub(crate) const OVERLAPS: &str = "SELECT run_id, seq, prev FROM (SELECT run_id, seq,
    lag(last_seq) OVER (PARTITION BY run_id ORDER BY seq) AS prev FROM {journal}) AS j
    WHERE prev >= seq ORDER BY run_id, seq";

/// `items` shown (at most ten, then how many more), `, `-separated.
fn bounded<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    const SHOWN: usize = 10;
    let shown: Vec<String> = items.iter().take(SHOWN).map(show).collect();
    let more = if items.len() > SHOWN { format!(" and {} more", items.len() - SHOWN) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

/// Problems found by a consistency check, as one message (`None` when there are none).
pub(crate) fn problems(found: &Findings) -> Option<String> {
    let mut out: Vec<String> = found.other.clone();
    if !found.orphans.is_empty() {
        let shown = bounded(&found.orphans, String::clone);
        out.push(format!("journal entries or events of runs that do not exist: {shown}"));
    }
    if !found.miscounted.is_empty() {
        let shown = bounded(&found.miscounted, |(id, counted, rows)| format!("{id} (counts {counted}, has {rows})"));
        out.push(format!("runs whose entry count differs from their journal: {shown}"));
    }
    if !found.bad_rows.is_empty() {
        let shown = bounded(&found.bad_rows, |(id, seq, last, count)| {
            format!("{id} entries {seq} to {last} (says it holds {count})")
        });
        out.push(format!("journal rows whose entry count does not fit their seqs: {shown}"));
    }
    if !found.overlaps.is_empty() {
        let shown = bounded(&found.overlaps, |(id, seq, prev)| {
            format!("{id} from entry {seq} (the row before ends at {prev})")
        });
        out.push(format!("journal rows that overlap: {shown}"));
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
            tenant: None,
            events: 0,
            stats: None,
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
        let sealer = Sealer::new(&crate::StoreKey::from_bytes([1; 32]), "s").unwrap();
        let answers = Place::Run { run_id: "r", column: "answers" };
        let new: Map<String, Value> = serde_json::from_str(r#"{"b": 3, "c": 4}"#).unwrap();
        let stored = sealer.seal(&answers, r#"{"a":1,"b":2}"#).unwrap();
        let merged = merge_answers(&sealer, "r", Some(&stored), &new).unwrap().unwrap();
        assert_eq!(sealer.open(&answers, &merged).unwrap(), r#"{"a":1,"b":3,"c":4}"#);
        assert_eq!(merge_answers(&sealer, "r", Some(&stored), &Map::new()).unwrap(), Some(stored.clone()));
        assert_eq!(merge_answers(&sealer, "r", None, &Map::new()).unwrap(), None, "none given, none stored");
        let first = merge_answers(&sealer, "r", None, &new).unwrap().unwrap();
        assert_eq!(sealer.open(&answers, &first).unwrap(), r#"{"b":3,"c":4}"#);
        assert!(matches!(merge_answers(&sealer, "q", Some(&stored), &new), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn problems_are_listed_and_bounded() {
        assert_eq!(problems(&Findings::default()), None);
        let found = Findings {
            orphans: (0..12).map(|i| format!("r{i}")).collect(),
            miscounted: vec![("x".into(), 2, 3)],
            bad_rows: vec![("y".into(), 4, 5, 3)],
            overlaps: vec![("z".into(), 6, 7)],
            other: Vec::new(),
        };
        let p = problems(&found).unwrap();
        assert!(p.contains("r0, r1") && p.contains("and 2 more") && p.contains("x (counts 2, has 3)"), "{p}");
        assert!(p.contains("y entries 4 to 5 (says it holds 3)"), "{p}");
        assert!(p.contains("overlap: z from entry 6 (the row before ends at 7)"), "{p}");
    }
}
