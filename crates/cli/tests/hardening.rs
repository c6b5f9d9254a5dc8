//! The `operonx` command against hostile input: absurd numbers, paths posing as run
//! ids, endless input files, and the files it leaves behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{operonx_in, stderr};

fn workdir_(name: &str) -> std::path::PathBuf {
    common::workdir("hardening", name)
}

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A graph of one `upper` op with extra op fields `fields` (a JSON object body, without braces).
fn one_op_graph(fields: &str) -> String {
    format!(
        r#"{{"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["a"],
            "initial_ready_count": {{"a": 0}}, "compiled_adj": {{"a": []}},
            "ops": {{"a": {{"type": "code", "func_name": "upper", "bound": "io", {fields}
                "inputs": {{"text": {{"required": true, "ref": {{"source": "__PARENT__", "var": "text"}}}}}},
                "outputs": {{"text": {{"ref": {{"source": "__PARENT__", "var": "out"}}}}}}}}}}}}"#
    )
}

#[test]
fn durations_out_of_range_exit_2_naming_the_field_and_its_range() {
    let dir = workdir_("durations");
    std::fs::write(dir.join("in.json"), r#"{"text": "hi"}"#).unwrap();
    let cases = [
        (
            r#""timeout": 1e300,"#,
            "main.a.timeout: must be a positive number of seconds, at most 604800 (7 days), got 1e300",
        ),
        (r#""timeout": 18446744073709551616,"#, "main.a.timeout: must be a positive number of seconds, at most 604800"),
        (
            r#""retry": {"initial_delay": 1e300},"#,
            "main.a.retry: initial_delay: must be a non-negative number of seconds, at most 604800",
        ),
        (
            r#""retry": {"max_delay": 1e300},"#,
            "main.a.retry: max_delay: must be a non-negative number of seconds, at most 604800",
        ),
        (
            r#""cache": {"ttl": 1e300},"#,
            "main.a.cache.ttl: must be a positive number of seconds, at most 31536000 (365 days), got 1e300",
        ),
        (
            r#""delay": 9223372036854775807,"#,
            "main.a.delay: must be a non-negative number of seconds, at most 604800 (7 days)",
        ),
    ];
    for (fields, expected) in cases {
        std::fs::write(dir.join("g.json"), one_op_graph(fields)).unwrap();
        let out = operonx_in(&dir, &["validate", "g.json"]);
        assert_eq!(out.status.code(), Some(2), "validate {fields}: {}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains(expected), "validate {fields}: {out:?}");
        let out = operonx_in(&dir, &["run", "g.json", "--inputs", "in.json", "--no-trace-store"]);
        assert_eq!(out.status.code(), Some(2), "run {fields}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "run {fields}: {}", stderr(&out));
    }
    // A week is allowed.
    std::fs::write(dir.join("g.json"), one_op_graph(r#""timeout": 604800, "cache": {"ttl": 86400},"#)).unwrap();
    assert_eq!(operonx_in(&dir, &["validate", "g.json"]).status.code(), Some(0));

    for secs in ["1e19", "1e300", "inf", "NaN", "-1", "604801"] {
        let flag = format!("--timeout={secs}");
        let out = operonx_in(&dir, &["run", "g.json", "--inputs", "in.json", "--no-trace-store", &flag]);
        assert_eq!(out.status.code(), Some(2), "--timeout {secs}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("`--timeout` must be a positive number of seconds, at most 604800 (7 days)"),
            "{}",
            stderr(&out)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resource_settings_out_of_range_exit_2_naming_the_field_and_its_range() {
    let dir = workdir_("resources");
    std::fs::write(
        dir.join("g.json"),
        r#"{"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["chat"],
            "initial_ready_count": {"chat": 0}, "compiled_adj": {"chat": []},
            "ops": {"chat": {"type": "llm", "bound": "io", "resource": "m",
                             "inputs": {"messages": {"literal": [{"role": "user", "content": "hi"}]}}}}}"#,
    )
    .unwrap();
    let cases = [
        (
            "timeout_s: 1e300",
            "field `timeout_s` must be a non-negative number of seconds, at most 604800 (7 days), got 1e300",
        ),
        (
            "connect_timeout_s: 1e300",
            "field `connect_timeout_s` must be a non-negative number of seconds, at most 604800",
        ),
        ("retry_initial_backoff_s: 1e300", "field `retry_initial_backoff_s` must be a non-negative number of seconds"),
        ("retry_max_backoff_s: 1e300", "field `retry_max_backoff_s` must be a non-negative number of seconds"),
        (
            "requests_per_second: 1e-300",
            "field `requests_per_second` must be a number of requests per second of at least 1/604800",
        ),
        (
            "max_concurrency: 2305843009213693952",
            "field `max_concurrency` must be between 1 and 1000000, got 2305843009213693952",
        ),
    ];
    for (setting, expected) in cases {
        let yaml = format!(
            "llm:\n  m:\n    api_type: openai\n    model: x\n    base_url: http://127.0.0.1:9/v1\n    {setting}\n"
        );
        std::fs::write(dir.join("r.yaml"), yaml).unwrap();
        for cmd in [
            &["validate", "g.json", "--resources", "r.yaml"][..],
            &["run", "g.json", "--resources", "r.yaml", "--no-trace-store"],
        ] {
            let out = operonx_in(&dir, cmd);
            let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
            assert_eq!(out.status.code(), Some(2), "{cmd:?} {setting}: {said}");
            assert!(said.contains(expected), "{cmd:?} {setting}: {said}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_ids_are_checked_before_they_name_a_file() {
    let dir = workdir_("run-ids");
    std::fs::create_dir_all(dir.join("store")).unwrap();
    std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
    let victim = dir.join("elsewhere/victim.json");
    std::fs::write(&victim, r#"{"graph": "g.json", "state": {}}"#).unwrap();
    let store = dir.join("store");
    for id in [
        "../../elsewhere/victim",
        "../runs/x",
        "0123456789ABCDEF0123456789abcdef",
        "0190B6F4-9D2C-7B3E-8F00-0123456789AB",
        "0190b6f4_9d2c_7b3e_8f00_0123456789ab",
        "0190b6f4-9d2c-7b3e-8f00-0123456789a/",
        "0123",
        "",
    ] {
        let out = operonx_in(&store, &["resume", id, "--answer", "q=1"]);
        assert_eq!(out.status.code(), Some(2), "{id}: {}", stderr(&out));
        assert!(stderr(&out).contains("not a run id"), "{id}: {}", stderr(&out));
    }
    assert!(victim.is_file(), "a file outside the store is neither read nor deleted");

    for prefix in ["%", "_", "../x", "0A", "-", "0a9f-", "0190b6f4-%"] {
        let out = operonx_in(&store, &["trace", "show", prefix]);
        assert_eq!(out.status.code(), Some(2), "{prefix}: {}", stderr(&out));
        assert!(stderr(&out).contains("not a run id"), "{prefix}: {}", stderr(&out));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn files_holding_user_data_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = workdir_("private");
    std::fs::write(
        dir.join("g.json"),
        r#"{"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["q", "c"],
            "initial_ready_count": {"q": 0, "c": 0}, "compiled_adj": {"q": [], "c": []},
            "ops": {"q": {"type": "code", "func_name": "ask", "inputs": {"question": {"literal": "password?"}}},
                    "c": {"type": "code", "func_name": "upper", "cache": true,
                          "inputs": {"text": {"ref": {"source": "__PARENT__", "var": "password"}}},
                          "outputs": {"text": {"ref": {"source": "__PARENT__", "var": "shout"}}}}}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("in.json"), r#"{"password": "hunter2"}"#).unwrap();
    let out = operonx_in(&dir, &["run", "g.json", "--inputs", "in.json"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // The run store keeps the waiting run's inputs, sealed with the key beside it.
    let held: Vec<u8> = ["runs.db", "runs.db-wal"]
        .iter()
        .flat_map(|n| std::fs::read(dir.join(".operonx").join(n)).unwrap_or_default())
        .collect();
    assert!(held.len() > 1000, "the run store is there");
    assert!(!held.windows(7).any(|w| w == b"hunter2"), "the run store holds no input in clear");
    assert_eq!(mode(&dir.join(".operonx")), 0o700);
    for name in [
        "runs.db",
        "runs.db.key",
        "runs.db-wal",
        "runs.db-shm",
        "traces.db",
        "traces.db-wal",
        "traces.db-shm",
        "cache.db",
        "cache.db-wal",
        "cache.db-shm",
    ] {
        let p = dir.join(".operonx").join(name);
        if p.exists() || !name.contains('-') {
            assert_eq!(mode(&p), 0o600, "{name}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_required_graph_input_is_invalid_input_exit_2() {
    let dir = workdir_("missing-input");
    std::fs::write(dir.join("g.json"), one_op_graph("")).unwrap();
    let out = operonx_in(&dir, &["run", "g.json", "--no-trace-store"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid inputs: missing required input \"text\" (read by main.a)"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty(), "nothing ran");
    std::fs::write(dir.join("in.json"), r#"{"text": "hi"}"#).unwrap();
    let out = operonx_in(&dir, &["run", "g.json", "--no-trace-store", "--inputs", "in.json", "--compact"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_trace_store_writes_nothing_under_operonx() {
    let dir = workdir_("no-store");
    std::fs::write(dir.join("g.json"), one_op_graph(r#""cache": true,"#)).unwrap();
    std::fs::write(dir.join("in.json"), r#"{"text": "hi"}"#).unwrap();
    let out = operonx_in(&dir, &["run", "g.json", "--inputs", "in.json", "--no-trace-store", "--compact"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"out":"HI"}"#);
    assert!(!dir.join(".operonx").exists(), "--no-trace-store created .operonx");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn an_endless_inputs_file_is_refused_with_exit_2() {
    let dir = workdir_("endless");
    std::fs::write(dir.join("g.json"), one_op_graph("")).unwrap();
    for flag in ["--inputs", "--scratch"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_operonx"))
            .args(["run", "g.json", "--no-trace-store", flag, "/dev/zero"])
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("operonx starts");
        let t0 = Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("{flag} /dev/zero is still being read after 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().expect("output");
        assert_eq!(out.status.code(), Some(2), "{flag}: {}", stderr(&out));
        assert!(stderr(&out).contains("file /dev/zero is larger than 64 MiB"), "{flag}: {}", stderr(&out));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn op_names_are_printed_with_control_characters_escaped() {
    let dir = workdir_("op-names");
    std::fs::write(
        dir.join("g.json"),
        r#"{"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["x\nmain.y: ok\u001b[2J"],
            "initial_ready_count": {"x\nmain.y: ok\u001b[2J": 0}, "compiled_adj": {"x\nmain.y: ok\u001b[2J": []},
            "ops": {"x\nmain.y: ok\u001b[2J": {"type": "code", "func_name": "nope"}}}"#,
    )
    .unwrap();
    let out = operonx_in(&dir, &["validate", "g.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed.lines().count(), 1, "one problem, one line: {listed:?}");
    assert!(listed.contains(r"main.x\nmain.y: ok\u{1b}[2J: no function registered as"), "{listed:?}");
    assert!(!listed.contains('\u{1b}'));
    let _ = std::fs::remove_dir_all(&dir);
}
