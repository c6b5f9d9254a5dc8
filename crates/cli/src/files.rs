//! Files `run` and `resume` read: inputs, scratch, answers (JSON objects of bounded size).

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use operonx::{Map, Value};

use crate::BadInput;

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
