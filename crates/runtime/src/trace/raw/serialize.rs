//! The serde wire forms of a [`RawEvent`]: the event as its [`super::TraceEvent`]
//! serializes (byte for byte), its packed payload for storage, and its context path.

use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

use super::*;

impl Serialize for EventCtx {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.segments().map(Shown))
    }
}
impl RawEvent {
    /// The payload packed for storage: a recorded op event as the array of its fields in
    /// a fixed order, span ids as bare numbers — `[inputs, span_id, parent_span_id]` for
    /// `op_start`, `[outputs, status, duration_ms, yield_count, span_id, parent_span_id]`
    /// for `op_end` (with `error` appended when there is one), `[yielded, idx, span_id]`
    /// for `op_yield`, each with `media_refs` appended when it is not empty (after a
    /// `null` error for an `op_end` without one) — and any other payload as its map,
    /// verbatim. About half the bytes of the map form.
    pub fn packed_payload_serializer(&self) -> impl Serialize + '_ {
        PackedPayload(self)
    }

    /// The context path alone, serializable as a list of strings.
    pub fn ctx_serializer(&self) -> impl Serialize + '_ {
        CtxSer(self.ctx.as_ref())
    }
}

struct CtxSer<'a>(Option<&'a EventCtx>);

impl Serialize for CtxSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(c) => c.serialize(s),
            None => s.serialize_seq(Some(0))?.end(),
        }
    }
}

/// Serializes a displayed value as a string, without an intermediate `String`.
struct Shown<T>(T);

impl<T: fmt::Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// An id made of a run's id, an infix and a number (`{request_id}-{seq}`,
/// `{request_id}-s{span}`), serialized as a string without formatting machinery.
struct IdText<'a>(&'a str, &'static str, u64);

impl Serialize for IdText<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (rid, infix, n) = (self.0.as_bytes(), self.1.as_bytes(), self.2);
        let mut buf = [0u8; 96];
        let digits = n.checked_ilog10().map_or(1, |l| l as usize + 1);
        let len = rid.len() + infix.len() + digits;
        if len > buf.len() {
            return s.collect_str(&format_args!("{}{}{n}", self.0, self.1));
        }
        buf[..rid.len()].copy_from_slice(rid);
        buf[rid.len()..rid.len() + infix.len()].copy_from_slice(infix);
        let mut v = n;
        for k in (len - digits..len).rev() {
            buf[k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        match std::str::from_utf8(&buf[..len]) {
            Ok(text) => s.serialize_str(text),
            Err(_) => s.collect_str(&format_args!("{}{}{n}", self.0, self.1)),
        }
    }
}

/// A span id in the wire form, `{request_id}-s{n}`, or `null`.
struct SpanId<'a>(&'a str, Option<u64>);

impl Serialize for SpanId<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.1 {
            Some(id) => IdText(self.0, "-s", id).serialize(s),
            None => s.serialize_none(),
        }
    }
}

/// See [`RawEvent::packed_payload_serializer`].
struct PackedPayload<'a>(&'a RawEvent);

impl Serialize for PackedPayload<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0.payload {
            RawPayload::Start { inputs, span, parent, media_refs } => {
                let media = !media_refs.is_empty();
                let mut a = s.serialize_seq(Some(3 + usize::from(media)))?;
                a.serialize_element(inputs)?;
                a.serialize_element(span)?;
                a.serialize_element(parent)?;
                if media {
                    a.serialize_element(media_refs)?;
                }
                a.end()
            }
            RawPayload::End { outputs, status, duration_ms, yields, error, span, parent, media_refs } => {
                let media = !media_refs.is_empty();
                let mut a = s.serialize_seq(Some(if media { 8 } else { 6 + usize::from(error.is_some()) }))?;
                a.serialize_element(outputs)?;
                a.serialize_element(status)?;
                a.serialize_element(&round_ms(*duration_ms))?;
                a.serialize_element(yields)?;
                a.serialize_element(span)?;
                a.serialize_element(parent)?;
                if let Some(e) = error {
                    a.serialize_element(e)?;
                } else if media {
                    a.serialize_element(&Value::Null)?;
                }
                if media {
                    a.serialize_element(media_refs)?;
                }
                a.end()
            }
            RawPayload::Yield { yielded, idx, span, media_refs } => {
                let media = !media_refs.is_empty();
                let mut a = s.serialize_seq(Some(3 + usize::from(media)))?;
                a.serialize_element(yielded)?;
                a.serialize_element(idx)?;
                a.serialize_element(span)?;
                if media {
                    a.serialize_element(media_refs)?;
                }
                a.end()
            }
            RawPayload::Map(map) => map.serialize(s),
        }
    }
}

/// The payload of a raw event, keys in the order of the wire event's sorted map.
struct PayloadSer<'a>(&'a RawEvent);

impl Serialize for PayloadSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let rid: &str = &self.0.request_id;
        match &self.0.payload {
            RawPayload::Start { inputs, span, parent, media_refs } => {
                let mut m = s.serialize_map(Some(4))?;
                m.serialize_entry("inputs", inputs)?;
                m.serialize_entry("media_refs", media_refs)?;
                m.serialize_entry("parent_span_id", &SpanId(rid, *parent))?;
                m.serialize_entry("span_id", &SpanId(rid, Some(*span)))?;
                m.end()
            }
            RawPayload::End { outputs, status, duration_ms, yields, error, span, parent, media_refs } => {
                let mut m = s.serialize_map(Some(7 + usize::from(error.is_some())))?;
                m.serialize_entry("duration_ms", &round_ms(*duration_ms))?;
                if let Some(e) = error {
                    m.serialize_entry("error", e)?;
                }
                m.serialize_entry("media_refs", media_refs)?;
                m.serialize_entry("outputs", outputs)?;
                m.serialize_entry("parent_span_id", &SpanId(rid, *parent))?;
                m.serialize_entry("span_id", &SpanId(rid, Some(*span)))?;
                m.serialize_entry("status", status)?;
                m.serialize_entry("yield_count", yields)?;
                m.end()
            }
            RawPayload::Yield { yielded, idx, span, media_refs } => {
                let mut m = s.serialize_map(Some(4))?;
                m.serialize_entry("idx", idx)?;
                m.serialize_entry("media_refs", media_refs)?;
                m.serialize_entry("span_id", &SpanId(rid, Some(*span)))?;
                m.serialize_entry("yielded", yielded)?;
                m.end()
            }
            RawPayload::Map(map) => map.serialize(s),
        }
    }
}

/// The wire form of the event, byte for byte what its [`TraceEvent`] serializes to.
impl Serialize for RawEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let rid: &str = &self.request_id;
        let mut e = s.serialize_struct("TraceEvent", 8)?;
        e.serialize_field("event_id", &IdText(rid, "-", self.seq))?;
        e.serialize_field("request_id", rid)?;
        e.serialize_field("kind", &self.kind)?;
        e.serialize_field("op_name", &self.op.as_deref())?;
        e.serialize_field("ctx", &CtxSer(self.ctx.as_ref()))?;
        e.serialize_field("timestamp", &WireTime(self.at_us))?;
        e.serialize_field("seq", &self.seq)?;
        e.serialize_field("payload", &PayloadSer(self))?;
        e.end()
    }
}
