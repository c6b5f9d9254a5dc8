//! Building the trace events of one run by hand.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use operonx_runtime::{EventKind, TraceEvent};
use serde_json::{Value, json};

/// Builds the events of one run by hand.
pub struct Run {
    pub rid: String,
    pub seq: u64,
    pub t0: DateTime<Utc>,
    pub events: Vec<TraceEvent>,
}

impl Run {
    pub fn new(rid: &str) -> Self {
        Run { rid: rid.into(), seq: 0, t0: Utc.with_ymd_and_hms(2026, 5, 5, 12, 0, 0).unwrap(), events: Vec::new() }
    }

    pub fn span(&self, n: u64) -> String {
        format!("{}-s{n}", self.rid)
    }

    pub fn ev(&mut self, kind: EventKind, op: Option<&str>, ctx: &[&str], payload: Value) -> &mut Self {
        let payload: BTreeMap<String, Value> = payload.as_object().unwrap().clone().into_iter().collect();
        self.events.push(TraceEvent {
            event_id: format!("{}-{}", self.rid, self.seq),
            request_id: self.rid.clone(),
            kind,
            op_name: op.map(str::to_string),
            ctx: ctx.iter().map(|s| s.to_string()).collect(),
            timestamp: self.t0 + chrono::Duration::microseconds(1000 * self.seq as i64 + 123),
            seq: self.seq,
            payload,
        });
        self.seq += 1;
        self
    }

    /// A run-level annotation as the pipeline adds them (no op, no span).
    pub fn run_meta(&mut self, key: &str, value: Value) -> &mut Self {
        self.ev(EventKind::Annotation, None, &[], json!({"key": key, "value": value}))
    }

    pub fn parent(&self, p: Option<u64>) -> Value {
        p.map_or(Value::Null, |p| json!(self.span(p)))
    }

    pub fn start(&mut self, op: &str, ctx: &[&str], s: u64, parent: Option<u64>, inputs: Value) -> &mut Self {
        let p = json!({"inputs": inputs, "span_id": self.span(s), "parent_span_id": self.parent(parent)});
        self.ev(EventKind::OpStart, Some(op), ctx, p)
    }

    pub fn end(&mut self, op: &str, ctx: &[&str], s: u64, parent: Option<u64>, outputs: Value) -> &mut Self {
        let p = json!({"outputs": outputs, "status": "ok", "duration_ms": 1.5, "yield_count": 1,
                       "span_id": self.span(s), "parent_span_id": self.parent(parent)});
        self.ev(EventKind::OpEnd, Some(op), ctx, p)
    }

    pub fn fail(&mut self, op: &str, ctx: &[&str], s: u64, parent: Option<u64>, error: &str) -> &mut Self {
        let p = json!({"outputs": {}, "status": "error", "duration_ms": 0.5, "yield_count": 0, "error": error,
                       "span_id": self.span(s), "parent_span_id": self.parent(parent)});
        self.ev(EventKind::OpEnd, Some(op), ctx, p)
    }

    pub fn usage(&mut self, op: &str, ctx: &[&str], s: u64) -> &mut Self {
        let p = json!({"model": "gpt-4o-mini", "prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                       "cost_usd": 0.0021, "provider": "openai", "span_id": self.span(s)});
        self.ev(EventKind::LlmUsage, Some(op), ctx, p)
    }
}

/// Graph `g`: s1 `g.fetch`; s2 `g.sub` (nested graph) → s3 `g.sub.inner`; s4 `g.loop` → group
/// s5 `iteration 1` → s6 `g.loop.step`; s7 `g.gen` (generator) → item op s8 `g.each` at `[0]`;
/// s9 `g.llm` with usage; s10 `g.bad` fails.
pub fn graph_run(rid: &str) -> Run {
    let mut r = Run::new(rid);
    let m = &["main"];
    r.start("g.fetch", m, 1, None, json!({"q": "hi"})).end("g.fetch", m, 1, None, json!({"text": "x"}));
    r.start("g.sub", m, 2, None, json!({"text": "x"}));
    r.start("g.sub.inner", m, 3, Some(2), json!({"a": 1})).end("g.sub.inner", m, 3, Some(2), json!({"b": 2}));
    r.end("g.sub", m, 2, None, json!({"b": 2}));
    r.start("g.loop", m, 4, None, json!({"n": 1}));
    let p = json!({"name": "iteration 1", "graph": "g.loop", "span_id": r.span(5), "parent_span_id": r.span(4)});
    r.ev(EventKind::GroupStart, None, &["main", "loop_1"], p);
    let l = &["main", "loop_1"];
    r.start("g.loop.step", l, 6, Some(5), json!({"i": 0})).end("g.loop.step", l, 6, Some(5), json!({"i": 1}));
    let p = json!({"name": "iteration 1", "status": "ok", "duration_ms": 2.0, "span_id": r.span(5)});
    r.ev(EventKind::GroupEnd, None, &["main", "loop_1"], p);
    r.end("g.loop", m, 4, None, json!({"i": 1}));
    r.start("g.gen", m, 7, None, json!({"k": 1}));
    let p = json!({"yielded": {"item": "a"}, "idx": 0, "span_id": r.span(7)});
    r.ev(EventKind::OpYield, Some("g.gen"), &["main", "[0]"], p);
    let i = &["main", "[0]"];
    r.start("g.each", i, 8, Some(7), json!({"item": "a"})).end("g.each", i, 8, Some(7), json!({"done": true}));
    r.end("g.gen", m, 7, None, json!({"item": "a"}));
    r.start("g.llm", m, 9, None, json!({"prompt": "say hi"}));
    r.ev(EventKind::Annotation, Some("g.llm"), m, json!({"key": "temperature", "value": 0.2, "span_id": r.span(9)}));
    r.usage("g.llm", m, 9).end("g.llm", m, 9, None, json!({"answer": "hi"}));
    r.start("g.bad", m, 10, None, json!({})).fail("g.bad", m, 10, None, "boom");
    r
}
