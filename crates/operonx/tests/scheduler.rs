//! Scheduler behaviour that conformance cases cannot show: concurrency, bounds,
//! backpressure, cancellation, and failure propagation. Time is tokio's paused clock,
//! so durations are exact and nothing depends on the machine's speed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use operonx::{Engine, Outputs, RunEvent, Scratch, Value, json};
use tokio::time::Instant;

/// A compact graph: `ops` is `[(name, op json)]`, `adj` is `[(src, dst, soft)]`.
fn graph(ops: Value, adj: &[(&str, &str, bool)], extra: Value) -> Value {
    let names: Vec<String> = ops.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    let mut compiled = serde_json::Map::new();
    let mut ready = serde_json::Map::new();
    for n in &names {
        compiled.insert(n.clone(), json!([]));
        ready.insert(n.clone(), json!(0));
    }
    let mut soft_seen = std::collections::HashSet::new();
    for (s, d, soft) in adj {
        if let Some(Value::Array(a)) = compiled.get_mut(*s) {
            a.push(json!([d, soft]));
        }
        if (!soft || soft_seen.insert(d.to_string()))
            && let Some(Value::Number(n)) = ready.get(*d)
        {
            let next = n.as_u64().unwrap_or(0) + 1;
            ready.insert(d.to_string(), json!(next));
        }
    }
    let entries: Vec<&String> = names.iter().filter(|n| ready[n.as_str()] == json!(0)).collect();
    let mut g = json!({"schema_version": "1.0", "type": "graph", "name": "main", "full_name": "main",
        "ops": ops, "compiled_adj": compiled, "initial_ready_count": ready, "entries": entries});
    if let (Value::Object(g), Value::Object(e)) = (&mut g, extra) {
        g.extend(e);
    }
    g
}

fn parent(var: &str) -> Value {
    json!({"ref": {"source": "__PARENT__", "var": var}, "required": true})
}

fn from(op: &str, var: &str) -> Value {
    json!({"ref": {"source": format!("main.{op}"), "var": var}, "required": true})
}

fn to_parent(var: &str) -> Value {
    json!({"ref": {"source": "__PARENT__", "var": var}})
}

fn engine() -> Engine {
    let mut e = Engine::new();
    let r = e.registry_mut();
    r.register_async("sleep", |mut i, _| async move {
        let ms = i.take("ms").and_then(|v| v.as_u64()).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Outputs::one("value", i.take("value").unwrap_or(Value::Null)))
    });
    r.register_fn("inc", |i, _| Ok(Outputs::one("x", i.get("x").and_then(Value::as_i64).unwrap_or(0) + 1)));
    r.register_fn("boom", |_, _| Err("boom".into()));
    r.register_generator("count", |i, _| {
        let n = i.get("n").and_then(Value::as_i64).unwrap_or(0);
        Ok((0..n).map(|k| Ok(Outputs::one("i", k))))
    });
    r.register_fn("fail_on", |i, _| {
        let (v, bad) = (i.get("v").cloned().unwrap_or(Value::Null), i.get("bad").cloned().unwrap_or(Value::Null));
        if v == bad { Err(format!("bad item {v}").into()) } else { Ok(Outputs::one("v", v)) }
    });
    r.register_fn("list_sum", |i, _| {
        let total: i64 =
            i.get("xs").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_i64).sum()).unwrap_or(0);
        Ok(Outputs::one("total", total))
    });
    e
}

