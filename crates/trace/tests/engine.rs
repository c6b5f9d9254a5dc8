//! End to end: a real workflow run traced through the pipeline into the store, read back
//! and rendered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use operonx::{Engine, EventKind, Outputs, RunOptions, Value, json};
use operonx_trace::{JsonlExporter, RunStatus, SqliteStore, TracePipeline, render_tree};

fn engine() -> Engine {
    let mut e = Engine::new();
    let r = e.registry_mut();
    r.register_fn("add_one", |i, _| Ok(Outputs::one("x", i.get("x").and_then(Value::as_i64).unwrap_or(0) + 1)));
    r.register_fn("fail", |_, _| Err("no luck".into()));
    r.register_generator("upto", |i, _| {
        let n = i.get("n").and_then(Value::as_i64).unwrap_or(0);
        Ok((0..n).map(|k| Ok(Outputs::one("i", k))))
    });
    r.register_fn("chat", |_, ctx| {
        let usage: BTreeMap<String, Value> = [
            ("model", json!("m-1")),
            ("prompt_tokens", json!(7)),
            ("completion_tokens", json!(3)),
            ("total_tokens", json!(10)),
            ("cost_usd", json!(0.5)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        ctx.emit(EventKind::LlmUsage, usage);
        Ok(Outputs::one("reply", "hi"))
    });
    e
}

fn graph() -> Value {
    json!({
        "schema_version": "1.0", "type": "graph", "name": "demo", "full_name": "demo",
        "entries": ["items", "ask", "twice", "oops"],
        "initial_ready_count": {"items": 0, "each": 1, "ask": 0, "twice": 0, "oops": 0},
        "compiled_adj": {"items": [["each", false]], "each": [], "ask": [], "twice": [], "oops": []},
        "ops": {
            "items": {"type": "code", "func_name": "upto", "is_generator": true, "inputs": {"n": {"literal": 3}}},
            "each": {"type": "code", "func_name": "add_one", "inputs": {"x": {"ref": {"source": "demo.items", "var": "i"}}}},
            "ask": {"type": "graph", "entries": ["model"], "initial_ready_count": {"model": 0}, "compiled_adj": {"model": []},
                    "ops": {"model": {"type": "code", "func_name": "chat"}}},
            "twice": {"type": "graph", "inputs": {"x": {"literal": 0, "required": true}},
                      "loop_config": {"until": "x >= 2", "max_iterations": 5},
                      "entries": ["inc"], "initial_ready_count": {"inc": 0}, "compiled_adj": {"inc": []},
                      "ops": {"inc": {"type": "code", "func_name": "add_one",
                                      "inputs": {"x": {"ref": {"source": "demo.twice", "var": "x"}}},
                                      "outputs": {"x": {"ref": {"source": "demo.twice", "var": "x"}}}}}},
            "oops": {"type": "code", "func_name": "fail"}
        }
    })
}

#[tokio::test]
async fn a_traced_run_is_stored_summarised_and_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join(".operonx/traces.db")).unwrap();
    let jsonl = JsonlExporter::per_run(dir.path().join("jsonl"));
    let pipeline = TracePipeline::builder()
        .flush_interval(Duration::from_secs(3600))
        .exporter(store.clone())
        .exporter(jsonl.clone())
        .build()
        .unwrap();
    let wf = engine().load_value(graph()).unwrap();
    pipeline.begin_run("run-e2e", "demo");
    let options = RunOptions::default().trace(pipeline.sink()).request_id("run-e2e");
    wf.run_with(json!({}), options).await.unwrap();
    pipeline.shutdown().await;

    let run = store.run("run-e2e").unwrap();
    assert_eq!(run.graph.as_deref(), Some("demo"));
    assert_eq!(run.status, RunStatus::Error);
    // items, each x3, ask, ask.model, twice, inc x2, oops
    assert_eq!((run.op_count, run.error_count, run.tokens), (10, 1, 10));
    assert_eq!(run.cost_usd, 0.5);

    let events = store.run_events("run-e2e").unwrap();
    assert_eq!(events.len() as u64, run.event_count);
    let tree = render_tree(&events, false);
    let shape: Vec<String> = tree
        .lines()
        .skip(1)
        .map(|l| {
            // The tree part and the name, up to the column gap after the name.
            let name = l.find(|c: char| c.is_ascii_alphanumeric() || c == '[').unwrap();
            let end = l[name..].find("  ").map_or(l.len(), |i| name + i);
            l[..end].to_string()
        })
        .collect();
    assert_eq!(
        shape,
        [
            "├─ demo.items",
            "│  ├─ [0] demo.each",
            "│  ├─ [1] demo.each",
            "│  └─ [2] demo.each",
            "├─ demo.ask",
            "│  └─ demo.ask.model",
            "├─ demo.twice",
            "│  ├─ iteration 1",
            "│  │  └─ demo.twice.inc",
            "│  └─ iteration 2",
            "│     └─ demo.twice.inc",
            "└─ demo.oops",
        ],
        "{tree}"
    );
    assert!(tree.contains("m-1 10 tok $0.50"), "{tree}");
    assert!(tree.contains("✗ no luck"), "{tree}");

    // The JSON lines file holds the same events, in the wire format.
    let text = std::fs::read_to_string(jsonl.path_for("run-e2e")).unwrap();
    let from_file: Vec<operonx::TraceEvent> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(from_file, events);
}

