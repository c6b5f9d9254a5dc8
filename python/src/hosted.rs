//! A run driven by an asyncio loop: the loop's thread polls the engine's run, so the run's
//! `async def` ops are started and finished on that same thread, with no thread switch
//! per await. The run wakes the loop through a socket the loop watches
//! (`loop.add_reader(run.fileno(), run.poll)`): waking it takes no GIL.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::future::BoxFuture;
use operonx::{ObjectTable, RunOutcome, StopHandle};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::native::{Runs, deliver};

/// Wakes the loop: one byte on the socket, unless one is already pending.
struct SocketWaker {
    writer: UnixStream,
    pending: AtomicBool,
}

impl Wake for SocketWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            // A full socket buffer means a wake-up is already queued.
            let _ = (&self.writer).write(&[1]);
        }
    }
}

type RunFuture = BoxFuture<'static, Result<RunOutcome, operonx::Error>>;

/// A run whose progress an asyncio loop drives (see the module docs).
#[pyclass(module = "operonx_engine._native", frozen)]
pub struct HostedRun {
    run_id: String,
    stop: StopHandle,
    future: Mutex<Option<RunFuture>>,
    reader: UnixStream,
    waker: Arc<SocketWaker>,
    handle: tokio::runtime::Handle,
    on_done: Py<PyAny>,
    paused: Runs,
    objects: Arc<ObjectTable>,
}

impl HostedRun {
    /// A hosted run of `future`; `on_done` gets what `NativeEngine.start`'s does.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        run_id: String,
        stop: StopHandle,
        future: RunFuture,
        handle: tokio::runtime::Handle,
        on_done: Py<PyAny>,
        paused: Runs,
        objects: Arc<ObjectTable>,
    ) -> PyResult<Self> {
        let (reader, writer) = UnixStream::pair()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot make the run's wake-up socket: {e}")))?;
        for s in [&reader, &writer] {
            s.set_nonblocking(true)
                .map_err(|e| PyRuntimeError::new_err(format!("cannot set up the run's wake-up socket: {e}")))?;
        }
        Ok(Self {
            run_id,
            stop,
            future: Mutex::new(Some(future)),
            reader,
            waker: Arc::new(SocketWaker { writer, pending: AtomicBool::new(false) }),
            handle,
            on_done,
            paused,
            objects,
        })
    }
}

#[pymethods]
impl HostedRun {
    /// The run's id.
    #[getter]
    fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The socket to watch (`loop.add_reader(run.fileno(), run.poll)`).
    fn fileno(&self) -> i32 {
        self.reader.as_raw_fd()
    }

    /// Stop the run (it still has to be polled to its end).
    #[pyo3(signature = (reason = "cancelled".to_string()))]
    fn cancel(&self, reason: String) {
        self.stop.cancel(reason);
    }

    /// Drive the run as far as it goes without waiting. Returns `True` once it has
    /// finished (and `on_done` was called).
    fn poll(&self, py: Python<'_>) -> PyResult<bool> {
        self.waker.pending.store(false, Ordering::Release);
        let mut sink = [0u8; 64];
        while matches!((&self.reader).read(&mut sink), Ok(n) if n > 0) {}
        let waker = Waker::from(self.waker.clone());
        let ready = py.detach(|| {
            let _runtime = self.handle.enter();
            let mut slot = self.future.lock().unwrap_or_else(PoisonError::into_inner);
            let future = slot.as_mut()?;
            match future.as_mut().poll(&mut Context::from_waker(&waker)) {
                Poll::Ready(outcome) => {
                    *slot = None;
                    Some(outcome)
                }
                Poll::Pending => None,
            }
        });
        let Some(outcome) = ready else {
            return Ok(self.future.lock().unwrap_or_else(PoisonError::into_inner).is_none());
        };
        deliver(py, &self.on_done, self.run_id.clone(), outcome, &self.paused, &self.objects)?;
        Ok(true)
    }
}
