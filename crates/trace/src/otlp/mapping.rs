//! Folding trace events into OTLP spans (`opentelemetry.proto.trace.v1`, the messages of
//! the `opentelemetry-proto` crate).
//!
//! A span is exported once, when its `op_end`/`group_end` arrives; events of spans still
//! open at the end of a batch are kept by the exporter until then.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use operonx_runtime::{EventKind, TraceEvent};
use serde_json::Value;

/// Settings that shape the spans.
#[derive(Debug, Clone)]
pub(crate) struct SpanOptions {
    pub(crate) capture_content: bool,
    pub(crate) max_attribute_len: usize,
    pub(crate) max_events_per_span: usize,
}

fn name_hash64(s: &str) -> u64 {
    operonx_graph::digest::hash64(s.as_bytes())
}

fn name_hash128(s: &str) -> u128 {
    operonx_graph::digest::hash128(s.as_bytes())
}

/// A bijective 64-bit finalizer, so ids of similar keys do not look alike.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The OTLP trace id of a run: the request id itself when it is a UUID (so other tools
/// show the same id), else a 128-bit hash of it; never all zero.
pub(crate) fn trace_id(request_id: &str) -> [u8; 16] {
    let dashes_ok = match request_id.len() {
        32 => !request_id.contains('-'),
        36 => request_id.char_indices().all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (c == '-')),
        _ => false,
    };
    let hex: String = request_id.chars().filter(|c| *c != '-').collect();
    if dashes_ok
        && let Ok(n) = u128::from_str_radix(&hex, 16)
        && n != 0
    {
        return n.to_be_bytes();
    }
    let h = name_hash128(request_id);
    let (hi, lo) = (mix((h >> 64) as u64), mix(h as u64));
    let lo = if hi == 0 && lo == 0 { 1 } else { lo };
    ((u128::from(hi) << 64) | u128::from(lo)).to_be_bytes()
}

/// The OTLP span id of a span key: 8 bytes, never all zero.
pub(crate) fn span_id(key: &str) -> [u8; 8] {
    mix(name_hash64(key)).max(1).to_be_bytes()
}

/// The span key of an event: its `span_id`, or (older producers) its run, op and context,
/// where a yield's item context is folded back into its generator's.
pub(crate) fn span_key(e: &TraceEvent) -> String {
    if let Some(s) = e.payload.get("span_id").and_then(Value::as_str) {
        return s.to_string();
    }
    let mut ctx: &[String] = &e.ctx;
    if e.kind == EventKind::OpYield
        && let Some((last, rest)) = ctx.split_last()
        && (last.starts_with('[') || last.starts_with("yield_"))
    {
        ctx = rest;
    }
    let name = e.op_name.as_deref().or_else(|| e.payload.get("name").and_then(Value::as_str)).unwrap_or("");
    format!("{}\u{1}{name}\u{1}{}", e.request_id, ctx.join("\u{1}"))
}

fn nanos(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_nanos_opt().unwrap_or(0)).unwrap_or(0)
}

fn truncate(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s,
    }
}

/// An OTLP `KeyValue`.
pub(crate) fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue { key: key.to_string(), value: Some(value), ..KeyValue::default() }
}

/// A string `AnyValue`.
pub(crate) fn string(s: impl Into<String>) -> AnyValue {
    AnyValue { value: Some(Any::StringValue(s.into())) }
}

fn int(i: i64) -> AnyValue {
    AnyValue { value: Some(Any::IntValue(i)) }
}

fn uint(u: u64) -> AnyValue {
    int(i64::try_from(u).unwrap_or(i64::MAX))
}

fn double(f: f64) -> AnyValue {
    AnyValue { value: Some(Any::DoubleValue(f)) }
}

fn boolean(b: bool) -> AnyValue {
    AnyValue { value: Some(Any::BoolValue(b)) }
}

