//! The scheduler's trace events: one op_start/op_end pair per op call with span ids that
//! rebuild the tree exactly (nested graphs, loop iterations, generator items), usage and
//! annotations inside their op's span, and the seed's JSON wire format.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use operonx::{Engine, EventKind, MemorySink, Outputs, RunOptions, TraceEvent, Value, json};

fn engine() -> Engine {
    let mut e = Engine::new();
    let r = e.registry_mut();
    r.register_fn("inc", |i, _| Ok(Outputs::one("x", i.get("x").and_then(Value::as_i64).unwrap_or(0) + 1)));
    r.register_fn("boom", |_, _| Err("it broke".into()));
    r.register_generator("count", |i, _| {
        let n = i.get("n").and_then(Value::as_i64).unwrap_or(0);
        Ok((0..n).map(|k| Ok(Outputs::one("i", k))))
    });
    r.register_fn("model_call", |_, ctx| {
        ctx.annotate("prompt_version", "v2");
        let mut usage = BTreeMap::new();
        usage.insert("model".to_string(), json!("test-model"));
        usage.insert("prompt_tokens".to_string(), json!(10));
        usage.insert("completion_tokens".to_string(), json!(5));
        usage.insert("total_tokens".to_string(), json!(15));
        usage.insert("cost_usd".to_string(), json!(0.001));
        ctx.emit(EventKind::LlmUsage, usage);
        Ok(Outputs::one("content", "ok"))
    });
    e
}

fn graph() -> Value {
    json!({
        "schema_version": "1.0", "type": "graph", "name": "main", "full_name": "main",
        "entries": ["gen", "sub", "counter", "bad"],
        "initial_ready_count": {"gen": 0, "work": 1, "sub": 0, "counter": 0, "bad": 0},
        "compiled_adj": {"gen": [["work", false]], "work": [], "sub": [], "counter": [], "bad": []},
        "ops": {
            "gen": {"type": "code", "func_name": "count", "is_generator": true, "inputs": {"n": {"literal": 2}}},
            "work": {"type": "code", "func_name": "inc", "inputs": {"x": {"ref": {"source": "main.gen", "var": "i"}}},
                     "outputs": {"x": {"ref": {"source": "main", "var": "items"}}}},
            "sub": {"type": "graph", "entries": ["llm"], "initial_ready_count": {"llm": 0}, "compiled_adj": {"llm": []},
                    "outputs": {"content": {"ref": {"source": "main", "var": "content"}}},
                    "ops": {"llm": {"type": "code", "func_name": "model_call",
                                    "outputs": {"content": {"ref": {"source": "main.sub", "var": "content"}}}}}},
            "counter": {"type": "graph", "inputs": {"x": {"literal": 0, "required": true}}, "outputs": {"x": {"ref": {"source": "main", "var": "count"}}},
                        "loop_config": {"until": "x >= 2", "max_iterations": 10},
                        "entries": ["step"], "initial_ready_count": {"step": 0}, "compiled_adj": {"step": []},
                        "ops": {"step": {"type": "code", "func_name": "inc",
                                         "inputs": {"x": {"ref": {"source": "main.counter", "var": "x"}}},
                                         "outputs": {"x": {"ref": {"source": "main.counter", "var": "x"}}}}}},
            "bad": {"type": "code", "func_name": "boom"}
        }
    })
}

fn s(ev: &TraceEvent, key: &str) -> Value {
    ev.payload.get(key).cloned().unwrap_or(Value::Null)
}

async fn traced_run() -> (operonx::RunOutcome, Vec<TraceEvent>) {
    let wf = engine().load_value(graph()).expect("valid");
    let sink = MemorySink::new();
    let opts = RunOptions::default().trace(Arc::new(sink.clone())).request_id("req-1");
    let out = wf.run_with(json!({}), opts).await.expect("runs");
    (out, sink.events())
}

