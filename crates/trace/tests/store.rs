//! The SQLite trace store: what it keeps, the run summaries, reading back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{ev, op};
use operonx_runtime::{EventKind, TraceEvent};
use operonx_trace::{Exporter, RunStatus, SqliteStore, StoreError, TracePipeline};
use serde_json::json;

fn usage(rid: &str, seq: u64, span: &str, tokens: u64, cost: f64) -> TraceEvent {
    ev(
        rid,
        seq,
        seq as i64,
        EventKind::LlmUsage,
        Some("main.llm"),
        &["main"],
        json!({"model": "gpt-x", "prompt_tokens": 1, "completion_tokens": tokens - 1, "total_tokens": tokens,
               "cost_usd": cost, "span_id": span}),
    )
}

#[tokio::test]
async fn a_pipeline_run_lands_in_the_store_with_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep/er/traces.db");
    let store = SqliteStore::open(&path).unwrap();
    let pipeline =
        TracePipeline::builder().flush_interval(Duration::from_secs(3600)).exporter(store.clone()).build().unwrap();
    pipeline.begin_run("0123abcd-run", "summarize");
    let sink = pipeline.sink();
    for e in op("0123abcd-run", 0, "main.load", 1) {
        sink.record(e);
    }
    sink.record(ev(
        "0123abcd-run",
        2,
        2,
        EventKind::OpStart,
        Some("main.llm"),
        &["main"],
        json!({"inputs": {}, "span_id": "0123abcd-run-s2", "parent_span_id": null}),
    ));
    sink.record(usage("0123abcd-run", 3, "0123abcd-run-s2", 120, 0.003));
    sink.record(usage("0123abcd-run", 4, "0123abcd-run-s2", 30, 0.001));
    sink.record(ev("0123abcd-run", 5, 7, EventKind::OpEnd, Some("main.llm"), &["main"],
        json!({"outputs": {}, "status": "error", "error": "rate limited", "span_id": "0123abcd-run-s2", "parent_span_id": null})));
    sink.run_finished("0123abcd-run");
    pipeline.shutdown().await;
    assert!(path.is_file());

    let runs = store.list_runs(10).unwrap();
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert_eq!(r.request_id, "0123abcd-run");
    assert_eq!(r.graph.as_deref(), Some("summarize"));
    assert_eq!(r.status, RunStatus::Error);
    assert_eq!((r.op_count, r.error_count, r.tokens), (2, 1, 150));
    assert!((r.cost_usd - 0.004).abs() < 1e-12);
    assert_eq!(r.event_count, 8, "6 events + run start + run end");
    assert!(r.started_at <= Some(common::at(0)), "the run starts at its first event or earlier");
    assert!(r.duration_ms.unwrap() >= 7.0);

    // Read back by a unique prefix, in (timestamp, seq) order, equal to what was recorded.
    let events = store.run_events("0123").unwrap();
    assert_eq!(events.len(), 8);
    let real: Vec<u64> = events.iter().filter(|e| e.op_name.is_some()).map(|e| e.seq).collect();
    assert_eq!(real, [0, 1, 2, 3, 4, 5]);
    assert_eq!(events[1].payload["inputs"], json!({"n": 0}));
    assert_eq!(events[6].payload["error"], "rate limited");

    // What SQLite itself holds.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    // One batch: the run's events as JSON lines, found through the run's segments.
    let (count, data): (i64, Vec<u8>) =
        conn.query_row("SELECT event_count, data FROM batches", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(count, 8);
    let segments: String =
        conn.query_row("SELECT segments FROM runs WHERE request_id = '0123abcd-run'", [], |r| r.get(0)).unwrap();
    assert_eq!(segments.split(':').nth(2), Some(data.len().to_string().as_str()), "{segments}: the whole batch");
    let data = String::from_utf8(data).unwrap();
    assert_eq!(data.lines().count(), 8);
    assert!(data.lines().any(|l| l.contains(r#""k":"llm_usage""#) && l.contains(r#""total_tokens":120"#)));
}

#[tokio::test]
async fn runs_are_listed_newest_first_and_prefixes_must_be_unique() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
    for (i, rid) in ["abc-1", "abc-2", "xyz-3"].iter().enumerate() {
        let mut batch: Vec<TraceEvent> = op(rid, 0, "g.x", 1).into_iter().collect();
        for e in &mut batch {
            e.timestamp += chrono::Duration::seconds(i as i64);
        }
        store.export(&batch).await.unwrap();
    }
    let ids: Vec<String> = store.list_runs(10).unwrap().into_iter().map(|r| r.request_id).collect();
    assert_eq!(ids, ["xyz-3", "abc-2", "abc-1"]);
    assert_eq!(store.list_runs(2).unwrap().len(), 2);
    let running = store.run("xyz").unwrap();
    assert_eq!((running.status, running.graph.as_deref()), (RunStatus::Running, Some("g")));
    assert!(matches!(store.run_events("abc"), Err(StoreError::Ambiguous { candidates, .. }) if candidates.len() == 2));
    assert!(matches!(store.run_events("nope"), Err(StoreError::RunNotFound(_))));
    assert!(matches!(store.run_events("abc_"), Err(StoreError::RunNotFound(_))), "_ is not a wildcard");
    assert_eq!(store.run_events("abc-2").unwrap().len(), 2);
}

#[test]
fn exporting_the_same_events_twice_stores_and_counts_them_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
    let batch: Vec<TraceEvent> = op("r1", 0, "main.x", 1).into_iter().collect();
    assert_eq!(store.write(&batch).unwrap(), 2);
    assert_eq!(store.write(&batch).unwrap(), 0);
    let r = store.run("r1").unwrap();
    assert_eq!((r.event_count, r.op_count), (2, 1));
    assert_eq!(store.run_events("r1").unwrap().len(), 2);
}

#[test]
fn summaries_accumulate_across_batches_and_reopened_stores_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let [start, end] = op("r1", 0, "main.x", 1);
        store.write(&[start]).unwrap();
        assert_eq!(store.run("r1").unwrap().status, RunStatus::Running);
        store.write(&[end]).unwrap();
    }
    let store = SqliteStore::open_existing(&path).unwrap();
    let r = store.run("r1").unwrap();
    assert_eq!((r.event_count, r.op_count, r.duration_ms), (2, 1, Some(1.0)));
    assert!(matches!(SqliteStore::open_existing(dir.path().join("none.db")), Err(StoreError::Missing(_))));
}

