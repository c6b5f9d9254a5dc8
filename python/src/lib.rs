//! The operonx engine as the Python extension module `operonx_engine._native`.
//!
//! The Python package (`operonx_engine`) turns a `GraphOp` or a graph.json into the
//! engine's graph and a table of Python functions, and wraps [`native::NativeEngine`]
//! in the public `Engine` API. The GIL is taken only while Python code runs: never while
//! the engine schedules, waits, or runs built-in ops and provider calls.

mod aio;
mod convert;
mod durable;
mod host;
mod hosted;
mod native;
mod pyop;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The trace events of run `run_id` (or of the one run whose id starts with it) in the
/// trace store at `trace_store` (default .operonx/traces.db), as `operonx trace show
/// --json` prints them: a JSON array of wire events, in `(timestamp, seq)` order.
#[pyfunction]
#[pyo3(signature = (run_id, trace_store=None))]
fn trace_events(py: Python<'_>, run_id: &str, trace_store: Option<std::path::PathBuf>) -> PyResult<String> {
    if !operonx::is_request_id_prefix(run_id) {
        return Err(PyValueError::new_err(format!(
            "not a run id: {run_id:?} (a run id is a UUID, or 32 lowercase hex digits; a prefix of one will do)"
        )));
    }
    let path = trace_store.unwrap_or_else(operonx_trace::SqliteStore::default_path);
    py.detach(|| {
        let store = operonx_trace::SqliteStore::open_existing(&path).map_err(|e| e.to_string())?;
        let events = store.run_events(run_id).map_err(|e| e.to_string())?;
        serde_json::to_string(&events).map_err(|e| e.to_string())
    })
    .map_err(PyValueError::new_err)
}

/// The module's contents.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<native::NativeEngine>()?;
    m.add_class::<native::NativeRun>()?;
    m.add_class::<hosted::HostedRun>()?;
    m.add_class::<host::RunState>()?;
    m.add_class::<host::ScratchMap>()?;
    m.add_class::<aio::Completion>()?;
    m.add_function(wrap_pyfunction!(trace_events, m)?)?;
    m.add("GraphError", m.py().get_type::<native::GraphError>())?;
    m.add("INTERRUPTED", native::INTERRUPTED)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
