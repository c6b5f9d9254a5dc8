//! The trace event wire format: field names, snake_case kinds, `(timestamp, seq)` order.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
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
    s.collect_str(&super::WireTime(t.timestamp_micros()))
}

fn de_ts<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
}
