//! Durable runs through the CLI: a killed run reads as crashed and `operonx resume`
//! finishes it from another directory without running journaled ops again; a changed
//! graph is refused unless `--force`; `runs list` and `runs prune`; stores that cannot be
//! used are named.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use serde_json::Value;

fn workdir(name: &str) -> std::path::PathBuf {
    common::workdir("durable", name)
}

fn operonx(dir: &Path, args: &[&str]) -> Output {
    common::operonx_in(dir, args)
}

fn stderr(out: &Output) -> String {
    common::stderr(out)
}

fn runs(dir: &Path, store: &str) -> Vec<Value> {
    let out = operonx(dir, &["runs", "list", "--json", "--store", store]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().cloned().unwrap()
}

/// `quick` and `after` finish at once; `long` sleeps 1.5 s.
const GRAPH: &str = r#"{"schema_version": "1.0", "type": "graph", "name": "main",
    "entries": ["quick", "long"], "initial_ready_count": {"quick": 0, "long": 0, "after": 1},
    "compiled_adj": {"quick": [["after", false]], "long": [], "after": []},
    "ops": {
      "quick": {"type": "code", "func_name": "upper", "inputs": {"text": {"ref": {"source": "__PARENT__", "var": "word"}}},
                "outputs": {"text": {"ref": {"source": "__PARENT__", "var": "quick"}}}},
      "after": {"type": "code", "func_name": "lower", "inputs": {"text": {"ref": {"source": "main.quick", "var": "text"}}},
                "outputs": {"text": {"ref": {"source": "__PARENT__", "var": "after"}}}},
      "long": {"type": "code", "func_name": "sleep", "inputs": {"ms": {"literal": 1500}, "value": {"literal": "slept"}},
                "outputs": {"value": {"ref": {"source": "__PARENT__", "var": "slept"}}}}}}"#;

/// Start the graph, wait until its quick ops are journaled, and kill it (SIGKILL).
fn start_and_kill(dir: &Path, store: &str, durability: &str) -> String {
    let mut child = common::operonx_cmd(dir)
        .args(["run", "g.json", "--inputs", "in.json", "--compact", "--store", store, "--durability", durability])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    let id = line.strip_prefix("run id: ").expect("run id line").trim().to_string();
    std::thread::sleep(std::time::Duration::from_millis(600));
    child.kill().unwrap();
    child.wait().unwrap();
    id
}

#[test]
fn a_killed_run_is_crashed_and_resumes_from_another_directory_without_rerunning_journaled_ops() {
    let dir = workdir("crash");
    std::fs::write(dir.join("g.json"), GRAPH).unwrap();
    std::fs::write(dir.join("in.json"), r#"{"word": "Durable"}"#).unwrap();
    let store = dir.join("store/runs.db");
    let store = store.to_str().unwrap();
    let id = start_and_kill(&dir, store, "batched");
    let listed = runs(&dir, store);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["run_id"], id.as_str());
    assert_eq!(listed[0]["status"], "crashed", "{listed:?}");
    assert_eq!(listed[0]["entries"], 2, "quick and after were journaled: {listed:?}");

    // From elsewhere, with the store named by the environment.
    let other = workdir("crash-elsewhere");
    let out = common::operonx_cmd(&other)
        .args(["resume", &id, "--compact", "--trace-store", "traces.db"])
        .env("OPERONX_STORE", store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result, serde_json::json!({"quick": "DURABLE", "after": "durable", "slept": "slept"}));
    assert!(stderr(&out).contains(&format!("run id: {id} (resumed)")), "{}", stderr(&out));
    // The resumed part of the trace: quick and after replayed from the journal, long run.
    let shown = operonx(&other, &["trace", "show", &id, "--json", "--trace-store", "traces.db"]);
    let events: Vec<Value> = serde_json::from_slice(&shown.stdout).unwrap();
    let replayed: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "annotation" && e["payload"]["key"] == "operonx.replay")
        .filter_map(|e| e["op_name"].as_str())
        .collect();
    assert_eq!(replayed, ["main.quick", "main.after"], "{events:?}");
    assert!(events.iter().any(|e| e["payload"]["key"] == "operonx.resume"), "a resume point is marked");
    let listed = runs(&dir, store);
    assert_eq!((listed[0]["status"].as_str(), listed[0]["resumes"].as_u64()), (Some("done"), Some(1)));
    let out = operonx(&dir, &["resume", &id, "--store", store]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is done; there is nothing to resume"), "{}", stderr(&out));
}

