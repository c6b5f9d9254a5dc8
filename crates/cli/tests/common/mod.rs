//! What the CLI's test binaries share: fresh working directories, starting the binary,
//! and a graph that runs long enough to be stopped.

#![allow(dead_code, clippy::expect_used)]

pub mod mock_http;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh, empty working directory for one test (`group` names the test file).
pub fn workdir(group: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("operonx-{group}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// The `operonx` binary, to run in `dir`.
pub fn operonx_cmd(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_operonx"));
    c.current_dir(dir);
    c
}

/// Run `operonx ARGS` in `dir` to the end.
pub fn operonx_in(dir: &Path, args: &[&str]) -> Output {
    operonx_cmd(dir).args(args).output().expect("operonx starts")
}

/// What a finished command wrote on stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One op answers at once (`quick`), the other sleeps for a minute (`long`).
pub const SLOW_GRAPH: &str = r#"{"schema_version": "1.0", "type": "graph", "name": "main",
    "entries": ["quick", "long"], "initial_ready_count": {"quick": 0, "long": 0},
    "compiled_adj": {"quick": [], "long": []},
    "ops": {
      "quick": {"type": "code", "func_name": "upper", "inputs": {"text": {"literal": "done"}},
                "outputs": {"text": {"ref": {"source": "__PARENT__", "var": "quick"}}}},
      "long": {"type": "code", "func_name": "sleep", "bound": "io",
               "inputs": {"ms": {"literal": 60000}, "value": {"literal": 1}},
               "outputs": {"value": {"ref": {"source": "__PARENT__", "var": "long"}}}}}}"#;
