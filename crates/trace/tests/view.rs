//! Rendering runs and traces: the span tree, the timeline, the run list, JSON.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{at, ev};
use operonx_runtime::{EventKind, TraceEvent};
use operonx_trace::{RunStatus, RunSummary, render_json, render_list, render_timeline, render_tree};
use serde_json::{Value, json};

fn start(seq: u64, ms: i64, op: &str, ctx: &[&str], span: u32, parent: Option<u32>) -> TraceEvent {
    let parent = parent.map_or(Value::Null, |p| json!(format!("r1-s{p}")));
    ev(
        "r1",
        seq,
        ms,
        EventKind::OpStart,
        Some(op),
        ctx,
        json!({"inputs": {}, "span_id": format!("r1-s{span}"), "parent_span_id": parent}),
    )
}

fn end(
    seq: u64,
    ms: i64,
    op: &str,
    ctx: &[&str],
    span: u32,
    parent: Option<u32>,
    (status, took): (&str, f64),
) -> TraceEvent {
    let parent = parent.map_or(Value::Null, |p| json!(format!("r1-s{p}")));
    let mut p = json!({"outputs": {}, "status": status, "duration_ms": took, "yield_count": 1,
        "span_id": format!("r1-s{span}"), "parent_span_id": parent});
    if status == "error" {
        p["error"] = json!("boom: bad item\nstack trace line");
    }
    ev("r1", seq, ms, EventKind::OpEnd, Some(op), ctx, p)
}

fn group(seq: u64, ms: i64, kind: EventKind, name: &str, ctx: &[&str], span: u32, parent: u32) -> TraceEvent {
    let payload = if kind == EventKind::GroupStart {
        json!({"name": name, "span_id": format!("r1-s{span}"), "parent_span_id": format!("r1-s{parent}")})
    } else {
        json!({"name": name, "status": "ok", "duration_ms": 2.0, "span_id": format!("r1-s{span}")})
    };
    ev("r1", seq, ms, kind, None, ctx, payload)
}