/// A JSON value as an OTLP `AnyValue`: scalars as themselves, objects and arrays as JSON text.
fn any(v: &Value, max: usize) -> AnyValue {
    match v {
        Value::String(s) => string(truncate(s.clone(), max)),
        Value::Bool(b) => boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => int(i),
            (None, Some(f)) => double(f),
            (None, None) => string(n.to_string()),
        },
        other => string(truncate(other.to_string(), max)),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// One span event (annotation, yielded item, media reference).
#[derive(Debug, Clone)]
struct SpanEvent {
    time: DateTime<Utc>,
    name: String,
    attributes: Vec<KeyValue>,
}

/// Token usage of the model calls of one op call.
#[derive(Debug, Clone, Default)]
struct Usage {
    model: Option<String>,
    response_model: Option<String>,
    provider: Option<String>,
    input: u64,
    output: u64,
    cost: f64,
    finish_reasons: Vec<String>,
}

/// What is known of one span so far.
#[derive(Debug, Clone)]
pub(crate) struct SpanState {
    request_id: String,
    key: String,
    parent: Option<String>,
    group: bool,
    name: Option<String>,
    ctx: Vec<String>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    last_seen: DateTime<Utc>,
    inputs: Option<Value>,
    outputs: Option<Value>,
    status: Option<String>,
    error: Option<String>,
    duration_ms: Option<f64>,
    yield_count: Option<u64>,
    extra: Vec<(String, Value)>,
    events: Vec<SpanEvent>,
    dropped_events: u32,
    usage: Option<Usage>,
}

fn u64_of(v: Option<&Value>) -> u64 {
    v.and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64))).unwrap_or(0)
}

impl SpanState {
    fn new(e: &TraceEvent, key: String) -> Self {
        Self {
            request_id: e.request_id.clone(),
            key,
            parent: None,
            group: false,
            name: None,
            ctx: Vec::new(),
            start: None,
            end: None,
            last_seen: e.timestamp,
            inputs: None,
            outputs: None,
            status: None,
            error: None,
            duration_ms: None,
            yield_count: None,
            extra: Vec::new(),
            events: Vec::new(),
            dropped_events: 0,
            usage: None,
        }
    }

    /// The span's key (its `span_id`).
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    fn push_event(&mut self, event: SpanEvent, opts: &SpanOptions) {
        if self.events.len() < opts.max_events_per_span {
            self.events.push(event);
        } else {
            self.dropped_events += 1;
        }
    }

    fn set_parent(&mut self, e: &TraceEvent) {
        match e.payload.get("parent_span_id") {
            Some(Value::String(p)) => self.parent = Some(p.clone()),
            Some(Value::Null) => self.parent = None,
            _ => {}
        }
    }