#[tokio::test]
async fn every_op_call_has_one_start_and_one_end_with_the_same_span() {
    let (out, events) = traced_run().await;
    assert_eq!(out.request_id.as_deref(), Some("req-1"));
    assert_eq!(out.outputs["items"], json!([1, 2]));
    assert_eq!(out.outputs["count"], json!(2));
    let starts: Vec<_> = events.iter().filter(|e| e.kind == EventKind::OpStart).collect();
    let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::OpEnd).collect();
    // gen, work x2, sub, sub.llm, counter, step x2, bad
    assert_eq!(starts.len(), 9, "{:#?}", starts.iter().map(|e| &e.op_name).collect::<Vec<_>>());
    assert_eq!(ends.len(), 9);
    for st in &starts {
        let matching: Vec<_> = ends.iter().filter(|e| s(e, "span_id") == s(st, "span_id")).collect();
        assert_eq!(matching.len(), 1, "one end for {:?}", st.op_name);
        assert!(matching[0].seq > st.seq);
        assert_eq!(matching[0].op_name, st.op_name);
    }
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(ev.seq, i as u64, "seq counts up in emission order");
        assert_eq!(ev.event_id, format!("req-1-{i}"));
        assert_eq!(ev.request_id, "req-1");
    }
}

#[tokio::test]
async fn span_parents_rebuild_the_tree() {
    let (_, events) = traced_run().await;
    let start = |op: &str| -> Vec<&TraceEvent> {
        events.iter().filter(|e| e.kind == EventKind::OpStart && e.op_name.as_deref() == Some(op)).collect()
    };
    let span = |e: &TraceEvent| s(e, "span_id");
    let parent = |e: &TraceEvent| s(e, "parent_span_id");

    for top in ["main.gen", "main.sub", "main.counter", "main.bad"] {
        assert_eq!(parent(start(top)[0]), Value::Null, "{top} hangs off the run");
        assert_eq!(start(top)[0].ctx, vec!["main"]);
    }
    let gen_span = span(start("main.gen")[0]);
    let works = start("main.work");
    assert_eq!(works.len(), 2);
    assert!(works.iter().all(|w| parent(w) == gen_span), "generator items belong to the generator");
    assert_eq!(works[0].ctx, vec!["main", "[0]"]);
    assert_eq!(works[1].ctx, vec!["main", "[1]"]);
    let yields: Vec<_> = events.iter().filter(|e| e.kind == EventKind::OpYield).collect();
    assert_eq!(yields.len(), 2);
    assert_eq!(s(yields[1], "idx"), json!(1));
    assert_eq!(s(yields[1], "yielded"), json!({"i": 1}));

    assert_eq!(parent(start("main.sub.llm")[0]), span(start("main.sub")[0]), "nested ops belong to the graph op");

    let groups: Vec<_> = events.iter().filter(|e| e.kind == EventKind::GroupStart).collect();
    assert_eq!(groups.len(), 2, "two loop iterations");
    let counter_span = span(start("main.counter")[0]);
    assert!(groups.iter().all(|g| parent(g) == counter_span));
    let steps = start("main.counter.step");
    assert_eq!(parent(steps[0]), span(groups[0]));
    assert_eq!(parent(steps[1]), span(groups[1]));
    assert_eq!(steps[0].ctx, vec!["main"]);
    assert_eq!(steps[1].ctx, vec!["main", "loop_1"]);
    let group_ends = events.iter().filter(|e| e.kind == EventKind::GroupEnd).count();
    assert_eq!(group_ends, 2);
}

#[tokio::test]
async fn usage_and_annotations_belong_to_their_op_and_come_before_its_end() {
    let (_, events) = traced_run().await;
    let llm_start =
        events.iter().find(|e| e.kind == EventKind::OpStart && e.op_name.as_deref() == Some("main.sub.llm")).unwrap();
    let llm_end =
        events.iter().find(|e| e.kind == EventKind::OpEnd && e.op_name.as_deref() == Some("main.sub.llm")).unwrap();
    let usage = events.iter().find(|e| e.kind == EventKind::LlmUsage).unwrap();
    assert_eq!(usage.op_name.as_deref(), Some("main.sub.llm"));
    assert_eq!(s(usage, "span_id"), s(llm_start, "span_id"));
    assert_eq!(s(usage, "total_tokens"), json!(15));
    assert!(usage.seq < llm_end.seq, "llm_usage precedes the op's op_end");
    let note = events.iter().find(|e| e.kind == EventKind::Annotation).unwrap();
    assert_eq!(s(note, "key"), json!("prompt_version"));
    assert_eq!(s(note, "value"), json!("v2"));
    assert_eq!(s(llm_end, "outputs"), json!({"content": "ok"}));
    assert_eq!(s(llm_end, "status"), json!("ok"));
}

