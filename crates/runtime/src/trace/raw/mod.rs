//! Events as the scheduler records them: ids, shared names and the values involved, with
//! no formatting. A [`RawEvent`] serializes straight to the wire format (the same text as
//! its [`TraceEvent`]), and [`RawEvent::materialize`] turns it into a wire event.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::wire_time::WireTime;
use super::{EventKind, TraceEvent};

mod serialize;
use crate::record::{Held, Inputs, Outputs};

/// A context path in parts: the run's prefix, the loop iteration, the item indexes
/// (and [`EventCtx::COLLECT`] where a `.collect()` consumer's context adds `__collect__`).
#[derive(Debug, Clone)]
pub(crate) struct EventCtx {
    pub prefix: Arc<[String]>,
    pub iteration: u32,
    pub items: Vec<u32>,
}

/// One part of a context path, as written: a prefix part, `loop_{n}`, `[{i}]` or
/// `__collect__`.
enum Segment<'a> {
    Prefix(&'a str),
    Loop(u32),
    Item(u32),
    Collect,
}

impl fmt::Display for Segment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Prefix(p) => f.write_str(p),
            Segment::Loop(n) => write!(f, "loop_{n}"),
            Segment::Item(i) => write!(f, "[{i}]"),
            Segment::Collect => f.write_str(EventCtx::COLLECT_SEGMENT),
        }
    }
}

impl EventCtx {
    /// An entry of `items` that stands for `__collect__`, not an item index.
    pub const COLLECT: u32 = u32::MAX;
    /// The path segment of a `.collect()` consumer's context (as in the reference engine).
    pub const COLLECT_SEGMENT: &'static str = "__collect__";

    /// Add `__collect__` before the item index at each of `marks` (ascending; see
    /// `Node::collect_marks`).
    pub fn with_collect_marks(mut self, marks: &[u32]) -> Self {
        for (k, &at) in marks.iter().enumerate() {
            let at = (at as usize + k).min(self.items.len());
            self.items.insert(at, Self::COLLECT);
        }
        self
    }

    /// The path's parts in order.
    fn segments(&self) -> impl Iterator<Item = Segment<'_>> {
        let iteration = (self.iteration > 0).then_some(Segment::Loop(self.iteration));
        self.prefix
            .iter()
            .map(|p| Segment::Prefix(p))
            .chain(iteration)
            .chain(self.items.iter().map(|&i| if i == Self::COLLECT { Segment::Collect } else { Segment::Item(i) }))
    }

    pub fn to_path(&self) -> Vec<String> {
        self.segments().map(|s| s.to_string()).collect()
    }

    /// `{op}@{path joined by /}` (a journal key) written into one string, and where the
    /// item part of the path (after the first segment) starts, if there is one.
    pub fn journal_key(&self, op: &str) -> (String, Option<usize>) {
        use std::fmt::Write;
        let mut key = String::with_capacity(op.len() + 16 + 6 * self.items.len());
        key.push_str(op);
        key.push('@');
        let mut rest = None;
        for (i, seg) in self.segments().enumerate() {
            if i > 0 {
                key.push('/');
                if i == 1 {
                    rest = Some(key.len());
                }
            }
            // Writing to a String cannot fail.
            let _ = write!(key, "{seg}");
        }
        (key, rest)
    }
}

/// Named values recorded in an event (an op's inputs, outputs or one yielded item). One
/// value, the common case, is held inline. Values are shared with the run where they can
/// be (an op's inputs), or cut to the tracer's list limit as they are copied (see
/// [`crate::TraceSink::max_list_items`]): recording a large value never copies it whole.
#[derive(Debug, Clone)]
pub(crate) enum Named {
    Empty,
    One(Name, Held),
    Inputs(Inputs),
    Outputs(Outputs),
}

