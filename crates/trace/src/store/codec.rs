//! The stored text of a chunk: one event per line, compactly (the chunk's run implied,
//! the event id derived from the sequence number unless it is another, the time in
//! microseconds, span ids of recorded events as bare numbers), about half the size of
//! the wire format. Every line reads back as the exact wire event.

use std::collections::BTreeMap;

use chrono::DateTime;
use operonx_runtime::trace::{RawEvent, SpanIds};
use operonx_runtime::{EventKind, TraceEvent};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::error::StoreError;
use crate::recorded::{EventForm, EventView};

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

/// A built event in its compact stored form.
struct CompactBuilt<'a>(&'a TraceEvent);

impl Serialize for CompactBuilt<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let derived = format!("{}-{}", e.request_id, e.seq);
        let mut m = s.serialize_map(Some(7))?;
        m.serialize_entry("s", &e.seq)?;
        if e.event_id != derived {
            m.serialize_entry("e", &e.event_id)?;
        }
        m.serialize_entry("k", &e.kind)?;
        m.serialize_entry("o", &e.op_name)?;
        m.serialize_entry("c", &e.ctx)?;
        m.serialize_entry("t", &e.timestamp.timestamp_micros())?;
        // `P`: the payload as it is (span ids are rewritten only in recorded events' `p`).
        m.serialize_entry("P", &e.payload)?;
        m.end()
    }
}

/// A compact line read back.
#[derive(Deserialize)]
struct CompactLine {
    s: u64,
    #[serde(default)]
    e: Option<String>,
    k: EventKind,
    #[serde(default)]
    o: Option<String>,
    #[serde(default)]
    c: Vec<String>,
    t: i64,
    /// A recorded event's payload, span ids as bare numbers.
    #[serde(default)]
    p: Option<BTreeMap<String, Value>>,
    /// A built event's payload, verbatim.
    #[serde(default, rename = "P")]
    verbatim: Option<BTreeMap<String, Value>>,
}

impl CompactLine {
    fn into_event(self, request_id: &str) -> Result<TraceEvent, String> {
        let payload = match (self.p, self.verbatim) {
            (_, Some(verbatim)) => verbatim,
            (Some(mut p), None) => {
                for key in ["span_id", "parent_span_id"] {
                    if let Some(v) = p.get_mut(key)
                        && let Some(n) = v.as_u64()
                    {
                        *v = Value::String(format!("{request_id}-s{n}"));
                    }
                }
                p
            }
            (None, None) => BTreeMap::new(),
        };
        Ok(TraceEvent {
            event_id: self.e.unwrap_or_else(|| format!("{request_id}-{}", self.s)),
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
        let written = match e.form() {
            EventForm::Raw(raw) => serde_json::to_writer(&mut *out, &Compact(raw)),
            EventForm::Built(built) => serde_json::to_writer(&mut *out, &CompactBuilt(built)),
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
        let compact: CompactLine = serde_json::from_slice(line).map_err(|e| corrupt(e.to_string()))?;
        out.push(compact.into_event(request_id).map_err(corrupt)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::processor::test_support::event;

    #[test]
    fn built_events_read_back_exactly_whatever_their_ids_and_payloads() {
        let mut odd = event(4, EventKind::Annotation, None, &[], json!({"key": "k", "span_id": 7, "value": [1]}));
        odd.event_id = "r1-run-end".into();
        let events = vec![
            event(0, EventKind::OpStart, Some("main.x"), &["main", "[2]"], json!({"inputs": {"a": "é\n"}})),
            odd,
            event(5, EventKind::OpEnd, None, &[], json!({})),
        ];
        let mut text = Vec::new();
        encode(&events, &mut text).unwrap();
        assert_eq!(text.iter().filter(|b| **b == b'\n').count(), 3);
        let mut back = Vec::new();
        decode("r1", &text, &mut back).unwrap();
        assert_eq!(back, events);
    }

    #[test]
    fn a_damaged_line_is_reported_with_its_run_and_place() {
        let mut back = Vec::new();
        let err = decode("r9", b"{\"s\":0,\"k\":\"op_start\",\"t\":1}\n{oops\n", &mut back).unwrap_err();
        assert!(err.to_string().contains("r9 (line 2 of a stored chunk)"), "{err}");
    }
}