    /// Fold `e` in; `true` when it closed the span.
    fn apply(&mut self, e: &TraceEvent, opts: &SpanOptions) -> bool {
        let p = &e.payload;
        let max = opts.max_attribute_len;
        self.last_seen = self.last_seen.max(e.timestamp);
        match e.kind {
            EventKind::OpStart | EventKind::GroupStart => {
                self.group = e.kind == EventKind::GroupStart;
                self.start = Some(e.timestamp);
                self.ctx.clone_from(&e.ctx);
                self.set_parent(e);
                if self.group {
                    self.name = p.get("name").and_then(Value::as_str).map(str::to_string);
                    for (k, v) in p {
                        if !matches!(k.as_str(), "name" | "span_id" | "parent_span_id") {
                            self.extra.push((format!("operonx.{k}"), v.clone()));
                        }
                    }
                } else {
                    self.name.clone_from(&e.op_name);
                    self.inputs = p.get("inputs").filter(|v| !is_empty(v)).cloned();
                }
                false
            }
            EventKind::OpEnd | EventKind::GroupEnd => {
                self.group = e.kind == EventKind::GroupEnd;
                self.end = Some(e.timestamp);
                if self.ctx.is_empty() {
                    self.ctx.clone_from(&e.ctx);
                }
                self.set_parent(e);
                if self.group {
                    if self.name.is_none() {
                        self.name = p.get("name").and_then(Value::as_str).map(str::to_string);
                    }
                } else {
                    self.name.clone_from(&e.op_name);
                    self.outputs = p.get("outputs").filter(|v| !is_empty(v)).cloned();
                    self.yield_count = p.get("yield_count").and_then(Value::as_u64);
                }
                self.status = Some(p.get("status").and_then(Value::as_str).unwrap_or("ok").to_string());
                self.error = p.get("error").filter(|v| !v.is_null()).map(|v| match v {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                });
                self.duration_ms = p.get("duration_ms").and_then(Value::as_f64);
                true
            }
            EventKind::OpYield => {
                let mut attributes = vec![kv("operonx.yield.idx", uint(u64_of(p.get("idx"))))];
                if opts.capture_content
                    && let Some(y) = p.get("yielded")
                {
                    attributes.push(kv("operonx.yield.value", string(truncate(y.to_string(), max))));
                }
                self.push_event(SpanEvent { time: e.timestamp, name: "operonx.yield".into(), attributes }, opts);
                false
            }
            EventKind::Annotation => {
                let key = p.get("key").and_then(Value::as_str).unwrap_or("annotation").to_string();
                let value = p.get("value").unwrap_or(&Value::Null);
                let attributes = vec![
                    kv("operonx.annotation.key", string(key.clone())),
                    kv("operonx.annotation.value", any(value, max)),
                ];
                self.push_event(SpanEvent { time: e.timestamp, name: key, attributes }, opts);
                false
            }
            EventKind::MediaRef => {
                // The reference (handle = SHA-256, mime, size_bytes, field_path) and where the
                // bytes are (uri): OTLP has no blobs, so the media itself never goes out.
                let attributes = p
                    .iter()
                    .filter(|(k, _)| k.as_str() != "span_id")
                    .map(|(k, v)| kv(&format!("operonx.media.{k}"), any(v, max)))
                    .collect();
                self.push_event(SpanEvent { time: e.timestamp, name: "operonx.media_ref".into(), attributes }, opts);
                false
            }
            EventKind::LlmUsage => {
                let u = self.usage.get_or_insert_with(Usage::default);
                let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
                // The provider's model name (`provider_model`) when the op recorded it: `model`
                // is then the resource's name in resources.yaml, which no backend can price.
                u.model = s("provider_model").or_else(|| s("model")).or(u.model.take());
                u.response_model = s("response_model").or(u.response_model.take());
                u.provider = s("provider").or(u.provider.take());
                u.input += u64_of(p.get("prompt_tokens"));
                u.output += u64_of(p.get("completion_tokens"));
                u.cost += p.get("cost_usd").and_then(Value::as_f64).unwrap_or(0.0);
                if let Some(Value::Array(reasons)) = p.get("finish_reasons") {
                    u.finish_reasons.extend(reasons.iter().filter_map(Value::as_str).map(str::to_string));
                }
                false
            }
        }
    }

