//! Micro-benchmarks of the engine's hot paths (`cargo bench -p operonx`):
//! dispatching a ready op, resolving a ref with transforms, fanning out one item, and
//! recording one trace event.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use operonx::graph::builder::{Graph, OpSpec, out, parent};
use operonx::graph::plan::RefPlan;
use operonx::graph::transform::Transform;
use operonx::trace::RawEvent;
use operonx::{Engine, Outputs, RunOptions, TraceEvent, TraceSink, Value, Workflow, json};

fn main() {
    divan::main();
}

fn engine() -> Engine {
    let mut e = Engine::new();
    e.registry_mut()
        .register_fn("inc", |i, _| Ok(Outputs::one("x", i.get("x").and_then(Value::as_i64).unwrap_or(0) + 1)));
    e.registry_mut().register_generator("items", |i, _| {
        let n = i.get("n").and_then(Value::as_i64).unwrap_or(0);
        Ok((0..n).map(|k| Ok(Outputs::one("i", k))))
    });
    e
}

fn chain(n: usize) -> Workflow {
    let mut g = Graph::new("main").input("x");
    for k in 0..n {
        let input = if k == 0 { parent("x") } else { out(format!("n{}", k - 1), "x") };
        let mut op = OpSpec::code(format!("n{k}"), "inc").input("x", input);
        if k == n - 1 {
            op = op.output_to_parent("x", "out");
        }
        g = g.op(op);
    }
    engine().compile(&g.build().unwrap()).unwrap()
}

fn fan_out() -> Workflow {
    let g = Graph::new("main")
        .input("n")
        .op(OpSpec::code("gen", "items").generator().input("n", parent("n")))
        .op(OpSpec::code("f", "inc").input("x", out("gen", "i")).output_to_parent("x", "z"));
    engine().compile(&g.build().unwrap()).unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

/// One ready sync op: a 100-op chain, counted per op.
#[divan::bench]
fn dispatch_ready_op(b: Bencher) {
    let wf = chain(100);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    b.counter(ItemsCount::new(100usize)).bench_local(|| rt.block_on(wf.run(json!({"x": 0}))).unwrap());
}

/// One generator item through one per-item op, counted per item.
#[divan::bench]
fn fan_out_one_item(b: Bencher) {
    let wf = fan_out();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    b.counter(ItemsCount::new(1000usize)).bench_local(|| rt.block_on(wf.run(json!({"n": 1000}))).unwrap());
}

/// A ref with a getitem chain and arithmetic, applied to a document.
#[divan::bench]
fn resolve_ref_with_transforms(b: Bencher) {
    let mut no_refs = |_: &Value| -> Result<RefPlan, String> { Err("no nested refs".into()) };
    let steps: Vec<Transform> =
        [("getitem", json!(["users"])), ("getitem", json!([-1])), ("getitem", json!(["score"])), ("mul", json!([2]))]
            .iter()
            .map(|(n, a)| Transform::compile(n, a.as_array().unwrap(), &mut no_refs).unwrap())
            .collect();
    let doc = json!({"users": [{"score": 1}, {"score": 2}, {"score": 21}]});
    b.bench_local(|| {
        // As the scheduler does it: navigate by reference, copy only what is selected.
        let mut cur = black_box(&doc);
        let mut rest = steps.as_slice();
        while let Some((t, tail)) = rest.split_first() {
            match t.navigate(cur) {
                Some(next) => {
                    cur = next.unwrap();
                    rest = tail;
                }
                None => break,
            }
        }
        let mut v = cur.clone();
        for t in rest {
            v = t.apply(v, &mut |_| Err(String::new())).unwrap();
        }
        v
    });
}

/// Records raw events and drops them: the scheduler's cost of tracing.
struct Discard;

impl TraceSink for Discard {
    fn record(&self, event: TraceEvent) {
        black_box(event);
    }
    fn record_raw(&self, event: RawEvent) {
        black_box(event);
    }
}

/// One trace event recorded by the scheduler (a traced 100-op chain emits 200), counted per event.
#[divan::bench]
fn push_one_trace_event(b: Bencher) {
    let wf = chain(100);
    let sink: Arc<dyn TraceSink> = Arc::new(Discard);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    b.counter(ItemsCount::new(200usize))
        .bench_local(|| rt.block_on(wf.run_with(json!({"x": 0}), RunOptions::default().trace(sink.clone()))).unwrap());
}

/// Serializing one trace event to a JSON line (done by exporters, off the hot path).
#[divan::bench]
fn serialize_one_trace_event(b: Bencher) {
    let wf = chain(1);
    let sink = operonx::MemorySink::new();
    let _ = block_on(wf.run_with(json!({"x": 0}), RunOptions::default().trace(Arc::new(sink.clone()))));
    let ev = sink.events().remove(0);
    b.bench_local(|| serde_json::to_string(black_box(&ev)).unwrap());
}
