//! Human-in-the-loop: ops ask for input, the run reports what it awaits under stable ids,
//! and resuming continues it without re-running what already completed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use operonx::{Engine, Map, Outputs, RunOptions, RunState, Value, json};

fn engine(calls: Arc<AtomicUsize>) -> Engine {
    let mut e = Engine::new();
    let r = e.registry_mut();
    r.register_fn("draft", move |i, _| {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(Outputs::one("text", format!("draft about {}", i.get("topic").and_then(Value::as_str).unwrap_or("?"))))
    });
    r.register_fn("approve", |i, ctx| {
        let text = i.get("text").cloned().unwrap_or(Value::Null);
        let answer = ctx.interrupt(json!({"question": "approve?", "text": text}))?;
        Ok(Outputs::one("approved", answer))
    });
    r.register_fn("two_questions", |_, ctx| {
        let a = ctx.interrupt("first?")?;
        let b = ctx.interrupt("second?")?;
        Ok(Outputs::one("both", json!([a, b])))
    });
    r.register_generator("items", |i, _| {
        let n = i.get("n").and_then(Value::as_i64).unwrap_or(0);
        Ok((0..n).map(|k| Ok(Outputs::one("i", k))))
    });
    e
}

fn to_parent(var: &str) -> Value {
    json!({"ref": {"source": "__PARENT__", "var": var}})
}

/// draft -> sub(approve) -> done; plus two parallel approvals `left` and `right`.
fn graph() -> Value {
    json!({"schema_version": "1.0", "type": "graph", "name": "main",
    "entries": ["draft", "left", "right"],
    "initial_ready_count": {"draft": 0, "sub": 1, "left": 0, "right": 0},
    "compiled_adj": {"draft": [["sub", false]], "sub": [], "left": [], "right": []},
    "ops": {
        "draft": {"type": "code", "func_name": "draft", "inputs": {"topic": {"ref": {"source": "__PARENT__", "var": "topic"}}}},
        "sub": {"type": "graph", "inputs": {"text": {"ref": {"source": "main.draft", "var": "text"}}},
                "outputs": {"approved": {"ref": {"source": "main", "var": "published"}}},
                "entries": ["review"], "initial_ready_count": {"review": 0}, "compiled_adj": {"review": []},
                "ops": {"review": {"type": "code", "func_name": "approve",
                                   "inputs": {"text": {"ref": {"source": "main.sub", "var": "text"}}},
                                   "outputs": {"approved": {"ref": {"source": "main.sub", "var": "approved"}}}}}},
        "left": {"type": "code", "func_name": "approve", "inputs": {"text": {"literal": "left"}}, "outputs": {"approved": to_parent("left")}},
        "right": {"type": "code", "func_name": "approve", "inputs": {"text": {"literal": "right"}}, "outputs": {"approved": to_parent("right")}}
    }})
}