/// A run with a generator and its items, a nested graph with a model call, and a loop
/// with two iterations; handed over shuffled.
fn trace() -> Vec<TraceEvent> {
    let m = &["main"];
    let l1 = &["main", "loop_1"];
    let mut events = vec![
        ev(
            "r1",
            0,
            0,
            EventKind::Annotation,
            None,
            &[],
            json!({"key": "operonx.run_start", "value": {"graph": "main"}}),
        ),
        start(1, 1, "main.load", m, 1, None),
        ev(
            "r1",
            2,
            2,
            EventKind::Annotation,
            Some("main.load"),
            m,
            json!({"key": "rows", "value": 42, "span_id": "r1-s1"}),
        ),
        end(3, 6, "main.load", m, 1, None, ("ok", 5.0)),
        start(4, 7, "main.gen", m, 2, None),
        ev(
            "r1",
            5,
            8,
            EventKind::OpYield,
            Some("main.gen"),
            &["main", "[0]"],
            json!({"yielded": {"v": 0}, "idx": 0, "span_id": "r1-s2"}),
        ),
        start(6, 8, "main.child", &["main", "[0]"], 3, Some(2)),
        ev(
            "r1",
            7,
            9,
            EventKind::OpYield,
            Some("main.gen"),
            &["main", "[1]"],
            json!({"yielded": {"v": 1}, "idx": 1, "span_id": "r1-s2"}),
        ),
        start(8, 9, "main.child", &["main", "[1]"], 4, Some(2)),
        end(9, 10, "main.child", &["main", "[0]"], 3, Some(2), ("ok", 2.0)),
        end(10, 11, "main.child", &["main", "[1]"], 4, Some(2), ("error", 2.0)),
        ev(
            "r1",
            11,
            12,
            EventKind::OpYield,
            Some("main.gen"),
            &["main", "[2]"],
            json!({"yielded": {"v": 2}, "idx": 2, "span_id": "r1-s2"}),
        ),
        start(12, 12, "main.child", &["main", "[2]"], 5, Some(2)),
        end(13, 13, "main.child", &["main", "[2]"], 5, Some(2), ("ok", 1.0)),
        start(15, 14, "main.sub", m, 6, None),
        // Same ctx as the top level: only the span link puts it under main.sub.
        start(16, 15, "sub.inner", m, 7, Some(6)),
        ev(
            "r1",
            17,
            16,
            EventKind::LlmUsage,
            Some("sub.inner"),
            m,
            json!({"model": "gpt-x", "prompt_tokens": 60, "completion_tokens": 40, "total_tokens": 100, "cost_usd": 0.002, "span_id": "r1-s7"}),
        ),
        end(18, 20, "sub.inner", m, 7, Some(6), ("ok", 5.0)),
        end(19, 21, "main.sub", m, 6, None, ("ok", 7.0)),
        start(20, 22, "main.loop", m, 8, None),
        group(21, 22, EventKind::GroupStart, "iteration 1", m, 9, 8),
        start(22, 23, "loopg.step", m, 10, Some(9)),
        end(23, 24, "loopg.step", m, 10, Some(9), ("ok", 1.0)),
        group(24, 24, EventKind::GroupEnd, "iteration 1", m, 9, 8),
        group(25, 25, EventKind::GroupStart, "iteration 2", l1, 11, 8),
        start(26, 25, "loopg.step", l1, 12, Some(11)),
        end(27, 26, "loopg.step", l1, 12, Some(11), ("ok", 1.0)),
        group(28, 27, EventKind::GroupEnd, "iteration 2", l1, 11, 8),
        end(29, 28, "main.loop", m, 8, None, ("ok", 6.0)),
        // The generator ends after its items.
        end(14, 13, "main.gen", m, 2, None, ("ok", 6.0)),
        ev(
            "r1",
            30,
            30,
            EventKind::Annotation,
            None,
            &[],
            json!({"key": "operonx.run_end", "value": {"status": "finished", "recorded_events": 30}}),
        ),
    ];
    for e in events.iter_mut().filter(|e| e.seq == 14) {
        e.payload.insert("yield_count".into(), json!(3));
    }
    events.reverse();
    events.swap(3, 17);
    events
}

const TREE: &str = "\
run r1 · graph main · error · 30.0ms · 10 ops · 1 errors · 100 tokens · $0.0020
├─ main.load          ok       5.00ms
│     · rows = 42
├─ main.gen           ok       6.00ms  3 yields
│  ├─ [0] main.child  ok       2.00ms
│  ├─ [1] main.child  error    2.00ms  ✗ boom: bad item…
│  └─ [2] main.child  ok       1.00ms
├─ main.sub           ok       7.00ms
│  └─ sub.inner       ok       5.00ms  gpt-x 100 tok $0.0020
└─ main.loop          ok       6.00ms
   ├─ iteration 1     ok       2.00ms
   │  └─ loopg.step   ok       1.00ms
   └─ iteration 2     ok       2.00ms
      └─ loopg.step   ok       1.00ms
";

#[test]
fn the_tree_is_rebuilt_from_spans_with_items_groups_and_nested_graphs() {
    let out = render_tree(&trace(), false);
    print!("{out}");
    assert_eq!(out, TREE);
}

