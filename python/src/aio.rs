//! `async def` ops and async generators: their coroutines run as tasks on the run's
//! asyncio loop (the caller's loop in `arun`, the engine's loop thread otherwise), and
//! hand their results back to the engine through a one-shot channel. Dropping the
//! engine side (the op timed out, the run was cancelled) cancels the task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use futures_util::StreamExt;
use operonx::{Inputs, Invocation, OpContext, OpError, OpResult};
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use tokio::sync::oneshot;

use crate::host::RunHost;
use crate::pyop::{PyOp, host_of, outputs_of};

/// What one awaited step produced.
enum Step {
    /// The coroutine's result (or an async generator's next item).
    Output(OpResult),
    /// The async generator is exhausted.
    End,
}

/// Whether the awaited coroutine is an op call or an async generator's next step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Call,
    Next,
}

struct Pending {
    tx: Option<oneshot::Sender<Step>>,
    task: Option<Py<PyAny>>,
}

/// The done-callback of one asyncio task: sends its outcome to the engine.
#[pyclass(module = "operonx_engine._native", frozen)]
pub struct Completion {
    pending: Mutex<Pending>,
    finished: AtomicBool,
    ctx: OpContext,
    mode: Mode,
}

impl Completion {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl Completion {
    /// Called by the loop when the task is done.
    fn __call__(&self, py: Python<'_>, task: &Bound<'_, PyAny>) -> PyResult<()> {
        let Some(tx) = self.lock().tx.take() else { return Ok(()) };
        self.finished.store(true, Ordering::Release);
        let step = if task.call_method0(pyo3::intern!(py, "cancelled"))?.is_truthy()? {
            Step::Output(Err(OpError::new("the op's asyncio task was cancelled")))
        } else {
            match task.call_method0(pyo3::intern!(py, "result")) {
                Ok(v) => Step::Output(outputs_of(&v, self.ctx.objects().map(|t| &**t))),
                Err(e) if self.mode == Mode::Next && e.is_instance_of::<PyStopAsyncIteration>(py) => Step::End,
                Err(e) => Step::Output(Err(match host_of(&self.ctx) {
                    Ok(host) => host.op_error(py, &e, &self.ctx),
                    Err(no_host) => no_host,
                })),
            }
        };
        // The engine side may have gone (run cancelled): nothing waits for the result.
        let _ = tx.send(step);
        Ok(())
    }

    /// Remember the task (to cancel it if the engine stops waiting). `False` when the
    /// engine already stopped waiting: the caller must not start it.
    fn bind(&self, task: Py<PyAny>) -> bool {
        let mut p = self.lock();
        if p.tx.is_none() {
            return false;
        }
        p.task = Some(task);
        true
    }
}

/// Cancels the task when the engine stops waiting before it finished.
struct Abandon {
    completion: Py<Completion>,
    event_loop: Py<PyAny>,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        let c = self.completion.get();
        if c.finished.load(Ordering::Acquire) {
            return;
        }
        let _ = Python::try_attach(|py| {
            let task = {
                let mut p = c.lock();
                p.tx = None;
                p.task.take()
            };
            if let Some(cancel) = task.and_then(|t| t.bind(py).getattr(pyo3::intern!(py, "cancel")).ok()) {
                // Fails only when the loop is closed, and then the task is gone too.
                let _ = self.event_loop.bind(py).call_method1(pyo3::intern!(py, "call_soon_threadsafe"), (cancel,));
            }
        });
    }
}

/// Schedule `coro` on the run's loop; the receiver gets its outcome.
fn submit(
    py: Python<'_>,
    host: &RunHost,
    coro: &Bound<'_, PyAny>,
    ctx: &OpContext,
    mode: Mode,
) -> PyResult<(oneshot::Receiver<Step>, Abandon)> {
    let (tx, rx) = oneshot::channel();
    let completion = Py::new(
        py,
        Completion {
            pending: Mutex::new(Pending { tx: Some(tx), task: None }),
            finished: AtomicBool::new(false),
            ctx: ctx.clone(),
            mode,
        },
    )?;
    let var = match &host.helpers.scratch_var {
        Some(v) => v.bind(py).clone(),
        None => py.None().into_bound(py),
    };
    host.helpers.submit.bind(py).call1((
        host.event_loop.bind(py),
        coro,
        var,
        host.state.bind(py),
        completion.bind(py),
    ))?;
    Ok((rx, Abandon { completion, event_loop: host.event_loop.clone_ref(py) }))
}

fn lost() -> OpError {
    OpError::new("the asyncio loop running this op stopped before the op finished")
}

/// Call an `async def` op: its coroutine is awaited on the run's loop.
pub fn call_async(op: &PyOp, inputs: &Inputs, ctx: &OpContext, host: &RunHost) -> Invocation {
    let submitted = Python::attach(|py| {
        // Calling an `async def` function only makes the coroutine; its body runs on the loop.
        let coro = op.invoke(py, inputs, ctx)?;
        submit(py, host, &coro, ctx, Mode::Call).inspect_err(|_| {
            // Never awaited: close it, so Python does not warn about it.
            let _ = coro.call_method0(pyo3::intern!(py, "close"));
        })
    });
    match submitted {
        Ok((rx, guard)) => Invocation::Future(Box::pin(async move {
            let _guard = guard;
            match rx.await {
                Ok(Step::Output(r)) => r,
                Ok(Step::End) => Ok(operonx::Outputs::new()),
                Err(_) => Err(lost()),
            }
        })),
        Err(e) => Invocation::Ready(Err(Python::attach(|py| host.op_error(py, &e, ctx)))),
    }
}

/// Call an async generator op: each item is one `__anext__` awaited on the run's loop,
/// asked for only when the engine pulls the next item.
pub fn call_async_gen(op: &PyOp, inputs: &Inputs, ctx: &OpContext, host: &RunHost) -> Invocation {
    let made = Python::attach(|py| op.invoke(py, inputs, ctx).map(Bound::unbind));
    let agen = match made {
        Ok(g) => g,
        Err(e) => return Invocation::Ready(Err(Python::attach(|py| host.op_error(py, &e, ctx)))),
    };
    let start = Some((agen, ctx.clone()));
    let items = futures_util::stream::unfold(start, |state| async move {
        let (agen, ctx) = state?;
        let host = match host_of(&ctx) {
            Ok(h) => h,
            Err(e) => return Some((Err(e), None)),
        };
        let submitted = Python::attach(|py| {
            let step = host.helpers.anext_step.bind(py).call1((agen.bind(py),))?;
            submit(py, host, &step, &ctx, Mode::Next).inspect_err(|_| {
                let _ = step.call_method0(pyo3::intern!(py, "close"));
            })
        });
        let (rx, guard) = match submitted {
            Ok(s) => s,
            Err(e) => {
                let err = Python::attach(|py| host.op_error(py, &e, &ctx));
                return Some((Err(err), None));
            }
        };
        let step = rx.await;
        drop(guard);
        match step {
            Ok(Step::Output(Ok(out))) => Some((Ok(out), Some((agen, ctx)))),
            Ok(Step::Output(Err(e))) => Some((Err(e), None)),
            Ok(Step::End) => None,
            Err(_) => Some((Err(lost()), None)),
        }
    });
    Invocation::Stream(items.boxed())
}