fn answers(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[tokio::test]
async fn interrupts_in_a_subgraph_and_parallel_branches_resume() {
    let calls = Arc::new(AtomicUsize::new(0));
    let wf = engine(calls.clone()).load_value(graph()).unwrap();
    let first = wf.run_with(json!({"topic": "rust"}), RunOptions::default().resumable()).await.unwrap();
    let mut ids: Vec<&str> = first.interrupts.iter().map(|i| i.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["main.left", "main.right", "main.sub.review"], "ids come from op paths");
    assert!(first.failures.is_empty(), "waiting for input is not a failure");
    assert!(first.outputs.is_empty());
    let review = first.interrupts.iter().find(|i| i.id == "main.sub.review").unwrap();
    assert_eq!(review.payload, json!({"question": "approve?", "text": "draft about rust"}));
    assert_eq!(first.to_json()["$interrupts"]["main.left"]["text"], "left");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // The state is plain data: store it, load it elsewhere.
    let stored = serde_json::to_string(first.state.as_ref().unwrap()).unwrap();
    let state: RunState = serde_json::from_str(&stored).unwrap();

    // Answer two of three; the third stays pending.
    let second = wf
        .resume(state, answers(&[("main.sub.review", json!("yes")), ("main.left", json!(true))]), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(second.outputs["published"], "yes");
    assert_eq!(second.outputs["left"], true);
    assert_eq!(second.interrupts.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["main.right"]);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the completed draft op is replayed from the journal, not re-run");

    let third =
        wf.resume(second.state.unwrap(), answers(&[("main.right", json!("ok"))]), RunOptions::default()).await.unwrap();
    assert!(third.interrupts.is_empty());
    assert!(third.state.is_none());
    assert_eq!(third.to_json(), json!({"published": "yes", "left": true, "right": "ok"}));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn several_interrupts_in_one_op_and_inside_a_stream_get_distinct_ids() {
    let e = engine(Arc::new(AtomicUsize::new(0)));
    let g = json!({"schema_version": "1.0", "type": "graph", "name": "main",
    "entries": ["gen", "q"], "initial_ready_count": {"gen": 0, "each": 1, "q": 0},
    "compiled_adj": {"gen": [["each", false]], "each": [], "q": []},
    "ops": {
        "gen": {"type": "code", "func_name": "items", "is_generator": true, "inputs": {"n": {"literal": 2}}},
        "each": {"type": "code", "func_name": "approve", "inputs": {"text": {"ref": {"source": "main.gen", "var": "i"}}},
                 "outputs": {"approved": to_parent("per_item")}},
        "q": {"type": "code", "func_name": "two_questions", "outputs": {"both": to_parent("both")}}
    }});
    let wf = e.load_value(g).unwrap();
    let out = wf.run_with(json!({}), RunOptions::default().resumable()).await.unwrap();
    let mut ids: Vec<String> = out.interrupts.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["main.each@[0]", "main.each@[1]", "main.q"]);
    let out = wf
        .resume(
            out.state.unwrap(),
            answers(&[("main.each@[0]", json!("a")), ("main.each@[1]", json!("b")), ("main.q", json!(1))]),
            RunOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(out.outputs["per_item"], json!(["a", "b"]));
    assert_eq!(out.interrupts[0].id, "main.q#1", "the second question of the same call");
    let out = wf.resume(out.state.unwrap(), answers(&[("main.q#1", json!(2))]), RunOptions::default()).await.unwrap();
    assert_eq!(out.outputs["both"], json!([1, 2]));
}

#[tokio::test]
async fn resuming_checks_ids_and_graph() {
    let wf = engine(Arc::new(AtomicUsize::new(0))).load_value(graph()).unwrap();
    let out = wf.run_with(json!({"topic": "x"}), RunOptions::default().resumable()).await.unwrap();
    let state = out.state.unwrap();
    let err = wf.resume(state.clone(), answers(&[("main.nope", json!(1))]), RunOptions::default()).await.unwrap_err();
    assert!(err.to_string().starts_with("cannot resume: no pending interrupt \"main.nope\" (pending: "), "{err}");

    let mut other = graph();
    other["ops"]["left"]["inputs"]["text"]["literal"] = json!("changed");
    let wf2 = engine(Arc::new(AtomicUsize::new(0))).load_value(other).unwrap();
    let err = wf2.resume(state, Map::new(), RunOptions::default()).await.unwrap_err();
    assert_eq!(err.to_string(), "cannot resume: the graph changed since the run was interrupted");
}

#[tokio::test]
async fn an_interrupt_in_a_run_that_is_not_resumable_fails_clearly() {
    let wf = engine(Arc::new(AtomicUsize::new(0))).load_value(graph()).unwrap();
    let out = wf.run(json!({"topic": "x"})).await.unwrap();
    assert!(out.interrupts.is_empty());
    assert!(out.failures[0].message.contains("the run is not resumable"), "{}", out.failures[0].message);
}
