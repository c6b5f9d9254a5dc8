//! Events as the pipeline holds them: recorded by the scheduler ([`RawEvent`], never
//! built into a [`TraceEvent`] unless an exporter needs one) or handed over built. The
//! store and the JSON-lines exporter serialize either form straight to the wire text.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use operonx_runtime::trace::RawEvent;
use operonx_runtime::{EventKind, TraceEvent};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// What the store and the run summaries read from an event, whichever form it is in.
/// Serializing one gives its wire form.
pub trait EventView: Serialize {
    /// What happened.
    fn kind(&self) -> EventKind;
    /// The run it belongs to.
    fn request_id(&self) -> &str;
    /// Per-run sequence number.
    fn seq(&self) -> u64;
    /// When, in microseconds since the Unix epoch.
    fn timestamp_micros(&self) -> i64;
    /// The full name of its op, if any.
    fn op_name(&self) -> Option<&str>;
    /// One field of its payload.
    fn payload_value(&self, key: &str) -> Option<Cow<'_, Value>>;

    /// When it happened.
    fn timestamp(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.timestamp_micros()).unwrap_or_default()
    }

    /// The event itself, in whichever form it is.
    fn form(&self) -> EventForm<'_>;

    /// The key of an annotation, if this is one.
    fn annotation_key(&self) -> Option<Cow<'_, str>> {
        if self.kind() != EventKind::Annotation {
            return None;
        }
        match self.payload_value("key")? {
            Cow::Borrowed(Value::String(s)) => Some(Cow::Borrowed(s.as_str())),
            Cow::Owned(Value::String(s)) => Some(Cow::Owned(s)),
            _ => None,
        }
    }
}

impl EventView for TraceEvent {
    fn kind(&self) -> EventKind {
        self.kind
    }
    fn request_id(&self) -> &str {
        &self.request_id
    }
    fn seq(&self) -> u64 {
        self.seq
    }
    fn timestamp_micros(&self) -> i64 {
        self.timestamp.timestamp_micros()
    }
    fn op_name(&self) -> Option<&str> {
        self.op_name.as_deref()
    }
    fn payload_value(&self, key: &str) -> Option<Cow<'_, Value>> {
        self.payload.get(key).map(Cow::Borrowed)
    }
    fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }
    fn form(&self) -> EventForm<'_> {
        EventForm::Built(self)
    }
}

impl EventView for RawEvent {
    fn kind(&self) -> EventKind {
        RawEvent::kind(self)
    }
    fn request_id(&self) -> &str {
        RawEvent::request_id(self)
    }
    fn seq(&self) -> u64 {
        RawEvent::seq(self)
    }
    fn timestamp_micros(&self) -> i64 {
        RawEvent::timestamp_micros(self)
    }
    fn op_name(&self) -> Option<&str> {
        RawEvent::op_name(self)
    }
    fn payload_value(&self, key: &str) -> Option<Cow<'_, Value>> {
        RawEvent::payload_value(self, key)
    }
    fn form(&self) -> EventForm<'_> {
        EventForm::Raw(self)
    }
}

/// An event by reference, in the form it is held.
#[derive(Debug, Clone, Copy)]
pub enum EventForm<'a> {
    /// As the scheduler recorded it.
    Raw(&'a RawEvent),
    /// Built.
    Built(&'a TraceEvent),
}

/// One event in the pipeline: as the scheduler recorded it, or built.
#[derive(Debug, Clone)]
pub enum RecordedEvent {
    /// From `TraceSink::record_raw` or a run recorder: built only if an exporter needs it.
    Raw(RawEvent),
    /// From `TraceSink::record`, a processor, or the pipeline's run-level events.
    Built(TraceEvent),
}

impl RecordedEvent {
    /// The `(timestamp, seq)` ordering key, at the wire's microsecond precision.
    pub fn sort_key(&self) -> (i64, u64) {
        (self.timestamp_micros(), self.seq())
    }

    /// The wire event (a copy of the recorded values).
    pub fn to_event(&self) -> TraceEvent {
        match self {
            RecordedEvent::Raw(e) => e.clone().materialize(),
            RecordedEvent::Built(e) => e.clone(),
        }
    }

    /// The wire event (moving the recorded values).
    pub fn into_event(self) -> TraceEvent {
        match self {
            RecordedEvent::Raw(e) => e.materialize(),
            RecordedEvent::Built(e) => e,
        }
    }
}

impl Serialize for RecordedEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RecordedEvent::Raw(e) => e.serialize(s),
            RecordedEvent::Built(e) => e.serialize(s),
        }
    }
}

impl EventView for RecordedEvent {
    fn kind(&self) -> EventKind {
        match self {
            RecordedEvent::Raw(e) => e.kind(),
            RecordedEvent::Built(e) => e.kind,
        }
    }
    fn request_id(&self) -> &str {
        match self {
            RecordedEvent::Raw(e) => e.request_id(),
            RecordedEvent::Built(e) => &e.request_id,
        }
    }
    fn seq(&self) -> u64 {
        match self {
            RecordedEvent::Raw(e) => e.seq(),
            RecordedEvent::Built(e) => e.seq,
        }
    }
    fn timestamp_micros(&self) -> i64 {
        match self {
            RecordedEvent::Raw(e) => e.timestamp_micros(),
            RecordedEvent::Built(e) => e.timestamp.timestamp_micros(),
        }
    }
    fn op_name(&self) -> Option<&str> {
        match self {
            RecordedEvent::Raw(e) => e.op_name(),
            RecordedEvent::Built(e) => e.op_name.as_deref(),
        }
    }
    fn payload_value(&self, key: &str) -> Option<Cow<'_, Value>> {
        match self {
            RecordedEvent::Raw(e) => e.payload_value(key),
            RecordedEvent::Built(e) => e.payload.get(key).map(Cow::Borrowed),
        }
    }
    fn form(&self) -> EventForm<'_> {
        match self {
            RecordedEvent::Raw(e) => EventForm::Raw(e),
            RecordedEvent::Built(e) => EventForm::Built(e),
        }
    }
}

impl From<TraceEvent> for RecordedEvent {
    fn from(e: TraceEvent) -> Self {
        RecordedEvent::Built(e)
    }
}

impl From<RawEvent> for RecordedEvent {
    fn from(e: RawEvent) -> Self {
        RecordedEvent::Raw(e)
    }
}
