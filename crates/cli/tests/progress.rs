//! The progress line of `operonx run`: shown on a terminal (a pseudo-terminal made by
//! util-linux `script`), never when stderr is piped, never with `--quiet`; the result on
//! stdout stays intact either way.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// `quick` finishes at once; `long` sleeps 1.5 s.
const GRAPH: &str = r#"{"schema_version": "1.0", "type": "graph", "name": "main",
    "entries": ["quick", "long"], "initial_ready_count": {"quick": 0, "long": 0},
    "compiled_adj": {"quick": [], "long": []},
    "ops": {
      "quick": {"type": "code", "func_name": "upper", "inputs": {"text": {"literal": "done"}},
                "outputs": {"text": {"ref": {"source": "__PARENT__", "var": "quick"}}}},
      "long": {"type": "code", "func_name": "sleep", "bound": "io",
               "inputs": {"ms": {"literal": 1500}, "value": {"literal": "slept"}},
               "outputs": {"value": {"ref": {"source": "__PARENT__", "var": "slept"}}}}}}"#;

/// A working directory holding the graph as `g.json`.
fn workdir(name: &str) -> PathBuf {
    let dir = common::workdir("progress", name);
    std::fs::write(dir.join("g.json"), GRAPH).unwrap();
    dir
}

/// The result the graph gives.
fn expected() -> Value {
    serde_json::json!({"quick": "DONE", "slept": "slept"})
}

/// Whether util-linux `script` is there to make a pseudo-terminal; says so loudly if not.
fn have_script() -> bool {
    let there = Command::new("script").arg("--version").output().is_ok_and(|o| o.status.success());
    if !there {
        eprintln!(
            "!!! SKIPPED: util-linux `script` is not installed; the terminal cases of the progress line are not tested"
        );
    }
    there
}

/// `operonx ARGS` run in `dir` under a pseudo-terminal (stdout and stderr both on it):
/// everything it wrote there, and its exit status.
fn under_terminal(dir: &Path, args: &str) -> (String, Option<i32>) {
    let cmd = format!("'{}' {args}", env!("CARGO_BIN_EXE_operonx"));
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("script starts");
    (String::from_utf8_lossy(&out.stdout).into_owned(), out.status.code())
}

/// `text` without terminal escape sequences (`ESC [ ... letter`) and carriage returns.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
            }
            '\r' => out.push('\n'),
            c => out.push(c),
        }
    }
    out
}

/// The line of `text` that is the compact JSON result.
fn result_in(text: &str) -> Value {
    plain(text)
        .lines()
        .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok().filter(Value::is_object))
        .unwrap_or_else(|| panic!("no JSON result in {text:?}"))
}

/// Whether `text` shows an elapsed time like `1.2s · ops`.
fn shows_elapsed(text: &str) -> bool {
    text.match_indices("s · ops ").any(|(at, _)| {
        let before: Vec<char> = text[..at].chars().rev().take(3).collect();
        matches!(before.as_slice(), [d, '.', e] if d.is_ascii_digit() && e.is_ascii_digit())
    })
}

#[test]
fn piped_stderr_shows_no_progress() {
    let dir = workdir("piped");
    let out = common::operonx_in(&dir, &["run", "g.json", "--compact"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let err = common::stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "only the run id on stderr: {err:?}");
    assert!(lines[0].starts_with("run id: "), "{err:?}");
    assert!(!err.contains('\u{1b}') && !err.contains("ops "), "{err:?}");
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), expected());
}

#[test]
fn a_terminal_shows_the_progress_line() {
    if !have_script() {
        return;
    }
    let dir = workdir("terminal");
    let (text, code) = under_terminal(&dir, "run g.json --compact");
    assert_eq!(code, Some(0), "{text:?}");
    let shown = plain(&text);
    assert!(shows_elapsed(&shown), "no elapsed time in {text:?}");
    assert!(shown.contains("ops 1 done 1 running 0 failed"), "no op counts in {text:?}");
    assert!(shown.contains("LLM 0 calls"), "{text:?}");
    assert_eq!(result_in(&text), expected());
    // Cleared before the result: the result line carries nothing of it.
    let last = shown.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert_eq!(serde_json::from_str::<Value>(last.trim()).unwrap(), expected(), "{text:?}");
}

#[test]
fn quiet_shows_no_progress_on_a_terminal() {
    if !have_script() {
        return;
    }
    let dir = workdir("quiet");
    let (text, code) = under_terminal(&dir, "run g.json --compact --quiet");
    assert_eq!(code, Some(0), "{text:?}");
    assert!(!text.contains("ops ") && !text.contains("LLM 0 calls"), "{text:?}");
    assert!(text.contains("run id: "), "{text:?}");
    assert_eq!(result_in(&text), expected());
}
