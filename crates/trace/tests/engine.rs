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