    /// The OTLP span. `complete == false` marks a span exported before its end was seen.
    pub(crate) fn to_otlp(&self, opts: &SpanOptions, complete: bool) -> Span {
        let max = opts.max_attribute_len;
        let end = self.end.unwrap_or(self.last_seen);
        let start = self
            .start
            .or_else(|| {
                let ms = self.duration_ms?;
                Some(end - Duration::microseconds((ms * 1000.0) as i64))
            })
            .unwrap_or(end)
            .min(end);
        let mut attrs = vec![kv("operonx.request_id", string(self.request_id.clone()))];
        if !self.ctx.is_empty() {
            attrs.push(kv("operonx.ctx", string(self.ctx.join("/"))));
        }
        let mut name = self.name.clone().unwrap_or_else(|| "operonx".into());
        let mut kind = SpanKind::Internal;
        if self.group {
            attrs.push(kv("operonx.group.name", string(name.clone())));
            attrs.extend(self.extra.iter().map(|(k, v)| kv(k, any(v, max))));
        } else {
            attrs.push(kv("operonx.op.name", string(name.clone())));
        }
        if let Some(s) = &self.status {
            attrs.push(kv("operonx.status", string(s.clone())));
        }
        if let Some(d) = self.duration_ms {
            attrs.push(kv("operonx.duration_ms", double(d)));
        }
        if let Some(y) = self.yield_count {
            attrs.push(kv("operonx.yield_count", uint(y)));
        }
        if opts.capture_content {
            for (k, v) in [("operonx.inputs", &self.inputs), ("operonx.outputs", &self.outputs)] {
                if let Some(v) = v {
                    attrs.push(kv(k, string(truncate(v.to_string(), max))));
                }
            }
        }
        if let Some(u) = &self.usage {
            kind = SpanKind::Client;
            attrs.push(kv("gen_ai.operation.name", string("chat")));
            if let Some(m) = &u.model {
                name = format!("chat {m}");
                attrs.push(kv("gen_ai.request.model", string(m.clone())));
            }
            if let Some(m) = u.response_model.as_ref().or(u.model.as_ref()) {
                attrs.push(kv("gen_ai.response.model", string(m.clone())));
            }
            if let Some(p) = &u.provider {
                attrs.push(kv("gen_ai.provider.name", string(p.clone())));
                attrs.push(kv("gen_ai.system", string(p.clone())));
            }
            attrs.push(kv("gen_ai.usage.input_tokens", uint(u.input)));
            attrs.push(kv("gen_ai.usage.output_tokens", uint(u.output)));
            if !u.finish_reasons.is_empty() {
                let values = u.finish_reasons.iter().map(|r| string(r.clone())).collect();
                attrs.push(kv(
                    "gen_ai.response.finish_reasons",
                    AnyValue { value: Some(Any::ArrayValue(ArrayValue { values })) },
                ));
            }
            attrs.push(kv("operonx.cost_usd", double(u.cost)));
        }
        let status = match self.status.as_deref() {
            _ if !complete => {
                attrs.push(kv("operonx.incomplete", boolean(true)));
                Status { code: StatusCode::Unset as i32, message: String::new() }
            }
            Some("ok") => Status { code: StatusCode::Ok as i32, message: String::new() },
            Some("error") => {
                attrs.push(kv("error.type", string("_OTHER")));
                let message = truncate(self.error.clone().unwrap_or_else(|| "error".into()), max);
                Status { code: StatusCode::Error as i32, message }
            }
            _ => Status { code: StatusCode::Unset as i32, message: String::new() },
        };
        let events = self
            .events
            .iter()
            .map(|ev| Event {
                time_unix_nano: nanos(ev.time),
                name: ev.name.clone(),
                attributes: ev.attributes.clone(),
                dropped_attributes_count: 0,
            })
            .collect();
        Span {
            trace_id: trace_id(&self.request_id).to_vec(),
            span_id: span_id(&self.key).to_vec(),
            parent_span_id: self.parent.as_deref().map(|p| span_id(p).to_vec()).unwrap_or_default(),
            name,
            kind: kind as i32,
            start_time_unix_nano: nanos(start),
            end_time_unix_nano: nanos(end),
            attributes: attrs,
            events,
            dropped_events_count: self.dropped_events,
            status: Some(status),
            ..Span::default()
        }
    }
}

/// The result of folding one batch: spans that ended, and spans still open.
#[derive(Debug, Default)]
pub(crate) struct Folded {
    pub(crate) ended: Vec<SpanState>,
    pub(crate) open: HashMap<String, SpanState>,
}

/// Fold `events` into the spans of `pending` (left untouched: the caller commits the result
/// once the spans were delivered).
pub(crate) fn fold(events: &[TraceEvent], pending: &HashMap<String, SpanState>, opts: &SpanOptions) -> Folded {
    let mut sorted: Vec<&TraceEvent> = events.iter().collect();
    sorted.sort_by(|a, b| a.request_id.cmp(&b.request_id).then(a.sort_key().cmp(&b.sort_key())));
    let mut folded = Folded::default();
    let mut ended = HashSet::new();
    for e in sorted {
        // run-level events (the pipeline's `operonx.*` annotations) belong to no span
        let run_level = e.op_name.is_none() && !e.payload.contains_key("span_id");
        if run_level && !matches!(e.kind, EventKind::GroupStart | EventKind::GroupEnd) {
            continue;
        }
        let key = span_key(e);
        let state = folded.open.entry(key.clone()).or_insert_with(|| {
            // a span that ended earlier in this batch is not resumed from the pending state
            let earlier = if ended.contains(&key) { None } else { pending.get(&key) };
            earlier.cloned().unwrap_or_else(|| SpanState::new(e, key.clone()))
        });
        if state.apply(e, opts)
            && let Some(done) = folded.open.remove(&key)
        {
            folded.ended.push(done);
            ended.insert(key);
        }
    }
    folded
}