#[test]
fn the_default_store_lives_under_the_working_directory() {
    let p = SqliteStore::default_path();
    assert!(p.ends_with(".operonx/traces.db"));
    assert!(p.starts_with(std::env::current_dir().unwrap()));
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Version { found: 99, .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()) && text.contains("version 99"), "{text}");
}

#[test]
fn a_resumed_run_reusing_event_ids_is_stored_in_full_and_retries_still_deduplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
    let first: Vec<TraceEvent> = op("r1", 0, "main.x", 1).into_iter().collect();
    let mut resumed = first.clone();
    for e in &mut resumed {
        e.timestamp += chrono::Duration::seconds(30);
    }
    assert_eq!(store.write(&first).unwrap(), 2);
    assert_eq!(store.write(&resumed).unwrap(), 2, "same event ids, later: a new segment");
    assert_eq!(store.write(&resumed).unwrap(), 0, "the same events again: a retry");
    let events = store.run_events("r1").unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(events[2].timestamp, resumed[0].timestamp);
}

#[test]
fn a_version_1_store_is_migrated_on_open_without_losing_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        // Version 1: a row per event.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE runs (request_id TEXT PRIMARY KEY, graph TEXT, started_at TEXT, ended_at TEXT,
                 status TEXT NOT NULL DEFAULT 'running', duration_ms REAL, op_count INTEGER NOT NULL DEFAULT 0,
                 error_count INTEGER NOT NULL DEFAULT 0, cancelled_count INTEGER NOT NULL DEFAULT 0,
                 interrupted_count INTEGER NOT NULL DEFAULT 0, tokens INTEGER NOT NULL DEFAULT 0,
                 cost_usd REAL NOT NULL DEFAULT 0, event_count INTEGER NOT NULL DEFAULT 0,
                 dropped_events INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE events (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, seq INTEGER NOT NULL,
                 event_id TEXT NOT NULL, timestamp TEXT NOT NULL, kind TEXT NOT NULL, op_name TEXT,
                 ctx TEXT NOT NULL, payload TEXT NOT NULL, UNIQUE (request_id, event_id, timestamp));
             INSERT INTO runs (request_id, graph, status, op_count, event_count) VALUES ('old', 'g', 'ok', 1, 2);
             INSERT INTO events (request_id, seq, event_id, timestamp, kind, op_name, ctx, payload) VALUES
               ('old', 1, 'old-1', '2026-01-01T00:00:00.000002Z', 'op_end', 'g.a', '[\"main\"]',
                '{\"status\":\"ok\",\"outputs\":{\"x\":1}}'),
               ('old', 0, 'old-0', '2026-01-01T00:00:00.000001Z', 'op_start', 'g.a', '[\"main\"]',
                '{\"inputs\":{}}');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let events = store.run_events("old").unwrap();
    assert_eq!(events.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), ["old-0", "old-1"]);
    assert_eq!(events[1].payload["outputs"], json!({"x": 1}));
    assert_eq!(events[0].timestamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, true), "2026-01-01T00:00:00.000001Z");
    assert_eq!(store.run("old").unwrap().event_count, 2);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 4);
    let old_table: i64 =
        conn.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'events'", [], |r| r.get(0)).unwrap();
    assert_eq!(old_table, 0, "the old table is gone once its events are moved");
}

