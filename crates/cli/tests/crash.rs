//! Crash tests of durable runs: `operonx run` (and `operonx resume`) SIGKILLed at seeded
//! kill points, then resumed until done, on SQLite and on Postgres.
//!
//! The graph (see `crash/graph.rs`) combines a chain, a generator fan-out, a nested
//! graph per item, a loop, a branch, concurrent async calls and an interrupt answered with
//! `resume --answer`, in four variants (either branch arm; the generator free or paced so
//! kills find it unfinished); its effects are llm calls to a mock server in this test
//! process (`crash/mock.rs`) that counts every prompt. An uninterrupted run of each
//! variant is the reference (each prompt asked exactly once, results equal across
//! variants).
//!
//! Each kill point (`crash/harness.rs`) checks, after every kill: (1) the store's
//! consistency check passes; (2) `runs list` shows the run `crashed`, counting the entries
//! its journal has; (3) the journal holds only entries of the reference run, with its
//! bodies, each once and after what it depends on (with `--durability sync`, every llm call
//! the mock saw had its inputs journaled; with `off`, nothing was written while the process
//! ran). Then it resumes the run (answering the interrupt when it waits; sometimes once
//! without an answer first, which must wait again having redone nothing) and checks:
//! (5) the result equals that of an uninterrupted run; (6) no llm call journaled at a kill
//! was made again (the first kill's: the mock saw each exactly once); (7) the run lists as
//! `done`, with the reference's whole journal.
//!
//! Failures are collected per suite and reported together, each with its seed and the
//! command that replays it (`OPERONX_CRASH_SEED`, `OPERONX_CRASH_ONLY`).

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[path = "crash/checks.rs"]
mod checks;
#[path = "crash/graph.rs"]
mod graph;
#[path = "crash/harness.rs"]
mod harness;
#[path = "crash/mock.rs"]
mod mock;
#[path = "crash/pg.rs"]
mod pg;
#[path = "crash/plan.rs"]
mod plan;
#[path = "crash/reference.rs"]
mod reference;
#[path = "crash/rng.rs"]
mod rng;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use harness::{Backend, clip, run_suite};
use plan::Suite;
use reference::{canonical, references};
use serde_json::Value;

/// Batched journal, killed when the journal reaches a random entry count, in the run
/// (before the interrupt) or in the resume that answers it: proves every prefix of the
/// journal a crash can leave is resumed to the reference result without redoing any
/// journaled llm call.
#[test]
fn sqlite_kills_when_the_journal_reaches_random_entry_counts() {
    let backend = Backend::sqlite("entries");
    run_suite("sqlite_kills_when_the_journal_reaches_random_entry_counts", &backend, Suite::EntryCounts, 20);
}

/// Batched journal, killed at a random moment (llm calls in flight, a group commit half
/// done): proves a kill anywhere leaves a consistent store and a resumable run, and that
/// calls in flight are simply made again.
#[test]
fn sqlite_kills_at_random_moments() {
    let backend = Backend::sqlite("moments");
    run_suite("sqlite_kills_at_random_moments", &backend, Suite::Moments, 16);
}

/// `--durability sync` (nothing is used before it is committed: every llm call the mock
/// saw had its inputs journaled) and `--durability off` (a killed run left no journal and
/// is run again from the start on resume).
#[test]
fn sqlite_kills_with_sync_and_off_durability() {
    let backend = Backend::sqlite("sync-off");
    run_suite("sqlite_kills_with_sync_and_off_durability", &backend, Suite::SyncAndOff, 15);
}

/// Double and triple crashes: the run is killed, then the resume is killed too (and
/// sometimes the next one): proves a resumed run is as durable as a fresh one.
#[test]
fn sqlite_kills_a_run_and_then_its_resumes() {
    let backend = Backend::sqlite("repeated");
    run_suite("sqlite_kills_a_run_and_then_its_resumes", &backend, Suite::Repeated, 15);
}

/// The same crash loop (every kind of kill point) on a Postgres store in a fresh schema of
/// `OPERONX_TEST_POSTGRES_URL`; skipped loudly when no server answers, unless
/// `OPERONX_REQUIRE_POSTGRES=1`.
#[test]
fn postgres_crash_loop() {
    let Some(schema) = pg::fresh() else { return };
    let backend = Backend::postgres("postgres", &schema.url);
    run_suite("postgres_crash_loop", &backend, Suite::Mixed, 14);
    drop(backend);
    drop(schema);
}

