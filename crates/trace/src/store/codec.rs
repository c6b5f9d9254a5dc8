//! The stored text of a chunk: one event per line, compactly. A recorded event is a
//! packed line, `[seq, kind, op, ctx, time, payload]`: the time in microseconds after the
//! chunk's first event, the payload's fields by position with span ids as bare numbers
//! and `media_refs` only when not empty (see `RawEvent::packed_payload_serializer`), the
//! run and the event id implied. A built
//! event is an object line (`s`, `e` when the id is not the derived one, `k`, `o`, `c`,
//! `t` in microseconds, `P` its payload verbatim). Chunks written by earlier versions
//! hold object lines with `p`, a recorded event's payload as a map with numeric span
//! ids; they still read back. Every line reads back as the exact wire event (recorded
//! op events with their `media_refs` list, `[]` for lines written before it existed).

use std::collections::BTreeMap;

use chrono::DateTime;
use operonx_runtime::trace::RawEvent;
use operonx_runtime::{EventKind, TraceEvent};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::error::StoreError;
use crate::recorded::{EventForm, EventView};
use crate::run_meta::RunMeta;

/// A recorded event as a packed line; `base` is the chunk's first timestamp.
struct Packed<'a>(&'a RawEvent, i64);

impl Serialize for Packed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut a = s.serialize_seq(Some(6))?;
        a.serialize_element(&e.seq())?;
        a.serialize_element(&e.kind())?;
        a.serialize_element(&e.op_name())?;
        a.serialize_element(&e.ctx_serializer())?;
        a.serialize_element(&e.timestamp_micros().saturating_sub(self.1))?;
        a.serialize_element(&e.packed_payload_serializer())?;
        a.end()
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

/// A run-level event in the object form of built events (its id is not the derived one).
struct CompactMeta<'a>(&'a RunMeta);

impl Serialize for CompactMeta<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut m = s.serialize_map(Some(7))?;
        m.serialize_entry("s", &e.seq())?;
        m.serialize_entry("e", &format_args!("{}-{}", e.request_id(), e.id_suffix()))?;
        m.serialize_entry("k", &EventKind::Annotation)?;
        m.serialize_entry("o", &None::<&str>)?;
        m.serialize_entry("c", &[0u8; 0])?;
        m.serialize_entry("t", &e.timestamp_micros())?;
        m.serialize_entry("P", &MetaPayload(e))?;
        m.end()
    }
}

/// A run-level event's payload, `{"key": ..., "value": ...}`.
struct MetaPayload<'a>(&'a RunMeta);

impl Serialize for MetaPayload<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("key", self.0.key())?;
        m.serialize_entry("value", &self.0.value())?;
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

/// A packed line read back: `[seq, kind, op, ctx, time after the chunk's first, payload]`.
#[derive(Deserialize)]
struct PackedLine(u64, EventKind, Option<String>, Vec<String>, i64, Value);

impl PackedLine {
    fn into_event(self, request_id: &str, base: i64) -> Result<TraceEvent, String> {
        let PackedLine(seq, kind, op_name, ctx, dt, payload) = self;
        let span = |v: Value| match v.as_u64() {
            Some(n) => Value::String(format!("{request_id}-s{n}")),
            None => v,
        };
        let payload: BTreeMap<String, Value> = match payload {
            Value::Object(map) => map.into_iter().collect(),
            Value::Array(fields) => {
                let names: &[&str] = match kind {
                    EventKind::OpStart => &["inputs", "span_id", "parent_span_id", "media_refs"],
                    EventKind::OpEnd => &[
                        "outputs",
                        "status",
                        "duration_ms",
                        "yield_count",
                        "span_id",
                        "parent_span_id",
                        "error",
                        "media_refs",
                    ],
                    EventKind::OpYield => &["yielded", "idx", "span_id", "media_refs"],
                    other => return Err(format!("a packed payload for a {other:?} event")),
                };
                if fields.len() > names.len() {
                    return Err(format!("{} payload fields for {} names", fields.len(), names.len()));
                }
                let mut payload: BTreeMap<String, Value> = names
                    .iter()
                    .zip(fields)
                    // A null error stands before media refs of an op_end without an error.
                    .filter(|(name, v)| !(**name == "error" && v.is_null()))
                    .map(|(name, v)| {
                        let v = if name.ends_with("span_id") { span(v) } else { v };
                        (name.to_string(), v)
                    })
                    .collect();
                with_media_refs(kind, &mut payload);
                payload
            }
            other => return Err(format!("payload {other}")),
        };
        let t = base.saturating_add(dt);
        Ok(TraceEvent {
            event_id: format!("{request_id}-{seq}"),
            request_id: request_id.to_string(),
            kind,
            op_name,
            ctx,
            timestamp: DateTime::from_timestamp_micros(t).ok_or_else(|| format!("timestamp {t}"))?,
            seq,
            payload,
        })
    }
}

