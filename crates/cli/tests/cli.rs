//! The `operonx` command as users drive it: output, exit codes and messages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn operonx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_operonx")).args(args).current_dir(root()).output().expect("operonx starts")
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn temp(name: &str, contents: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("operonx-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, contents).expect("write temp file");
    p
}

#[test]
fn runs_the_readme_example() {
    let out = operonx(&["run", "examples/order_report/graph.json", "--inputs", "examples/order_report/inputs.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(v["customer"], "Ada");
    assert_eq!(v["total"], json!(1175));
    assert_eq!(v["big_items"], json!(["LAPTOP", "MONITOR"]));
    assert_eq!(v["small_items"], json!(["book", "pen"]));
    assert_eq!(v["loyalty_points"], json!(2048));
    assert_eq!(v["messages"][1]["content"], "Summarize 4 orders for Ada: total spend 1175, 2048 loyalty points.");
}

#[test]
fn runs_a_conformance_graph_with_builtin_ops() {
    let case = "tests/conformance/cases/upstream/ops/parser_yaml_extract";
    let out = operonx(&["run", &format!("{case}/graph.json"), "--inputs", &format!("{case}/inputs.json"), "--compact"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"name":"Bob","age":25,"error":null}"#);
}

#[test]
fn an_op_failure_prints_the_partial_result_with_errors_and_exits_1() {
    let graph = temp(
        "fail.json",
        r#"{"schema_version": "1.0", "type": "graph", "name": "main",
            "entries": ["a", "b"], "initial_ready_count": {"a": 0, "b": 0, "c": 1},
            "compiled_adj": {"a": [], "b": [["c", false]], "c": []},
            "ops": {
              "a": {"type": "code", "func_name": "upper", "inputs": {"text": {"literal": "ok"}},
                    "outputs": {"text": {"ref": {"source": "__PARENT__", "var": "shout"}}}},
              "b": {"type": "code", "func_name": "json_parse", "inputs": {"text": {"literal": "{broken"}}},
              "c": {"type": "code", "func_name": "identity", "inputs": {"value": {"ref": {"source": "main.b", "var": "value"}}},
                    "outputs": {"value": {"ref": {"source": "__PARENT__", "var": "never"}}}}}}"#,
    );
    let out = operonx(&["run", graph.to_str().unwrap_or_default()]);
    assert_eq!(out.status.code(), Some(1));
    let v = stdout_json(&out);
    assert_eq!(v["shout"], "OK");
    assert!(v.get("never").is_none(), "nothing downstream of a failure runs: {v}");
    let msg = v["$errors"]["main.b"].as_str().unwrap_or_default();
    assert!(msg.starts_with("json_parse: invalid JSON"), "{msg}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("op main.b failed"));
}

#[test]
fn an_invalid_graph_exits_2_with_every_problem_on_stderr() {
    let graph = temp(
        "invalid.json",
        r#"{"schema_version": "1.0", "type": "graph", "name": "main",
            "entries": ["a"], "initial_ready_count": {"a": 0},
            "compiled_adj": {"a": [["zz", false]]},
            "ops": {"a": {"type": "code", "func_name": "no_such_fn",
                          "inputs": {"x": {"ref": {"source": "main.zz", "var": "y"}}}}}}"#,
    );
    let out = operonx(&["run", graph.to_str().unwrap_or_default()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("main.a.inputs.x.ref: source \"main.zz\" does not exist"), "{err}");
    assert!(err.contains("main.a: no function registered as \"no_such_fn\""), "{err}");
    assert!(err.contains("main.compiled_adj.a[0]: destination op \"zz\" does not exist"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let out = operonx(&["validate", graph.to_str().unwrap_or_default()]);
    assert_eq!(out.status.code(), Some(2));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed.lines().count(), 3, "{listed}");
}

#[test]
fn validate_accepts_a_good_graph() {
    let out = operonx(&["validate", "examples/order_report/graph.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
}

#[test]
fn bad_inputs_and_bad_files_exit_2() {
    let not_object = temp("inputs.json", "[1, 2]");
    let out =
        operonx(&["run", "examples/order_report/graph.json", "--inputs", not_object.to_str().unwrap_or_default()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected a JSON object, got an array"));

    let out = operonx(&["run", "no/such/graph.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/graph.json"));

    let bad_json = temp("bad.json", "{\"schema_version\": \"1.0\", ");
    let out = operonx(&["run", bad_json.to_str().unwrap_or_default()]);
    assert_eq!(out.status.code(), Some(2));

    let wrong_version = temp("v2.json", r#"{"schema_version": "2.0", "type": "graph", "name": "main"}"#);
    let out = operonx(&["run", wrong_version.to_str().unwrap_or_default()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported schema_version \"2.0\""));
}

#[test]
fn scratch_file_seeds_the_run() {
    let case = "tests/conformance/cases/upstream/state/scratch_ref_input";
    let graph = format!("{case}/graph.json");
    let scratch = temp("scratch.json", r#"{"phase": "from-cli"}"#);
    // The graph calls the pool's `passthrough`; the CLI has `identity`, so rename it.
    let text =
        std::fs::read_to_string(root().join(&graph)).expect("read").replace("tests.spec._ops.passthrough", "identity");
    let g = temp("scratch_graph.json", &text);
    let out = operonx(&[
        "run",
        g.to_str().unwrap_or_default(),
        "--scratch",
        scratch.to_str().unwrap_or_default(),
        "--compact",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"result":"from-cli"}"#);
}

fn sleeper_graph() -> PathBuf {
    temp("sleeper.json", common::SLOW_GRAPH)
}

#[test]
fn timeout_exits_3_with_the_partial_result() {
    let g = sleeper_graph();
    let t0 = std::time::Instant::now();
    let out = operonx(&["run", g.to_str().unwrap_or_default(), "--timeout", "0.3", "--compact"]);
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_json(&out), json!({"quick": "DONE", "$stopped": "timed out after 0.3s"}));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out after 0.3s"));
}

#[test]
fn sigint_stops_the_run_with_exit_130() {
    use std::io::{BufRead, Read};
    let g = sleeper_graph();
    let mut child = Command::new(env!("CARGO_BIN_EXE_operonx"))
        .args(["run", g.to_str().unwrap_or_default(), "--compact"])
        .current_dir(common::workdir("cli", "sigint"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    // Wait until the run has started (its id is printed just before), then a little more
    // for the Ctrl-C handler, however slow the machine is.
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("reads stderr");
    assert!(line.starts_with("run id: "), "{line}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    let status = child.wait().expect("exits");
    assert!(t0.elapsed() < std::time::Duration::from_secs(2), "stopped within a second or so");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).expect("reads stderr");
    assert_eq!(status.code(), Some(130), "{rest}");
    let mut out = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut out).expect("reads stdout");
    let v: Value = serde_json::from_str(out.trim()).expect("json result");
    assert_eq!(v["$stopped"], "interrupted (Ctrl-C)");
}

#[test]
fn stream_prints_events_as_json_lines_then_the_result() {
    let out = operonx(&[
        "run",
        "examples/order_report/graph.json",
        "--inputs",
        "examples/order_report/inputs.json",
        "--stream",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert!(lines.len() > 3);
    for (i, l) in lines[..lines.len() - 1].iter().enumerate() {
        assert_eq!(l["seq"], json!(i), "events are numbered in order");
    }
    let kinds: std::collections::BTreeSet<&str> = lines.iter().filter_map(|l| l["type"].as_str()).collect();
    assert_eq!(kinds, ["frame", "output", "result"].into_iter().collect(), "lifecycle frames and outputs");
    let first_output = lines.iter().find(|l| l["type"] == "output").expect("an output");
    assert_eq!(first_output["op"], "main.parse");
    assert_eq!(first_output["values"], json!({"customer": "Ada"}));
    let first = &lines[0];
    assert_eq!((first["kind"].as_str(), first["op"].as_str()), (Some("op_start"), Some("main.parse")));
    let last = &lines[lines.len() - 1];
    assert_eq!(last["type"], "result");
    assert_eq!(last["result"]["total"], json!(1175));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("run id: "));
}

#[test]
fn a_run_that_asks_for_input_exits_4_and_resumes() {
    let dir = std::env::temp_dir().join(format!("operonx-cli-hitl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("g.json"),
        r#"{"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["q", "side"],
            "initial_ready_count": {"q": 0, "shout": 1, "side": 0},
            "compiled_adj": {"q": [["shout", false]], "shout": [], "side": []},
            "ops": {"q": {"type": "code", "func_name": "ask", "inputs": {"question": {"literal": "your name?"}}},
                    "shout": {"type": "code", "func_name": "upper", "inputs": {"text": {"ref": {"source": "main.q", "var": "answer"}}},
                              "outputs": {"text": {"ref": {"source": "__PARENT__", "var": "greeting"}}}},
                    "side": {"type": "code", "func_name": "lower", "inputs": {"text": {"literal": "DONE"}},
                             "outputs": {"text": {"ref": {"source": "__PARENT__", "var": "side"}}}}}}"#,
    )
    .expect("write graph");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_operonx")).args(args).current_dir(&dir).output().expect("runs")
    };
    let out = run(&["run", "g.json", "--compact"]);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_json(&out), json!({"side": "done", "$interrupts": {"main.q": "your name?"}}));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let run_id = err.lines().next().and_then(|l| l.strip_prefix("run id: ")).expect("run id line").to_string();
    assert!(err.contains(&format!("resume it with: operonx resume {run_id} --answer 'main.q=VALUE'")), "{err}");

    let out = run(&["resume", &run_id, "--answer", "main.nope=1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pending interrupt \"main.nope\" (pending: main.q)"));

    let out = run(&["resume", &run_id, "--answer", "main.q=ada", "--compact"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_json(&out), json!({"side": "done", "greeting": "ADA"}));
    let out = run(&["resume", &run_id, "--answer", "main.q=ada"]);
    assert_eq!(out.status.code(), Some(2), "a finished run cannot be resumed again");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn runs_the_rag_example_offline_with_its_resources() {
    let out = operonx(&[
        "run",
        "examples/rag/graph.json",
        "--inputs",
        "examples/rag/inputs.json",
        "--resources",
        "examples/rag/resources.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v = stdout_json(&out);
    assert!(v["answer"].as_str().unwrap_or_default().contains("5 business days"), "{v}");
    assert_eq!(v["tool_calls"][0]["function"]["name"], "get_order_status");
    assert_eq!(v["model_used"], "assistant");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn a_missing_resource_is_a_validation_error_naming_the_op_and_key() {
    let out = operonx(&["validate", "examples/rag/graph.json"]);
    assert_eq!(out.status.code(), Some(2));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("rag.llm: resource 'llm:assistant' not found"), "{listed}");
}

#[test]
fn runs_are_recorded_and_shown_as_a_tree_timeline_or_json() {
    let dir = std::env::temp_dir().join(format!("operonx-cli-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let store = dir.join("traces.db");
    let jsonl = dir.join("run.jsonl");
    let (s, j) = (store.to_str().unwrap_or_default(), jsonl.to_str().unwrap_or_default());
    let out = operonx(&[
        "run",
        "examples/order_report/graph.json",
        "--inputs",
        "examples/order_report/inputs.json",
        "--trace-store",
        s,
        "--trace-jsonl",
        j,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let run_id = err.lines().find_map(|l| l.strip_prefix("run id: ")).expect("run id").to_string();

    // Every JSON line is a seed-format TraceEvent of this run.
    let text = std::fs::read_to_string(&jsonl).expect("jsonl written");
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert!(events.len() > 20);
    for e in &events {
        let keys: Vec<&str> = e.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
        assert_eq!(keys, ["event_id", "request_id", "kind", "op_name", "ctx", "timestamp", "seq", "payload"]);
        assert_eq!(e["request_id"], json!(run_id));
    }
    let kinds: std::collections::BTreeSet<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    for k in ["op_start", "op_end", "op_yield", "group_start", "group_end"] {
        assert!(kinds.contains(k), "{k} missing from {kinds:?}");
    }

    let out = operonx(&["trace", "list", "--trace-store", s]);
    assert_eq!(out.status.code(), Some(0));
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains(&run_id[..8]) && list.contains(" main ") && list.contains(" ok "), "{list}");

    let out = operonx(&["trace", "show", &run_id, "--trace-store", s]);
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("├─ main.each") && tree.contains("│  ├─ [0] main.price"), "{tree}");
    assert!(tree.contains("iteration 1") && tree.contains("main.points.grow"), "{tree}");
    assert!(!tree.contains("\u{1b}["), "no colour when stdout is not a terminal");

    let out = operonx(&["trace", "show", &run_id[..10], "--timeline", "--trace-store", s]);
    assert_eq!(out.status.code(), Some(0), "a unique prefix is enough");
    let out = operonx(&["trace", "show", &run_id, "--json", "--trace-store", s]);
    let shown: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json array");
    assert!(shown.len() >= events.len());

    let out = operonx(&["trace", "show", "nope", "--trace-store", s]);
    assert_eq!(out.status.code(), Some(2));

    let none = dir.join("none.db");
    let out = operonx(&[
        "run",
        "examples/order_report/graph.json",
        "--inputs",
        "examples/order_report/inputs.json",
        "--no-trace-store",
        "--trace-store",
        none.to_str().unwrap_or_default(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!none.exists(), "--no-trace-store records nothing");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_default_store_is_under_the_working_directory() {
    let dir = std::env::temp_dir().join(format!("operonx-cli-default-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let graph = root().join("examples/order_report/graph.json");
    let inputs = root().join("examples/order_report/inputs.json");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_operonx")).args(args).current_dir(&dir).output().expect("runs")
    };
    let out = run(&["run", graph.to_str().unwrap_or_default(), "--inputs", inputs.to_str().unwrap_or_default()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(dir.join(".operonx/traces.db").is_file());
    let out = run(&["trace", "list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2, "header and one run");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cached_results_persist_across_runs() {
    let dir = std::env::temp_dir().join(format!("operonx-cli-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("g.json"),
        r#"{"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["a"],
            "initial_ready_count": {"a": 0}, "compiled_adj": {"a": []},
            "ops": {"a": {"type": "code", "func_name": "upper", "cache": true,
                          "inputs": {"text": {"ref": {"source": "__PARENT__", "var": "text"}}},
                          "outputs": {"text": {"ref": {"source": "__PARENT__", "var": "out"}}}}}}"#,
    )
    .expect("write");
    std::fs::write(dir.join("in.json"), r#"{"text": "hi"}"#).expect("write");
    let run = |trace: &str| {
        Command::new(env!("CARGO_BIN_EXE_operonx"))
            .args(["run", "g.json", "--inputs", "in.json", "--compact", "--trace-jsonl", trace])
            .current_dir(&dir)
            .output()
            .expect("runs")
    };
    let cache_note = |file: &str| -> Value {
        let text = std::fs::read_to_string(dir.join(file)).expect("trace");
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json"))
            .find(|e| e["payload"]["key"] == "operonx.cache")
            .map(|e| e["payload"]["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(stdout_json(&run("one.jsonl")), json!({"out": "HI"}));
    assert_eq!(cache_note("one.jsonl"), "miss");
    assert_eq!(stdout_json(&run("two.jsonl")), json!({"out": "HI"}));
    assert_eq!(cache_note("two.jsonl"), "hit", "the second process reuses the stored result");
    assert!(dir.join(".operonx/cache.db").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reader_that_stops_early_ends_the_output_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = std::env::temp_dir().join(format!("operonx-cli-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("g.json"),
        r#"{"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["n"],
            "initial_ready_count": {"n": 0, "each": 1},
            "compiled_adj": {"n": [["each", false]], "each": []},
            "ops": {"n": {"type": "code", "func_name": "range", "is_generator": true, "inputs": {"n": {"literal": 2000}}},
                    "each": {"type": "code", "func_name": "identity", "inputs": {"value": {"ref": {"source": "main.n", "var": "i"}}}}}}"#,
    )
    .expect("write graph");
    let out =
        Command::new(env!("CARGO_BIN_EXE_operonx")).args(["run", "g.json"]).current_dir(&dir).output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let run_id = err.lines().find_map(|l| l.strip_prefix("run id: ")).expect("run id").to_string();

    // Thousands of events as JSON: far more than a pipe holds, so the writer meets the
    // closed end (what `operonx trace show ID --json | head` does).
    let mut child = Command::new(env!("CARGO_BIN_EXE_operonx"))
        .args(["trace", "show", &run_id, "--json"])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut first = [0u8; 64];
    child.stdout.take().expect("stdout").read_exact(&mut first).expect("some output");
    let done = child.wait_with_output().expect("ends");
    let err = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn completions_are_printed_for_each_shell_and_an_unknown_shell_is_refused() {
    for shell in ["bash", "zsh", "fish"] {
        let out = operonx(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["operonx", "resume", "validate", "trace"] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    assert_eq!(operonx(&["completions", "cmd.exe"]).status.code(), Some(2));
}
