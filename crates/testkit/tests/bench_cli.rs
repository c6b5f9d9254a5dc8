//! `operonx-bench` as other tools drive it: one JSON line per mode, results checked,
//! traced modes compared with `off` round by round.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The W2 workload graph (a copy of `shared/bench/graphs/w2.json`, so the test runs
/// wherever the repository is checked out).
fn w2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/w2.json")
}

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_operonx-bench")).arg(w2()).args(args).output().unwrap()
}

#[test]
fn every_mode_prints_a_checked_line_with_its_ratio_to_off() {
    let out = bench(&["--repeat", "20", "--runs", "3", "--warmup", "1", "--trace", "off,raw,store"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let modes: Vec<&str> = lines.iter().map(|l| l["trace"].as_str().unwrap()).collect();
    assert_eq!(modes, ["off", "raw", "store"]);
    for l in &lines {
        assert_eq!(
            (l["graph"].as_str(), l["runs"].as_u64(), l["result_ok"].as_bool()),
            (Some("w2"), Some(3), Some(true))
        );
        assert!(l["median_ms"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l["ratio_to_off"].as_f64().unwrap() > 0.0, "{l}");
    }
    assert_eq!(lines[0]["ratio_to_off"], 1.0);
    // Only pipeline modes time the runs apart from the final flush.
    assert!(lines[1].get("runs_ratio_to_off").is_none());
    assert!(lines[2]["runs_ratio_to_off"].as_f64().unwrap() > 0.0);
    assert!(lines[2]["runs_median_ms"].as_f64().unwrap() <= lines[2]["median_ms"].as_f64().unwrap());
}

#[test]
fn an_unknown_trace_mode_is_refused_by_name() {
    let out = bench(&["--runs", "1", "--trace", "off,loud"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loud"), "{}", String::from_utf8_lossy(&out.stderr));
}
