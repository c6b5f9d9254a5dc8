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

use pyo3::prelude::*;

/// The module's contents.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<native::NativeEngine>()?;
    m.add_class::<native::NativeRun>()?;
    m.add_class::<hosted::HostedRun>()?;
    m.add_class::<host::RunState>()?;
    m.add_class::<host::ScratchMap>()?;
    m.add_class::<aio::Completion>()?;
    m.add("GraphError", m.py().get_type::<native::GraphError>())?;
    m.add("INTERRUPTED", native::INTERRUPTED)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
