//! The journal as a durable store sees it: every op call and generator item handed to a
//! sink as it happens; a run seeded with those entries replays them (a finished
//! generator is not called again, an unfinished one is checked item by item); a sink that
//! fails stops the run; op calls get stable idempotency keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use operonx::{Engine, Journal, JournalEntry, JournalError, JournalSink, Map, Outputs, RunOptions, Value, json};

#[derive(Debug, Default)]
struct Recorder {
    entries: Mutex<Vec<JournalEntry>>,
    fail_after: Option<usize>,
}

impl JournalSink for Recorder {
    fn append(&self, entry: JournalEntry) -> Result<(), JournalError> {
        let mut e = self.entries.lock().unwrap();
        if self.fail_after.is_some_and(|n| e.len() >= n) {
            return Err(JournalError("store test.db: disk full".into()));
        }
        e.push(entry);
        Ok(())
    }
}

#[derive(Default)]
struct Calls {
    generated: AtomicUsize,
    work: AtomicUsize,
    keys: Mutex<Vec<Option<String>>>,
}

fn engine(calls: Arc<Calls>, values: Arc<Mutex<Vec<i64>>>) -> Engine {
    let mut e = Engine::new();
    let r = e.registry_mut();
    let c = calls.clone();
    r.register_generator("items", move |_, _| {
        c.generated.fetch_add(1, Ordering::SeqCst);
        let items: Vec<i64> = values.lock().unwrap().clone();
        Ok(items.into_iter().map(|k| Ok(Outputs::one("i", k))))
    });
    r.register_fn("square", move |i, ctx| {
        calls.work.fetch_add(1, Ordering::SeqCst);
        calls.keys.lock().unwrap().push(ctx.idempotency_key());
        let k = i.get("i").and_then(Value::as_i64).unwrap_or(0);
        Ok(Outputs::one("sq", k * k))
    });
    e
}

/// gen yields items; each is squared; the squares are collected.
fn graph() -> Value {
    json!({"schema_version": "1.0", "type": "graph", "name": "main",
    "entries": ["gen"], "initial_ready_count": {"gen": 0, "each": 1},
    "compiled_adj": {"gen": [["each", false]], "each": []},
    "ops": {
        "gen": {"type": "code", "func_name": "items", "is_generator": true},
        "each": {"type": "code", "func_name": "square", "inputs": {"i": {"ref": {"source": "main.gen", "var": "i"}}},
                 "outputs": {"sq": {"ref": {"source": "__PARENT__", "var": "squares"}}}}
    }})
}

/// A journal seeded from recorded entries, as a run store rebuilds it.
fn seeded(entries: &[JournalEntry]) -> Journal {
    let mut ops = Map::new();
    for e in entries {
        if let JournalEntry::Op { key, outputs } = e {
            ops.insert(key.to_string(), Value::Object(outputs.clone().into_map()));
        }
    }
    let mut j = Journal::new(ops, Map::new());
    for e in entries {
        match e {
            JournalEntry::Item { key, index, item } => j.seed_item(key, *index, item.clone().into_map()),
            JournalEntry::StreamEnd { key, count } => j.seed_end(key, *count),
            _ => {}
        }
    }
    j
}

fn durable(recorder: &Arc<Recorder>, journal: Journal) -> Arc<Journal> {
    Arc::new(journal.with_sink(recorder.clone()))
}

