//! A run watched through its handle: numbered events, waiting for one op's value,
//! grouped and flat results, and cancellation of a large fan-out with nothing left behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use operonx::{Engine, Outputs, RunEvent, RunOptions, Value, json};

struct Live(Arc<AtomicUsize>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn engine(live: Arc<AtomicUsize>, started: Arc<AtomicUsize>) -> Engine {
    let mut e = Engine::new();
    e.registry_mut().register_generator("items", |i, _| {
        let n = i.get("n").and_then(Value::as_i64).unwrap_or(0);
        Ok((0..n).map(|k| Ok(Outputs::one("i", k))))
    });
    e.registry_mut().register_async("wait", move |i, _| {
        live.fetch_add(1, Ordering::SeqCst);
        started.fetch_add(1, Ordering::SeqCst);
        let guard = Live(live.clone());
        async move {
            let _g = guard;
            let ms = i.get("ms").and_then(Value::as_u64).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Outputs::one("v", i.get("v").cloned().unwrap_or(Value::Null)))
        }
    });
    e
}

fn fan_out(ms: u64) -> Value {
    json!({"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["gen", "quick"],
    "initial_ready_count": {"gen": 0, "work": 1, "quick": 0}, "compiled_adj": {"gen": [["work", false]], "work": [], "quick": []},
    "max_stream_concurrent": 1000,
    "ops": {
        "gen": {"type": "code", "func_name": "items", "is_generator": true, "inputs": {"n": {"ref": {"source": "__PARENT__", "var": "n"}}}},
        "work": {"type": "code", "func_name": "wait", "bound": "io",
                 "inputs": {"ms": {"literal": ms}, "v": {"ref": {"source": "main.gen", "var": "i", "stream_policy": {"collect": false, "parallel": true, "parallel_max": 0}}}},
                 "outputs": {"v": {"ref": {"source": "__PARENT__", "var": "out"}}}},
        "quick": {"type": "code", "func_name": "wait", "bound": "io", "inputs": {"ms": {"literal": 1}, "v": {"literal": "first"}},
                  "outputs": {"v": {"ref": {"source": "__PARENT__", "var": "quick"}}}}
    }})
}

#[tokio::test]
async fn events_are_numbered_and_results_come_grouped_or_flat() {
    let (live, started) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let wf = engine(live, started).load_value(fan_out(1)).unwrap();
    let mut h = wf.spawn(json!({"n": 3}), RunOptions::default());
    let quick = h.wait_for("main.quick").await.unwrap();
    assert_eq!(quick["quick"], "first");
    let mut seqs = Vec::new();
    while let Some((seq, _)) = h.next().await {
        seqs.push(seq);
    }
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "every event once, numbered in order");
    assert_eq!(seqs.len(), 4);

    let out = wf.spawn(json!({"n": 3}), RunOptions::default()).result().await.unwrap();
    let mut got: Vec<i64> = out.outputs["out"].as_array().unwrap().iter().filter_map(Value::as_i64).collect();
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2]);
    let flat = wf.spawn(json!({"n": 2}), RunOptions::default()).collect_flat().await.unwrap();
    assert_eq!(flat.len(), 3);
    assert!(flat.iter().all(|f| f["op"].is_string() && f["values"].is_object()));
}

#[tokio::test]
async fn cancelling_a_10000_item_fan_out_returns_promptly_with_nothing_left_running() {
    let (live, started) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let wf = engine(live.clone(), started.clone()).load_value(fan_out(60_000)).unwrap();
    let mut h = wf.spawn(json!({"n": 10_000}), RunOptions::default());
    h.wait_for("main.quick").await.unwrap();
    assert!(started.load(Ordering::SeqCst) >= 500, "items are in flight: {}", started.load(Ordering::SeqCst));
    let t0 = std::time::Instant::now();
    h.cancel("enough");
    let out = h.result().await.unwrap();
    assert!(t0.elapsed() < Duration::from_millis(500), "took {:?}", t0.elapsed());
    assert_eq!(out.stopped.as_deref(), Some("enough"));
    assert_eq!(live.load(Ordering::SeqCst), 0, "every started op was dropped");
}

#[tokio::test]
async fn dropping_the_handle_cancels_the_run() {
    let (live, started) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let wf = engine(live.clone(), started.clone()).load_value(fan_out(60_000)).unwrap();
    let mut h = wf.spawn(json!({"n": 100}), RunOptions::default());
    h.wait_for("main.quick").await.unwrap();
    assert!(live.load(Ordering::SeqCst) > 0);
    drop(h);
    for _ in 0..100 {
        if live.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(live.load(Ordering::SeqCst), 0, "the run's task and its ops are gone");
}

#[tokio::test]
async fn a_failure_event_is_seen_through_the_handle() {
    let mut e = Engine::new();
    e.registry_mut().register_fn("boom", |_, _| Err("boom".into()));
    let g = json!({"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["a"],
        "initial_ready_count": {"a": 0}, "compiled_adj": {"a": []}, "ops": {"a": {"type": "code", "func_name": "boom"}}});
    let mut h = e.load_value(g).unwrap().spawn(json!({}), RunOptions::default());
    let (seq, ev) = h.next().await.unwrap();
    assert_eq!(seq, 0);
    assert!(matches!(ev, RunEvent::Failure(f) if &*f.op == "main.a"));
}