#[test]
fn runs_sharing_a_batch_read_back_only_their_own_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
    let batch: Vec<TraceEvent> =
        ["r1", "r2", "r3"].iter().flat_map(|rid| op(rid, 0, &format!("main.{rid}"), 1)).collect();
    assert_eq!(store.write(&batch).unwrap(), 6);
    for (i, rid) in ["r1", "r2", "r3"].iter().enumerate() {
        assert_eq!(store.run_events(rid).unwrap(), batch[2 * i..2 * i + 2], "{rid}");
        assert_eq!(store.run(rid).unwrap().event_count, 2);
    }
    // A later batch of r2 adds a segment to it, and only to it.
    let later: Vec<TraceEvent> = op("r2", 2, "main.again", 2).into_iter().collect();
    store.write(&later).unwrap();
    assert_eq!(store.run_events("r2").unwrap().len(), 4);
    assert_eq!(store.run_events("r3").unwrap().len(), 2);
}

#[test]
fn a_run_pointing_at_a_missing_batch_is_reported_not_shortened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path).unwrap();
    store.write(&op("r1", 0, "main.x", 1)).unwrap();
    rusqlite::Connection::open(&path).unwrap().execute("DELETE FROM batches", []).unwrap();
    let err = store.run_events("r1").unwrap_err();
    assert!(err.to_string().contains("r1 (segment"), "{err}");
}