#[tokio::test]
async fn failures_end_with_status_error_and_the_message() {
    let (out, events) = traced_run().await;
    assert_eq!(out.failures.len(), 1);
    let end = events.iter().find(|e| e.kind == EventKind::OpEnd && e.op_name.as_deref() == Some("main.bad")).unwrap();
    assert_eq!(s(end, "status"), json!("error"));
    assert_eq!(s(end, "error"), json!("it broke"));
    assert_eq!(s(end, "outputs"), json!({}));
    let gen_end =
        events.iter().find(|e| e.kind == EventKind::OpEnd && e.op_name.as_deref() == Some("main.gen")).unwrap();
    assert_eq!(s(gen_end, "yield_count"), json!(2));
    assert!(s(gen_end, "duration_ms").is_f64());
}

#[tokio::test]
async fn events_use_the_seed_wire_format() {
    let (_, events) = traced_run().await;
    for ev in &events {
        let line = serde_json::to_string(ev).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["event_id", "request_id", "kind", "op_name", "ctx", "timestamp", "seq", "payload"]);
        let ts = v["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-05-05T12:00:00.123456Z".len(), "{ts}");
        assert!(ts.ends_with('Z'));
        let back: TraceEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(&back, ev);
    }
    let seed = r#"{"event_id":"r1-0","request_id":"r1","kind":"op_start","op_name":"main.x","ctx":["main"],"timestamp":"2026-05-05T12:00:00.123456Z","seq":0,"payload":{"inputs":{"x":1}}}"#;
    let parsed: TraceEvent = serde_json::from_str(seed).unwrap();
    assert_eq!(serde_json::to_string(&parsed).unwrap(), seed);
}

#[tokio::test]
async fn untraced_runs_emit_nothing_and_give_the_same_result() {
    let wf = engine().load_value(graph()).expect("valid");
    let plain = wf.run(json!({})).await.unwrap();
    let (traced, _) = traced_run().await;
    assert_eq!(plain.outputs, traced.outputs);
}

/// A branch case whose condition cannot be evaluated does not match (the reference
/// engine's rule), but it is not silent: the op's span carries an annotation saying which
/// case was skipped and why, and `matched` names what was taken.
#[tokio::test]
async fn a_branch_condition_that_fails_is_skipped_and_annotated() {
    let g = json!({
        "schema_version": "1.0", "type": "graph", "name": "main", "full_name": "main",
        "inputs": {"x": {"required": true}},
        "entries": ["r"],
        "initial_ready_count": {"r": 0, "big": 1, "other": 1},
        "compiled_adj": {"r": [["big", true], ["other", true]], "big": [], "other": []},
        "ops": {
            "r": {"type": "branch", "inputs": {"x": {"ref": {"source": "main", "var": "x"}}},
                  "outputs": {"matched": {"ref": {"source": "main", "var": "matched"}}},
                  "cases": [{"condition": {"source": "__PARENT__", "var": "x", "transforms": [["gt", [5]]]}, "target": "big"}],
                  "default": "other"},
            "big": {"type": "code", "func_name": "inc", "inputs": {"x": {"literal": 1}}, "outputs": {"x": {"ref": {"source": "main", "var": "big"}}}},
            "other": {"type": "code", "func_name": "inc", "inputs": {"x": {"literal": 1}}, "outputs": {"x": {"ref": {"source": "main", "var": "other"}}}}
        }
    });
    let wf = engine().load_value(g).expect("valid");
    let sink = MemorySink::new();
    let out =
        wf.run_with(json!({"x": "text"}), RunOptions::default().trace(Arc::new(sink.clone()))).await.expect("runs");
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    assert_eq!(out.outputs.get("other"), Some(&json!(2)));
    assert_eq!(out.outputs.get("matched"), Some(&json!("default")));
    assert!(out.outputs.get("big").is_none());
    let events = sink.events();
    let note = events.iter().find(|e| e.kind == EventKind::Annotation).expect("an annotation");
    assert_eq!(note.op_name.as_deref(), Some("main.r"));
    assert_eq!(s(note, "key"), json!("condition_failed"));
    let why = s(note, "value");
    assert!(why.as_str().is_some_and(|w| w.starts_with("case 0 skipped:") && w.contains("'>' not supported")), "{why}");

    let out = wf.run_with(json!({"x": 9}), RunOptions::default()).await.expect("runs");
    assert_eq!(out.outputs.get("matched"), Some(&json!("x > 5")));
    assert_eq!(out.outputs.get("big"), Some(&json!(2)));
}