#[tokio::test(start_paused = true)]
async fn io_ops_run_concurrently() {
    let g = graph(
        json!({
            "a": {"type": "code", "func_name": "sleep", "bound": "io", "inputs": {"ms": {"literal": 100}, "value": {"literal": 1}}, "outputs": {"value": to_parent("a")}},
            "b": {"type": "code", "func_name": "sleep", "bound": "io", "inputs": {"ms": {"literal": 100}, "value": {"literal": 2}}, "outputs": {"value": to_parent("b")}},
            "c": {"type": "code", "func_name": "sleep", "bound": "io", "inputs": {"ms": {"literal": 100}, "value": {"literal": 3}}, "outputs": {"value": to_parent("c")}}
        }),
        &[],
        json!({}),
    );
    let wf = engine().load_value(g).expect("valid");
    let t0 = Instant::now();
    let out = wf.run(json!({})).await.expect("runs");
    assert_eq!(out.to_json(), json!({"a": 1, "b": 2, "c": 3}));
    assert_eq!(t0.elapsed(), Duration::from_millis(100), "three 100 ms io ops overlap");
}

#[tokio::test(start_paused = true)]
async fn max_stream_concurrent_bounds_io_ops() {
    let ops: serde_json::Map<String, Value> = (0..6)
        .map(|k| {
            (
                format!("s{k}"),
                json!({"type": "code", "func_name": "sleep", "bound": "io",
                "inputs": {"ms": {"literal": 100}, "value": {"literal": k}}, "outputs": {"value": to_parent("v")}}),
            )
        })
        .collect();
    let g = graph(Value::Object(ops), &[], json!({"max_stream_concurrent": 2}));
    let wf = engine().load_value(g).expect("valid");
    let t0 = Instant::now();
    let out = wf.run(json!({})).await.expect("runs");
    assert_eq!(out.outputs["v"].as_array().map(Vec::len), Some(6));
    assert_eq!(t0.elapsed(), Duration::from_millis(300), "six ops, two at a time");
}

#[tokio::test(start_paused = true)]
async fn parallel_policy_overlaps_per_item_io_and_default_is_sequential() {
    for (policy, expected_ms) in
        [(json!(null), 300), (json!({"collect": false, "parallel": true, "parallel_max": 0}), 100)]
    {
        let mut item_ref = json!({"source": "main.gen", "var": "i"});
        if !policy.is_null() {
            item_ref["stream_policy"] = policy;
        }
        let g = graph(
            json!({
                "gen": {"type": "code", "func_name": "count", "is_generator": true, "inputs": {"n": {"literal": 3}}},
                "work": {"type": "code", "func_name": "sleep", "bound": "io",
                         "inputs": {"ms": {"literal": 100}, "value": {"ref": item_ref, "required": true}},
                         "outputs": {"value": to_parent("out")}}
            }),
            &[("gen", "work", false)],
            json!({}),
        );
        let wf = engine().load_value(g).expect("valid");
        let t0 = Instant::now();
        let out = wf.run(json!({})).await.expect("runs");
        let mut got: Vec<i64> = out.outputs["out"].as_array().into_iter().flatten().filter_map(Value::as_i64).collect();
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(t0.elapsed(), Duration::from_millis(expected_ms));
    }
}

#[tokio::test]
async fn generator_backpressure_bounds_items_in_flight() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let max_gap = Arc::new(AtomicUsize::new(0));
    let mut e = engine();
    {
        let (pulled, done2, max_gap) = (pulled.clone(), done.clone(), max_gap.clone());
        e.registry_mut().register_generator("watched", move |_, _| {
            let (pulled, done, max_gap) = (pulled.clone(), done2.clone(), max_gap.clone());
            Ok((0..20_000i64).map(move |k| {
                let p = pulled.fetch_add(1, Ordering::SeqCst) + 1;
                max_gap.fetch_max(p - done.load(Ordering::SeqCst), Ordering::SeqCst);
                Ok(Outputs::one("i", k))
            }))
        });
        let done = done.clone();
        e.registry_mut().register_async("consume", move |i, _| {
            let done = done.clone();
            async move {
                tokio::task::yield_now().await;
                done.fetch_add(1, Ordering::SeqCst);
                Ok(Outputs::one("v", i.get("i").cloned().unwrap_or(Value::Null)))
            }
        });
    }
    let g = graph(
        json!({
            "gen": {"type": "code", "func_name": "watched", "is_generator": true},
            "use": {"type": "code", "func_name": "consume", "bound": "io",
                    "inputs": {"i": {"ref": {"source": "main.gen", "var": "i", "stream_policy": {"collect": false, "parallel": true, "parallel_max": 0}}}}},
            "sum": {"type": "code", "func_name": "list_sum",
                    "inputs": {"xs": {"ref": {"source": "main.use", "var": "v", "stream_policy": {"collect": true, "parallel": false, "parallel_max": 0}}}},
                    "outputs": {"total": to_parent("total")}}
        }),
        &[("gen", "use", false), ("use", "sum", false)],
        json!({"max_stream_concurrent": 16}),
    );
    let wf = e.load_value(g).expect("valid");
    let out = wf.run(json!({})).await.expect("runs");
    assert_eq!(out.to_json(), json!({"total": (0..20_000i64).sum::<i64>()}));
    assert!(max_gap.load(Ordering::SeqCst) <= 17, "items in flight: {}", max_gap.load(Ordering::SeqCst));
}

