//! Middleware order and powers, the op cache, and a run-wide io limit that holds across
//! nested graphs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use operonx::{Engine, EventKind, Inputs, MemorySink, Middleware, OpError, Outputs, RunOptions, Value, json};
use tokio::time::Instant;

fn chain_graph() -> Value {
    json!({"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["a"],
        "initial_ready_count": {"a": 0}, "compiled_adj": {"a": []},
        "ops": {"a": {"type": "code", "func_name": "shout", "inputs": {"text": {"ref": {"source": "__PARENT__", "var": "text"}}},
                      "outputs": {"text": {"ref": {"source": "__PARENT__", "var": "out"}}}}}})
}

struct Tag(&'static str, Arc<Mutex<Vec<String>>>);

impl Middleware for Tag {
    fn before(&self, op: &str, inputs: &mut Inputs) -> Result<(), OpError> {
        self.1.lock().unwrap().push(format!("before {} {op}", self.0));
        let text = inputs.take("text").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let mut m = inputs.clone().into_map();
        m.insert("text".into(), json!(format!("{text}>{}", self.0)));
        *inputs = Inputs::from_map(m);
        Ok(())
    }
    fn after(&self, op: &str, outputs: &mut Outputs) -> Result<(), OpError> {
        self.1.lock().unwrap().push(format!("after {} {op}", self.0));
        let text = outputs.get("text").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        outputs.insert("text", format!("{text}<{}", self.0));
        Ok(())
    }
}

fn engine() -> Engine {
    let mut e = Engine::new();
    e.registry_mut().register_fn("shout", |i, _| {
        let t = i.get("text").and_then(Value::as_str).unwrap_or_default().to_string();
        if t.contains("fail") { Err("shout failed".into()) } else { Ok(Outputs::one("text", t.to_uppercase())) }
    });
    e
}

#[tokio::test]
async fn middleware_wraps_calls_in_onion_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut e = engine();
    e.use_middleware(Tag("m1", log.clone())).use_middleware(Tag("m2", log.clone()));
    let out = e.load_value(chain_graph()).unwrap().run(json!({"text": "hi"})).await.unwrap();
    assert_eq!(out.to_json(), json!({"out": "HI>M1>M2<m2<m1"}));
    assert_eq!(*log.lock().unwrap(), ["before m1 main.a", "before m2 main.a", "after m2 main.a", "after m1 main.a"]);
}

struct Recover;
impl Middleware for Recover {
    fn on_error(&self, _op: &str, error: OpError) -> Result<Outputs, OpError> {
        Ok(Outputs::one("text", format!("recovered from: {error}")))
    }
}

struct Veto;
impl Middleware for Veto {
    fn before(&self, op: &str, _inputs: &mut Inputs) -> Result<(), OpError> {
        Err(OpError::new(format!("{op} is not allowed")))
    }
}

#[tokio::test]
async fn middleware_can_recover_errors_and_veto_calls() {
    let mut e = engine();
    e.use_middleware(Recover);
    let out = e.load_value(chain_graph()).unwrap().run(json!({"text": "please fail"})).await.unwrap();
    assert_eq!(out.to_json(), json!({"out": "recovered from: shout failed"}));

    let mut e = engine();
    e.use_middleware(Veto);
    let out = e.load_value(chain_graph()).unwrap().run(json!({"text": "x"})).await.unwrap();
    assert_eq!(out.to_json(), json!({"$errors": {"main.a": "main.a is not allowed"}}));
}

#[tokio::test]
async fn cached_ops_run_once_per_distinct_input_and_config() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut e = Engine::new();
    let c = calls.clone();
    e.registry_mut().register_fn("expensive", move |i, _| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(Outputs::one("y", i.get("x").cloned().unwrap_or(Value::Null)))
    });
    let graph = |model: &str| {
        json!({"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["a"],
            "initial_ready_count": {"a": 0}, "compiled_adj": {"a": []},
            "ops": {"a": {"type": "code", "func_name": "expensive", "cache": true,
                          "inputs": {"x": {"ref": {"source": "__PARENT__", "var": "x"}}, "model": {"literal": model}},
                          "outputs": {"y": {"ref": {"source": "__PARENT__", "var": "y"}}}}}})
    };
    let wf = e.load_value(graph("m1")).unwrap();
    let sink = MemorySink::new();
    for _ in 0..3 {
        let out = wf
            .run_with(json!({"x": {"b": 1, "a": 2}}), RunOptions::default().trace(Arc::new(sink.clone())))
            .await
            .unwrap();
        assert_eq!(out.outputs["y"], json!({"a": 2, "b": 1}));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the same inputs hit the cache");
    let notes: Vec<Value> =
        sink.events().iter().filter(|e| e.kind == EventKind::Annotation).map(|e| e.payload["value"].clone()).collect();
    assert_eq!(notes, ["miss", "hit", "hit"], "cache hits are visible in the trace");

    wf.run(json!({"x": 5})).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2, "other inputs miss");
    e.load_value(graph("m2")).unwrap().run(json!({"x": {"a": 2, "b": 1}})).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3, "another op configuration misses");
}

#[tokio::test(start_paused = true)]
async fn cache_entries_expire_after_their_ttl() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut e = Engine::new();
    let c = calls.clone();
    e.registry_mut().register_fn("expensive", move |_, _| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(Outputs::one("y", 1))
    });
    let g = json!({"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["a"],
        "initial_ready_count": {"a": 0}, "compiled_adj": {"a": []},
        "ops": {"a": {"type": "code", "func_name": "expensive", "cache": {"ttl": 0.05}}}});
    let wf = e.load_value(g).unwrap();
    wf.run(json!({})).await.unwrap();
    wf.run(json!({})).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    std::thread::sleep(Duration::from_millis(80));
    wf.run(json!({})).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2, "an expired entry misses");
}

#[tokio::test(start_paused = true)]
async fn a_run_wide_limit_holds_across_nested_graphs() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut e = Engine::new();
    let (r, p) = (running.clone(), peak.clone());
    e.registry_mut().register_async("work", move |_, _| {
        let (r, p) = (r.clone(), p.clone());
        async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            r.fetch_sub(1, Ordering::SeqCst);
            Ok(Outputs::one("done", true))
        }
    });
    let inner = |name: &str| {
        let ops: serde_json::Map<String, Value> =
            (0..3).map(|k| (format!("w{k}"), json!({"type": "code", "func_name": "work", "bound": "io"}))).collect();
        json!({"type": "graph", "name": name, "ops": ops,
               "entries": ["w0", "w1", "w2"], "initial_ready_count": {"w0": 0, "w1": 0, "w2": 0},
               "compiled_adj": {"w0": [], "w1": [], "w2": []}})
    };
    let g = json!({"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["s1", "s2"],
        "initial_ready_count": {"s1": 0, "s2": 0}, "compiled_adj": {"s1": [], "s2": []},
        "ops": {"s1": inner("s1"), "s2": inner("s2")}});
    let wf = e.load_value(g).unwrap();
    let t0 = Instant::now();
    wf.run_with(json!({}), RunOptions::default().max_concurrency(2)).await.unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 2, "six io ops in two nested graphs, two at a time");
    assert_eq!(t0.elapsed(), Duration::from_millis(300));
    peak.store(0, Ordering::SeqCst);
    wf.run(json!({})).await.unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 6, "without a run-wide limit all six overlap");
}
