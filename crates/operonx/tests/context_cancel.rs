//! In-band cancellation: an op stops the work of one generator item (its own, or an
//! earlier one found through scratch) while the rest of the run goes on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use operonx::{Engine, Outputs, Value, json};
use tokio::time::Instant;

struct Guard(Arc<AtomicUsize>);
impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn engine(dropped: Arc<AtomicUsize>) -> Engine {
    let mut e = Engine::new();
    let r = e.registry_mut();
    r.register_generator("items", |i, _| {
        let n = i.get("n").and_then(Value::as_i64).unwrap_or(0);
        Ok((0..n).map(|k| Ok(Outputs::one("i", k))))
    });
    r.register_async("slow", move |i, ctx| {
        let guard = Guard(dropped.clone());
        async move {
            let _g = guard;
            // Remember where item k runs, so a later item can cancel it.
            let k = i.get("i").and_then(Value::as_i64).unwrap_or(0);
            ctx.scratch().set(format!("ctx_{k}"), json!(ctx.context_path()));
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(Outputs::one("v", k))
        }
    });
    r.register_async("referee", |i, ctx| async move {
        let k = i.get("i").and_then(Value::as_i64).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(10)).await;
        if k == 1 {
            ctx.cancel_own_context("item 1 is not wanted");
        }
        if k == 2 {
            // A new turn cancels what still runs for turn 0.
            let earlier: Vec<String> = serde_json::from_value(ctx.scratch().get("ctx_0").unwrap()).unwrap();
            ctx.cancel_context(earlier, "superseded by turn 2");
        }
        Ok(Outputs::one("seen", k))
    });
    e
}

fn graph() -> Value {
    let per_item = |var: &str| json!({"ref": {"source": "main.gen", "var": var, "stream_policy": {"collect": false, "parallel": true, "parallel_max": 0}}});
    json!({"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["gen"],
    "initial_ready_count": {"gen": 0, "slow": 1, "referee": 1},
    "compiled_adj": {"gen": [["slow", false], ["referee", false]], "slow": [], "referee": []},
    "ops": {
        "gen": {"type": "code", "func_name": "items", "is_generator": true, "inputs": {"n": {"literal": 4}}},
        "slow": {"type": "code", "func_name": "slow", "bound": "io", "inputs": {"i": per_item("i")},
                 "outputs": {"v": {"ref": {"source": "__PARENT__", "var": "done"}}}},
        "referee": {"type": "code", "func_name": "referee", "bound": "io", "inputs": {"i": per_item("i")}}
    }})
}

#[tokio::test(start_paused = true)]
async fn an_op_cancels_its_own_item_and_an_earlier_one() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let wf = engine(dropped.clone()).load_value(graph()).unwrap();
    let t0 = Instant::now();
    let out = wf.run(json!({})).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(50));
    let mut done: Vec<i64> = out.outputs["done"].as_array().unwrap().iter().filter_map(Value::as_i64).collect();
    done.sort_unstable();
    assert_eq!(done, [2, 3], "items 0 and 1 were cancelled; 2 and 3 finished");
    assert!(out.failures.is_empty(), "cancelling is not a failure: {:?}", out.failures);
    assert_eq!(dropped.load(Ordering::SeqCst), 4, "every slow op ended (two by cancellation)");
    assert!(out.stopped.is_none());
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_root_context_stops_the_run() {
    let mut e = Engine::new();
    e.registry_mut().register_fn("quit", |_, ctx| {
        ctx.cancel_own_context("done early");
        Ok(Outputs::one("x", 1))
    });
    let g = json!({"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["q"],
        "initial_ready_count": {"q": 0}, "compiled_adj": {"q": []},
        "ops": {"q": {"type": "code", "func_name": "quit"}}});
    let out = e.load_value(g).unwrap().run(json!({})).await.unwrap();
    assert_eq!(out.stopped.as_deref(), Some("done early"));
}
