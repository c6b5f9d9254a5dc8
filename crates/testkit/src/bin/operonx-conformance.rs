//! `operonx-conformance DIR [--json FILE]`: run every conformance case below DIR.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use operonx_testkit::conformance::{Verdict, discover, run_case_traced};

/// Run Operon conformance cases (folders holding expected.json) and report PASS/FAIL.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Folder to search for cases.
    dir: PathBuf,
    /// Also write `{case: "pass" | "fail: <why>"}` to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write each case's trace as JSON lines to `OUT/<area>__<name>.jsonl`.
    #[arg(long, value_name = "OUT")]
    trace_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run() {
        Ok(all_passed) => {
            if all_passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("operonx-conformance: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let args = Args::parse();
    let cases = discover(&args.dir).with_context(|| format!("reading {}", args.dir.display()))?;
    if cases.is_empty() {
        anyhow::bail!("no cases (folders holding expected.json) below {}", args.dir.display());
    }
    if let Some(dir) = &args.trace_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let engine = operonx_testkit::conformance_engine();
    let mut results = BTreeMap::new();
    let (mut passed, mut failed) = (0, 0);
    for case in &cases {
        let verdict = rt.block_on(run_case_traced(&engine, case, args.trace_dir.as_deref()));
        match &verdict {
            Verdict::Pass => {
                passed += 1;
                println!("PASS {}", case.id);
                results.insert(case.id.clone(), serde_json::Value::String("pass".into()));
            }
            Verdict::Fail(why) => {
                failed += 1;
                println!("FAIL {}: {why}", case.id);
                results.insert(case.id.clone(), serde_json::Value::String(format!("fail: {why}")));
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if let Some(path) = args.json {
        let text = serde_json::to_string_pretty(&results)?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(failed == 0)
}
