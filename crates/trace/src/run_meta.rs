//! Run-level events the pipeline adds to a trace: the run's start (with its graph name),
//! its end, and how many events were dropped. They are `annotation` events with no op
//! and an `operonx.` key, written after the processors ran, so no processor can remove
//! them.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use operonx_runtime::{EventKind, TraceEvent};
use serde::{Serialize, Serializer};
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

/// One of the pipeline's run-level events as the pipeline holds it: its run, place and
/// what it says, built into its wire event only for exporters that need one. The store
/// writes it without building it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMeta {
    request_id: Arc<str>,
    seq: u64,
    at_us: i64,
    what: Meta,
}

/// What a run-level event says.
#[derive(Debug, Clone, PartialEq)]
enum Meta {
    Start { graph: String },
    Dropped(u64),
    End { end: RunEnd, recorded: u64 },
}

impl RunMeta {
    /// The `operonx.run_start` event: the run's graph name, at the time the run began.
    pub(crate) fn start(request_id: Arc<str>, graph: String, at: DateTime<Utc>) -> Self {
        Self { request_id, seq: 0, at_us: at.timestamp_micros(), what: Meta::Start { graph } }
    }

    /// The `operonx.dropped_events` event.
    pub(crate) fn dropped(request_id: Arc<str>, count: u64, at: DateTime<Utc>, seq: u64) -> Self {
        Self { request_id, seq, at_us: at.timestamp_micros(), what: Meta::Dropped(count) }
    }

    /// The `operonx.run_end` event.
    pub(crate) fn end(request_id: Arc<str>, end: RunEnd, recorded: u64, at: DateTime<Utc>, seq: u64) -> Self {
        Self { request_id, seq, at_us: at.timestamp_micros(), what: Meta::End { end, recorded } }
    }

    /// The run it belongs to.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Its sequence number in the run.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// When, in microseconds since the Unix epoch.
    pub fn timestamp_micros(&self) -> i64 {
        self.at_us
    }

    /// Its annotation key (`operonx.run_start`, ...).
    pub fn key(&self) -> &'static str {
        match self.what {
            Meta::Start { .. } => RUN_START,
            Meta::Dropped(_) => DROPPED_EVENTS,
            Meta::End { .. } => RUN_END,
        }
    }

    /// Its event id is `{request_id}-{suffix}`: the suffix.
    pub(crate) fn id_suffix(&self) -> &'static str {
        match self.what {
            Meta::Start { .. } => "run-start",
            Meta::Dropped(_) => "dropped",
            Meta::End { .. } => "run-end",
        }
    }

    /// Its annotation value.
    pub fn value(&self) -> Value {
        match &self.what {
            Meta::Start { graph } => json!({ "graph": graph }),
            Meta::Dropped(count) => Value::from(*count),
            Meta::End { end, recorded } => json!({ "status": end.as_str(), "recorded_events": recorded }),
        }
    }

    /// The wire event.
    pub fn to_event(&self) -> TraceEvent {
        let at = DateTime::from_timestamp_micros(self.at_us).unwrap_or_default();
        annotation(&self.request_id, self.id_suffix(), at, self.seq, self.key(), self.value())
    }
}

impl Serialize for RunMeta {
    /// The wire form (the events are few: one or two per run).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_event().serialize(s)
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

/// Whether `event` is one of the pipeline's run-level events.
pub fn is_run_meta(event: &TraceEvent) -> bool {
    event.op_name.is_none() && event.annotation_key().is_some_and(|k| k.starts_with("operonx."))
}