/// The name of an inline value: shared with the plan, or the op's own.
#[derive(Debug, Clone)]
pub(crate) enum Name {
    Shared(Arc<str>),
    Own(Cow<'static, str>),
}

impl Name {
    fn as_str(&self) -> &str {
        match self {
            Name::Shared(s) => s,
            Name::Own(s) => s,
        }
    }
}

/// The text that stands for the items cut from a list (as the `truncate` processor
/// writes it).
pub fn cut_items_marker(cut: usize) -> String {
    format!("...[truncated {cut} items]")
}

/// A copy of `v` with every list longer than `max_items` cut to its first `max_items`
/// items followed by [`cut_items_marker`], at any depth. Only what is kept is copied.
pub fn cut_lists(v: &Value, max_items: usize) -> Value {
    match v {
        Value::Array(items) => {
            let mut out: Vec<Value> = items.iter().take(max_items).map(|i| cut_lists(i, max_items)).collect();
            if items.len() > max_items {
                out.push(Value::String(cut_items_marker(items.len() - max_items)));
            }
            Value::Array(out)
        }
        Value::Object(map) => Value::Object(map.iter().map(|(k, i)| (k.clone(), cut_lists(i, max_items))).collect()),
        other => other.clone(),
    }
}

/// Whether `v` holds a list longer than `max_items`, at any depth.
fn has_long_list(v: &Value, max_items: usize) -> bool {
    match v {
        Value::Array(items) => items.len() > max_items || items.iter().any(|i| has_long_list(i, max_items)),
        Value::Object(map) => map.values().any(|i| has_long_list(i, max_items)),
        _ => false,
    }
}

/// A copy of `v` for a trace: cut to `max_items` per list when a limit is given.
fn copy_for_trace(v: &Value, max_items: Option<usize>) -> Value {
    match max_items {
        Some(n) => cut_lists(v, n),
        None => v.clone(),
    }
}

impl Named {
    /// An op's inputs: shared with the run, or cut where a list is longer than `max_items`.
    pub(crate) fn inputs(inputs: Option<&Inputs>, max_items: Option<usize>) -> Self {
        let Some(i) = inputs else { return Named::Empty };
        let long = |v: &Value| max_items.is_some_and(|n| has_long_list(v, n));
        if i.len() == 1
            && let Some((name, value)) = i.shared_entries().next()
        {
            let value = if long(value) { Held::new(copy_for_trace(value, max_items)) } else { value.clone() };
            return Named::One(Name::Shared(name.clone()), value);
        }
        if i.iter().any(|(_, v)| long(v)) {
            let (names, values): (Vec<Arc<str>>, Vec<Held>) = i
                .shared_entries()
                .map(|(n, v)| (n.clone(), if long(v) { Held::new(copy_for_trace(v, max_items)) } else { v.clone() }))
                .unzip();
            return Named::Inputs(Inputs::held(names.into(), values));
        }
        Named::Inputs(i.clone())
    }

    /// A copy of an op's outputs, lists cut to `max_items` when given.
    pub(crate) fn outputs(outputs: Option<&Outputs>, max_items: Option<usize>) -> Self {
        match outputs {
            None => Named::Empty,
            Some(o) => match o.single() {
                Some((name, value)) => Named::One(Name::Own(name.clone()), Held::new(copy_for_trace(value, max_items))),
                None => {
                    let mut copy = Outputs::new();
                    for (n, v) in o.iter() {
                        copy.insert(n.to_string(), copy_for_trace(v, max_items));
                    }
                    Named::Outputs(copy)
                }
            },
        }
    }

    fn for_each_mut(&mut self, f: &mut dyn FnMut(&str, &mut Value)) {
        match self {
            Named::Empty => {}
            Named::One(n, v) => f(n.as_str(), v.make_mut()),
            Named::Inputs(i) => i.iter_mut().for_each(|(n, v)| f(n, v)),
            Named::Outputs(o) => o.iter_mut().for_each(|(n, v)| f(n, v)),
        }
    }

    fn any(&self, f: &mut dyn FnMut(&str, &Value) -> bool) -> bool {
        match self {
            Named::Empty => false,
            Named::One(n, v) => f(n.as_str(), v),
            Named::Inputs(i) => i.iter().any(|(n, v)| f(n, v)),
            Named::Outputs(o) => o.iter().any(|(n, v)| f(n, v)),
        }
    }