#[test]
fn a_version_2_store_is_read_and_extended_after_opening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let first = op("old", 0, "main.x", 1);
    {
        // Version 2: a chunk per run and batch, the runs table without segments.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE runs (request_id TEXT PRIMARY KEY, graph TEXT, started_at TEXT, ended_at TEXT,
                 status TEXT NOT NULL DEFAULT 'running', duration_ms REAL, op_count INTEGER NOT NULL DEFAULT 0,
                 error_count INTEGER NOT NULL DEFAULT 0, cancelled_count INTEGER NOT NULL DEFAULT 0,
                 interrupted_count INTEGER NOT NULL DEFAULT 0, tokens INTEGER NOT NULL DEFAULT 0,
                 cost_usd REAL NOT NULL DEFAULT 0, event_count INTEGER NOT NULL DEFAULT 0,
                 dropped_events INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
             CREATE TABLE chunks (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, first_ts INTEGER NOT NULL,
                 first_seq INTEGER NOT NULL, event_count INTEGER NOT NULL, data BLOB NOT NULL,
                 UNIQUE (request_id, first_ts, first_seq));
             INSERT INTO runs (request_id, graph, status, op_count, event_count) VALUES ('old', 'g', 'ok', 1, 2);
             PRAGMA user_version = 2;",
        )
        .unwrap();
        // Its lines, as version 2 wrote them (a built event's object line).
        let lines: String = first
            .iter()
            .map(|e| {
                let t = e.timestamp.timestamp_micros();
                format!(
                    "{{\"s\":{},\"k\":{},\"o\":{},\"c\":{},\"t\":{t},\"P\":{}}}\n",
                    e.seq,
                    serde_json::to_string(&e.kind).unwrap(),
                    serde_json::to_string(&e.op_name).unwrap(),
                    serde_json::to_string(&e.ctx).unwrap(),
                    serde_json::to_string(&e.payload).unwrap()
                )
            })
            .collect();
        conn.execute(
            "INSERT INTO chunks (request_id, first_ts, first_seq, event_count, data) VALUES ('old', ?1, 0, 2, ?2)",
            rusqlite::params![first[0].timestamp.timestamp_micros(), lines.as_bytes()],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.run_events("old").unwrap(), first);
    // The same run resumed: its new events land in a batch, the old ones stay readable.
    let mut resumed = first.clone();
    for e in &mut resumed {
        e.timestamp += chrono::Duration::seconds(30);
    }
    assert_eq!(store.write(&resumed).unwrap(), 2);
    let events = store.run_events("old").unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(events[..2], first);
    assert_eq!(events[2..], resumed);
    assert_eq!(store.run("old").unwrap().event_count, 4);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 4);
}

#[test]
fn a_batch_starting_like_an_earlier_one_is_still_stored() {
    // With one-event batches, a run's start annotation and its first op can open two
    // batches with the same run, time and seq: only a retry of the same batch is skipped.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
    let [start, end] = op("r1", 0, "main.x", 1);
    let mut note = ev("r1", 0, 0, EventKind::Annotation, None, &[], json!({"key": "k", "value": 1}));
    note.timestamp = start.timestamp;
    assert_eq!(store.write(std::slice::from_ref(&note)).unwrap(), 1);
    assert_eq!(store.write(&[start.clone(), end.clone()]).unwrap(), 2);
    assert_eq!(store.write(&[start, end]).unwrap(), 0, "a retry");
    assert_eq!(store.run_events("r1").unwrap().len(), 3);
}

/// A run left `running` by a process that no longer exists reads as crashed (its
/// writer is recorded with it); one whose writer lives still reads as running.
#[cfg(unix)]
#[test]
fn a_running_run_whose_writer_is_gone_reads_as_crashed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path).unwrap();
    let [start, _] = op("r1", 0, "main.x", 1);
    store.write(&[start]).unwrap();
    assert_eq!(store.run("r1").unwrap().status, RunStatus::Running, "this process writes it");

    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let writer: String = conn.query_row("SELECT writer FROM runs WHERE request_id = 'r1'", [], |r| r.get(0)).unwrap();
    let mut writer: serde_json::Value = serde_json::from_str(&writer).unwrap();
    assert_eq!(writer["pid"], std::process::id());
    writer["pid"] = dead.into();
    writer.as_object_mut().unwrap().remove("start");
    conn.execute("UPDATE runs SET writer = ?1 WHERE request_id = 'r1'", [writer.to_string()]).unwrap();

    assert_eq!(store.run("r1").unwrap().status, RunStatus::Crashed);
    let listed = store.list_runs(5).unwrap();
    assert_eq!(listed[0].status, RunStatus::Crashed);
    assert_eq!(serde_json::to_value(&listed[0]).unwrap()["status"], "crashed");
    // Read only: what is stored stays `running`.
    let stored: String = conn.query_row("SELECT status FROM runs WHERE request_id = 'r1'", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, "running");
}

#[tokio::test]
async fn a_failed_store_export_keeps_sqlites_error_as_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path).unwrap();
    rusqlite::Connection::open(&path).unwrap().execute("DROP TABLE batches", []).unwrap();
    let err = store.export(&op("r1", 0, "main.x", 1)).await.unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert!(err.message().contains("batches"), "{err}");
    let source = std::error::Error::source(&err).expect("a source");
    let sqlite = source.downcast_ref::<rusqlite::Error>().expect("the rusqlite error");
    assert!(sqlite.to_string().contains("no such table"), "{sqlite}");
}
