//! What the default processors (redact, then truncate) cost per event of an LLM call: the
//! op's inputs (messages and settings) at its start, its reply and usage at its end; and
//! the media step before them, on events without media and with an image.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use operonx::{EventKind, TraceEvent, Value, json};
use operonx_trace::RecordedEvent;
use operonx_trace::media::{MediaOffload, MemoryMediaStore};
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

/// The media step's scan of events that hold no media (the common case), per event: what
/// every traced run pays for media offloading.
#[divan::bench]
fn media_scan_llm_event(b: Bencher) {
    let offload = media_offload();
    b.counter(ItemsCount::new(EVENTS))
        .with_inputs(|| llm_events().into_iter().map(RecordedEvent::Built).collect::<Vec<_>>())
        .bench_local_refs(|events| offload.apply(black_box(events)));
}

/// The media step on LLM starts whose user message holds a 4 KiB PNG data URL (decoded,
/// hashed, stored in memory once, replaced by its reference), per event.
#[divan::bench]
fn media_offload_llm_event_with_an_image(b: Bencher) {
    use base64::Engine as _;
    let offload = media_offload();
    let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &[7u8; 4088]].concat();
    let url = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&png));
    let with_image = move || {
        let mut events = llm_events();
        for e in events.iter_mut().filter(|e| e.kind == EventKind::OpStart) {
            let part = json!([{"type": "image_url", "image_url": {"url": url}}]);
            e.payload.get_mut("inputs").unwrap()["messages"][1]["content"] = part;
        }
        events.into_iter().map(RecordedEvent::Built).collect::<Vec<_>>()
    };
    b.counter(ItemsCount::new(EVENTS))
        .with_inputs(with_image)
        .bench_local_refs(|events| offload.apply(black_box(events)));
}

fn media_offload() -> MediaOffload {
    MediaOffload::new(std::sync::Arc::new(MemoryMediaStore::default()))
}