/// 20 `operonx run` processes started together on one fresh SQLite store (batched, then
/// sync on another fresh store): all exit 0 with the reference result, none reports the
/// database locked or busy, and `runs list` shows 20 `done` runs with full journals.
#[test]
fn twenty_concurrent_runs_on_one_fresh_sqlite_store_all_finish() {
    let want = {
        let mut r = references().get(graph::Variant::ALL[0]).result.clone();
        r.as_object_mut().expect("an object").remove("final");
        r
    };
    for durability in ["batched", "sync"] {
        let dir = common::workdir("crash", &format!("twenty-{durability}"));
        let spec = dir.join("runs.db").to_string_lossy().into_owned();
        let server = mock::server();
        let generation = server.generation(0x2020);
        std::fs::write(dir.join("graph.json"), graph::document(false, false).to_string()).unwrap();
        std::fs::write(dir.join("inputs.json"), graph::inputs(graph::Mode::Deep).to_string()).unwrap();
        std::fs::write(dir.join("resources.yaml"), server.resources_yaml(generation)).unwrap();
        let t0 = Instant::now();
        let children: Vec<Child> = (0..20)
            .map(|_| {
                harness::operonx(&dir)
                    .args(["run", "graph.json", "--inputs", "inputs.json", "--resources", "resources.yaml"])
                    .args(["--no-trace-store", "--compact", "--durability", durability, "--store", &spec])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("operonx starts")
            })
            .collect();
        let mut problems = Vec::new();
        for (k, child) in children.into_iter().enumerate() {
            let out = child.wait_with_output().expect("exits");
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            let noisy: Vec<&str> = err
                .lines()
                .filter(|l| {
                    let l = l.to_lowercase();
                    l.contains("locked") || l.contains("busy") || l.starts_with("error") || l.starts_with("warning")
                })
                .collect();
            if out.status.code() != Some(0) || !noisy.is_empty() {
                problems.push(format!("run {k} ({durability}) exited {:?}:\n{}", out.status, clip(&err)));
                continue;
            }
            match serde_json::from_slice::<Value>(&out.stdout) {
                Ok(v) if canonical(&v) == want => {}
                Ok(v) => problems.push(format!("run {k} ({durability}): result {v} differs from {want}")),
                Err(e) => problems.push(format!("run {k} ({durability}): no JSON result ({e})")),
            }
        }
        assert!(problems.is_empty(), "{} of 20 concurrent runs failed:\n{}", problems.len(), problems.join("\n"));
        let elapsed = t0.elapsed();
        let out = harness::operonx(&dir)
            .args(["runs", "list", "--json", "--limit", "100", "--store", &spec])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("runs list --json");
        assert_eq!(rows.len(), 20, "{rows:?}");
        assert!(rows.iter().all(|r| r["status"] == "done"), "not all done: {rows:?}");
        let entries: Vec<&Value> = rows.iter().map(|r| &r["entries"]).collect();
        assert!(entries.windows(2).all(|w| w[0] == w[1]), "journals of different lengths: {entries:?}");
        let store = operonx_store::SqliteRunStore::open_with_key(&spec, harness::test_key()).expect("open");
        operonx_store::RunStore::check(&store).expect("the store is consistent after 20 concurrent runs");
        let counts = server.counts(generation);
        assert!(counts.values().all(|n| *n == 20), "each llm call made once per run: {counts:?}");
        eprintln!("crash harness: 20 concurrent runs ({durability}) done in {:.1} s", elapsed.as_secs_f64());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The harness's own pieces: the mock answers from the prompt and counts per generation;
/// the graph's journal keys map to the prompts the harness expects.
#[test]
fn the_harness_mock_and_key_mapping_behave() {
    use std::io::{Read, Write};
    let server = mock::server();
    let g = server.generation(7);
    let url = server.base_url(g);
    let addr = url.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = r#"{"model":"m","messages":[{"role":"user","content":"item 2 of crash"}]}"#;
    for _ in 0..2 {
        write!(
            conn,
            "POST /g{g}/v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            conn.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let len: usize =
            head.lines().find_map(|l| l.strip_prefix("content-length: ")).and_then(|v| v.trim().parse().ok()).unwrap();
        let mut reply = vec![0u8; len];
        conn.read_exact(&mut reply).unwrap();
        let reply: Value = serde_json::from_slice(&reply).unwrap();
        let outputs = serde_json::json!({"content": reply["choices"][0]["message"]["content"]}).to_string();
        assert_eq!(mock::prompt_of_outputs(&outputs).as_deref(), Some("item 2 of crash"));
    }
    assert_eq!(server.counts(g).get("item 2 of crash"), Some(&2));
    assert_eq!(graph::expected_prompt("main.llm_item@main/[2]").as_deref(), Some("item 2 of crash"));
    assert_eq!(graph::expected_prompt("main.lp.llm_loop@main/loop_2").as_deref(), Some("loop iteration 2 on crash"));
    assert_eq!(graph::expected_prompt("main.lp.llm_loop@main").as_deref(), Some("loop iteration 0 on crash"));
    assert_eq!(graph::expected_prompt("main.llm_par3@main").as_deref(), Some("parallel call 3"));
    assert_eq!(graph::prompt_key_of("main.sub.llm_inner@main/[1]").as_deref(), Some("main.sub.p@main/[1]"));
    assert!(graph::is_llm_key("main.sub.llm_inner@main/[1]") && !graph::is_llm_key("main.sub.pick@main/[1]"));
    let mut a = rng::XorShift::new(harness::DEFAULT_SEED);
    let mut b = rng::XorShift::new(harness::DEFAULT_SEED);
    assert_eq!((0..5).map(|_| a.next_u64()).collect::<Vec<_>>(), (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
}
