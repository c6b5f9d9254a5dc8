//! The JSON lines exporter: one event per line, in the wire format, appended to one file
//! or to one file per run.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;
use operonx_runtime::TraceEvent;

use crate::blocking::run_blocking;
use crate::export::{ExportError, Exporter};
use crate::recorded::{EventView, RecordedEvent};

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    File(PathBuf),
    PerRun(PathBuf),
}

/// Appends events as JSON lines, exactly in the wire format
/// (`{"event_id":…,"request_id":…,"kind":"op_start","op_name":…,"ctx":[…],"timestamp":"…Z","seq":0,"payload":{…}}`).
/// Files and their directories are created as needed; nothing is ever rewritten.
#[derive(Debug, Clone)]
pub struct JsonlExporter {
    target: Target,
    /// Keeps two exports from interleaving their lines in one file.
    lock: Arc<Mutex<()>>,
}

impl JsonlExporter {
    /// Append every event to the file at `path`.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self { target: Target::File(path.into()), lock: Arc::default() }
    }

    /// Append each run's events to `<dir>/<request_id>.jsonl` (characters other than
    /// letters, digits, `-`, `_` and `.` in the id become `_`, so an id cannot point
    /// outside `dir`).
    pub fn per_run(dir: impl Into<PathBuf>) -> Self {
        Self { target: Target::PerRun(dir.into()), lock: Arc::default() }
    }

    /// The file a run's events go to.
    pub fn path_for(&self, request_id: &str) -> PathBuf {
        match &self.target {
            Target::File(p) => p.clone(),
            Target::PerRun(dir) => dir.join(format!("{}.jsonl", file_stem(request_id))),
        }
    }

    /// Append a batch now (blocking I/O).
    pub fn write<E: EventView>(&self, batch: &[E]) -> Result<(), ExportError> {
        let files = self.encode(batch)?;
        self.append(files)
    }

    /// The lines to append, by file, in batch order.
    fn encode<E: EventView>(&self, batch: &[E]) -> Result<Vec<(PathBuf, Vec<u8>)>, ExportError> {
        let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for e in batch {
            let key = match self.target {
                Target::File(_) => "",
                Target::PerRun(_) => e.request_id(),
            };
            let i = *index.entry(key).or_insert_with(|| {
                files.push((self.path_for(e.request_id()), Vec::new()));
                files.len() - 1
            });
            let buf = &mut files[i].1;
            serde_json::to_writer(&mut *buf, e).map_err(|err| {
                ExportError::fatal(format!("event {}-{}: {err}", e.request_id(), e.seq())).with_source(err)
            })?;
            buf.push(b'\n');
        }
        Ok(files)
    }

    fn append(&self, files: Vec<(PathBuf, Vec<u8>)>) -> Result<(), ExportError> {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        for (path, bytes) in files {
            append_to(&path, &bytes).map_err(|e| {
                let msg = format!("{}: {e}", path.display());
                match e.kind() {
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::InvalidInput => ExportError::fatal(msg),
                    _ => ExportError::retryable(msg),
                }
                .with_source(e)
            })?;
        }
        Ok(())
    }
}

fn append_to(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    // One write per file and batch, so lines of concurrent writers do not interleave.
    f.write_all(bytes)?;
    f.flush()
}

/// A file name for a request id.
fn file_stem(request_id: &str) -> String {
    let stem: String = request_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    match stem.trim_start_matches('.') {
        "" => format!("_{stem}"),
        s if s.len() != stem.len() => format!("_{s}"),
        _ => stem,
    }
}

impl Exporter for JsonlExporter {
    fn name(&self) -> &str {
        "jsonl"
    }

    fn export<'a>(&'a self, batch: &'a [TraceEvent]) -> BoxFuture<'a, Result<(), ExportError>> {
        let files = self.encode(batch);
        let this = self.clone();
        Box::pin(async move {
            let files = files?;
            run_blocking(move || this.append(files)).await?
        })
    }

    /// Encodes and appends the batch on a blocking thread, keeping the shared batch.
    fn export_shared(&self, batch: Arc<Vec<TraceEvent>>) -> BoxFuture<'_, Result<(), ExportError>> {
        let this = self.clone();
        Box::pin(async move { run_blocking(move || this.write(&batch)).await? })
    }

    fn takes_recorded(&self) -> bool {
        true
    }

    /// Events the scheduler recorded are serialized straight to their lines.
    fn export_recorded(&self, batch: Arc<Vec<RecordedEvent>>) -> BoxFuture<'_, Result<(), ExportError>> {
        let this = self.clone();
        Box::pin(async move { run_blocking(move || this.write(&batch)).await? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_cannot_escape_the_directory() {
        assert_eq!(file_stem("0af3-12"), "0af3-12");
        assert_eq!(file_stem("../../etc/passwd"), "__.._etc_passwd");
        assert_eq!(file_stem(".."), "_..");
        assert_eq!(file_stem(".hidden"), "_hidden");
        assert_eq!(file_stem("a/b c"), "a_b_c");
        assert_eq!(file_stem(""), "_");
    }
}
