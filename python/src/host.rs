//! What the Python ops of one run share: the asyncio loop that awaits async ops, and
//! the binding of `operonx.core.SCRATCH` to the run's scratch space.

use std::sync::Arc;

use operonx::{ObjectTable, OpError, Scratch};
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert;

/// Python objects an engine needs for every run, looked up once.
pub struct Helpers {
    /// `operonx_engine._glue.submit(loop, coro, var, state, done)`.
    pub submit: Py<PyAny>,
    /// `operonx_engine._glue.anext_step(agen)`: a coroutine for an async generator's next item.
    pub anext_step: Py<PyAny>,
    /// `operonx_engine._glue.describe_error(exc, tb)`: `(type, message, traceback)`.
    pub describe_error: Py<PyAny>,
    /// The context variable behind `operonx.core.SCRATCH` (when `operonx` is installed).
    pub scratch_var: Option<Py<PyAny>>,
}

impl Helpers {
    /// Look the helpers up in `glue` (the `operonx_engine._glue` module).
    pub fn load(glue: &Bound<'_, PyModule>) -> PyResult<Self> {
        let scratch_var = glue.getattr("scratch_var")?.call0()?;
        Ok(Self {
            submit: glue.getattr("submit")?.unbind(),
            anext_step: glue.getattr("anext_step")?.unbind(),
            describe_error: glue.getattr("describe_error")?.unbind(),
            scratch_var: if scratch_var.is_none() { None } else { Some(scratch_var.unbind()) },
        })
    }
}

/// One run's host data, handed to its ops through `RunOptions::extension`.
pub struct RunHost {
    /// The engine's helpers.
    pub helpers: Arc<Helpers>,
    /// The asyncio loop that runs this run's async ops.
    pub event_loop: Py<PyAny>,
    /// What `SCRATCH` resolves to inside this run's ops.
    pub state: Py<RunState>,
}

impl RunHost {
    /// Call `f` with `SCRATCH` bound to this run's scratch space.
    pub fn bound<'py, R>(&self, py: Python<'py>, f: impl FnOnce() -> PyResult<R>) -> PyResult<R> {
        let Some(var) = &self.helpers.scratch_var else { return f() };
        let var = var.bind(py);
        let token = var.call_method1(pyo3::intern!(py, "set"), (self.state.bind(py),))?;
        let out = f();
        var.call_method1(pyo3::intern!(py, "reset"), (token,))?;
        out
    }

    /// The op failure for a Python exception, recording its traceback on the op's span.
    pub fn op_error(&self, py: Python<'_>, err: &PyErr, ctx: &operonx::OpContext) -> OpError {
        if err.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) {
            // Ctrl-C landed while the op's Python code ran: stop the whole run, as the
            // CLI does; the op was cancelled with it, it did not fail.
            if let Some(root) = ctx.context_path().into_iter().next() {
                ctx.cancel_context(vec![root], crate::native::INTERRUPTED);
            }
            return OpError::cancelled(crate::native::INTERRUPTED);
        }
        let described = self
            .helpers
            .describe_error
            .bind(py)
            .call1((err.value(py), err.traceback(py)))
            .and_then(|t| t.extract::<(String, String, String)>());
        match described {
            Ok((ty, message, traceback)) => {
                if ctx.is_traced() {
                    ctx.annotate(
                        "exception",
                        serde_json::json!({"type": ty, "message": message, "traceback": traceback}),
                    );
                }
                if message.is_empty() { OpError::new(ty) } else { OpError::new(format!("{ty}: {message}")) }
            }
            Err(_) => OpError::new(err.to_string()),
        }
    }
}

/// The object `operonx.core.SCRATCH` reads inside an op: its `_scratch` is the run's
/// scratch space as a mapping.
#[pyclass(module = "operonx_engine._native", frozen)]
pub struct RunState {
    scratch: Scratch,
    objects: Arc<ObjectTable>,
}

impl RunState {
    /// A state over `scratch`, holding objects that are not JSON in `objects`.
    pub fn new(scratch: Scratch, objects: Arc<ObjectTable>) -> Self {
        Self { scratch, objects }
    }
}

#[pymethods]
impl RunState {
    /// The scratch space (what `SCRATCH` reads and writes).
    #[getter]
    fn _scratch(&self) -> ScratchMap {
        ScratchMap { scratch: self.scratch.clone(), objects: self.objects.clone() }
    }

    /// The scratch space (public name).
    #[getter]
    fn scratch(&self) -> ScratchMap {
        ScratchMap { scratch: self.scratch.clone(), objects: self.objects.clone() }
    }
}

/// A run's scratch space as a Python mapping (values are copies).
#[pyclass(module = "operonx_engine._native", frozen, mapping)]
pub struct ScratchMap {
    scratch: Scratch,
    objects: Arc<ObjectTable>,
}

fn value_error(key: &str, e: convert::Unrepresentable) -> PyErr {
    pyo3::exceptions::PyTypeError::new_err(format!("SCRATCH[{key:?}]: {e}"))
}

#[pymethods]
impl ScratchMap {
    fn __getitem__<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        match self.scratch.get(key) {
            Some(v) => convert::to_py(py, &v, Some(&self.objects)),
            None => Err(PyKeyError::new_err(key.to_string())),
        }
    }

    fn __setitem__(&self, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = convert::to_value(value, Some(&self.objects)).map_err(|e| value_error(key, e))?;
        self.scratch.set(key, v);
        Ok(())
    }

    fn __delitem__(&self, key: &str) -> PyResult<()> {
        self.scratch.remove(key).map(|_| ()).ok_or_else(|| PyKeyError::new_err(key.to_string()))
    }

    fn __contains__(&self, key: &str) -> bool {
        self.scratch.get(key).is_some()
    }

    fn __len__(&self) -> usize {
        self.scratch.snapshot().len()
    }

    /// The value at `key`, or `default`.
    #[pyo3(signature = (key, default=None))]
    fn get<'py>(&self, py: Python<'py>, key: &str, default: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        match self.scratch.get(key) {
            Some(v) => convert::to_py(py, &v, Some(&self.objects)),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    /// Remove `key` and return its value, or `default`.
    #[pyo3(signature = (key, default=None))]
    fn pop<'py>(&self, py: Python<'py>, key: &str, default: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        match self.scratch.remove(key) {
            Some(v) => convert::to_py(py, &v, Some(&self.objects)),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    /// A copy of the whole space as a dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.scratch.snapshot() {
            d.set_item(k, convert::to_py(py, &v, Some(&self.objects))?)?;
        }
        Ok(d)
    }
}