#[tokio::test]
async fn every_item_and_op_call_is_journaled_and_a_finished_generator_is_replayed_not_called() {
    let calls = Arc::new(Calls::default());
    let values = Arc::new(Mutex::new(vec![1, 2, 3]));
    let wf = engine(calls.clone(), values.clone()).load_value(graph()).unwrap();
    let rec = Arc::new(Recorder::default());
    let options = RunOptions::default().request_id("0".repeat(32)).journal(durable(&rec, Journal::default()));
    let first = wf.run_with(json!({}), options).await.unwrap();
    assert_eq!(first.outputs["squares"], json!([1, 4, 9]));
    let entries = rec.entries.lock().unwrap().clone();
    let kinds: Vec<String> = entries
        .iter()
        .map(|e| match e {
            JournalEntry::Op { key, .. } => format!("op {key}"),
            JournalEntry::Item { key, index, .. } => format!("item {key} {index}"),
            JournalEntry::StreamEnd { key, count } => format!("end {key} {count}"),
            JournalEntry::Interrupt(i) => format!("interrupt {}", i.id),
        })
        .collect();
    for want in ["item main.gen@main 0", "item main.gen@main 2", "end main.gen@main 3", "op main.each@main/[1]"] {
        assert!(kinds.contains(&want.to_string()), "{want} in {kinds:?}");
    }
    assert_eq!((calls.generated.load(Ordering::SeqCst), calls.work.load(Ordering::SeqCst)), (1, 3));

    // Resumed with everything journaled: nothing runs again, the result is the same, and
    // nothing new is journaled.
    *values.lock().unwrap() = vec![7, 7, 7, 7];
    let again = Arc::new(Recorder::default());
    let options = RunOptions::default().request_id("0".repeat(32)).journal(durable(&again, seeded(&entries)));
    let second = wf.run_with(json!({}), options).await.unwrap();
    assert_eq!(second.outputs["squares"], json!([1, 4, 9]));
    assert_eq!(
        (calls.generated.load(Ordering::SeqCst), calls.work.load(Ordering::SeqCst)),
        (1, 3),
        "nothing ran again"
    );
    assert!(again.entries.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unfinished_generator_runs_again_and_its_journaled_items_are_checked() {
    let calls = Arc::new(Calls::default());
    let values = Arc::new(Mutex::new(vec![1, 2, 3, 4]));
    let wf = engine(calls.clone(), values.clone()).load_value(graph()).unwrap();
    let rec = Arc::new(Recorder::default());
    let options = RunOptions::default().request_id("1".repeat(32)).journal(durable(&rec, Journal::default()));
    wf.run_with(json!({}), options).await.unwrap();
    let all = rec.entries.lock().unwrap().clone();
    // What a crash after item 1 and its square leaves: items 0-1, their squares, no end.
    let kept: Vec<JournalEntry> = all
        .iter()
        .filter(|e| match e {
            JournalEntry::Item { index, .. } => *index < 2,
            JournalEntry::Op { key, .. } => key.ends_with("[0]") || key.ends_with("[1]"),
            _ => false,
        })
        .cloned()
        .collect();
    assert_eq!(kept.len(), 4);
    let work_before = calls.work.load(Ordering::SeqCst);
    let again = Arc::new(Recorder::default());
    let options = RunOptions::default().request_id("1".repeat(32)).journal(durable(&again, seeded(&kept)));
    let out = wf.run_with(json!({}), options).await.unwrap();
    assert_eq!(out.outputs["squares"], json!([1, 4, 9, 16]));
    assert_eq!(calls.generated.load(Ordering::SeqCst), 2, "the unfinished generator runs again");
    assert_eq!(calls.work.load(Ordering::SeqCst) - work_before, 2, "only items 2 and 3 are squared again");
    let new: Vec<String> = again
        .entries
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            JournalEntry::Item { index, .. } => Some(format!("item {index}")),
            JournalEntry::StreamEnd { count, .. } => Some(format!("end {count}")),
            _ => None,
        })
        .collect();
    assert_eq!(new, ["item 2", "item 3", "end 4"], "matched items are not journaled twice");

    // The generator now yields something else for item 1: it fails, naming the item.
    *values.lock().unwrap() = vec![1, 5, 3, 4];
    let options = RunOptions::default().request_id("1".repeat(32)).journal(durable(&again, seeded(&kept)));
    let out = wf.run_with(json!({}), options).await.unwrap();
    assert_eq!(out.failures.len(), 1, "{:?}", out.failures);
    assert_eq!(&*out.failures[0].op, "main.gen");
    assert!(out.failures[0].message.contains("item 1 different"), "{}", out.failures[0].message);
    // And one that yields fewer items than were journaled fails too.
    *values.lock().unwrap() = vec![1];
    let options = RunOptions::default().request_id("1".repeat(32)).journal(durable(&again, seeded(&kept)));
    let out = wf.run_with(json!({}), options).await.unwrap();
    assert!(out.failures[0].message.contains("ended after 1 items, but 2 were journaled"), "{:?}", out.failures);
}

