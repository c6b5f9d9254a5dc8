//! Runs as the API shows them.

use chrono::{DateTime, Utc};
use operonx_store::{RunSummary, StoredRun};
use serde::Serialize;
use serde_json::Value;

/// An interrupt a run waits for.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PendingView {
    /// The interrupt id (answer it under this key).
    pub id: String,
    /// The op that asked.
    pub op: String,
    /// What it asked.
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// A run.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunView {
    /// The run id.
    pub run_id: String,
    /// The graph's name.
    pub graph: String,
    /// queued, running, waiting, failed, cancelled, timed_out, crashed or done.
    pub status: String,
    /// When the run was submitted.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Seconds from submission to its last change.
    pub duration_s: f64,
    /// Journal entries (op calls and items done).
    pub journal_entries: u64,
    /// How many times it was resumed.
    pub resumes: u32,
    /// The seq of its last event (`Last-Event-ID` to follow it from there).
    pub events: u64,
    /// Why it stopped, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The result as `operonx run` prints it (`$errors`, `$interrupts`, `$stopped`
    /// included), once the run stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Ops that failed (from the result's `$errors`, else from the run's stats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
    /// Op calls that ended, over all the run's attempts (from its stats, once it
    /// stopped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ops: Option<u64>,
    /// Model (LLM) calls (from its stats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_calls: Option<u64>,
    /// The model calls' total tokens (from its stats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// The model calls' cost in US dollars (from its stats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// What the run waits for (status `waiting`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingView>,
}

/// A run's view from its summary (no result: listings; errors, ops, model calls, tokens
/// and cost from its stats, when it has some).
pub(crate) fn summary_view(s: &RunSummary) -> RunView {
    let duration = (s.updated_at - s.created_at).num_milliseconds().max(0) as f64 / 1000.0;
    RunView {
        run_id: s.run_id.clone(),
        graph: s.graph.clone(),
        status: s.status.as_str().to_string(),
        created_at: s.created_at,
        updated_at: s.updated_at,
        duration_s: duration,
        journal_entries: s.entries,
        resumes: s.resumes,
        events: s.events,
        reason: s.reason.clone(),
        result: None,
        errors: s.stats.map(|st| st.errors),
        ops: s.stats.map(|st| st.ops),
        llm_calls: s.stats.map(|st| st.llm_calls),
        tokens: s.stats.map(|st| st.tokens),
        cost_usd: s.stats.map(|st| st.cost_usd),
        pending: Vec::new(),
    }
}

/// A run's whole view.
pub(crate) fn run_view(run: &StoredRun) -> RunView {
    let mut view = summary_view(&run.summary);
    let result_errors = run
        .result
        .as_ref()
        .and_then(|r| r.get("$errors"))
        .and_then(Value::as_object)
        .map(|e| u64::try_from(e.len()).unwrap_or(u64::MAX));
    view.errors = result_errors.or(view.errors);
    view.result = run.result.clone();
    view.pending = run
        .pending
        .iter()
        .map(|i| PendingView { id: i.id.clone(), op: i.op.clone(), payload: i.payload.clone() })
        .collect();
    view
}
