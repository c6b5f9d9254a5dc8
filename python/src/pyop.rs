//! Python functions as engine ops: plain functions and generators run inline on the
//! thread that drives the run (taking the GIL only while they run); `async def`
//! functions and async generators are awaited on the run's asyncio loop ([`crate::aio`]).

use std::sync::Arc;

use operonx::{Inputs, Invocation, ObjectTable, Op, OpContext, OpError, OpKind, OpResult, Outputs};
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::convert;
use crate::host::RunHost;

/// How a Python function produces its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `def f(...): return {...}`
    Plain,
    /// `async def f(...): return {...}`
    Async,
    /// `def f(...): yield {...}`
    Generator,
    /// `async def f(...): yield {...}`
    AsyncGenerator,
}

impl Flavor {
    /// From the name the Python side gives (`plain`, `async`, `generator`, `async_generator`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "plain" => Some(Self::Plain),
            "async" => Some(Self::Async),
            "generator" => Some(Self::Generator),
            "async_generator" => Some(Self::AsyncGenerator),
            _ => None,
        }
    }
}

/// A Python callable registered as an op.
pub struct PyOp {
    func: Py<PyAny>,
    flavor: Flavor,
    params: Arc<[Arc<str>]>,
}

impl PyOp {
    /// Wrap `func`, called with the op's inputs as arguments; `params` names its leading
    /// parameters that may be passed by position.
    pub fn new(func: Py<PyAny>, flavor: Flavor, params: Vec<String>) -> Self {
        Self { func, flavor, params: params.into_iter().map(Arc::from).collect() }
    }

    /// Call the function with `inputs`: those that come in the order of its leading
    /// parameters by position, the rest by keyword.
    pub fn invoke<'py>(&self, py: Python<'py>, inputs: &Inputs, ctx: &OpContext) -> PyResult<Bound<'py, PyAny>> {
        let objects = ctx.objects().map(|t| &**t);
        let (args, kwargs) = arguments(py, inputs, &self.params, objects)?;
        self.func.bind(py).call(args, kwargs.as_ref())
    }
}

/// Positional arguments for the inputs that match `params` in order, keywords for the rest.
pub fn arguments<'py>(
    py: Python<'py>,
    inputs: &Inputs,
    params: &[Arc<str>],
    objects: Option<&ObjectTable>,
) -> PyResult<(Bound<'py, PyTuple>, Option<Bound<'py, PyDict>>)> {
    let mut positional = Vec::with_capacity(inputs.len());
    let mut keywords: Option<Bound<'py, PyDict>> = None;
    for (i, (name, value)) in inputs.iter().enumerate() {
        let value = convert::to_py(py, value, objects)?;
        if keywords.is_none() && params.get(i).is_some_and(|p| **p == *name) {
            positional.push(value);
        } else {
            keywords.get_or_insert_with(|| PyDict::new(py)).set_item(PyString::new(py, name), value)?;
        }
    }
    Ok((PyTuple::new(py, positional)?, keywords))
}

/// The run's host data, or the failure of an op called outside a Python engine run.
pub fn host_of(ctx: &OpContext) -> Result<&RunHost, OpError> {
    ctx.extension::<RunHost>().ok_or_else(|| {
        OpError::new("a Python op can only run in a run started by operonx_engine.Engine (no Python host)")
    })
}

/// An op's returned (or yielded) value as outputs: a dict's keys are the outputs, `None`
/// is no output, anything else is the single output `result`.
pub fn outputs_of(value: &Bound<'_, PyAny>, objects: Option<&ObjectTable>) -> Result<Outputs, OpError> {
    if value.is_none() {
        return Ok(Outputs::new());
    }
    if let Ok(d) = value.cast::<PyDict>() {
        let mut out = Outputs::new();
        for (k, v) in d.iter() {
            let Ok(key) = k.cast::<PyString>() else {
                return Err(OpError::new(format!(
                    "the op returned a dict with a key of type {}; output names must be str",
                    convert::type_name(&k)
                )));
            };
            let key = key.to_string();
            let v = convert::to_value(&v, objects).map_err(|e| OpError::new(format!("output '{key}': {e}")))?;
            out.insert(key, v);
        }
        return Ok(out);
    }
    convert::to_value(value, objects)
        .map(|v| Outputs::one("result", v))
        .map_err(|e| OpError::new(format!("output 'result': {e}")))
}

impl Op for PyOp {
    fn call(&self, inputs: Inputs, ctx: &OpContext) -> Invocation {
        let host = match host_of(ctx) {
            Ok(h) => h,
            Err(e) => return Invocation::Ready(Err(e)),
        };
        match self.flavor {
            Flavor::Plain => Invocation::Ready(Python::attach(|py| {
                let called = host.bound(py, || self.invoke(py, &inputs, ctx));
                match called {
                    Ok(v) => outputs_of(&v, ctx.objects().map(|t| &**t)),
                    Err(e) => Err(host.op_error(py, &e, ctx)),
                }
            })),
            Flavor::Generator => {
                let made = Python::attach(|py| host.bound(py, || self.invoke(py, &inputs, ctx)).map(Bound::unbind));
                match made {
                    Ok(generator) => Invocation::Items(Box::new(Items { generator, ctx: ctx.clone(), done: false })),
                    Err(e) => Invocation::Ready(Err(Python::attach(|py| host.op_error(py, &e, ctx)))),
                }
            }
            Flavor::Async => crate::aio::call_async(self, &inputs, ctx, host),
            Flavor::AsyncGenerator => crate::aio::call_async_gen(self, &inputs, ctx, host),
        }
    }

    fn kind(&self) -> OpKind {
        match self.flavor {
            Flavor::Plain | Flavor::Async => OpKind::Plain,
            Flavor::Generator | Flavor::AsyncGenerator => OpKind::Generator,
        }
    }
}

/// A running Python generator, pulled one item at a time as downstream ops make room.
struct Items {
    generator: Py<PyAny>,
    ctx: OpContext,
    done: bool,
}

impl Iterator for Items {
    type Item = OpResult;

    fn next(&mut self) -> Option<OpResult> {
        if self.done {
            return None;
        }
        let host = match host_of(&self.ctx) {
            Ok(h) => h,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        Python::attach(|py| {
            let step = host.bound(py, || self.generator.bind(py).call_method0(pyo3::intern!(py, "__next__")));
            match step {
                Ok(item) => {
                    let out = outputs_of(&item, self.ctx.objects().map(|t| &**t));
                    self.done = out.is_err();
                    Some(out)
                }
                Err(e) if e.is_instance_of::<PyStopIteration>(py) => {
                    self.done = true;
                    None
                }
                Err(e) => {
                    self.done = true;
                    Some(Err(host.op_error(py, &e, &self.ctx)))
                }
            }
        })
    }
}

impl Drop for Items {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // A generator abandoned mid-way (its run cancelled) is closed now, so its
        // `finally` blocks run while the run still exists.
        let _ = Python::try_attach(|py| {
            let _ = self.generator.bind(py).call_method0(pyo3::intern!(py, "close"));
        });
    }
}