#[tokio::test]
async fn dropping_a_run_cancels_its_pending_ops() {
    struct Guard(Arc<AtomicUsize>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut e = engine();
    {
        let dropped = dropped.clone();
        e.registry_mut().register_async("forever", move |_, _| {
            let guard = Guard(dropped.clone());
            async move {
                let _g = guard;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(Outputs::new())
            }
        });
    }
    let g = graph(
        json!({
            "fast": {"type": "code", "func_name": "inc", "inputs": {"x": {"literal": 1}}, "outputs": {"x": to_parent("x")}},
            "slow1": {"type": "code", "func_name": "forever", "bound": "io"},
            "slow2": {"type": "code", "func_name": "forever", "bound": "io"}
        }),
        &[],
        json!({}),
    );
    let wf = e.load_value(g).expect("valid");
    let mut run = wf.start(&serde_json::Map::new(), Scratch::default());
    let first = run.next().await;
    assert!(matches!(first, Some(RunEvent::Output(ref f)) if f.values[0].1 == json!(2)), "{first:?}");
    // Drive the run until only the two endless ops are left pending.
    let more = tokio::time::timeout(Duration::from_millis(50), run.next()).await;
    assert!(more.is_err(), "the run is still waiting on its io ops");
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    drop(run);
    assert_eq!(dropped.load(Ordering::SeqCst), 2, "both pending ops were dropped with the run");
}

#[tokio::test]
async fn a_failure_stops_everything_downstream_but_not_independent_work() {
    let g = graph(
        json!({
            "a": {"type": "code", "func_name": "boom"},
            "b": {"type": "code", "func_name": "inc", "inputs": {"x": {"literal": 1}}, "outputs": {"x": to_parent("edge_only")}},
            "c": {"type": "code", "func_name": "inc", "inputs": {"x": {"literal": 10}}, "outputs": {"x": to_parent("independent")}},
            "d": {"type": "code", "func_name": "inc", "inputs": {"x": from("b", "x")}, "outputs": {"x": to_parent("after_b")}}
        }),
        &[("a", "b", false), ("b", "d", false)],
        json!({}),
    );
    let out = engine().load_value(g).expect("valid").run(json!({})).await.expect("runs");
    assert_eq!(out.to_json(), json!({"independent": 11, "$errors": {"main.a": "boom"}}));
}

#[tokio::test]
async fn a_failing_item_spares_the_other_items_and_blocks_the_collect() {
    let g = graph(
        json!({
            "gen": {"type": "code", "func_name": "count", "is_generator": true, "inputs": {"n": {"literal": 4}}},
            "check": {"type": "code", "func_name": "fail_on", "inputs": {"v": from("gen", "i"), "bad": {"literal": 2}},
                      "outputs": {"v": to_parent("ok")}},
            "sum": {"type": "code", "func_name": "list_sum",
                    "inputs": {"xs": {"ref": {"source": "main.check", "var": "v", "stream_policy": {"collect": true, "parallel": false, "parallel_max": 0}}}},
                    "outputs": {"total": to_parent("total")}}
        }),
        &[("gen", "check", false), ("check", "sum", false)],
        json!({}),
    );
    let out = engine().load_value(g).expect("valid").run(json!({})).await.expect("runs");
    assert_eq!(out.outputs.get("ok"), Some(&json!([0, 1, 3])));
    assert!(out.outputs.get("total").is_none(), "the collect consumer depends on the failed item");
    assert_eq!(&*out.failures[0].op, "main.check");
    assert_eq!(out.failures[0].context, "main/2");
}

#[tokio::test]
async fn disabled_ops_and_unmatched_branches_skip_without_errors() {
    let g = graph(
        json!({
            "off": {"type": "code", "func_name": "inc", "enabled": false, "inputs": {"x": {"literal": 1}}, "outputs": {"x": to_parent("off")}},
            "after_off": {"type": "code", "func_name": "inc", "inputs": {"x": {"literal": 1}}, "outputs": {"x": to_parent("after_off")}},
            "route": {"type": "branch", "inputs": {"v": parent("v")},
                      "cases": [{"condition": {"source": "main", "var": "v", "transforms": [["eq", ["a"]]]}, "target": "left"}]},
            "left": {"type": "code", "func_name": "inc", "inputs": {"x": {"literal": 1}}, "outputs": {"x": to_parent("left")}},
            "right": {"type": "code", "func_name": "inc", "inputs": {"x": {"literal": 2}}, "outputs": {"x": to_parent("right")}},
            "merge": {"type": "code", "func_name": "inc", "inputs": {"x": {"literal": 100}}, "outputs": {"x": to_parent("merged")}}
        }),
        &[
            ("off", "after_off", false),
            ("route", "left", true),
            ("route", "right", true),
            ("left", "merge", true),
            ("right", "merge", true),
        ],
        json!({}),
    );
    let wf = engine().load_value(g).expect("valid");
    let out = wf.run(json!({"v": "a"})).await.expect("runs");
    assert_eq!(out.to_json(), json!({"left": 2, "merged": 101}));
    let out = wf.run(json!({"v": "zzz"})).await.expect("runs");
    assert_eq!(out.to_json(), json!({}), "no case, no default: nothing downstream runs, and it is not an error");
}

#[tokio::test]
async fn a_per_item_join_waits_for_a_batch_op_outside_the_stream() {
    // gen -> work -> join <- batch (slow io): inside each item, join waits for batch.
    for stream_initial_ready in [json!({}), json!({"gen": {"join": 1}})] {
        let g = graph(
            json!({
                "gen": {"type": "code", "func_name": "count", "is_generator": true, "inputs": {"n": {"literal": 3}}},
                "work": {"type": "code", "func_name": "inc", "inputs": {"x": from("gen", "i")}},
                "batch": {"type": "code", "func_name": "sleep", "bound": "io", "inputs": {"ms": {"literal": 20}, "value": {"literal": 1000}}},
                "join": {"type": "code", "func_name": "list_sum",
                         "inputs": {"xs": {"literal": null}, "a": from("work", "x"), "b": from("batch", "value")},
                         "outputs": {"total": to_parent("unused")}},
                "pair": {"type": "code", "func_name": "inc", "inputs": {"x": from("work", "x"), "y": from("batch", "value")},
                         "outputs": {"x": to_parent("joined")}}
            }),
            &[("gen", "work", false), ("work", "pair", false), ("batch", "pair", false)],
            json!({"stream_initial_ready": stream_initial_ready}),
        );
        let out = engine().load_value(g).expect("valid").run(json!({})).await.expect("runs");
        assert_eq!(out.outputs.get("joined"), Some(&json!([2, 3, 4])), "{:?}", out);
    }
}

#[tokio::test]
async fn loops_stop_at_max_iterations_and_bad_conditions_fail_loudly() {
    let body = json!({"inc": {"type": "code", "func_name": "inc", "inputs": {"x": parent("x")}, "outputs": {"x": to_parent("x")}}});
    let capped = graph(
        body.clone(),
        &[],
        json!({"inputs": {"x": {"literal": 0, "required": true}}, "outputs": {"x": {}},
               "loop_config": {"until": "x > 1000", "max_iterations": 7}}),
    );
    let out = engine().load_value(capped).expect("valid").run(json!({})).await.expect("runs");
    assert_eq!(out.to_json(), json!({"x": 7}));

    let until = graph(
        body.clone(),
        &[],
        json!({"inputs": {"x": {"literal": 0, "required": true}}, "outputs": {"x": {}},
               "loop_config": {"until": "x % 4 == 0 and x > 0 or x >= 100", "max_iterations": 50}}),
    );
    let out = engine().load_value(until).expect("valid").run(json!({"x": 5})).await.expect("runs");
    assert_eq!(out.to_json(), json!({"x": 8}), "caller inputs override the literal seed");

    let bad = graph(
        body,
        &[],
        json!({"inputs": {"x": {"literal": 0, "required": true}}, "outputs": {"x": {}},
               "loop_config": {"until": "x > 'a'", "max_iterations": 5}}),
    );
    let out = engine().load_value(bad).expect("valid").run(json!({})).await.expect("runs");
    assert!(out.outputs.is_empty());
    assert_eq!(&*out.failures[0].op, "main");
    assert!(out.failures[0].message.contains("'>' not supported"), "{}", out.failures[0].message);
}

#[tokio::test]
async fn nested_graph_generator_streams_items_to_the_parent() {
    let sub = json!({
        "type": "graph", "inputs": {"n": parent("n")},
        "outputs": {"y": {"ref": {"source": "main", "var": "per_item"}}},
        "entries": ["gen"], "initial_ready_count": {"gen": 0, "f": 1}, "compiled_adj": {"gen": [["f", false]], "f": []},
        "ops": {
            "gen": {"type": "code", "func_name": "count", "is_generator": true, "inputs": {"n": {"ref": {"source": "main.sub", "var": "n"}}}},
            "f": {"type": "code", "func_name": "inc", "inputs": {"x": {"ref": {"source": "main.sub.gen", "var": "i"}}},
                  "outputs": {"x": {"ref": {"source": "main.sub", "var": "y"}}}}
        }
    });
    let g = graph(
        json!({
            "sub": sub,
            "total": {"type": "code", "func_name": "list_sum",
                      "inputs": {"xs": {"ref": {"source": "main.sub", "var": "y", "stream_policy": {"collect": true, "parallel": false, "parallel_max": 0}}}},
                      "outputs": {"total": to_parent("total")}},
            "each": {"type": "code", "func_name": "inc", "inputs": {"x": from("sub", "y")}, "outputs": {"x": to_parent("each")}}
        }),
        &[("sub", "total", false), ("sub", "each", false)],
        json!({}),
    );
    let out = engine().load_value(g).expect("valid").run(json!({"n": 4})).await.expect("runs");
    assert_eq!(out.to_json(), json!({"per_item": [1, 2, 3, 4], "each": [2, 3, 4, 5], "total": 10}));
}

#[tokio::test]
async fn scratch_is_shared_with_nested_graphs() {
    let mut e = engine();
    e.registry_mut().register_fn("put", |i, ctx| {
        ctx.scratch().set("k", i.get("v").cloned().unwrap_or(Value::Null));
        Ok(Outputs::one("done", true))
    });
    let sub = json!({
        "type": "graph", "entries": ["read"], "initial_ready_count": {"read": 0}, "compiled_adj": {"read": []},
        "outputs": {"inner": {"ref": {"source": "main", "var": "seen"}}},
        "ops": {"read": {"type": "code", "func_name": "inc", "inputs": {"x": {"scratch": {"key": "k"}, "required": true}},
                         "outputs": {"x": {"ref": {"source": "main.sub", "var": "inner"}}}}}
    });
    let g = graph(
        json!({"put": {"type": "code", "func_name": "put", "inputs": {"v": {"literal": 41}}}, "sub": sub}),
        &[("put", "sub", false)],
        json!({}),
    );
    let scratch = Scratch::default();
    let wf = e.load_value(g).expect("valid");
    let out = wf.run_with_scratch(json!({}), scratch.clone()).await.expect("runs");
    assert_eq!(out.to_json(), json!({"seen": 42}));
    assert_eq!(scratch.get("k"), Some(json!(41)), "the caller sees what ops wrote");
}

#[tokio::test]
async fn ref_transforms_keep_python_number_types() {
    let g = graph(
        json!({
            "a": {"type": "code", "func_name": "inc", "inputs": {"x": {"ref": {"source": "main", "var": "n", "transforms": [["mul", [3]], ["floordiv", [2]]]}}},
                  "outputs": {"x": to_parent("int_math")}},
            "b": {"type": "code", "func_name": "sleep", "inputs": {"ms": {"literal": 0}, "value": {"ref": {"source": "main", "var": "n", "transforms": [["truediv", [2]]]}}},
                  "outputs": {"value": to_parent("div")}},
            "c": {"type": "code", "func_name": "sleep", "inputs": {"ms": {"literal": 0}, "value": {"ref": {"source": "main", "var": "xs", "transforms": [["getitem", [-1]], ["getattr", ["k"]]]}}},
                  "outputs": {"value": to_parent("picked")}}
        }),
        &[],
        json!({}),
    );
    let out = engine()
        .load_value(g)
        .expect("valid")
        .run(json!({"n": 5, "xs": [{"k": 1}, {"k": "last"}]}))
        .await
        .expect("runs");
    assert_eq!(serde_json::to_string(&out.to_json()).expect("json"), r#"{"int_math":8,"div":2.5,"picked":"last"}"#);
}

#[tokio::test]
async fn a_missing_ref_value_is_an_error_naming_the_ref() {
    let g = graph(
        json!({
            "a": {"type": "code", "func_name": "inc", "inputs": {"x": {"literal": 1}}},
            "b": {"type": "code", "func_name": "inc", "inputs": {"x": from("a", "nope")}, "outputs": {"x": to_parent("x")}}
        }),
        &[("a", "b", false)],
        json!({}),
    );
    let out = engine().load_value(g).expect("valid").run(json!({})).await.expect("runs");
    assert_eq!(out.to_json(), json!({"$errors": {"main.b": "input 'x': main.a.nope has no value"}}));
}

/// An op's `delay` (seconds, as Python's) postpones it without holding up the others: a
/// delayed sync op runs after an io op that started with it, and the run takes the delay,
/// not the sum. No delay, zero or a negative one runs at once.
#[tokio::test(start_paused = true)]
async fn delay_postpones_an_op_without_blocking_others() {
    let g = graph(
        json!({
            "late": {"type": "code", "func_name": "inc", "delay": 0.05, "inputs": {"x": {"literal": 1}}, "outputs": {"x": to_parent("order")}},
            "io": {"type": "code", "func_name": "sleep", "bound": "io", "inputs": {"ms": {"literal": 20}, "value": {"literal": 10}}, "outputs": {"value": to_parent("order")}},
            "now": {"type": "code", "func_name": "inc", "delay": 0, "inputs": {"x": {"literal": 99}}, "outputs": {"x": to_parent("order")}},
            "neg": {"type": "code", "func_name": "inc", "delay": -1.0, "inputs": {"x": {"literal": 0}}, "outputs": {"x": to_parent("first")}}
        }),
        &[],
        json!({}),
    );
    let wf = engine().load_value(g).expect("valid");
    let t0 = Instant::now();
    let out = wf.run(json!({})).await.expect("runs");
    assert_eq!(out.to_json(), json!({"order": [100, 10, 2], "first": 1}));
    assert_eq!(t0.elapsed(), Duration::from_millis(50));
}