/// A `.collect()` consumer runs in its context plus `"__collect__"`, and so does what
/// runs after it, as in the reference engine (0.8.2): its trace events, its context path
/// and its journal key say so; the results do not change.
#[tokio::test]
async fn a_collect_consumer_and_what_follows_it_run_in_the_collect_context() {
    let mut e = engine();
    let r = e.registry_mut();
    r.register_fn("total", |i, _| {
        let xs = i.get("xs").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(Outputs::one("total", xs.iter().filter_map(Value::as_i64).sum::<i64>()))
    });
    r.register_fn("where", |_, ctx| Ok(Outputs::one("path", json!(ctx.context_path()))));
    let collect = |source: &str, var: &str| json!({"ref": {"source": source, "var": var, "stream_policy": {"collect": true, "parallel": false, "parallel_max": 0}}});
    let g = json!({
        "schema_version": "1.0", "type": "graph", "name": "main", "full_name": "main",
        "entries": ["gen", "rows"],
        "initial_ready_count": {"gen": 0, "acc": 1, "after": 1, "here": 1, "rows": 0, "inner": 1, "sum": 1, "per": 1},
        "compiled_adj": {"gen": [["acc", false]], "acc": [["after", false], ["here", false]], "after": [], "here": [],
                         "rows": [["inner", false]], "inner": [["sum", false]], "sum": [["per", false]], "per": []},
        "ops": {
            "gen": {"type": "code", "func_name": "count", "is_generator": true, "inputs": {"n": {"literal": 3}}},
            "acc": {"type": "code", "func_name": "total", "inputs": {"xs": collect("main.gen", "i")}},
            "after": {"type": "code", "func_name": "inc", "inputs": {"x": {"ref": {"source": "main.acc", "var": "total"}}},
                      "outputs": {"x": {"ref": {"source": "main", "var": "after"}}}},
            "here": {"type": "code", "func_name": "where", "outputs": {"path": {"ref": {"source": "main", "var": "path"}}}},
            "rows": {"type": "code", "func_name": "count", "is_generator": true, "inputs": {"n": {"literal": 3}}},
            "inner": {"type": "code", "func_name": "count", "is_generator": true,
                      "inputs": {"n": {"ref": {"source": "main.rows", "var": "i"}}}},
            "sum": {"type": "code", "func_name": "total", "inputs": {"xs": collect("main.inner", "i")}},
            "per": {"type": "code", "func_name": "where", "outputs": {"path": {"ref": {"source": "main", "var": "per"}}}}
        }
    });
    let wf = e.load_value(g).expect("valid");
    let plain = wf.run(json!({})).await.unwrap();
    assert_eq!(plain.outputs["after"], json!(4), "0 + 1 + 2, plus one");
    assert_eq!(plain.outputs["path"], json!(["main", "__collect__"]));
    // `per` runs once per row that has inner items (row 0 has none): after the collect of
    // that row's inner generator.
    assert_eq!(plain.outputs["per"], json!([["main", "[1]", "__collect__"], ["main", "[2]", "__collect__"]]));

    let sink = MemorySink::new();
    let out = wf.run_with(json!({}), RunOptions::default().trace(Arc::new(sink.clone()))).await.unwrap();
    assert_eq!(out.outputs, plain.outputs);
    let events = sink.events();
    let ctxs = |op: &str| -> Vec<Vec<String>> {
        events
            .iter()
            .filter(|e| e.kind == EventKind::OpStart && e.op_name.as_deref() == Some(op))
            .map(|e| e.ctx.clone())
            .collect()
    };
    let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(ctxs("main.gen"), [path(&["main"])]);
    for op in ["main.acc", "main.after", "main.here"] {
        assert_eq!(ctxs(op), [path(&["main", "__collect__"])], "{op}");
    }
    assert_eq!(ctxs("main.inner"), [path(&["main", "[0]"]), path(&["main", "[1]"]), path(&["main", "[2]"])]);
    for op in ["main.sum", "main.per"] {
        let mut got = ctxs(op);
        got.sort();
        assert_eq!(got, [path(&["main", "[1]", "__collect__"]), path(&["main", "[2]", "__collect__"])], "{op}");
    }
    for e in events.iter().filter(|e| e.op_name.as_deref() == Some("main.acc")) {
        assert_eq!(e.ctx, path(&["main", "__collect__"]), "{e:?}");
    }
    let yields: Vec<_> =
        events.iter().filter(|e| e.kind == EventKind::OpYield && e.op_name.as_deref() == Some("main.gen")).collect();
    assert_eq!(
        yields.iter().map(|e| e.ctx.clone()).collect::<Vec<_>>(),
        [path(&["main", "[0]"]), path(&["main", "[1]"]), path(&["main", "[2]"])]
    );
}

