//! The conformance runner: discovers cases (folders holding `expected.json`), runs each
//! with the test-op pool, and applies the comparison rule of
//! `shared/conformance/README.md`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use operonx::{Engine, Map, MemorySink, RunOptions, RunOutcome, Scratch, Value};

/// Keys ignored at any depth on both sides.
const TIMING_KEYS: [&str; 6] = ["$start_time", "$end_time", "$duration_ms", "start_time", "end_time", "duration_ms"];

/// How long one case may run before it counts as failed.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// One conformance case.
#[derive(Debug, Clone)]
pub struct Case {
    /// `<area>/<name>`.
    pub id: String,
    /// The folder holding graph.json, inputs.json, expected.json (and maybe scratch.json).
    pub dir: PathBuf,
}

/// The verdict on one case.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The result matched.
    Pass,
    /// It did not; the reason says how.
    Fail(String),
}

/// Every case below `root`, sorted by path.
pub fn discover(root: &Path) -> std::io::Result<Vec<Case>> {
    let mut dirs = Vec::new();
    walk(root, &mut dirs)?;
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|dir| {
            let parts: Vec<String> = dir.iter().rev().take(2).map(|p| p.to_string_lossy().into_owned()).collect();
            let id = if parts.len() == 2 { format!("{}/{}", parts[1], parts[0]) } else { parts.join("/") };
            Case { id, dir }
        })
        .collect())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.join("expected.json").is_file() {
        out.push(dir.to_path_buf());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), out)?;
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Run one case with `engine` and judge it.
pub async fn run_case(engine: &Engine, case: &Case) -> Verdict {
    run_case_traced(engine, case, None).await
}

/// Run one case; with `trace_dir`, also write its trace events as JSON lines to
/// `trace_dir/<area>__<name>.jsonl`.
pub async fn run_case_traced(engine: &Engine, case: &Case, trace_dir: Option<&Path>) -> Verdict {
    match try_run(engine, case, trace_dir).await {
        Ok(v) => v,
        Err(e) => Verdict::Fail(e),
    }
}

async fn try_run(engine: &Engine, case: &Case, trace_dir: Option<&Path>) -> Result<Verdict, String> {
    let workflow = engine.load_file(case.dir.join("graph.json")).map_err(|e| e.to_string())?;
    let inputs = match case.dir.join("inputs.json") {
        p if p.is_file() => read_json(&p)?,
        _ => Value::Object(Map::new()),
    };
    let scratch = match case.dir.join("scratch.json") {
        p if p.is_file() => match read_json(&p)? {
            Value::Object(m) => Scratch::new(m),
            _ => return Err("scratch.json must hold an object".into()),
        },
        _ => Scratch::default(),
    };
    let expected = read_json(&case.dir.join("expected.json"))?;
    let sink = MemorySink::new();
    let mut options = RunOptions::default().scratch(scratch).request_id(case.id.replace('/', "__"));
    if trace_dir.is_some() {
        options = options.trace(Arc::new(sink.clone()));
    }
    let outcome = tokio::time::timeout(CASE_TIMEOUT, workflow.run_with(inputs, options))
        .await
        .map_err(|_| format!("timed out after {}s", CASE_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    if let Some(dir) = trace_dir {
        let path = dir.join(format!("{}.jsonl", case.id.replace('/', "__")));
        let mut text = String::new();
        for ev in sink.events() {
            text.push_str(&serde_json::to_string(&ev).map_err(|e| e.to_string())?);
            text.push('\n');
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(judge(&expected, &outcome))
}

/// Apply the comparison rule to an expected.json value and an outcome.
pub fn judge(expected: &Value, outcome: &RunOutcome) -> Verdict {
    let mut want = expected.clone();
    let want_error = match &mut want {
        Value::Object(m) => m.shift_remove("$error"),
        _ => None,
    };
    strip_timing(&mut want);
    let mut got = Value::Object(outcome.outputs.clone());
    strip_timing(&mut got);
    if want != got {
        let errors = if outcome.failures.is_empty() {
            String::new()
        } else {
            format!(
                "; errors: {}",
                outcome.failures.iter().map(|f| format!("{}: {}", f.op, f.message)).collect::<Vec<_>>().join("; ")
            )
        };
        return Verdict::Fail(format!("expected {want}, got {got}{errors}"));
    }
    if let Some(err) = want_error {
        let op = err.get("op").and_then(Value::as_str).unwrap_or("");
        let Some(found) = outcome.failures.iter().find(|f| &*f.op == op) else {
            return Verdict::Fail(format!(
                "expected an error for op {op}, got errors for [{}]",
                outcome.failures.iter().map(|f| f.op.to_string()).collect::<Vec<_>>().join(", ")
            ));
        };
        let strict = err.get("strict_message").and_then(Value::as_bool).unwrap_or(false);
        let message = err.get("message").and_then(Value::as_str).unwrap_or("");
        if strict && !found.message.contains(message) {
            return Verdict::Fail(format!(
                "error of {op}: expected a message containing {message:?}, got {:?}",
                found.message
            ));
        }
    }
    Verdict::Pass
}

fn strip_timing(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !TIMING_KEYS.contains(&k.as_str()) && k != "$errors");
            m.values_mut().for_each(strip_timing);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_timing),
        _ => {}
    }
}
