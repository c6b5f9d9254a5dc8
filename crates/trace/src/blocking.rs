//! Running an exporter's blocking I/O (files, SQLite) off the async workers.

use crate::export::ExportError;

/// Run `work` on tokio's blocking pool when inside a runtime, else right here.
pub(crate) async fn run_blocking<T, F>(work: F) -> Result<T, ExportError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime
            .spawn_blocking(work)
            .await
            .map_err(|e| ExportError::fatal(format!("blocking export task: {e}")).with_source(e)),
        Err(_) => Ok(work()),
    }
}
