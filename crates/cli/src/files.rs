//! Files `run` and `resume` read (inputs, scratch, answers: JSON objects of bounded size)
//! and the paused-run state they write.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use operonx::{Map, Value, json};

use crate::BadInput;
use crate::output::Redactor;

/// The largest inputs, scratch or answers file read: 64 MiB.
pub(crate) const MAX_OBJECT_BYTES: u64 = 64 << 20;

/// All of `reader` as text, refusing more than [`MAX_OBJECT_BYTES`] (`/dev/zero` ends).
fn read_capped(reader: impl Read, what: &str, path: &Path) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    reader.take(MAX_OBJECT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_OBJECT_BYTES {
        return Err(
            BadInput(format!("{what} file {} is larger than {} MiB", path.display(), MAX_OBJECT_BYTES >> 20)).into()
        );
    }
    String::from_utf8(bytes)
        .map_err(|e| BadInput(format!("{what} file {}: not UTF-8 text: {e}", path.display())).into())
}

/// A JSON object file (`-`: stdin) of at most [`MAX_OBJECT_BYTES`].
pub(crate) fn read_object(path: &Path, what: &str) -> anyhow::Result<Map<String, Value>> {
    let text = if path == Path::new("-") {
        read_capped(std::io::stdin().lock(), what, path).context("reading stdin")?
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("reading {what} file {}", path.display()))?;
        read_capped(file, what, path).with_context(|| format!("reading {what} file {}", path.display()))?
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => bail!(
            "{what} file {}: expected a JSON object, got {}",
            path.display(),
            operonx::graph::document::kind_of(&other)
        ),
        Err(e) => bail!("{what} file {}: invalid JSON: {e}", path.display()),
    }
}

/// Where an interrupted run's state is kept (`run_id` is checked by the caller).
pub(crate) fn state_path(run_id: &str) -> PathBuf {
    PathBuf::from(".operonx").join("runs").join(format!("{run_id}.json"))
}

/// Save a paused run's state (its raw inputs included): a private file in a private
/// folder (`0600` in `0700` on unix), with the configured secret values redacted (a
/// value that held one is resumed with the marker in its place).
pub(crate) fn save_state(graph: &Path, state: &operonx::RunState, redactor: &Redactor) -> anyhow::Result<()> {
    let path = state_path(&state.request_id);
    if let Some(dir) = path.parent() {
        operonx_trace::private::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let graph = std::fs::canonicalize(graph).unwrap_or_else(|_| graph.to_path_buf());
    let mut saved = json!({"graph": graph.to_string_lossy(), "state": state});
    redactor.value(&mut saved);
    operonx_trace::private::write(&path, serde_json::to_string_pretty(&saved)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