    fn into_map(self) -> Map<String, Value> {
        match self {
            Named::Empty => Map::new(),
            Named::One(n, v) => std::iter::once((n.as_str().to_string(), v.into_value())).collect(),
            Named::Inputs(i) => i.into_map(),
            Named::Outputs(o) => o.into_map(),
        }
    }
}

impl Serialize for Named {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Named::Empty => s.serialize_map(Some(0))?.end(),
            Named::One(n, v) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(n.as_str(), &**v)?;
                m.end()
            }
            Named::Inputs(i) => s.collect_map(i.iter()),
            Named::Outputs(o) => s.collect_map(o.iter()),
        }
    }
}

/// The media references of an op event (its payload's `media_refs`, as in the reference
/// engine): one JSON value per media item found in the event's inputs, outputs or yielded
/// item, in the order found. Always written, as a list, empty when there are none: an
/// empty list (the common case) allocates nothing and adds one word to an event.
#[derive(Debug, Clone, Default, PartialEq)]
// Boxed: one word in every op event (a `Vec` would take three), refs being rare.
#[allow(clippy::box_collection)]
pub struct MediaRefs(Option<Box<Vec<Value>>>);

impl MediaRefs {
    /// No references.
    pub const fn new() -> Self {
        Self(None)
    }

    /// Add a reference.
    pub fn push(&mut self, r: Value) {
        self.0.get_or_insert_with(Default::default).push(r);
    }

    /// The references, in order.
    pub fn as_slice(&self) -> &[Value] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// The wire value: a JSON array.
    pub fn to_value(&self) -> Value {
        Value::Array(self.as_slice().to_vec())
    }

    /// The wire value, moving the references.
    pub fn into_value(self) -> Value {
        Value::Array(self.0.map_or_else(Vec::new, |v| *v))
    }
}

impl From<Vec<Value>> for MediaRefs {
    fn from(refs: Vec<Value>) -> Self {
        if refs.is_empty() { Self(None) } else { Self(Some(Box::new(refs))) }
    }
}

impl Serialize for MediaRefs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.as_slice())
    }
}

/// The kind-specific part of a raw event.
#[derive(Debug, Clone)]
pub(crate) enum RawPayload {
    Start {
        inputs: Named,
        span: u64,
        parent: Option<u64>,
        media_refs: MediaRefs,
    },
    End {
        outputs: Named,
        status: &'static str,
        duration_ms: f64,
        yields: u64,
        /// Always a string; a value so processors can rewrite it in place (boxed: rare,
        /// and every raw event is as large as its largest kind).
        error: Option<Box<Value>>,
        span: u64,
        parent: Option<u64>,
        media_refs: MediaRefs,
    },
    Yield {
        yielded: Named,
        idx: u32,
        span: u64,
        media_refs: MediaRefs,
    },
    Map(BTreeMap<String, Value>),
}

/// One event as recorded on the scheduler's hot path. Cheap to create and to buffer;
/// it serializes to exactly the text of its wire event, and [`RawEvent::materialize`]
/// builds the wire event itself.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub(crate) kind: EventKind,
    pub(crate) seq: u64,
    /// Microseconds since the Unix epoch.
    pub(crate) at_us: i64,
    pub(crate) request_id: Arc<str>,
    pub(crate) op: Option<Arc<str>>,
    pub(crate) ctx: Option<EventCtx>,
    pub(crate) payload: RawPayload,
}

/// `duration_ms` as written: rounded to the microsecond.
fn round_ms(ms: f64) -> Value {
    serde_json::Number::from_f64((ms * 1000.0).round() / 1000.0).map_or(Value::Null, Value::Number)
}

