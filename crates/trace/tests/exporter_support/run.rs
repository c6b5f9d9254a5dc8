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
