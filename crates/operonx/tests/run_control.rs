//! Stopping and bounding runs: per-op timeout and retry, run timeout, fail-fast and
//! cancellation. Time is tokio's paused clock, so durations are exact.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use operonx::{Engine, EventKind, MemorySink, Outputs, RunOptions, StopHandle, Value, json};
use tokio::time::Instant;

struct Guard(Arc<AtomicUsize>);
impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `flaky` fails until its `calls` counter reaches `ok_on`; `slow` sleeps `ms` and counts drops.
fn engine(calls: Arc<AtomicUsize>, dropped: Arc<AtomicUsize>) -> Engine {
    let mut e = Engine::new();
    let r = e.registry_mut();
    r.register_fn("flaky", move |i, _| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        let ok_on = i.get("ok_on").and_then(Value::as_u64).unwrap_or(1) as usize;
        if n >= ok_on { Ok(Outputs::one("attempts", n)) } else { Err(format!("attempt {n} failed").into()) }
    });
    r.register_async("slow", move |i, _| {
        let guard = Guard(dropped.clone());
        async move {
            let _g = guard;
            let ms = i.get("ms").and_then(Value::as_u64).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Outputs::one("done", ms))
        }
    });
    r.register_fn("boom", |_, _| Err("boom".into()));
    e
}

fn one_op(op: Value) -> Value {
    json!({"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["a"],
           "initial_ready_count": {"a": 0}, "compiled_adj": {"a": []}, "ops": {"a": op}})
}

fn counters() -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)))
}

#[tokio::test(start_paused = true)]
async fn retry_with_exponential_backoff_until_success() {
    let (calls, dropped) = counters();
    let g = one_op(json!({"type": "code", "func_name": "flaky", "inputs": {"ok_on": {"literal": 3}},
        "retry": {"max_attempts": 5, "initial_delay": 0.1, "backoff": 2, "jitter": false},
        "outputs": {"attempts": {"ref": {"source": "__PARENT__", "var": "attempts"}}}}));
    let wf = engine(calls.clone(), dropped).load_value(g).unwrap();
    let sink = MemorySink::new();
    let t0 = Instant::now();
    let out = wf.run_with(json!({}), RunOptions::default().trace(Arc::new(sink.clone()))).await.unwrap();
    assert_eq!(out.to_json(), json!({"attempts": 3}));
    assert_eq!(t0.elapsed(), Duration::from_millis(300), "waits 100 ms, then 200 ms");
    let retries: Vec<_> = sink.events().into_iter().filter(|e| e.kind == EventKind::Annotation).collect();
    assert_eq!(retries.len(), 2, "each retry is visible in the trace");
    assert_eq!(retries[0].payload["value"]["error"], json!("attempt 1 failed"));
}

#[tokio::test(start_paused = true)]
async fn retries_give_up_loudly() {
    let (calls, dropped) = counters();
    let g = one_op(json!({"type": "code", "func_name": "flaky", "inputs": {"ok_on": {"literal": 99}},
        "retry": {"max_attempts": 3, "initial_delay": 0.01, "jitter": false}}));
    let out = engine(calls.clone(), dropped).load_value(g).unwrap().run(json!({})).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(out.failures[0].message, "after 3 attempts: attempt 3 failed");
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_cancelled_and_retried_only_if_asked() {
    let (calls, dropped) = counters();
    let g = one_op(json!({"type": "code", "func_name": "slow", "bound": "io", "inputs": {"ms": {"literal": 10_000}},
        "timeout": 0.5, "retry": {"max_attempts": 2, "initial_delay": 0, "retry_on": ["timeout"], "jitter": false}}));
    let t0 = Instant::now();
    let out = engine(calls, dropped.clone()).load_value(g).unwrap().run(json!({})).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(1000), "two attempts of 500 ms");
    assert_eq!(dropped.load(Ordering::SeqCst), 2, "both timed-out attempts were dropped, not left running");
    assert_eq!(out.failures[0].message, "after 2 attempts: timed out after 0.500s");

    let (calls, dropped) = counters();
    let g = one_op(json!({"type": "code", "func_name": "flaky", "inputs": {"ok_on": {"literal": 2}},
        "retry": {"max_attempts": 3, "initial_delay": 0, "retry_on": "timeout"}}));
    let out = engine(calls.clone(), dropped).load_value(g).unwrap().run(json!({})).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "an ordinary error is not retried when only timeouts are");
    assert_eq!(out.failures[0].message, "attempt 1 failed");
}