/// A recorded op event's payload always has its `media_refs` (empty when the line has
/// none: packed lines leave an empty list out, and lines of earlier versions had none).
fn with_media_refs(kind: EventKind, payload: &mut BTreeMap<String, Value>) {
    if matches!(kind, EventKind::OpStart | EventKind::OpEnd | EventKind::OpYield) {
        payload.entry("media_refs".to_string()).or_insert_with(|| Value::Array(Vec::new()));
    }
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
                with_media_refs(self.k, &mut p);
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

/// Append `events` (one run's, in order) to `out`, one line each. Times of packed lines
/// count from the first event's (the segment's or chunk's `first_ts`).
pub(super) fn encode<E: EventView>(events: &[E], out: &mut Vec<u8>) -> Result<(), StoreError> {
    let base = events.first().map_or(0, EventView::timestamp_micros);
    for e in events {
        let written = match e.form() {
            EventForm::Raw(raw) => serde_json::to_writer(&mut *out, &Packed(raw, base)),
            EventForm::Built(built) => serde_json::to_writer(&mut *out, &CompactBuilt(built)),
            EventForm::Meta(meta) => serde_json::to_writer(&mut *out, &CompactMeta(meta)),
        };
        written.map_err(|err| StoreError::Corrupt {
            event_id: format!("{}-{}", e.request_id(), e.seq()),
            reason: err.to_string(),
        })?;
        out.push(b'\n');
    }
    Ok(())
}

/// Read back the lines of run `request_id` in `data` (a chunk, or a segment of a batch)
/// whose first event happened at `first_ts` (microseconds).
pub(super) fn decode(
    request_id: &str,
    first_ts: i64,
    data: &[u8],
    out: &mut Vec<TraceEvent>,
) -> Result<(), StoreError> {
    for (i, line) in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        let corrupt = |reason: String| StoreError::Corrupt {
            event_id: format!("{request_id} (line {} of a stored chunk)", i + 1),
            reason,
        };
        let event = if line.first() == Some(&b'[') {
            let packed: PackedLine = serde_json::from_slice(line).map_err(|e| corrupt(e.to_string()))?;
            packed.into_event(request_id, first_ts)
        } else {
            let compact: CompactLine = serde_json::from_slice(line).map_err(|e| corrupt(e.to_string()))?;
            compact.into_event(request_id)
        };
        out.push(event.map_err(corrupt)?);
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
        decode("r1", 0, &text, &mut back).unwrap();
        assert_eq!(back, events);
    }

    #[test]
    fn lines_of_earlier_versions_and_packed_lines_read_back_as_wire_events() {
        let text = concat!(
            r#"{"s":0,"k":"op_start","o":"g.a","c":["main"],"t":1000,"p":{"inputs":{"x":1},"parent_span_id":null,"span_id":1}}"#,
            "\n",
            r#"[1,"op_end","g.a",["main","[2]"],5,[{"a":2},"error",0.004,0,1,3,"bad"]]"#,
            "\n",
            r#"[2,"op_yield","g.a",["main"],6,[{"i":0},0,1]]"#,
            "\n",
            r#"[3,"annotation","g.a",[],7,{"key":"k","span_id":"r1-s1"}]"#,
            "\n",
            r#"[4,"op_start","g.b",["main"],8,[{},2,null,[{"field_path":"inputs.img"}]]]"#,
            "\n",
            r#"[5,"op_end","g.b",["main"],9,[{},"ok",0.5,1,2,null,null,[{"field_path":"outputs.img"}]]]"#,
            "\n",
            r#"[6,"op_yield","g.b",["main"],10,[{"i":0},0,2,[{"field_path":"yielded.img"}]]]"#,
            "\n"
        );
        let mut back = Vec::new();
        decode("r1", 1000, text.as_bytes(), &mut back).unwrap();
        let expected = vec![
            event(
                0,
                EventKind::OpStart,
                Some("g.a"),
                &["main"],
                json!({"inputs": {"x": 1}, "parent_span_id": null, "span_id": "r1-s1", "media_refs": []}),
            ),
            event(
                1,
                EventKind::OpEnd,
                Some("g.a"),
                &["main", "[2]"],
                json!({"outputs": {"a": 2}, "status": "error", "duration_ms": 0.004, "yield_count": 0,
                "span_id": "r1-s1", "parent_span_id": "r1-s3", "error": "bad", "media_refs": []}),
            ),
            event(
                2,
                EventKind::OpYield,
                Some("g.a"),
                &["main"],
                json!({"yielded": {"i": 0}, "idx": 0, "span_id": "r1-s1", "media_refs": []}),
            ),
            event(3, EventKind::Annotation, Some("g.a"), &[], json!({"key": "k", "span_id": "r1-s1"})),
            event(
                4,
                EventKind::OpStart,
                Some("g.b"),
                &["main"],
                json!({"inputs": {}, "parent_span_id": null, "span_id": "r1-s2",
                "media_refs": [{"field_path": "inputs.img"}]}),
            ),
            event(
                5,
                EventKind::OpEnd,
                Some("g.b"),
                &["main"],
                json!({"outputs": {}, "status": "ok", "duration_ms": 0.5, "yield_count": 1, "span_id": "r1-s2",
                "parent_span_id": null, "media_refs": [{"field_path": "outputs.img"}]}),
            ),
            event(
                6,
                EventKind::OpYield,
                Some("g.b"),
                &["main"],
                json!({"yielded": {"i": 0}, "idx": 0, "span_id": "r1-s2", "media_refs": [{"field_path": "yielded.img"}]}),
            ),
        ];
        let times: Vec<i64> = back.iter().map(|e| e.timestamp.timestamp_micros()).collect();
        assert_eq!(times, [1000, 1005, 1006, 1007, 1008, 1009, 1010]);
        let strip = |events: Vec<TraceEvent>| -> Vec<_> {
            events.into_iter().map(|e| (e.event_id, e.request_id, e.kind, e.op_name, e.ctx, e.seq, e.payload)).collect()
        };
        assert_eq!(strip(back), strip(expected));
    }

    #[test]
    fn run_level_events_read_back_as_their_wire_events() {
        use crate::recorded::RecordedEvent;
        use crate::run_meta::RunEnd;
        let t = |us| DateTime::from_timestamp_micros(us).unwrap();
        let metas = [
            RunMeta::start("r1".into(), "demo \"g\"".into(), t(1_000)),
            RunMeta::dropped("r1".into(), 3, t(2_000), 7),
            RunMeta::end("r1".into(), RunEnd::Truncated, 9, t(2_000), 8),
        ];
        let events: Vec<RecordedEvent> = metas.iter().cloned().map(RecordedEvent::Meta).collect();
        let mut text = Vec::new();
        encode(&events, &mut text).unwrap();
        let mut back = Vec::new();
        decode("r1", 1_000, &text, &mut back).unwrap();
        let wire: Vec<TraceEvent> = metas.iter().map(RunMeta::to_event).collect();
        assert_eq!(back, wire);
        assert_eq!(wire[2].event_id, "r1-run-end");
        assert_eq!(wire[2].payload["value"], json!({"status": "truncated", "recorded_events": 9}));
    }

    #[test]
    fn packed_lines_that_do_not_fit_their_kind_are_reported() {
        for line in [
            r#"[0,"op_start","g.a",[],0,[{},1,null,[],"extra"]]"#,
            r#"[0,"op_yield","g.a",[],0,[{},1,2,[],"extra"]]"#,
            r#"[0,"annotation",null,[],0,[1]]"#,
        ] {
            let err = decode("r1", 0, line.as_bytes(), &mut Vec::new()).unwrap_err();
            assert!(err.to_string().contains("r1 (line 1 of a stored chunk)"), "{err}");
        }
    }

    #[test]
    fn a_damaged_line_is_reported_with_its_run_and_place() {
        let mut back = Vec::new();
        let err = decode("r9", 0, b"{\"s\":0,\"k\":\"op_start\",\"t\":1}\n{oops\n", &mut back).unwrap_err();
        assert!(err.to_string().contains("r9 (line 2 of a stored chunk)"), "{err}");
    }
}
