//! Helpers shared by the integration tests: hand-built events and a polling wait.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use operonx_runtime::{EventKind, TraceEvent};
use serde_json::Value;

/// A fixed instant plus `ms` milliseconds.
pub fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(1_780_000_000_000_000 + ms * 1000).single().unwrap()
}

/// An event of run `rid` with `seq`, at `ms`.
pub fn ev(rid: &str, seq: u64, ms: i64, kind: EventKind, op: Option<&str>, ctx: &[&str], payload: Value) -> TraceEvent {
    let payload: BTreeMap<String, Value> = match payload {
        Value::Object(m) => m.into_iter().collect(),
        Value::Null => BTreeMap::new(),
        other => panic!("payload must be an object, got {other}"),
    };
    TraceEvent {
        event_id: format!("{rid}-{seq}"),
        request_id: rid.to_string(),
        kind,
        op_name: op.map(str::to_string),
        ctx: ctx.iter().map(|s| s.to_string()).collect(),
        timestamp: at(ms),
        seq,
        payload,
    }
}

/// A simple op call: `op_start` at `seq`, `op_end` at `seq + 1`.
pub fn op(rid: &str, seq: u64, name: &str, span: u32) -> [TraceEvent; 2] {
    let sid = format!("{rid}-s{span}");
    [
        ev(
            rid,
            seq,
            seq as i64,
            EventKind::OpStart,
            Some(name),
            &["main"],
            serde_json::json!({"inputs": {"n": seq}, "span_id": sid, "parent_span_id": null}),
        ),
        ev(
            rid,
            seq + 1,
            seq as i64 + 1,
            EventKind::OpEnd,
            Some(name),
            &["main"],
            serde_json::json!({"outputs": {"n": seq}, "status": "ok", "duration_ms": 1.0, "yield_count": 1,
                "span_id": sid, "parent_span_id": null}),
        ),
    ]
}

/// Poll `cond` every 5 ms until it holds or `within` passes; returns whether it held.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The `value` of the annotation with `key` among `events`.
pub fn annotation<'a>(events: &'a [TraceEvent], key: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e.kind == EventKind::Annotation && e.payload.get("key").and_then(Value::as_str) == Some(key))
        .and_then(|e| e.payload.get("value"))
}