#[tokio::test(start_paused = true)]
async fn run_timeout_returns_the_partial_result_and_cancels_the_rest() {
    let (calls, dropped) = counters();
    let g = json!({"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["fast", "slow"],
        "initial_ready_count": {"fast": 0, "slow": 0}, "compiled_adj": {"fast": [], "slow": []},
        "ops": {
            "fast": {"type": "code", "func_name": "slow", "bound": "io", "inputs": {"ms": {"literal": 10}},
                     "outputs": {"done": {"ref": {"source": "__PARENT__", "var": "fast"}}}},
            "slow": {"type": "code", "func_name": "slow", "bound": "io", "inputs": {"ms": {"literal": 60_000}},
                     "outputs": {"done": {"ref": {"source": "__PARENT__", "var": "slow"}}}}}});
    let wf = engine(calls, dropped.clone()).load_value(g).unwrap();
    let sink = MemorySink::new();
    let t0 = Instant::now();
    let opts = RunOptions::default().timeout(Duration::from_secs(1)).trace(Arc::new(sink.clone()));
    let out = wf.run_with(json!({}), opts).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    assert_eq!(out.outputs, json!({"fast": 10}).as_object().unwrap().clone());
    assert_eq!(out.stopped.as_deref(), Some("timed out after 1s"));
    assert_eq!(dropped.load(Ordering::SeqCst), 2, "the slow op was cancelled");
    let cancelled: Vec<_> = sink
        .events()
        .into_iter()
        .filter(|e| e.kind == EventKind::OpEnd && e.payload["status"] == json!("cancelled"))
        .collect();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].op_name.as_deref(), Some("main.slow"));
    assert_eq!(out.to_json()["$stopped"], json!("timed out after 1s"));
}

#[tokio::test(start_paused = true)]
async fn fail_fast_stops_independent_work_too() {
    let (calls, dropped) = counters();
    let g = json!({"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["slow", "bad"],
        "initial_ready_count": {"bad": 0, "slow": 0}, "compiled_adj": {"bad": [], "slow": []},
        "ops": {
            "bad": {"type": "code", "func_name": "boom"},
            "slow": {"type": "code", "func_name": "slow", "bound": "io", "inputs": {"ms": {"literal": 5000}},
                     "outputs": {"done": {"ref": {"source": "__PARENT__", "var": "slow"}}}}}});
    let wf = engine(calls.clone(), dropped.clone()).load_value(g.clone()).unwrap();
    let t0 = Instant::now();
    let out = wf.run_with(json!({}), RunOptions::default().fail_fast(true)).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(out.stopped.as_deref(), Some("fail-fast: main.bad failed"));
    assert!(out.outputs.is_empty());
    assert_eq!(dropped.load(Ordering::SeqCst), 1);

    let out = engine(calls, dropped).load_value(g).unwrap().run(json!({})).await.unwrap();
    assert_eq!(out.outputs["slow"], json!(5000), "without fail-fast independent work finishes");
}

#[tokio::test(start_paused = true)]
async fn a_stop_handle_cancels_a_running_workflow() {
    let (calls, dropped) = counters();
    let g = one_op(json!({"type": "code", "func_name": "slow", "bound": "io", "inputs": {"ms": {"literal": 60_000}}}));
    let wf = engine(calls, dropped.clone()).load_value(g).unwrap();
    let handle = StopHandle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stopper.cancel("cancelled by the user");
    });
    let t0 = Instant::now();
    let out = wf.run_with(json!({}), RunOptions::default().stop_handle(handle)).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(250));
    assert_eq!(out.stopped.as_deref(), Some("cancelled by the user"));
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn policy_fields_are_validated() {
    let (calls, dropped) = counters();
    let e = engine(calls, dropped);
    let bad = one_op(json!({"type": "code", "func_name": "boom", "timeout": -1,
        "retry": {"max_attempts": 0, "retry_on": ["sometimes"], "colour": 1}}));
    let msg = e.load_value(bad).unwrap_err().to_string();
    assert!(
        msg.contains("main.a.timeout: must be a positive number of seconds, at most 604800 (7 days), got -1"),
        "{msg}"
    );
    assert!(msg.contains("main.a.retry: max_attempts: must be an integer of at least 1, got 0"), "{msg}");
    assert!(msg.contains("retry_on: must be \"error\", \"timeout\" or a list of them"), "{msg}");
    assert!(msg.contains("unknown key \"colour\""), "{msg}");
}

/// A synchronous generator of endless items never waits, so the run never gave its task
/// up: the run timeout (and a stop handle, and Ctrl-C in the CLI) went unseen and the run
/// went on forever (found by the fuzz corpus: `range` with n = 10^15). The run now lets
/// its task go every few thousand steps. A watchdog turns a regression into a failure
/// instead of a hang.
#[test]
fn the_run_timeout_stops_an_endless_synchronous_generator() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut e = Engine::new();
        e.registry_mut().register_generator("endless", |_, _| Ok((0u64..).map(|k| Ok(Outputs::one("i", k)))));
        e.registry_mut().register_fn("ignore", |_, _| Ok(Outputs::new()));
        let g = json!({"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["gen"],
            "initial_ready_count": {"gen": 0, "each": 1}, "compiled_adj": {"gen": [["each", false]], "each": []},
            "ops": {
                "gen": {"type": "code", "func_name": "endless", "is_generator": true},
                "each": {"type": "code", "func_name": "ignore",
                         "inputs": {"i": {"ref": {"source": "main.gen", "var": "i"}}}}}});
        let wf = e.load_value(g).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let opts = RunOptions::default().timeout(Duration::from_millis(200));
        let out = rt.block_on(wf.run_with(json!({}), opts)).unwrap();
        let _ = tx.send(out.stopped);
    });
    let stopped = rx.recv_timeout(Duration::from_secs(60)).expect("the run timeout was not seen: the run went on");
    assert_eq!(stopped.as_deref(), Some("timed out after 0.2s"));
}
