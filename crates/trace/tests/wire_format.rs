//! The JSON lines exporter writes the seed's wire format, and what it writes reads back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ev, op};
use operonx_runtime::{EventKind, TraceEvent};
use operonx_trace::{Exporter, JsonlExporter};
use serde_json::json;

const SEED_LINE: &str = r#"{"event_id":"r1-0","request_id":"r1","kind":"op_start","op_name":"main.x","ctx":["main"],"timestamp":"2026-05-05T12:00:00.123456Z","seq":0,"payload":{"inputs":{"x":1}}}"#;

#[test]
fn a_seed_format_line_parses_and_reserializes_identically() {
    let e: TraceEvent = serde_json::from_str(SEED_LINE).unwrap();
    assert_eq!(e.kind, EventKind::OpStart);
    assert_eq!(e.op_name.as_deref(), Some("main.x"));
    assert_eq!(e.payload["inputs"], json!({"x": 1}));
    assert_eq!(serde_json::to_string(&e).unwrap(), SEED_LINE);
}

#[test]
fn null_op_names_whole_second_timestamps_and_every_kind_keep_the_format() {
    let line = r#"{"event_id":"r1-7","request_id":"r1","kind":"group_end","op_name":null,"ctx":[],"timestamp":"2026-05-05T12:00:01.000000Z","seq":7,"payload":{"name":"iteration 1","status":"ok"}}"#;
    let e: TraceEvent = serde_json::from_str(line).unwrap();
    assert_eq!(serde_json::to_string(&e).unwrap(), line);
    for kind in ["op_start", "op_end", "op_yield", "annotation", "group_start", "group_end", "llm_usage", "media_ref"] {
        let l = SEED_LINE.replace("\"op_start\"", &format!("\"{kind}\""));
        let e: TraceEvent = serde_json::from_str(&l).unwrap();
        assert_eq!(e.kind.as_str(), kind);
        assert_eq!(serde_json::to_string(&e).unwrap(), l);
    }
}

#[tokio::test]
async fn jsonl_lines_are_the_wire_format_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/trace.jsonl");
    let exporter = JsonlExporter::file(&path);
    let seed: TraceEvent = serde_json::from_str(SEED_LINE).unwrap();
    let mut batch = vec![seed];
    batch.extend(op("r1", 1, "main.y", 2));
    batch.push(ev("r1", 3, 3, EventKind::Annotation, None, &[], json!({"key": "note", "value": "naïve ✓"})));
    exporter.export(&batch).await.unwrap();
    // Append mode: a second export adds lines, never rewrites.
    exporter.export(&batch[..1]).await.unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0], SEED_LINE);
    assert_eq!(lines[4], SEED_LINE);
    for (line, original) in lines.iter().zip(&batch) {
        let back: TraceEvent = serde_json::from_str(line).unwrap();
        assert_eq!(&back, original);
        assert_eq!(serde_json::to_string(&back).unwrap(), *line);
    }
    assert!(text.ends_with('\n'));
}

#[test]
fn per_run_files_hold_only_their_run() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = JsonlExporter::per_run(dir.path());
    let mut batch = Vec::new();
    batch.extend(op("run-a", 0, "main.x", 1));
    batch.extend(op("run/b", 0, "main.x", 1));
    batch.extend(op("run-a", 2, "main.z", 2));
    exporter.write(&batch).unwrap();
    let a = std::fs::read_to_string(dir.path().join("run-a.jsonl")).unwrap();
    let b = std::fs::read_to_string(exporter.path_for("run/b")).unwrap();
    assert_eq!(exporter.path_for("run/b"), dir.path().join("run_b.jsonl"));
    let seqs = |t: &str| -> Vec<(String, u64)> {
        t.lines().map(|l| serde_json::from_str::<TraceEvent>(l).unwrap()).map(|e| (e.request_id, e.seq)).collect()
    };
    assert_eq!(seqs(&a), [("run-a".into(), 0), ("run-a".into(), 1), ("run-a".into(), 2), ("run-a".into(), 3)]);
    assert_eq!(seqs(&b), [("run/b".into(), 0), ("run/b".into(), 1)]);
}
