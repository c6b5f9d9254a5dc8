//! Trace events: the flat, ordered record of what happened during a run, in the wire
//! format of the original `TraceEvent` (field names, snake_case kinds, `(timestamp, seq)`
//! order). The scheduler builds events only when a [`TraceSink`] is attached to the run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Before an op body runs. Payload: `inputs`, `span_id`, `parent_span_id`.
    OpStart,
    /// After an op finished. Payload: `outputs`, `status` (`ok`|`error`|`cancelled`),
    /// `duration_ms`, `yield_count`, `error` (on failure), `span_id`, `parent_span_id`.
    OpEnd,
    /// One generator item. Payload: `yielded`, `idx`, `span_id`.
    OpYield,
    /// Metadata an op body attached. Payload: `key`, `value`.
    Annotation,
    /// Opens a group (a loop iteration). Payload: `name`, `span_id`, `parent_span_id`.
    GroupStart,
    /// Closes a group. Payload: `name`, `status`, `span_id`.
    GroupEnd,
    /// Token usage and cost of one model call, before the op's `op_end`.
    LlmUsage,
    /// A reference to a stored binary blob. Payload: `handle`, `mime`, `size_bytes`.
    MediaRef,
}

impl EventKind {
    /// The wire string (`op_start`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::OpStart => "op_start",
            EventKind::OpEnd => "op_end",
            EventKind::OpYield => "op_yield",
            EventKind::Annotation => "annotation",
            EventKind::GroupStart => "group_start",
            EventKind::GroupEnd => "group_end",
            EventKind::LlmUsage => "llm_usage",
            EventKind::MediaRef => "media_ref",
        }
    }
}

/// One record of a run. Ordered by `(timestamp, seq)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// Unique within a trace: `"{request_id}-{seq}"`.
    pub event_id: String,
    /// One per run.
    pub request_id: String,
    /// What happened.
    pub kind: EventKind,
    /// Full op name; `None` for events not bound to an op.
    #[serde(default)]
    pub op_name: Option<String>,
    /// Scheduler context path: `["main"]`, `["main", "[0]"]` for generator item 0,
    /// `["main", "loop_2"]` for loop iteration 2.
    #[serde(default)]
    pub ctx: Vec<String>,
    /// UTC wall clock, written as RFC 3339 with exactly six fractional digits.
    #[serde(serialize_with = "ser_ts", deserialize_with = "de_ts")]
    pub timestamp: DateTime<Utc>,
    /// Per-run sequence number (tie-break for equal timestamps).
    pub seq: u64,
    /// Kind-specific data.
    #[serde(default)]
    pub payload: BTreeMap<String, Value>,
}

impl TraceEvent {
    /// The ordering key.
    pub fn sort_key(&self) -> (DateTime<Utc>, u64) {
        (self.timestamp, self.seq)
    }
}

fn ser_ts<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

fn de_ts<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
}

/// Where a run's events go (a pipeline, a file, a test collector). Called on the
/// scheduler's task: implementations must only buffer, never block.
pub trait TraceSink: Send + Sync + 'static {
    /// Take one event.
    fn record(&self, event: TraceEvent);

    /// The run with this id finished (flush its buffer).
    fn run_finished(&self, _request_id: &str) {}
}

/// The tracing state one run shares with its nested runs and op bodies.
#[derive(Clone)]
pub struct RunTracer {
    sink: Arc<dyn TraceSink>,
    request_id: Arc<str>,
    counters: Arc<(AtomicU64, AtomicU64)>,
}

impl std::fmt::Debug for RunTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunTracer").field("request_id", &self.request_id).finish()
    }
}

impl RunTracer {
    /// Tracing for run `request_id` into `sink`.
    pub fn new(sink: Arc<dyn TraceSink>, request_id: impl Into<Arc<str>>) -> Self {
        Self { sink, request_id: request_id.into(), counters: Arc::new((AtomicU64::new(0), AtomicU64::new(0))) }
    }

    /// The run's id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// A new span id, unique within the run.
    pub fn next_span(&self) -> u64 {
        self.counters.1.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The wire form of a span id.
    pub fn span_name(&self, span: u64) -> Value {
        Value::String(format!("{}-s{span}", self.request_id))
    }

    /// Build and record an event.
    pub fn emit(&self, kind: EventKind, op_name: Option<&str>, ctx: Vec<String>, payload: BTreeMap<String, Value>) {
        let seq = self.counters.0.fetch_add(1, Ordering::Relaxed);
        self.sink.record(TraceEvent {
            event_id: format!("{}-{seq}", self.request_id),
            request_id: self.request_id.to_string(),
            kind,
            op_name: op_name.map(str::to_string),
            ctx,
            // Microseconds: what the wire format carries, so events round-trip exactly.
            timestamp: Utc::now().trunc_subsecs(6),
            seq,
            payload,
        });
    }

    /// Tell the sink the run is over.
    pub fn finish(&self) {
        self.sink.run_finished(&self.request_id);
    }
}

/// The trace scope of one op call: lets an op body annotate its span and report usage.
#[derive(Debug, Clone)]
pub struct OpTrace {
    pub(crate) tracer: RunTracer,
    pub(crate) op: Arc<str>,
    pub(crate) ctx: Vec<String>,
    pub(crate) span: u64,
}

impl OpTrace {
    /// Record an event of `kind` bound to this op call (its span id is added).
    pub fn emit(&self, kind: EventKind, mut payload: BTreeMap<String, Value>) {
        payload.insert("span_id".into(), self.tracer.span_name(self.span));
        self.tracer.emit(kind, Some(&self.op), self.ctx.clone(), payload);
    }
}

/// A sink that keeps every event in memory (tests, small tools).
#[derive(Debug, Default, Clone)]
pub struct MemorySink(Arc<std::sync::Mutex<Vec<TraceEvent>>>);

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything recorded so far.
    pub fn events(&self) -> Vec<TraceEvent> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl TraceSink for MemorySink {
    fn record(&self, event: TraceEvent) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event);
        }
    }
}
