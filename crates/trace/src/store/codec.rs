//! The stored text of a chunk: one event per line. Events the scheduler recorded are
//! written compactly (the chunk's run implied, the event id derived from the sequence
//! number, the time in microseconds, span ids as bare numbers), roughly halving what
//! SQLite writes; other events are written in the full wire format. Both read back as
//! the exact wire event.

use std::collections::BTreeMap;

use chrono::DateTime;
use operonx_runtime::trace::{RawEvent, SpanIds};
use operonx_runtime::{EventKind, TraceEvent};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::error::StoreError;
use crate::recorded::EventView;

/// What a full wire-format line starts with (the first field of a serialized event).
const WIRE_PREFIX: &[u8] = b"{\"event_id\"";

/// A recorded event in its compact stored form.
struct Compact<'a>(&'a RawEvent);

impl Serialize for Compact<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("s", &e.seq())?;
        m.serialize_entry("k", &e.kind())?;
        m.serialize_entry("o", &e.op_name())?;
        m.serialize_entry("c", &e.ctx_serializer())?;
        m.serialize_entry("t", &e.timestamp_micros())?;
        m.serialize_entry("p", &e.payload_serializer(SpanIds::Numbers))?;
        m.end()
    }
}

/// A compact line read back.
#[derive(Deserialize)]
struct CompactLine {
    s: u64,
    k: EventKind,
    #[serde(default)]
    o: Option<String>,
    #[serde(default)]
    c: Vec<String>,
    t: i64,
    #[serde(default)]
    p: BTreeMap<String, Value>,
}

impl CompactLine {
    fn into_event(self, request_id: &str) -> Result<TraceEvent, String> {
        let mut payload = self.p;
        for key in ["span_id", "parent_span_id"] {
            if let Some(v) = payload.get_mut(key)
                && let Some(n) = v.as_u64()
            {
                *v = Value::String(format!("{request_id}-s{n}"));
            }
        }
        Ok(TraceEvent {
            event_id: format!("{request_id}-{}", self.s),
            request_id: request_id.to_string(),
            kind: self.k,
            op_name: self.o,
            ctx: self.c,
            timestamp: DateTime::from_timestamp_micros(self.t).ok_or_else(|| format!("timestamp {}", self.t))?,
            seq: self.s,
            payload,
        })
    }
}

/// Serialize `events` (one run's, in order) into `out`, one line each.
pub(super) fn encode<E: EventView>(events: &[E], out: &mut Vec<u8>) -> Result<(), StoreError> {
    out.clear();
    for e in events {
        let written = match e.as_raw() {
            Some(raw) => serde_json::to_writer(&mut *out, &Compact(raw)),
            None => serde_json::to_writer(&mut *out, e),
        };
        written.map_err(|err| StoreError::Corrupt {
            event_id: format!("{}-{}", e.request_id(), e.seq()),
            reason: err.to_string(),
        })?;
        out.push(b'\n');
    }
    Ok(())
}

/// Read back the events of one chunk of run `request_id`.
pub(super) fn decode(request_id: &str, data: &[u8], out: &mut Vec<TraceEvent>) -> Result<(), StoreError> {
    for (i, line) in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        let corrupt = |reason: String| StoreError::Corrupt {
            event_id: format!("{request_id} (line {} of a stored chunk)", i + 1),
            reason,
        };
        let event = if line.starts_with(WIRE_PREFIX) {
            serde_json::from_slice(line).map_err(|e| corrupt(e.to_string()))?
        } else {
            let compact: CompactLine = serde_json::from_slice(line).map_err(|e| corrupt(e.to_string()))?;
            compact.into_event(request_id).map_err(corrupt)?
        };
        out.push(event);
    }
    Ok(())
}