#[tokio::test]
async fn a_sink_that_fails_stops_the_run() {
    let calls = Arc::new(Calls::default());
    let values = Arc::new(Mutex::new((0..50).collect()));
    let wf = engine(calls.clone(), values).load_value(graph()).unwrap();
    let rec = Arc::new(Recorder { fail_after: Some(5), ..Recorder::default() });
    let options = RunOptions::default().request_id("2".repeat(32)).journal(durable(&rec, Journal::default()));
    let out = wf.run_with(json!({}), options).await.unwrap();
    let stopped = out.stopped.as_deref().unwrap_or_default();
    assert!(stopped.contains("journal: store test.db: disk full"), "{stopped:?}");
    assert!(calls.work.load(Ordering::SeqCst) < 50, "the run did not go on unjournaled");
}

#[tokio::test]
async fn op_calls_have_stable_idempotency_keys() {
    let calls = Arc::new(Calls::default());
    let wf = engine(calls.clone(), Arc::new(Mutex::new(vec![1, 2]))).load_value(graph()).unwrap();
    let run = |id: &str| RunOptions::default().request_id(id).journal(Arc::new(Journal::default()));
    wf.run_with(json!({}), run(&"a".repeat(32))).await.unwrap();
    wf.run_with(json!({}), run(&"a".repeat(32))).await.unwrap();
    wf.run_with(json!({}), run(&"b".repeat(32))).await.unwrap();
    wf.run_with(json!({}), RunOptions::default()).await.unwrap();
    let keys = calls.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 8);
    let k: Vec<String> = keys[..6].iter().map(|k| k.clone().unwrap()).collect();
    assert!(k[0].starts_with(&format!("{}-", "a".repeat(32))) && k[0].len() == 65, "{}", k[0]);
    assert_ne!(k[0], k[1], "items differ");
    assert_eq!(k[..2], k[2..4], "the same calls of the same run");
    assert_ne!(k[0], k[4], "another run");
    assert_eq!(keys[6..], [None, None], "a run without a journal has none");
}

/// A `.collect()` consumer is journaled under its context path, `__collect__` included
/// (`main.total@main/__collect__`), and a run seeded with that entry replays it. (A journal
/// written before consumers ran in the collect context keys it `main.total@main`: resumed,
/// such a consumer runs again, its inputs being in the journal.)
#[tokio::test]
async fn a_collect_consumer_is_journaled_in_the_collect_context_and_replayed() {
    let calls = Arc::new(Calls::default());
    let values = Arc::new(Mutex::new(vec![1, 2, 3]));
    let mut e = engine(calls.clone(), values);
    let totals = Arc::new(AtomicUsize::new(0));
    let t = totals.clone();
    e.registry_mut().register_fn("total", move |i, _| {
        t.fetch_add(1, Ordering::SeqCst);
        let xs = i.get("xs").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(Outputs::one("total", xs.iter().filter_map(Value::as_i64).sum::<i64>()))
    });
    let g = json!({"schema_version": "1.0", "type": "graph", "name": "main",
    "entries": ["gen"], "initial_ready_count": {"gen": 0, "sum": 1},
    "compiled_adj": {"gen": [["sum", false]], "sum": []},
    "ops": {
        "gen": {"type": "code", "func_name": "items", "is_generator": true},
        "sum": {"type": "code", "func_name": "total",
                "inputs": {"xs": {"ref": {"source": "main.gen", "var": "i", "stream_policy": {"collect": true}}}},
                "outputs": {"total": {"ref": {"source": "__PARENT__", "var": "total"}}}}
    }});
    let wf = e.load_value(g).unwrap();
    let rec = Arc::new(Recorder::default());
    let out = wf.run_with(json!({}), RunOptions::default().journal(durable(&rec, Journal::default()))).await.unwrap();
    assert_eq!(out.outputs["total"], json!(6));
    let entries = rec.entries.lock().unwrap().clone();
    let ops: Vec<String> = entries
        .iter()
        .filter_map(|e| match e {
            JournalEntry::Op { key, .. } => Some(key.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(ops, ["main.sum@main/__collect__"]);
    let again = Arc::new(Recorder::default());
    let out = wf.run_with(json!({}), RunOptions::default().journal(durable(&again, seeded(&entries)))).await.unwrap();
    assert_eq!(out.outputs["total"], json!(6));
    assert_eq!(totals.load(Ordering::SeqCst), 1, "replayed from the journal, not called again");
    assert_eq!(calls.generated.load(Ordering::SeqCst), 1, "the finished generator is replayed too");
}