#[test]
fn colour_only_when_asked() {
    assert!(!render_tree(&trace(), false).contains('\x1b'));
    assert!(!render_timeline(&trace(), false).contains('\x1b'));
    let colored = render_tree(&trace(), true);
    assert!(colored.contains("\x1b[31merror\x1b[0m"));
    let plain: String = strip_ansi(&colored);
    assert_eq!(plain.lines().count(), TREE.lines().count());
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn spans_whose_parent_is_missing_are_shown_at_the_top_and_flagged() {
    let events = vec![start(1, 1, "main.orphan", &["main", "[4]"], 3, Some(99))];
    let out = render_tree(&events, false);
    assert!(out.contains("└─ main.orphan  unfinished"), "{out}");
    assert!(out.contains("(parent r1-s99 not in trace)"), "{out}");
}

#[test]
fn the_timeline_is_ordered_by_timestamp_then_seq() {
    // Equal timestamps, seqs out of order in the input.
    let events = vec![
        ev(
            "r1",
            2,
            5,
            EventKind::OpEnd,
            Some("main.b"),
            &["main"],
            json!({"status": "ok", "duration_ms": 1.5, "outputs": {"y": 2}, "yield_count": 1}),
        ),
        ev("r1", 1, 5, EventKind::OpStart, Some("main.b"), &["main"], json!({"inputs": {"x": 1}})),
        ev("r1", 0, 0, EventKind::OpStart, Some("main.a"), &["main"], json!({"inputs": {}})),
        ev(
            "r1",
            3,
            1250,
            EventKind::OpEnd,
            Some("main.a"),
            &["main"],
            json!({"status": "error", "duration_ms": 1250.0, "error": "boom", "yield_count": 0}),
        ),
    ];
    let out = render_timeline(&events, false);
    print!("{out}");
    let body: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(
        body,
        [
            "+0.000ms  op_start     main.a  @main  inputs {}",
            "+5.000ms  op_start     main.b  @main  inputs {\"x\":1}",
            "+5.000ms  op_end       main.b  ok  1.50ms  outputs {\"y\":2}",
            " +1.250s  op_end       main.a  error  1.25s  0 yields  boom",
        ]
    );
}

#[test]
fn the_timeline_shows_offsets_and_nests_by_span_depth() {
    let out = render_timeline(&trace(), false);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 32, "{out}");
    assert_eq!(lines[1], " +0.000ms  annotation   run             operonx.run_start = {\"graph\":\"main\"}");
    // Depth 0, 1 and 2 (generator item, model call, op in a loop iteration).
    assert_eq!(lines[2], " +1.000ms  op_start     main.load       @main  inputs {}");
    assert_eq!(lines[9], " +9.000ms  op_start       main.child    @main/[1]  inputs {}");
    assert_eq!(lines[18], "+16.000ms  llm_usage        sub.inner   gpt-x  100 tok  $0.0020");
    assert_eq!(lines[27], "+25.000ms  op_start         loopg.step  @main/loop_1  inputs {}");
    // Equal timestamps keep seq order: the generator ends after its last item (seq 13 < 14).
    assert_eq!(lines[14], "+13.000ms  op_end         main.child    ok  1.00ms  outputs {}");
    assert_eq!(lines[15], "+13.000ms  op_end       main.gen        ok  6.00ms  3 yields  outputs {}");
}

#[test]
fn the_run_list_has_one_aligned_row_per_run() {
    let mut a = RunSummary::new("18a2b3c4d5e6f7a8aaaa");
    a.graph = Some("summarize".into());
    a.status = RunStatus::Ok;
    a.started_at = Some(at(0));
    a.duration_ms = Some(1250.0);
    a.op_count = 12;
    a.tokens = 1234;
    a.cost_usd = 0.0123;
    let mut b = RunSummary::new("18a2b3c4d5e6f7b9bbbb");
    b.status = RunStatus::Error;
    b.error_count = 2;
    b.op_count = 3;
    let out = render_list(&[a, b], false);
    let want = format!(
        "ID               STARTED              GRAPH      STATUS  DURATION  OPS  ERRORS  TOKENS   COST\n\
         18a2b3c4d5e6f7a  {}  summarize  ok         1.25s   12       0   1,234  $0.01\n\
         18a2b3c4d5e6f7b  -                    -          error          -    3       2       -      -\n",
        at(0).format("%Y-%m-%d %H:%M:%S")
    );
    assert_eq!(out, want);
    assert!(render_list(&[], false).contains("no runs"));
    assert!(render_list(&[RunSummary::new("x")], true).contains("\x1b["));
}

#[test]
fn json_is_the_events_as_an_array_in_the_wire_format() {
    let events = trace();
    let text = render_json(&events).unwrap();
    let back: Vec<TraceEvent> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, events);
    assert!(text.contains(r#""kind": "op_start""#));
}