impl RawEvent {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        self.kind
    }

    /// The run it belongs to.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The per-run sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The full name of the op it is bound to, if any.
    pub fn op_name(&self) -> Option<&str> {
        self.op.as_deref()
    }

    /// The `status` of an `op_end` (`ok`, `error`, ...).
    pub fn status(&self) -> Option<&'static str> {
        match &self.payload {
            RawPayload::End { status, .. } => Some(status),
            _ => None,
        }
    }

    /// Whether it names a parent span (an op inside a generator item, a loop iteration
    /// or a nested run).
    pub fn has_parent_span(&self) -> bool {
        match &self.payload {
            RawPayload::Start { parent, .. } | RawPayload::End { parent, .. } => parent.is_some(),
            RawPayload::Yield { .. } => false,
            RawPayload::Map(m) => m.get("parent_span_id").is_some_and(|p| !p.is_null()),
        }
    }

    /// When it happened, in microseconds since the Unix epoch (the wire precision).
    pub fn timestamp_micros(&self) -> i64 {
        self.at_us
    }

    /// When it happened.
    pub fn timestamp(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.at_us).unwrap_or_default()
    }

    /// One field of the wire payload (built on demand for the recorded kinds: cheap for
    /// `status`, `span_id` and the like, a copy for `inputs` and `outputs`).
    pub fn payload_value(&self, key: &str) -> Option<Cow<'_, Value>> {
        let span = |id: u64| Cow::Owned(Value::String(format!("{}-s{id}", self.request_id)));
        let parent = |p: Option<u64>| p.map_or(Cow::Owned(Value::Null), span);
        match (&self.payload, key) {
            (RawPayload::Map(m), _) => m.get(key).map(Cow::Borrowed),
            (RawPayload::Start { inputs, .. }, "inputs") => Some(Cow::Owned(Value::Object(inputs.clone().into_map()))),
            (
                RawPayload::Start { span: s, .. } | RawPayload::End { span: s, .. } | RawPayload::Yield { span: s, .. },
                "span_id",
            ) => Some(span(*s)),
            (RawPayload::Start { parent: p, .. } | RawPayload::End { parent: p, .. }, "parent_span_id") => {
                Some(parent(*p))
            }
            (RawPayload::End { outputs, .. }, "outputs") => Some(Cow::Owned(Value::Object(outputs.clone().into_map()))),
            (RawPayload::End { status, .. }, "status") => Some(Cow::Owned(Value::String((*status).to_string()))),
            (RawPayload::End { duration_ms, .. }, "duration_ms") => Some(Cow::Owned(round_ms(*duration_ms))),
            (RawPayload::End { yields, .. }, "yield_count") => Some(Cow::Owned(Value::from(*yields))),
            (RawPayload::End { error, .. }, "error") => error.as_deref().map(Cow::Borrowed),
            (RawPayload::Yield { yielded, .. }, "yielded") => {
                Some(Cow::Owned(Value::Object(yielded.clone().into_map())))
            }
            (RawPayload::Yield { idx, .. }, "idx") => Some(Cow::Owned(Value::from(*idx))),
            (
                RawPayload::Start { media_refs, .. }
                | RawPayload::End { media_refs, .. }
                | RawPayload::Yield { media_refs, .. },
                "media_refs",
            ) => Some(Cow::Owned(media_refs.to_value())),
            _ => None,
        }
    }

    /// Rewrite the event's data in place (redaction, truncation), without building it:
    /// `payload` gets the whole payload of events recorded as a map (annotations, usage,
    /// groups); `field` gets every other data field, `(name, entry, value)`: once per
    /// entry of `inputs`, `outputs` and `yielded` (`entry` = the input or output name),
    /// once for `error` (`entry` = `None`). Structural fields are never handed out.
    pub fn rewrite_values(
        &mut self,
        payload: &mut dyn FnMut(EventKind, &mut BTreeMap<String, Value>),
        field: &mut dyn FnMut(&str, Option<&str>, &mut Value),
    ) {
        match &mut self.payload {
            RawPayload::Start { inputs, .. } => {
                inputs.for_each_mut(&mut |name, v| field("inputs", Some(name), v));
            }
            RawPayload::End { outputs, error, .. } => {
                outputs.for_each_mut(&mut |name, v| field("outputs", Some(name), v));
                if let Some(e) = error {
                    field("error", None, e);
                }
            }
            RawPayload::Yield { yielded, .. } => {
                yielded.for_each_mut(&mut |name, v| field("yielded", Some(name), v));
            }
            RawPayload::Map(m) => payload(self.kind, m),
        }
    }

    /// Whether `f` holds for any data field of the event, read in place (nothing copied,
    /// nothing shared with the run made private): the fields [`RawEvent::rewrite_values`]
    /// hands out, `(name, entry, value)` alike, and each entry of a payload recorded as a
    /// map as `(key, None, value)`.
    pub fn any_value(&self, f: &mut dyn FnMut(&str, Option<&str>, &Value) -> bool) -> bool {
        match &self.payload {
            RawPayload::Start { inputs, .. } => inputs.any(&mut |name, v| f("inputs", Some(name), v)),
            RawPayload::End { outputs, error, .. } => {
                outputs.any(&mut |name, v| f("outputs", Some(name), v))
                    || error.as_deref().is_some_and(|e| f("error", None, e))
            }
            RawPayload::Yield { yielded, .. } => yielded.any(&mut |name, v| f("yielded", Some(name), v)),
            RawPayload::Map(m) => m.iter().any(|(k, v)| f(k, None, v)),
        }
    }

    /// Build the wire event (moving the recorded values, not copying them).
    pub fn materialize(self) -> TraceEvent {
        let timestamp = self.timestamp();
        let rid = &self.request_id;
        let span = |id: u64| Value::String(format!("{rid}-s{id}"));
        let opt_span = |id: Option<u64>| id.map_or(Value::Null, span);
        let mut payload = BTreeMap::new();
        match self.payload {
            RawPayload::Start { inputs, span: s, parent, media_refs } => {
                payload.insert("inputs".to_string(), Value::Object(inputs.into_map()));
                payload.insert("media_refs".to_string(), media_refs.into_value());
                payload.insert("span_id".to_string(), span(s));
                payload.insert("parent_span_id".to_string(), opt_span(parent));
            }
            RawPayload::End { outputs, status, duration_ms, yields, error, span: s, parent, media_refs } => {
                payload.insert("outputs".to_string(), Value::Object(outputs.into_map()));
                payload.insert("media_refs".to_string(), media_refs.into_value());
                payload.insert("status".to_string(), Value::String(status.to_string()));
                payload.insert("duration_ms".to_string(), round_ms(duration_ms));
                payload.insert("yield_count".to_string(), Value::from(yields));
                if let Some(e) = error {
                    payload.insert("error".to_string(), *e);
                }
                payload.insert("span_id".to_string(), span(s));
                payload.insert("parent_span_id".to_string(), opt_span(parent));
            }
            RawPayload::Yield { yielded, idx, span: s, media_refs } => {
                payload.insert("yielded".to_string(), Value::Object(yielded.into_map()));
                payload.insert("media_refs".to_string(), media_refs.into_value());
                payload.insert("idx".to_string(), Value::from(idx));
                payload.insert("span_id".to_string(), span(s));
            }
            RawPayload::Map(m) => payload = m,
        }
        TraceEvent {
            event_id: format!("{rid}-{}", self.seq),
            request_id: rid.to_string(),
            kind: self.kind,
            op_name: self.op.map(|o| o.to_string()),
            ctx: self.ctx.map(|c| c.to_path()).unwrap_or_default(),
            timestamp,
            seq: self.seq,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn names(n: &[&str]) -> Arc<[Arc<str>]> {
        n.iter().map(|s| Arc::from(*s)).collect::<Vec<_>>().into()
    }

    fn raw(kind: EventKind, ctx: Option<EventCtx>, payload: RawPayload) -> RawEvent {
        RawEvent {
            kind,
            seq: 7,
            at_us: 1_780_000_000_123_456,
            request_id: Arc::from("rid"),
            op: (kind != EventKind::GroupStart).then(|| Arc::from("g.op")),
            ctx,
            payload,
        }
    }

    fn media() -> MediaRefs {
        vec![json!({"field_path": "inputs.x", "mime_type": "image/png", "size_bytes": 3})].into()
    }

    fn samples() -> Vec<RawEvent> {
        let ctx = EventCtx {
            prefix: Arc::from(vec!["main".to_string(), "[2]".to_string()]),
            iteration: 3,
            items: vec![0, 11],
        };
        let inputs = Inputs::new(names(&["z", "a"]), vec![json!("é\"\n"), json!({"k": [1, 2.5, null]})]);
        let outputs = Outputs::one("out", json!(3)).with("b", json!(true));
        let one = Inputs::new(names(&["x"]), vec![json!("v")]);
        vec![
            raw(
                EventKind::OpStart,
                Some(ctx.clone()),
                RawPayload::Start {
                    inputs: Named::inputs(Some(&inputs), None),
                    span: 4,
                    parent: None,
                    media_refs: MediaRefs::new(),
                },
            ),
            raw(
                EventKind::OpStart,
                None,
                RawPayload::Start {
                    inputs: Named::inputs(Some(&one), None),
                    span: 5,
                    parent: Some(4),
                    media_refs: media(),
                },
            ),
            raw(
                EventKind::OpStart,
                None,
                RawPayload::Start {
                    inputs: Named::inputs(None, None),
                    span: 6,
                    parent: None,
                    media_refs: MediaRefs::new(),
                },
            ),
            raw(
                EventKind::OpEnd,
                Some(ctx.clone()),
                RawPayload::End {
                    outputs: Named::outputs(Some(&outputs), None),
                    status: "error",
                    duration_ms: 1.234_567_8,
                    yields: 2,
                    error: Some(Box::new(json!("boom"))),
                    span: 4,
                    parent: Some(1),
                    media_refs: media(),
                },
            ),
            raw(
                EventKind::OpEnd,
                None,
                RawPayload::End {
                    outputs: Named::outputs(Some(&Outputs::one("only", json!([1]))), None),
                    status: "ok",
                    duration_ms: 0.0,
                    yields: 0,
                    error: None,
                    span: 5,
                    parent: None,
                    media_refs: media(),
                },
            ),
            raw(
                EventKind::OpYield,
                Some(ctx),
                RawPayload::Yield {
                    yielded: Named::outputs(Some(&outputs), None),
                    idx: 9,
                    span: 4,
                    media_refs: media(),
                },
            ),
            raw(
                EventKind::OpEnd,
                None,
                RawPayload::End {
                    outputs: Named::outputs(None, None),
                    status: "ok",
                    duration_ms: 1.0,
                    yields: 0,
                    error: None,
                    span: 7,
                    parent: None,
                    media_refs: MediaRefs::new(),
                },
            ),
            raw(
                EventKind::OpYield,
                None,
                RawPayload::Yield {
                    yielded: Named::outputs(None, None),
                    idx: 0,
                    span: 4,
                    media_refs: MediaRefs::new(),
                },
            ),
            raw(EventKind::GroupStart, None, RawPayload::Map([("name".to_string(), json!("iteration 1"))].into())),
        ]
    }

    #[test]
    fn op_events_always_carry_their_media_refs_as_a_list() {
        let mut seen = [0usize; 2];
        for e in samples() {
            let op = matches!(e.kind, EventKind::OpStart | EventKind::OpEnd | EventKind::OpYield);
            let built = e.clone().materialize();
            match built.payload.get("media_refs") {
                Some(Value::Array(refs)) => {
                    assert!(op, "{built:?}");
                    seen[usize::from(!refs.is_empty())] += 1;
                    assert_eq!(refs.as_slice(), e.payload_value("media_refs").unwrap().as_array().unwrap().as_slice());
                }
                other => assert!(!op && other.is_none(), "{built:?}"),
            }
        }
        assert!(seen[0] > 0 && seen[1] > 0, "empty and non-empty lists both sampled: {seen:?}");
        let mut refs = MediaRefs::new();
        assert!(refs.is_empty() && refs.to_value() == json!([]));
        refs.push(json!({"field_path": "outputs.a"}));
        assert_eq!(refs.as_slice().len(), 1);
        assert_eq!(serde_json::to_value(&refs).unwrap(), json!([{"field_path": "outputs.a"}]));
        assert_eq!(MediaRefs::from(Vec::new()), MediaRefs::new());
    }

    #[test]
    fn serializes_to_exactly_the_text_of_its_wire_event() {
        for e in samples() {
            let direct = serde_json::to_string(&e).unwrap();
            let built = serde_json::to_string(&e.clone().materialize()).unwrap();
            assert_eq!(direct, built);
            let back: TraceEvent = serde_json::from_str(&direct).unwrap();
            assert_eq!(back, e.materialize());
        }
    }

    #[test]
    fn ids_and_times_of_any_length_serialize_as_their_wire_text() {
        let long = "r".repeat(120);
        for (rid, seq, at_us) in [
            ("rid", 0, 0),
            ("é\"quoted\"", u64::MAX, -1),
            (long.as_str(), 1_000_000, 253_402_300_800_000_000), // year 10000
            ("rid", 9, -62_135_596_800_000_000),                 // year 1
        ] {
            for mut e in samples() {
                e.request_id = Arc::from(rid);
                e.seq = seq;
                e.at_us = at_us;
                let built = e.clone().materialize();
                let expected = serde_json::to_value(&built).unwrap();
                assert_eq!(serde_json::to_value(&e).unwrap(), expected, "{rid} {seq} {at_us}");
            }
        }
    }

    #[test]
    fn payload_values_match_the_wire_payload() {
        for e in samples() {
            let built = e.clone().materialize();
            for (k, v) in &built.payload {
                assert_eq!(e.payload_value(k).as_deref(), Some(v), "{k}");
            }
            assert!(e.payload_value("nope").is_none());
        }
    }

    #[test]
    fn reading_in_place_sees_what_rewriting_hands_out() {
        for e in samples() {
            let mut read = Vec::new();
            e.any_value(&mut |f, entry, v| {
                read.push((f.to_string(), entry.map(str::to_string), v.clone()));
                false
            });
            let rewritten = std::cell::RefCell::new(Vec::new());
            e.clone().rewrite_values(
                &mut |_, m| rewritten.borrow_mut().extend(m.iter().map(|(k, v)| (k.clone(), None, v.clone()))),
                &mut |f, entry, v| rewritten.borrow_mut().push((f.to_string(), entry.map(str::to_string), v.clone())),
            );
            let rewritten = rewritten.into_inner();
            assert_eq!(read, rewritten);
            assert_eq!(e.any_value(&mut |_, _, _| true), !read.is_empty());
        }
    }

    #[test]
    fn rewriting_reaches_every_data_field_and_no_structural_one() {
        for mut e in samples() {
            let seen = std::cell::RefCell::new(Vec::new());
            e.rewrite_values(
                &mut |_, m| {
                    seen.borrow_mut().push("map".to_string());
                    m.insert("name".into(), json!("x"));
                },
                &mut |f, entry, v| {
                    seen.borrow_mut().push(format!("{f}.{}", entry.unwrap_or("")));
                    *v = json!("R");
                },
            );
            let seen = seen.into_inner();
            let built = e.materialize();
            for (k, v) in &built.payload {
                match k.as_str() {
                    "inputs" | "outputs" | "yielded" => {
                        assert!(v.as_object().unwrap().values().all(|x| x == "R"), "{k}: {v}")
                    }
                    "error" => assert_eq!(v, "R"),
                    "name" => assert_eq!(v, "x"),
                    _ => assert_ne!(v, "R", "{k}"),
                }
            }
            assert!(seen.iter().all(|s| s == "map" || s.contains('.')), "{seen:?}");
        }
    }
}