#[test]
fn a_changed_graph_is_refused_saying_what_changed_unless_forced() {
    let dir = workdir("changed");
    std::fs::write(dir.join("g.json"), GRAPH).unwrap();
    std::fs::write(dir.join("in.json"), r#"{"word": "x"}"#).unwrap();
    let id = start_and_kill(&dir, "runs.db", "sync");
    std::fs::write(dir.join("g.json"), GRAPH.replace(r#""func_name": "lower""#, r#""func_name": "strip""#)).unwrap();
    let out = operonx(&dir, &["resume", &id, "--store", "runs.db"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("the graph changed since run"), "{err}");
    assert!(err.contains("op main.after changed: func_name"), "{err}");
    assert_eq!(runs(&dir, "runs.db")[0]["status"], "crashed", "a refused resume leaves the run as it was");
    let out = operonx(&dir, &["resume", &id, "--store", "runs.db", "--force", "--compact"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning: resuming on a changed graph (--force)"));
    // `after` was journaled: its result is reused as it was (lower, not strip).
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["after"], "x");
}

#[test]
fn with_durability_off_a_killed_run_starts_over_on_resume() {
    let dir = workdir("off");
    std::fs::write(dir.join("g.json"), GRAPH).unwrap();
    std::fs::write(dir.join("in.json"), r#"{"word": "a"}"#).unwrap();
    let id = start_and_kill(&dir, "runs.db", "off");
    let listed = runs(&dir, "runs.db");
    assert_eq!((listed[0]["status"].as_str(), listed[0]["entries"].as_u64()), (Some("crashed"), Some(0)));
    let out = operonx(&dir, &["resume", &id, "--store", "runs.db", "--compact", "--no-trace-store"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn runs_are_listed_filtered_and_pruned() {
    let dir = workdir("list");
    std::fs::write(dir.join("g.json"), GRAPH.replace("1500", "1")).unwrap();
    std::fs::write(dir.join("in.json"), r#"{"word": "a"}"#).unwrap();
    std::fs::write(dir.join("bad.json"), r#"{"word": 5}"#).unwrap();
    for inputs in ["in.json", "in.json", "bad.json"] {
        operonx(&dir, &["run", "g.json", "--inputs", inputs, "--store", "runs.db", "--no-trace-store"]);
    }
    assert_eq!(runs(&dir, "runs.db").len(), 3);
    let failed = operonx(&dir, &["runs", "list", "--json", "--store", "runs.db", "--status", "failed"]);
    let failed: Vec<Value> = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(failed.len(), 1);
    let table = operonx(&dir, &["runs", "list", "--store", "runs.db"]);
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(table.starts_with("RUN ") && table.matches("done").count() == 2, "{table}");

    let out = operonx(&dir, &["runs", "prune", "--older-than", "1h", "--store", "runs.db"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pruned 0 runs");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = operonx(&dir, &["runs", "prune", "--older-than", "10ms", "--status", "done", "--store", "runs.db"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pruned 2 runs", "{}", stderr(&out));
    assert_eq!(runs(&dir, "runs.db").len(), 1);
    for bad in [vec!["--older-than", "soon"], vec!["--older-than", "1d", "--status", "sleeping"]] {
        let mut args = vec!["runs", "prune", "--store", "runs.db"];
        args.extend(bad);
        let out = operonx(&dir, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn a_named_store_that_cannot_be_used_is_an_error_naming_it() {
    let dir = workdir("bad-store");
    std::fs::write(dir.join("g.json"), GRAPH.replace("1500", "1")).unwrap();
    std::fs::write(dir.join("in.json"), r#"{"word": "a"}"#).unwrap();
    std::fs::write(dir.join("corrupt.db"), "not a database, not at all, not even a little").unwrap();
    let out = operonx(&dir, &["run", "g.json", "--inputs", "in.json", "--store", "corrupt.db"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("run store corrupt.db"), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "the run did not start");
    let out = operonx(&dir, &["resume", &"0".repeat(32), "--store", "runs.db"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no run 00000000000000000000000000000000"), "{}", stderr(&out));
    let out = operonx(&dir, &["runs", "list", "--store", "nowhere.db"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no run store at nowhere.db"), "{}", stderr(&out));
}
