//! Every conformance case must pass: the vendored public cases, our own cases, and the
//! shared contract folder when it sits next to the repository.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use operonx_testkit::conformance::{Verdict, discover, run_case};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run_all(dir: &Path) -> (usize, Vec<String>) {
    let cases = discover(dir).expect("case folder is readable");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let engine = operonx_testkit::conformance_engine();
    let mut failures = Vec::new();
    for case in &cases {
        if let Verdict::Fail(why) = rt.block_on(run_case(&engine, case)) {
            failures.push(format!("{}: {why}", case.id));
        }
    }
    (cases.len(), failures)
}

#[test]
fn vendored_cases_all_pass() {
    let (n, failures) = run_all(&repo_root().join("tests/conformance/cases"));
    assert!(n >= 28, "expected at least the 28 public cases, found {n}");
    assert!(failures.is_empty(), "{} of {n} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn shared_contract_cases_all_pass_when_present() {
    let shared = repo_root().join("../shared/conformance/cases");
    if !shared.is_dir() {
        eprintln!("skipping: {} is not present", shared.display());
        return;
    }
    let (n, failures) = run_all(&shared);
    assert!(failures.is_empty(), "{} of {n} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn runner_binary_prints_one_line_per_case_and_a_summary() {
    let dir = repo_root().join("tests/conformance/cases/upstream");
    let json = std::env::temp_dir().join(format!("operonx-conformance-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_operonx-conformance"))
        .arg(&dir)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("runner starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 19, "18 case lines and a summary:\n{stdout}");
    assert!(lines[..18].iter().all(|l| l.starts_with("PASS ")), "{stdout}");
    assert!(lines.contains(&"PASS scheduler/two_op_chain"));
    assert_eq!(lines[18], "18 passed, 0 failed");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("valid json");
    assert_eq!(written["scheduler/two_op_chain"], "pass");
    assert_eq!(written.as_object().map(|m| m.len()), Some(18));
    let _ = std::fs::remove_file(json);
}

#[test]
fn runner_binary_reports_failures_and_exits_1() {
    let tmp = std::env::temp_dir().join(format!("operonx-conf-fail-{}", std::process::id()));
    let case = tmp.join("scheduler/wrong_expectation");
    std::fs::create_dir_all(&case).expect("mkdir");
    let src = repo_root().join("tests/conformance/cases/upstream/scheduler/two_op_chain");
    std::fs::copy(src.join("graph.json"), case.join("graph.json")).expect("copy");
    std::fs::copy(src.join("inputs.json"), case.join("inputs.json")).expect("copy");
    std::fs::write(case.join("expected.json"), r#"{"answer": 11.0}"#).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_operonx-conformance")).arg(&tmp).output().expect("runner starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("FAIL scheduler/wrong_expectation: expected {\"answer\":11.0}, got {\"answer\":11}"),
        "{stdout}"
    );
    assert!(stdout.ends_with("0 passed, 1 failed\n"), "{stdout}");
    let _ = std::fs::remove_dir_all(tmp);
}

#[test]
fn trace_dir_writes_one_seed_format_trace_per_case() {
    let out_dir = std::env::temp_dir().join(format!("operonx-conf-traces-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_operonx-conformance"))
        .arg(repo_root().join("tests/conformance/cases/holdout-public"))
        .arg("--trace-dir")
        .arg(&out_dir)
        .output()
        .expect("runner starts");
    assert_eq!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(out_dir.join("branch__route_per_item.jsonl")).expect("trace written");
    let events: Vec<operonx::TraceEvent> =
        text.lines().map(|l| serde_json::from_str(l).expect("seed format")).collect();
    let yields = events.iter().filter(|e| e.kind == operonx::EventKind::OpYield).count();
    assert_eq!(yields, 5, "one op_yield per generator item");
    assert!(events.iter().any(|e| e.ctx == ["main", "[4]"]));
    let files = std::fs::read_dir(&out_dir).expect("dir").count();
    assert_eq!(files, 10);
    let _ = std::fs::remove_dir_all(&out_dir);
}
