//! Large values are not copied on their way through a run (issue 14, item 10): a graph
//! input is shared by every op that reads it, an output by the ops downstream (with the
//! resume journal on), and a trace records a large list cut to the sink's limit instead
//! of a copy of it. Each test observes the sharing itself (the same allocation reaching
//! every reader, the size of what a trace holds), so it fails if a copy comes back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use operonx::trace::RawEvent;
use operonx::{Engine, Outputs, RunInputs, RunOptions, TraceEvent, TraceSink, Value, json};

/// Addresses of the values the `probe` ops were given, in the order they ran.
type Seen = Arc<Mutex<Vec<usize>>>;

/// An engine whose `probe` op notes the address of its `values` input, and whose `make`
/// op passes on the shared value it is given.
fn engine(seen: &Seen, made: Arc<Value>) -> Engine {
    let mut e = Engine::new();
    let r = e.registry_mut();
    let s = seen.clone();
    r.register_fn("probe", move |mut i, _| {
        let v = i.take_shared("values").ok_or("no values")?;
        s.lock().unwrap().push(Arc::as_ptr(&v) as usize);
        let n = v.as_array().map_or(0, Vec::len);
        Ok(Outputs::one("n", n))
    });
    r.register_fn("make", move |_, _| Ok(Outputs::one_shared("values", made.clone())));
    e
}

fn code(name: &str, func: &str, input: (&str, &str, &str), output: Option<&str>) -> Value {
    let (var, source, source_var) = input;
    let outputs = match output {
        Some(o) => json!({"n": {"ref": {"source": "__PARENT__", "var": o, "is_output": true}}}),
        None => json!({"values": {}}),
    };
    json!({
        "type": "code", "name": name, "full_name": format!("main.{name}"), "func_name": func, "bound": "sync",
        "inputs": {var: {"required": true, "ref": {"source": source, "var": source_var}}},
        "outputs": outputs,
    })
}

fn graph(ops: Vec<(&str, Value)>, edges: Value) -> Value {
    let ops: serde_json::Map<String, Value> = ops.into_iter().map(|(n, op)| (n.to_string(), op)).collect();
    json!({
        "type": "graph", "name": "main", "full_name": "main", "schema_version": "1.0",
        "inputs": {"values": {"required": false}}, "outputs": {"a": {}, "b": {}},
        "ops": ops, "edges": edges,
    })
}

fn big_list(n: usize) -> Value {
    Value::Array((0..n).map(|i| json!(i % 10)).collect())
}

#[tokio::test]
async fn a_graph_input_reaches_every_op_that_reads_it_without_a_copy() {
    let seen = Seen::default();
    let engine = engine(&seen, Arc::new(Value::Null));
    let doc = graph(
        vec![
            ("a", code("a", "probe", ("values", "__PARENT__", "values"), Some("a"))),
            ("b", code("b", "probe", ("values", "__PARENT__", "values"), Some("b"))),
        ],
        json!([]),
    );
    let wf = engine.load_value(doc).unwrap();
    let mut map = serde_json::Map::new();
    map.insert("values".into(), big_list(10_000));
    let inputs = RunInputs::from_map(map);
    let given = Arc::as_ptr(inputs.get("values").unwrap()) as usize;
    let outcome = wf.start_shared(&inputs, &RunOptions::default().resumable()).collect_outcome().await;
    assert_eq!(outcome.to_json(), json!({"a": 10_000, "b": 10_000}));
    assert_eq!(*seen.lock().unwrap(), vec![given, given], "each op was given the caller's value itself");

    // The same through `run_with`, the path the CLI takes: both ops see one allocation.
    seen.lock().unwrap().clear();
    let outcome = wf.run_with(json!({"values": big_list(10_000)}), RunOptions::default().resumable()).await.unwrap();
    assert!(outcome.is_ok(), "{:?}", outcome.failures);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], seen[1], "the input was copied for one of the ops that read it");
}

#[tokio::test]
async fn an_output_reaches_the_ops_downstream_without_a_copy_with_the_journal_on() {
    let seen = Seen::default();
    let made = Arc::new(big_list(10_000));
    let engine = engine(&seen, made.clone());
    let mut make = code("make", "make", ("x", "__PARENT__", "values"), None);
    make["inputs"]["x"]["required"] = json!(false);
    let doc = graph(
        vec![
            ("make", make),
            ("a", code("a", "probe", ("values", "make", "values"), Some("a"))),
            ("b", code("b", "probe", ("values", "make", "values"), Some("b"))),
        ],
        json!([{"from": "make", "to": "a"}, {"from": "make", "to": "b"}]),
    );
    let wf = engine.load_value(doc).unwrap();
    let outcome = wf.run_with(json!({}), RunOptions::default().resumable()).await.unwrap();
    assert_eq!(outcome.to_json(), json!({"a": 10_000, "b": 10_000}));
    let addr = Arc::as_ptr(&made) as usize;
    assert_eq!(*seen.lock().unwrap(), vec![addr, addr], "the output was copied on its way downstream");
}

/// A sink that cuts lists to `max` items and keeps what runs record, as recorded.
#[derive(Default)]
struct Cutting {
    max: usize,
    events: Mutex<Vec<RawEvent>>,
}

impl TraceSink for Cutting {
    fn record(&self, _event: TraceEvent) {}

    fn record_raw(&self, event: RawEvent) {
        self.events.lock().unwrap().push(event);
    }

    fn max_list_items(&self) -> Option<usize> {
        Some(self.max)
    }
}

/// The longest list anywhere in `v`.
fn longest_list(v: &Value) -> usize {
    match v {
        Value::Array(a) => a.iter().map(longest_list).max().unwrap_or(0).max(a.len()),
        Value::Object(m) => m.values().map(longest_list).max().unwrap_or(0),
        _ => 0,
    }
}

#[tokio::test]
async fn a_trace_records_a_large_list_cut_to_the_sinks_limit_not_a_copy_of_it() {
    let seen = Seen::default();
    let made = Arc::new(json!({"rows": big_list(50_000)}));
    let engine = engine(&seen, made);
    let mut make = code("make", "make", ("x", "__PARENT__", "values"), None);
    make["inputs"]["x"]["required"] = json!(false);
    let doc = graph(
        vec![
            ("make", make),
            ("a", code("a", "probe", ("values", "__PARENT__", "values"), Some("a"))),
            ("b", code("b", "probe", ("values", "make", "values"), Some("b"))),
        ],
        json!([{"from": "make", "to": "b"}]),
    );
    let wf = engine.load_value(doc).unwrap();
    let sink = Arc::new(Cutting { max: 10, ..Cutting::default() });
    let options = RunOptions::default().resumable().trace(sink.clone());
    let mut run = wf.start_shared(
        &RunInputs::from_map(json!({"values": big_list(100_000)}).as_object().unwrap().clone()),
        &options,
    );
    while run.next().await.is_some() {}
    let events = sink.events.lock().unwrap();
    let mut checked = 0;
    for e in events.iter() {
        for field in ["inputs", "outputs"] {
            if let Some(v) = e.payload_value(field) {
                assert!(longest_list(&v) <= 11, "{field} of {:?} recorded a list of {}", e.op_name(), longest_list(&v));
                checked += 1;
            }
        }
    }
    assert!(checked >= 6, "{checked} payloads");
    let start = events.iter().find(|e| e.op_name() == Some("main.a") && e.payload_value("inputs").is_some()).unwrap();
    let recorded = start.payload_value("inputs").unwrap();
    let list = recorded["values"].as_array().unwrap();
    assert_eq!(list.len(), 11);
    assert_eq!(list[10], json!("...[truncated 99990 items]"));
}
