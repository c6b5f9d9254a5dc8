//! The `operonx` command when many start at once, when its store is unavailable, and
//! when it is stopped by a signal (issue 14, items 7 and 8).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{SLOW_GRAPH, stderr};

fn workdir(name: &str) -> PathBuf {
    common::workdir("signals", name)
}

fn operonx(dir: &Path) -> Command {
    common::operonx_cmd(dir)
}

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const QUICK_GRAPH: &str = r#"{"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["a"],
    "initial_ready_count": {"a": 0}, "compiled_adj": {"a": []},
    "ops": {"a": {"type": "code", "func_name": "upper", "inputs": {"text": {"literal": "hi"}},
                  "outputs": {"text": {"ref": {"source": "__PARENT__", "var": "out"}}}}}}"#;

/// `trace list --json` in `dir`.
fn listed(dir: &Path) -> Vec<Value> {
    let out = operonx(dir).args(["trace", "list", "--json", "--limit", "1000"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice::<Value>(&out.stdout).expect("json").as_array().cloned().unwrap_or_default()
}

#[test]
fn twenty_runs_started_together_on_a_fresh_directory_all_run_and_are_recorded() {
    for round in 0..5 {
        let dir = workdir(&format!("twenty-{round}"));
        std::fs::write(dir.join("g.json"), QUICK_GRAPH).unwrap();
        let children: Vec<Child> = (0..20)
            .map(|_| {
                operonx(&dir)
                    .args(["run", "g.json", "--compact"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("starts")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().expect("exits");
            assert_eq!(out.status.code(), Some(0), "round {round}: {}", stderr(&out));
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"out":"HI"}"#);
        }
        let runs = listed(&dir);
        assert_eq!(runs.len(), 20, "round {round}: {runs:?}");
        assert!(runs.iter().all(|r| r["status"] == "ok"), "{runs:?}");
    }
}

#[test]
fn an_unavailable_store_is_warned_about_once_and_the_run_goes_on() {
    let dir = workdir("unavailable");
    std::fs::write(dir.join("g.json"), QUICK_GRAPH).unwrap();
    std::fs::write(dir.join("not-a-dir"), "a file").unwrap();
    std::fs::write(dir.join("corrupt.db"), "this is not a SQLite database, not at all").unwrap();
    for store in ["not-a-dir/traces.db", "corrupt.db"] {
        let out = operonx(&dir).args(["run", "g.json", "--compact", "--trace-store", store]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{store}: {}", stderr(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"out":"HI"}"#);
        let err = stderr(&out);
        let warning = format!("warning: trace store {store} is unavailable");
        assert_eq!(err.matches(&warning).count(), 1, "{err}");
        assert!(err.contains("the run is not recorded"), "{err}");
    }
    // The default places, under a `.operonx` that is a file: the cache and the store are
    // each named once, and a failing op still exits 1 (the status is unchanged).
    let dir = workdir("unavailable-default");
    std::fs::write(dir.join("g.json"), QUICK_GRAPH).unwrap();
    std::fs::write(dir.join(".operonx"), "a file").unwrap();
    let out = operonx(&dir).args(["run", "g.json", "--compact"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("warning: op cache .operonx/cache.db is unavailable").count(), 1, "{err}");
    assert_eq!(err.matches("warning: trace store").count(), 1, "{err}");
    assert_eq!(err.matches("warning: run store ").count(), 1, "{err}");
    assert!(err.contains(".operonx/runs.db: cannot open"), "{err}");
    assert!(err.contains("the run is not durable (it cannot be resumed)"), "{err}");
    let failing = QUICK_GRAPH.replace(r#""literal": "hi""#, r#""literal": 5"#);
    std::fs::write(dir.join("bad.json"), failing).unwrap();
    let out = operonx(&dir).args(["run", "bad.json", "--compact"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

/// Start the slow graph in `dir`; returns once its run id is printed.
fn start_slow(dir: &Path) -> (Child, String) {
    use std::io::BufRead;
    std::fs::write(dir.join("slow.json"), SLOW_GRAPH).unwrap();
    let mut child = operonx(dir)
        .args(["run", "slow.json", "--compact"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("reads stderr");
    let id = line.strip_prefix("run id: ").expect("run id line").trim().to_string();
    // Keep draining stderr so the child never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    (child, id)
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_run_prints_the_partial_result_records_it_cancelled_and_exits_143() {
    use std::io::Read;
    let dir = workdir("sigterm");
    let (mut child, id) = start_slow(&dir);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().expect("exits");
    assert!(t0.elapsed() < Duration::from_secs(5), "stopped promptly");
    assert_eq!(status.code(), Some(143));
    let mut out = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut out).unwrap();
    let v: Value = serde_json::from_str(out.trim()).expect("json result");
    assert_eq!(v["$stopped"], "terminated (SIGTERM)");
    assert_eq!(v["quick"], "DONE");
    let runs = listed(&dir);
    let run = runs.iter().find(|r| r["request_id"] == id.as_str()).expect("recorded");
    assert_eq!(run["status"], "cancelled", "{run}");
}

#[cfg(unix)]
#[test]
fn a_run_whose_process_was_killed_shows_as_crashed() {
    let dir = workdir("sigkill");
    let (mut child, id) = start_slow(&dir);
    // Wait until the run is in the store (the trace is flushed every 2 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = if dir.join(".operonx/traces.db").exists() { listed(&dir) } else { Vec::new() };
        if let Some(run) = runs.iter().find(|r| r["request_id"] == id.as_str()) {
            assert_eq!(run["status"], "running", "its process lives: {run}");
            break;
        }
        assert!(Instant::now() < deadline, "the run never reached the store");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let runs = listed(&dir);
    let run = runs.iter().find(|r| r["request_id"] == id.as_str()).expect("still listed");
    assert_eq!(run["status"], "crashed", "{run}");
    let table = operonx(&dir).args(["trace", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains("crashed"));
}
