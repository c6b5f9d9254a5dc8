//! What the default processors (redact, then truncate) cost per event of an LLM call: the
//! op's inputs (messages and settings) at its start, its reply and usage at its end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use operonx::{EventKind, TraceEvent, Value, json};
use operonx_trace::processor::{Processor, Redact, Truncate};

fn main() {
    divan::main();
}

/// Events per measured batch (built, and dropped, outside the timing).
const EVENTS: usize = 100;

fn event(seq: u64, kind: EventKind, payload: Value) -> TraceEvent {
    let Value::Object(map) = payload else { unreachable!("payloads are objects") };
    TraceEvent {
        event_id: format!("r-{seq}"),
        request_id: "r".into(),
        kind,
        op_name: Some("main.answer".into()),
        ctx: vec!["main".into(), format!("[{seq}]")],
        timestamp: chrono::DateTime::UNIX_EPOCH,
        seq,
        payload: map.into_iter().collect::<BTreeMap<_, _>>(),
    }
}

/// An `llm` op's start and end, alternating, as W5 records them.
fn llm_events() -> Vec<TraceEvent> {
    (0..EVENTS as u64)
        .map(|i| {
            if i % 2 == 0 {
                event(
                    i,
                    EventKind::OpStart,
                    json!({
                        "inputs": {
                            "messages": [
                                {"role": "system", "content": "You answer questions about orders."},
                                {"role": "user", "content": format!("question {i}")}
                            ],
                            "model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 256, "top_p": 1.0,
                            "stop": null, "tools": [], "tool_choice": null, "response_format": null,
                            "stream": false, "seed": null, "n": 1, "user": null, "metadata": {}, "resource": "llm:mock"
                        },
                        "span_id": format!("r-s{i}"), "parent_span_id": "r-s0"
                    }),
                )
            } else {
                event(
                    i,
                    EventKind::OpEnd,
                    json!({
                        "outputs": {
                            "content": "ok", "role": "assistant", "tool_calls": [], "finish_reason": "stop",
                            "usage": {"prompt_tokens": 21, "completion_tokens": 1, "total_tokens": 22},
                            "model": "gpt-4o-mini", "parsed": null
                        },
                        "status": "ok", "duration_ms": 50.2, "yield_count": 0, "span_id": format!("r-s{i}"),
                        "parent_span_id": "r-s0"
                    }),
                )
            }
        })
        .collect()
}

/// The default secret redaction, per event.
#[divan::bench]
fn redact_llm_event(b: Bencher) {
    let redact = Redact::with_defaults();
    b.counter(ItemsCount::new(EVENTS))
        .with_inputs(llm_events)
        .bench_local_refs(|events| *events = black_box(redact.process(std::mem::take(events))));
}

/// The default truncation, per event.
#[divan::bench]
fn truncate_llm_event(b: Bencher) {
    let truncate = Truncate::default();
    b.counter(ItemsCount::new(EVENTS))
        .with_inputs(llm_events)
        .bench_local_refs(|events| *events = black_box(truncate.process(std::mem::take(events))));
}
