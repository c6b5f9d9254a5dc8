//! Events as the scheduler records them: ids, shared names and the values involved, with
//! no formatting. [`RawEvent::materialize`] turns one into a wire [`TraceEvent`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value};

use super::{EventKind, TraceEvent};
use crate::record::{Inputs, Outputs};

/// A context path in parts: the run's prefix, the loop iteration, the item indexes.
#[derive(Debug, Clone)]
pub(crate) struct EventCtx {
    pub prefix: Arc<[String]>,
    pub iteration: u32,
    pub items: Vec<u32>,
}

impl EventCtx {
    pub fn to_path(&self) -> Vec<String> {
        let mut path = Vec::with_capacity(self.prefix.len() + 1 + self.items.len());
        path.extend(self.prefix.iter().cloned());
        if self.iteration > 0 {
            path.push(format!("loop_{}", self.iteration));
        }
        path.extend(self.items.iter().map(|i| format!("[{i}]")));
        path
    }
}

/// The kind-specific part of a raw event.
#[derive(Debug)]
pub(crate) enum RawPayload {
    Start {
        inputs: Option<Inputs>,
        span: u64,
        parent: Option<u64>,
    },
    End {
        outputs: Option<Outputs>,
        status: &'static str,
        duration_ms: f64,
        yields: u64,
        error: Option<String>,
        span: u64,
        parent: Option<u64>,
    },
    Yield {
        yielded: Outputs,
        idx: u32,
        span: u64,
    },
    Map(BTreeMap<String, Value>),
}

/// One event as recorded on the scheduler's hot path. Cheap to create and to buffer;
/// [`RawEvent::materialize`] builds the wire form.
#[derive(Debug)]
pub struct RawEvent {
    pub(crate) kind: EventKind,
    pub(crate) seq: u64,
    pub(crate) at: SystemTime,
    pub(crate) request_id: Arc<str>,
    pub(crate) op: Option<Arc<str>>,
    pub(crate) ctx: Option<EventCtx>,
    pub(crate) payload: RawPayload,
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

    /// Build the wire event.
    pub fn materialize(self) -> TraceEvent {
        let rid = &self.request_id;
        let span = |id: u64| Value::String(format!("{rid}-s{id}"));
        let opt_span = |id: Option<u64>| id.map_or(Value::Null, span);
        let mut payload = BTreeMap::new();
        match self.payload {
            RawPayload::Start { inputs, span: s, parent } => {
                // The raw event owns its inputs: move the values, do not copy them.
                let inputs = Value::Object(inputs.map_or_else(Map::new, Inputs::into_map));
                payload.insert("inputs".to_string(), inputs);
                payload.insert("span_id".to_string(), span(s));
                payload.insert("parent_span_id".to_string(), opt_span(parent));
            }
            RawPayload::End { outputs, status, duration_ms, yields, error, span: s, parent } => {
                let outputs = outputs.map_or_else(|| Value::Object(Map::new()), |o| Value::Object(o.into_map()));
                payload.insert("outputs".to_string(), outputs);
                payload.insert("status".to_string(), Value::String(status.to_string()));
                let ms = (duration_ms * 1000.0).round() / 1000.0;
                payload.insert(
                    "duration_ms".to_string(),
                    serde_json::Number::from_f64(ms).map_or(Value::Null, Value::Number),
                );
                payload.insert("yield_count".to_string(), Value::from(yields));
                if let Some(e) = error {
                    payload.insert("error".to_string(), Value::String(e));
                }
                payload.insert("span_id".to_string(), span(s));
                payload.insert("parent_span_id".to_string(), opt_span(parent));
            }
            RawPayload::Yield { yielded, idx, span: s } => {
                payload.insert("yielded".to_string(), Value::Object(yielded.into_map()));
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
            // Microseconds: what the wire format carries, so events round-trip exactly.
            timestamp: DateTime::<Utc>::from(self.at).trunc_subsecs(6),
            seq: self.seq,
            payload,
        }
    }
}
