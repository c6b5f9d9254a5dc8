//! What exporting a traced run costs the exporter's thread: a 5-op run (12 events, as
//! W2 records them) written to the SQLite store, in batches of 200 runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use operonx::trace::RawEvent;
use operonx::{Engine, Outputs, RunOptions, TraceEvent, TraceSink, Value, Workflow, json};
use operonx_trace::SqliteStore;

fn main() {
    divan::main();
}

/// Runs per batch, as the pipeline hands them over after a short gap.
const RUNS: usize = 200;

/// A chain of five ops, each adding one (W2's shape: 12 events per run).
fn workflow() -> Workflow {
    let mut e = Engine::new();
    e.registry_mut()
        .register_fn("inc", |i, _| Ok(Outputs::one("x", i.get("x").and_then(Value::as_i64).unwrap_or(0) + 1)));
    let mut ops = serde_json::Map::new();
    for k in 0..5 {
        let source = if k == 0 {
            json!({"source": "g", "var": "x"})
        } else {
            json!({"source": format!("g.o{}", k - 1), "var": "x"})
        };
        ops.insert(
            format!("o{k}"),
            json!({"type": "code", "func_name": "inc", "inputs": {"x": {"ref": source}}, "outputs": {"x": {}}}),
        );
    }
    let graph = json!({"schema_version": "1.0", "type": "graph", "name": "g", "full_name": "g", "inputs": {"x": {"required": true}},
        "outputs": {"out": {"ref": {"source": "g.o4", "var": "x"}}}, "ops": ops});
    e.load_value(graph).unwrap()
}

/// Keeps the raw events of the runs it traces.
#[derive(Default)]
struct Collect(Mutex<Vec<RawEvent>>);

impl TraceSink for Collect {
    fn record(&self, _: TraceEvent) {}
    fn record_raw(&self, event: RawEvent) {
        self.0.lock().unwrap().push(event);
    }
}

/// The events of `RUNS` fresh runs (new request ids, so every batch is new to the store).
fn traced_runs(wf: &Workflow, rt: &tokio::runtime::Runtime) -> Vec<RawEvent> {
    let sink = Arc::new(Collect::default());
    for i in 0..RUNS {
        let options = RunOptions::default().trace(sink.clone());
        rt.block_on(wf.run_with(json!({"x": i}), options)).unwrap();
    }
    let mut events = std::mem::take(&mut *sink.0.lock().unwrap());
    events.sort_by(|a, b| a.request_id().cmp(b.request_id()).then(a.seq().cmp(&b.seq())));
    events
}

/// One traced run written to the store (its chunk and its summary, in a batch of 200).
#[divan::bench(sample_count = 30, sample_size = 1)]
fn store_one_run(b: Bencher) {
    let wf = workflow();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("traces.db")).unwrap();
    b.counter(ItemsCount::new(RUNS))
        .with_inputs(|| traced_runs(&wf, &rt))
        .bench_local_values(|events| black_box(store.write(&events).unwrap()));
}