/// A processor known only by its `process` (so a pipeline with it takes the general path).
struct Passthrough;

impl operonx_trace::processor::Processor for Passthrough {
    fn name(&self) -> &str {
        "passthrough"
    }

    fn process(&self, events: Vec<operonx::TraceEvent>) -> Vec<operonx::TraceEvent> {
        events
    }
}

/// The events of run `rid` in `store`, with what differs between two runs of the same
/// graph (times, durations) set aside.
fn comparable(store: &SqliteStore, rid: &str) -> Vec<Value> {
    store
        .run_events(rid)
        .unwrap()
        .into_iter()
        .map(|e| {
            let mut payload = e.payload.clone();
            payload.remove("duration_ms");
            if e.op_name.is_none() {
                // The pipeline's run start/end annotations carry times and counts only.
                payload.remove("value");
            }
            json!([e.event_id, e.kind, e.op_name, e.ctx, e.seq, payload])
        })
        .collect()
}

#[tokio::test]
async fn values_rewritten_as_recorded_store_exactly_what_built_events_processed_would() {
    let mut e = engine();
    e.registry_mut().register_fn("echo", |i, _| Ok(Outputs::from_map(i.into_map())));
    e.registry_mut().register_fn("leak", |_, _| Err("upstream said: bad key sk-abcdefghijklmnopqrstuvwx".into()));
    let long = "é".repeat(3000);
    let wf = e
        .load_value(json!({
            "schema_version": "1.0", "type": "graph", "name": "g", "full_name": "g",
            "entries": ["echo", "leak", "items", "ask"],
            "initial_ready_count": {"echo": 0, "leak": 0, "items": 0, "each": 1, "ask": 0},
            "compiled_adj": {"echo": [], "leak": [], "items": [["each", false]], "each": [], "ask": []},
            "ops": {
                "echo": {"type": "code", "func_name": "echo", "inputs": {
                    "api_key": {"literal": "plain-secret"},
                    "note": {"literal": "use Bearer abcdefghijklmnop0123 here"},
                    "nested": {"literal": {"password": "p", "list": (0..150).collect::<Vec<i32>>()}},
                    "long": {"literal": long},
                    "max_tokens": {"literal": 5}}},
                "leak": {"type": "code", "func_name": "leak"},
                "items": {"type": "code", "func_name": "upto", "is_generator": true, "inputs": {"n": {"literal": 2}}},
                "each": {"type": "code", "func_name": "add_one", "inputs": {"x": {"ref": {"source": "g.items", "var": "i"}}}},
                "ask": {"type": "graph", "entries": ["model"], "initial_ready_count": {"model": 0}, "compiled_adj": {"model": []},
                        "ops": {"model": {"type": "code", "func_name": "chat"}}}
            }
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut stores = Vec::new();
    for general in [false, true] {
        let store = SqliteStore::open(dir.path().join(format!("{general}.db"))).unwrap();
        let mut b = TracePipeline::builder()
            .flush_interval(Duration::from_secs(3600))
            .processor(operonx_trace::processor::Redact::with_defaults())
            .processor(operonx_trace::processor::DropEvents::new().kinds([EventKind::OpYield]).empty(true))
            .processor(operonx_trace::processor::Truncate::default());
        if general {
            // A processor that cannot work in place: every event is built and processed.
            b = b.processor(Passthrough);
        }
        let pipeline = b.exporter(store.clone()).build().unwrap();
        pipeline.begin_run("same-id", "g");
        let options = RunOptions::default().trace(pipeline.sink()).request_id("same-id");
        wf.run_with(json!({}), options).await.unwrap();
        pipeline.shutdown().await;
        stores.push(store);
    }
    let (fast, general) = (comparable(&stores[0], "same-id"), comparable(&stores[1], "same-id"));
    assert_eq!(fast, general);

    // And the processors did their work on the fast path.
    let events = stores[0].run_events("same-id").unwrap();
    assert!(events.iter().all(|e| e.kind != EventKind::OpYield), "yields dropped");
    assert!(events.iter().any(|e| e.kind == EventKind::OpEnd), "the rest kept");
    let start = events.iter().find(|e| e.kind == EventKind::OpStart && e.op_name.as_deref() == Some("g.echo")).unwrap();
    let inputs = &start.payload["inputs"];
    assert_eq!(inputs["api_key"], "<redacted>");
    assert_eq!(inputs["max_tokens"], 5);
    assert_eq!(inputs["note"], "use <redacted> here");
    assert_eq!(inputs["nested"]["password"], "<redacted>");
    assert_eq!(inputs["nested"]["list"].as_array().unwrap().len(), 101);
    assert!(inputs["long"].as_str().unwrap().ends_with("...[truncated 1904 bytes]"));
    let leak = events.iter().find(|e| e.kind == EventKind::OpEnd && e.op_name.as_deref() == Some("g.leak")).unwrap();
    assert_eq!(leak.payload["error"], json!("upstream said: bad key <redacted>"));
}

/// Hands every recorded event to the pipeline and keeps its wire form.
struct Tee {
    pipeline: TracePipeline,
    wire: std::sync::Mutex<Vec<operonx::TraceEvent>>,
}

impl operonx::TraceSink for Tee {
    fn record(&self, event: operonx::TraceEvent) {
        self.wire.lock().unwrap().push(event.clone());
        self.pipeline.record(event);
    }
    fn record_raw(&self, event: operonx::trace::RawEvent) {
        self.wire.lock().unwrap().push(event.clone().materialize());
        self.pipeline.record_raw(event);
    }
    fn run_finished(&self, request_id: &str) {
        self.pipeline.run_finished(request_id);
    }
}

#[tokio::test]
async fn recorded_events_read_back_from_the_store_exactly_as_their_wire_form() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
    let pipeline = TracePipeline::builder().flush_interval(Duration::from_secs(3600)).exporter(store.clone()).build();
    let tee = std::sync::Arc::new(Tee { pipeline: pipeline.unwrap(), wire: Default::default() });
    let mut e = engine();
    // Yields, a nested run, a loop, failures (one with quotes and a newline) and usage.
    e.registry_mut().register_fn("quote", |_, _| Err("said \"no\"\nand left".into()));
    let mut g = graph();
    g["ops"]["quote"] = json!({"type": "code", "func_name": "quote"});
    g["entries"].as_array_mut().unwrap().push(json!("quote"));
    g["initial_ready_count"]["quote"] = json!(0);
    g["compiled_adj"]["quote"] = json!([]);
    let wf = e.load_value(g).unwrap();
    let options = RunOptions::default().trace(tee.clone()).request_id("exact");
    wf.run_with(json!({}), options).await.unwrap();
    tee.pipeline.shutdown().await;

    let wire = tee.wire.lock().unwrap().clone();
    for kind in [EventKind::OpStart, EventKind::OpEnd, EventKind::OpYield, EventKind::LlmUsage] {
        assert!(wire.iter().any(|e| e.kind == kind), "{kind:?} recorded");
    }
    assert!(wire.iter().any(|e| e.payload.contains_key("error")), "a failure recorded");
    // The store adds the run's start and end annotations; everything else is as recorded,
    // times and durations included.
    let stored: Vec<_> = store.run_events("exact").unwrap().into_iter().filter(|e| e.op_name.is_some()).collect();
    let mut expected: Vec<_> = wire.into_iter().filter(|e| e.op_name.is_some()).collect();
    expected.sort_by_key(operonx::TraceEvent::sort_key);
    assert_eq!(stored.len(), expected.len());
    for (s, w) in stored.iter().zip(&expected) {
        assert_eq!(s, w);
    }
}

/// A large list input goes into the trace cut as it is recorded (the pipeline's sink
/// asks for lists of at most the `truncate` limit), and comes out of the pipeline as if
/// it had been cut afterwards: the first items, then a marker counting the rest.
#[tokio::test]
async fn a_large_list_is_recorded_cut_and_exported_as_truncated() {
    use operonx_trace::processor::{Redact, Truncate};
    let mem = operonx_trace::MemoryExporter::new();
    let pipeline = TracePipeline::builder()
        .processor(Redact::with_defaults())
        .processor(Truncate::new(4096, 50).unwrap())
        .processor(Truncate::default())
        .exporter(mem.clone())
        .build()
        .unwrap();
    assert_eq!(pipeline.sink().max_list_items(), Some(50), "the smallest list limit of the processors");
    let mut e = engine();
    e.registry_mut().register_fn("count", |i, _| {
        Ok(Outputs::one("n", i.get("values").and_then(Value::as_array).map_or(0, Vec::len)))
    });
    let wf = e
        .load_value(json!({
            "schema_version": "1.0", "type": "graph", "name": "main", "full_name": "main",
            "inputs": {"values": {"required": true}}, "outputs": {"n": {}},
            "ops": {"c": {"type": "code", "name": "c", "full_name": "main.c", "func_name": "count", "bound": "sync",
                          "inputs": {"values": {"required": true, "ref": {"source": "__PARENT__", "var": "values"}}},
                          "outputs": {"n": {"ref": {"source": "__PARENT__", "var": "n", "is_output": true}}}}}
        }))
        .unwrap();
    let values: Vec<Value> = (0..200_000).map(|i| json!(i % 7)).collect();
    let options = RunOptions::default().trace(pipeline.sink());
    let rid = options.request_id.clone();
    let outcome = wf.run_with(json!({"password": "hunter2", "values": values}), options).await.unwrap();
    assert_eq!(outcome.to_json(), json!({"n": 200_000}));
    pipeline.shutdown().await;
    let events = mem.events();
    let start = events
        .iter()
        .find(|e| e.request_id == rid && e.kind == EventKind::OpStart && e.op_name.as_deref() == Some("main.c"))
        .unwrap();
    let list = start.payload["inputs"]["values"].as_array().unwrap();
    assert_eq!(list.len(), 51);
    assert_eq!(list[..3], [json!(0), json!(1), json!(2)]);
    assert_eq!(list[50], json!("...[truncated 199950 items]"));
}