/// Payload values as the reference engine records them: a branch's `op_start` has its
/// inputs (those with a value: `anchor`, given nothing, is left out, as any input the graph
/// gives no value is), and a generator's `op_end` has its last item (`{}` when it failed).
#[tokio::test]
async fn branch_inputs_unset_inputs_and_a_generators_last_item_are_recorded_as_the_reference_does() {
    let g = json!({
        "schema_version": "1.0", "type": "graph", "name": "main", "full_name": "main",
        "entries": ["gen"],
        "initial_ready_count": {"gen": 0, "r": 1, "big": 1, "other": 1},
        "compiled_adj": {"gen": [["r", false]], "r": [["big", true], ["other", true]], "big": [], "other": []},
        "ops": {
            "gen": {"type": "code", "func_name": "count", "is_generator": true, "inputs": {"n": {"literal": 3}}},
            "r": {"type": "branch", "inputs": {"anchor": {}, "i": {"ref": {"source": "main.gen", "var": "i"}}},
                  "cases": [{"condition": {"source": "main.gen", "var": "i", "transforms": [["gt", [1]]]}, "target": "big"}],
                  "default": "other"},
            "big": {"type": "code", "func_name": "inc", "inputs": {"x": {"literal": 1}, "unset": {}}},
            "other": {"type": "code", "func_name": "inc", "inputs": {"x": {"literal": 1}, "unset": {}}}
        }
    });
    let wf = engine().load_value(g).expect("valid");
    let sink = MemorySink::new();
    wf.run_with(json!({}), RunOptions::default().trace(Arc::new(sink.clone()))).await.expect("runs");
    let events = sink.events();
    let of = |kind: EventKind, op: &str| -> Vec<&TraceEvent> {
        events.iter().filter(|e| e.kind == kind && e.op_name.as_deref() == Some(op)).collect()
    };
    let mut branch_inputs: Vec<Value> = of(EventKind::OpStart, "main.r").iter().map(|e| s(e, "inputs")).collect();
    branch_inputs.sort_by_key(|v| v["i"].as_i64());
    assert_eq!(branch_inputs, [json!({"i": 0}), json!({"i": 1}), json!({"i": 2})]);
    for op in ["main.big", "main.other"] {
        for e in of(EventKind::OpStart, op) {
            assert_eq!(s(e, "inputs"), json!({"x": 1}), "{op}: an input given no value is left out");
        }
    }
    let end = of(EventKind::OpEnd, "main.gen");
    assert_eq!(s(end[0], "outputs"), json!({"i": 2}), "the last item");
    assert_eq!(s(end[0], "yield_count"), json!(3));
    for e in events.iter().filter(|e| matches!(e.kind, EventKind::OpStart | EventKind::OpEnd | EventKind::OpYield)) {
        assert_eq!(s(e, "media_refs"), json!([]), "{e:?}");
    }
}
