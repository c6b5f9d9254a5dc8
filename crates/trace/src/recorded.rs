//! Events as the pipeline holds them: recorded by the scheduler ([`RawEvent`], never
//! built into a [`TraceEvent`] unless an exporter needs one) or handed over built. The
//! store and the JSON-lines exporter serialize either form straight to the wire text.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use operonx_runtime::trace::RawEvent;
use operonx_runtime::{EventKind, TraceEvent};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::run_meta::RunMeta;

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

    /// Whether it names a parent span (`parent_span_id` set, not `null`).
    fn has_parent_span(&self) -> bool {
        self.payload_value("parent_span_id").is_some_and(|p| !p.is_null())
    }

    /// Its `status` (an `op_end`'s `ok`, `error`, ...), if it has one.
    fn status(&self) -> Option<Cow<'_, str>> {
        match self.payload_value("status")? {
            Cow::Borrowed(Value::String(s)) => Some(Cow::Borrowed(s.as_str())),
            Cow::Owned(Value::String(s)) => Some(Cow::Owned(s)),
            _ => None,
        }
    }

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
    fn has_parent_span(&self) -> bool {
        RawEvent::has_parent_span(self)
    }
    fn status(&self) -> Option<Cow<'_, str>> {
        RawEvent::status(self).map(Cow::Borrowed)
    }
    fn form(&self) -> EventForm<'_> {
        EventForm::Raw(self)
    }
}

impl EventView for RunMeta {
    fn kind(&self) -> EventKind {
        EventKind::Annotation
    }
    fn request_id(&self) -> &str {
        RunMeta::request_id(self)
    }
    fn seq(&self) -> u64 {
        RunMeta::seq(self)
    }
    fn timestamp_micros(&self) -> i64 {
        RunMeta::timestamp_micros(self)
    }
    fn op_name(&self) -> Option<&str> {
        None
    }
    fn payload_value(&self, key: &str) -> Option<Cow<'_, Value>> {
        match key {
            "key" => Some(Cow::Owned(Value::String(self.key().to_string()))),
            "value" => Some(Cow::Owned(self.value())),
            _ => None,
        }
    }
    fn annotation_key(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.key()))
    }
    fn form(&self) -> EventForm<'_> {
        EventForm::Meta(self)
    }
}

/// An event by reference, in the form it is held.
#[derive(Debug, Clone, Copy)]
pub enum EventForm<'a> {
    /// As the scheduler recorded it.
    Raw(&'a RawEvent),
    /// Built.
    Built(&'a TraceEvent),
    /// One of the pipeline's run-level events.
    Meta(&'a RunMeta),
}

/// One event in the pipeline: as the scheduler recorded it, built, or one of the
/// pipeline's own run-level events.
#[derive(Debug, Clone)]
pub enum RecordedEvent {
    /// From `TraceSink::record_raw` or a run recorder: built only if an exporter needs it.
    Raw(RawEvent),
    /// From `TraceSink::record` or a processor.
    Built(TraceEvent),
    /// The run's start, end or dropped count, added by the pipeline after the processors.
    Meta(RunMeta),
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
            RecordedEvent::Meta(e) => e.to_event(),
        }
    }

    /// The wire event (moving the recorded values).
    pub fn into_event(self) -> TraceEvent {
        match self {
            RecordedEvent::Raw(e) => e.materialize(),
            RecordedEvent::Built(e) => e,
            RecordedEvent::Meta(e) => e.to_event(),
        }
    }
}

impl Serialize for RecordedEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RecordedEvent::Raw(e) => e.serialize(s),
            RecordedEvent::Built(e) => e.serialize(s),
            RecordedEvent::Meta(e) => e.serialize(s),
        }
    }
}

impl EventView for RecordedEvent {
    fn kind(&self) -> EventKind {
        match self {
            RecordedEvent::Raw(e) => e.kind(),
            RecordedEvent::Built(e) => e.kind,
            RecordedEvent::Meta(_) => EventKind::Annotation,
        }
    }
    fn request_id(&self) -> &str {
        match self {
            RecordedEvent::Raw(e) => e.request_id(),
            RecordedEvent::Built(e) => &e.request_id,
            RecordedEvent::Meta(e) => e.request_id(),
        }
    }
    fn seq(&self) -> u64 {
        match self {
            RecordedEvent::Raw(e) => e.seq(),
            RecordedEvent::Built(e) => e.seq,
            RecordedEvent::Meta(e) => e.seq(),
        }
    }
    fn timestamp_micros(&self) -> i64 {
        match self {
            RecordedEvent::Raw(e) => e.timestamp_micros(),
            RecordedEvent::Built(e) => e.timestamp.timestamp_micros(),
            RecordedEvent::Meta(e) => e.timestamp_micros(),
        }
    }
    fn op_name(&self) -> Option<&str> {
        match self {
            RecordedEvent::Raw(e) => e.op_name(),
            RecordedEvent::Built(e) => e.op_name.as_deref(),
            RecordedEvent::Meta(_) => None,
        }
    }
    fn payload_value(&self, key: &str) -> Option<Cow<'_, Value>> {
        match self {
            RecordedEvent::Raw(e) => e.payload_value(key),
            RecordedEvent::Built(e) => e.payload.get(key).map(Cow::Borrowed),
            RecordedEvent::Meta(e) => EventView::payload_value(e, key),
        }
    }
    fn has_parent_span(&self) -> bool {
        match self {
            RecordedEvent::Raw(e) => EventView::has_parent_span(e),
            RecordedEvent::Built(e) => e.has_parent_span(),
            RecordedEvent::Meta(_) => false,
        }
    }
    fn status(&self) -> Option<Cow<'_, str>> {
        match self {
            RecordedEvent::Raw(e) => EventView::status(e),
            RecordedEvent::Built(e) => e.status(),
            RecordedEvent::Meta(_) => None,
        }
    }
    fn annotation_key(&self) -> Option<Cow<'_, str>> {
        match self {
            RecordedEvent::Raw(e) => e.annotation_key(),
            RecordedEvent::Built(e) => e.annotation_key(),
            RecordedEvent::Meta(e) => EventView::annotation_key(e),
        }
    }
    fn form(&self) -> EventForm<'_> {
        match self {
            RecordedEvent::Raw(e) => EventForm::Raw(e),
            RecordedEvent::Built(e) => EventForm::Built(e),
            RecordedEvent::Meta(e) => EventForm::Meta(e),
        }
    }
}

impl From<RunMeta> for RecordedEvent {
    fn from(e: RunMeta) -> Self {
        RecordedEvent::Meta(e)
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
