//! Secret values never reach stdout, stderr, logs, the trace store or saved run state
//! (issue 14, item 4).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

fn workdir(name: &str) -> PathBuf {
    common::workdir("secrets", name)
}

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

fn operonx_in(dir: &Path, args: &[&str]) -> Output {
    common::operonx_cmd(dir)
        .args(args)
        .env("RUST_LOG", "debug")
        .env_remove("OPENAI_API_KEY")
        .output()
        .expect("operonx starts")
}

/// An OpenAI-compatible server on 127.0.0.1 that answers every request 401 with a body
/// echoing the bearer key it was sent, as OpenAI does. Returns its base URL.
fn echoing_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut key, mut length) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("authorization: bearer ") {
                    key = line[line.len() - v.len()..].trim().to_string();
                }
                if let Some(v) = lower.strip_prefix("content-length: ") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = serde_json::json!({"error": {
                "message": format!("Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys."),
                "type": "invalid_request_error", "code": "invalid_api_key"}})
            .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

const KEY: &str = "sk-test-0123456789abcdefSECRET";

const LLM_GRAPH: &str = r#"{"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["llm"],
    "initial_ready_count": {"llm": 0}, "compiled_adj": {"llm": []},
    "ops": {"llm": {"type": "llm", "bound": "io", "resource": "gpt",
        "inputs": {"messages": {"literal": [{"role": "user", "content": "hi"}]}},
        "outputs": {"content": {"ref": {"source": "__PARENT__", "var": "answer"}}}}}}"#;

/// Every file under `dir`, as bytes (the trace store, its WAL, the cache, run state).
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_provider_error_echoing_the_api_key_is_printed_logged_and_traced_redacted() {
    let dir = workdir("echo");
    let url = echoing_server();
    std::fs::write(dir.join(".env"), format!("OPENAI_API_KEY={KEY}\n")).unwrap();
    std::fs::write(
        dir.join("resources.yaml"),
        format!("llm:\n  gpt: {{api_type: openai, model: m, api_key: '${{OPENAI_API_KEY}}', base_url: '{url}', max_retries: 0}}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("g.json"), LLM_GRAPH).unwrap();
    for args in [&["run", "g.json"][..], &["run", "g.json", "--stream", "--trace-jsonl", "t.jsonl"]] {
        let out = operonx_in(&dir, args);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stdout.contains("Incorrect API key provided: [REDACTED]"), "{args:?}: {stdout}");
        assert!(stderr.contains("Incorrect API key provided: [REDACTED]"), "{args:?}: {stderr}");
        assert!(!stdout.contains(KEY) && !stderr.contains(KEY), "{args:?}:\n{stdout}\n{stderr}");
    }
    let files = all_files(&dir);
    assert!(files.iter().any(|(p, _)| p.ends_with("traces.db")));
    for (path, bytes) in &files {
        if !path.ends_with(".env") && !path.ends_with("resources.yaml") {
            assert!(!contains(bytes, KEY), "{} holds the key", path.display());
        }
    }
    let list = operonx_in(&dir, &["trace", "list", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let id = runs[0]["request_id"].as_str().unwrap();
    let shown = operonx_in(&dir, &["trace", "show", id, "--json"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("Incorrect API key provided: <redacted>"), "{shown}");
    assert!(!shown.contains(KEY));
}

/// A password given as a graph input, formatted into a prompt and passed on under
/// another name, is stored redacted wherever it appears in the run's trace.
#[test]
fn a_password_formatted_into_a_prompt_is_redacted_in_the_trace() {
    let dir = workdir("password");
    let password = "correct-horse-battery-staple";
    std::fs::write(
        dir.join("g.json"),
        r#"{"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["prompt"],
            "inputs": {"password": {"required": true}},
            "initial_ready_count": {"prompt": 0, "shout": 1}, "compiled_adj": {"prompt": [["shout", false]], "shout": []},
            "ops": {
              "prompt": {"type": "prompt",
                "inputs": {"template": {"literal": "Log in with {password} please"},
                           "password": {"required": true, "ref": {"source": "__PARENT__", "var": "password"}}},
                "outputs": {"messages": {}}},
              "shout": {"type": "code", "func_name": "identity",
                "inputs": {"value": {"required": true, "ref": {"source": "main.prompt", "var": "messages"}}},
                "outputs": {"value": {"ref": {"source": "__PARENT__", "var": "said"}}}}}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("in.json"), format!(r#"{{"password": "{password}"}}"#)).unwrap();
    let out = operonx_in(&dir, &["run", "g.json", "--inputs", "in.json", "--compact"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let list = operonx_in(&dir, &["trace", "list", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let id = runs[0]["request_id"].as_str().unwrap();
    let shown = operonx_in(&dir, &["trace", "show", id, "--json"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("Log in with <redacted> please"), "{shown}");
    assert!(!shown.contains(password), "{shown}");
    for (path, bytes) in all_files(&dir.join(".operonx")) {
        assert!(!contains(&bytes, password), "{} holds the password", path.display());
    }
}
