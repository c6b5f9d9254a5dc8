//! Run-level events the pipeline adds to a trace: the run's start (with its graph name),
//! its end, and how many events were dropped. They are `annotation` events with no op
//! and an `operonx.` key, written after the processors ran, so no processor can remove
//! them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use operonx_runtime::{EventKind, TraceEvent};
use serde_json::{Value, json};

use crate::recorded::EventView;

/// Annotation key of the run's first event; value `{"graph": name}`.
pub const RUN_START: &str = "operonx.run_start";
/// Annotation key of the run's last event; value `{"status": "finished"|"truncated", "recorded_events": n}`.
pub const RUN_END: &str = "operonx.run_end";
/// Annotation key of the count of events the pipeline dropped for this run (buffer full);
/// value: the count.
pub const DROPPED_EVENTS: &str = "operonx.dropped_events";

/// How a run's trace ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The run finished (`TraceSink::run_finished`).
    Finished,
    /// The pipeline shut down before the run finished.
    Truncated,
}

impl RunEnd {
    /// The wire string in the `operonx.run_end` annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            RunEnd::Finished => "finished",
            RunEnd::Truncated => "truncated",
        }
    }
}

fn annotation(request_id: &str, suffix: &str, at: DateTime<Utc>, seq: u64, key: &str, value: Value) -> TraceEvent {
    let mut payload = BTreeMap::new();
    payload.insert("key".to_string(), Value::String(key.to_string()));
    payload.insert("value".to_string(), value);
    TraceEvent {
        event_id: format!("{request_id}-{suffix}"),
        request_id: request_id.to_string(),
        kind: EventKind::Annotation,
        op_name: None,
        ctx: Vec::new(),
        timestamp: at,
        seq,
        payload,
    }
}

/// The `operonx.run_start` event: the run's graph name, at the time the run began.
pub(crate) fn run_start(request_id: &str, graph: &str, at: DateTime<Utc>) -> TraceEvent {
    annotation(request_id, "run-start", at, 0, RUN_START, json!({ "graph": graph }))
}

/// The `operonx.dropped_events` event.
pub(crate) fn dropped(request_id: &str, count: u64, at: DateTime<Utc>, seq: u64) -> TraceEvent {
    annotation(request_id, "dropped", at, seq, DROPPED_EVENTS, Value::from(count))
}

/// The `operonx.run_end` event.
pub(crate) fn run_end(request_id: &str, end: RunEnd, recorded: u64, at: DateTime<Utc>, seq: u64) -> TraceEvent {
    let value = json!({ "status": end.as_str(), "recorded_events": recorded });
    annotation(request_id, "run-end", at, seq, RUN_END, value)
}

/// Whether `event` is one of the pipeline's run-level events.
pub fn is_run_meta(event: &TraceEvent) -> bool {
    event.op_name.is_none() && event.annotation_key().is_some_and(|k| k.starts_with("operonx."))
}
