//! A durable run from Rust: record a run in a SQLite run store as it goes, stop it
//! half way (as a crash would), then resume it by its id with a fresh engine: the ops it
//! journaled are not called again.
//!
//! ```sh
//! cargo run -p operonx-store --example durable
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use operonx::{Engine, Outputs, RunOptions, Value, json};
use operonx_store::{DEFAULT_LEASE, Durability, Journaler, NewRun, RunEnd, SqliteRunStore, StoreKey, WriterOptions};

/// `steps` items, each doubled by `double` (item k after k x 20 ms), which counts its
/// calls.
fn engine(calls: Arc<AtomicUsize>) -> Engine {
    let mut e = Engine::new();
    e.registry_mut().register_generator("steps", |i, _| {
        let n = i.get("n").and_then(Value::as_i64).unwrap_or(0);
        Ok((0..n).map(|k| Ok(Outputs::one("k", k))))
    });
    e.registry_mut().register_async("double", move |i, _| {
        let calls = calls.clone();
        async move {
            // A slow call (a model, an API): item k takes k x 20 ms.
            let k = i.get("k").and_then(Value::as_i64).unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(20 * k.unsigned_abs())).await;
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(Outputs::one("twice", 2 * k))
        }
    });
    e
}

fn graph() -> Value {
    json!({"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["steps"],
        "initial_ready_count": {"steps": 0, "double": 1}, "compiled_adj": {"steps": [["double", false]], "double": []},
        "ops": {
            "steps": {"type": "code", "func_name": "steps", "is_generator": true,
                      "inputs": {"n": {"ref": {"source": "__PARENT__", "var": "n"}}}},
            "double": {"type": "code", "func_name": "double", "inputs": {"k": {"ref": {"source": "main.steps", "var": "k"}}},
                       "outputs": {"twice": {"ref": {"source": "__PARENT__", "var": "twice"}}}}}})
}

fn writer(scratch: &operonx::Scratch) -> WriterOptions {
    WriterOptions { mode: Durability::Sync, scratch: scratch.clone(), secrets: Default::default(), on_failure: None }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let key = StoreKey::generate()?;
    let store = Arc::new(SqliteRunStore::open_with_key(dir.path().join("runs.db"), key.clone())?);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;

    // First process: the run is recorded, then stopped after a while (a crash would do
    // the same: the run's row stays `running` and reads as crashed once the process is gone).
    let calls = Arc::new(AtomicUsize::new(0));
    let wf = engine(calls.clone()).load_value(graph())?;
    let journaler = Journaler::start(store.clone())?;
    let options = RunOptions::default().timeout(std::time::Duration::from_millis(50));
    let run_id = options.request_id.clone();
    let new = NewRun {
        run_id: run_id.clone(),
        graph_name: wf.name().to_string(),
        graph_path: None,
        graph: wf.document().clone(),
        fingerprint: wf.fingerprint().to_string(),
        inputs: json!({"n": 5}).as_object().cloned().unwrap_or_default(),
        scratch: Default::default(),
        options: Default::default(),
        ..NewRun::default()
    };
    let run = journaler.create(new, DEFAULT_LEASE, writer(&options.scratch))?;
    let first = rt.block_on(wf.run_with(json!({"n": 5}), options.journal(run.journal())))?;
    run.finish(&RunEnd::from_outcome(&first, Default::default()))?;
    println!("first attempt: {} calls, stopped: {:?}", calls.load(Ordering::SeqCst), first.stopped);

    // Another process: a fresh engine resumes the run by its id.
    let again = Arc::new(AtomicUsize::new(0));
    let wf = engine(again.clone()).load_value(graph())?;
    let scratch = operonx::Scratch::default();
    let (run, stored) = journaler.resume(&run_id, &Default::default(), DEFAULT_LEASE, writer(&scratch))?;
    let options = RunOptions::default().request_id(run_id).journal(run.journal());
    let done = rt.block_on(wf.run_with(Value::Object(stored.inputs), options))?;
    run.finish(&RunEnd::from_outcome(&done, Default::default()))?;
    println!("resumed: {} more calls, result {}", again.load(Ordering::SeqCst), done.to_json());
    Ok(())
}
