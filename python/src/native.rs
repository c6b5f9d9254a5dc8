//! `NativeEngine`: one compiled graph, its Python ops, a tokio runtime and the trace
//! store; runs it blocking (`run`) or in the background with callbacks (`start`, what
//! `arun`, `stream` and `astream` are built on in Python).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use operonx::graph::duration::{Limit, checked_secs};
use operonx::{
    Engine, Map, ObjectTable, RunOptions, RunOutcome, RunState as Paused, Scratch, StopHandle, Value, Workflow,
};
use operonx_trace::TracePipeline;
use pyo3::exceptions::{PyRuntimeError, PyRuntimeWarning, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert;
use crate::durable::Durable;
use crate::host::{Helpers, RunHost, RunState};
use crate::hosted::HostedRun;
use crate::pyop::{Flavor, PyOp};

pyo3::create_exception!(
    operonx_engine,
    GraphError,
    PyValueError,
    "The graph, its functions or its resources are invalid (every problem is listed)."
);

/// The reason a run stopped when Ctrl-C (KeyboardInterrupt) cancelled it; the CLI's too.
pub const INTERRUPTED: &str = "interrupted (Ctrl-C)";

/// How often the trace store is written while the engine lives (runs are not slowed by
/// waiting for it; `Engine.flush` and `Engine.close` write at once).
const TRACE_FLUSH: Duration = Duration::from_millis(250);

/// How often a blocking run looks for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Runs that wait for input, by id.
pub(crate) type Runs = Arc<Mutex<HashMap<String, Paused>>>;

/// A graph loaded with its Python ops, ready to run many times (from many threads too).
#[pyclass(module = "operonx_engine._native", frozen)]
pub struct NativeEngine {
    workflow: Workflow,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    pipeline: Option<TracePipeline>,
    helpers: Arc<Helpers>,
    paused: Runs,
    resumable: bool,
    /// The run store every run is recorded in, when the engine has one.
    durable: Option<Arc<Durable>>,
}

/// A run started with `NativeEngine.start`.
#[pyclass(module = "operonx_engine._native", frozen)]
pub struct NativeRun {
    run_id: String,
    stop: StopHandle,
}

#[pymethods]
impl NativeRun {
    /// The run's id (as in `operonx trace list`).
    #[getter]
    fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Stop the run (what is running is cancelled; the result says `$stopped`).
    #[pyo3(signature = (reason = "cancelled".to_string()))]
    fn cancel(&self, reason: String) {
        self.stop.cancel(reason);
    }
}

fn object_arg(value: &Bound<'_, PyAny>, what: &str, objects: &ObjectTable) -> PyResult<Map<String, Value>> {
    if value.is_none() {
        return Ok(Map::new());
    }
    if !value.is_instance_of::<PyDict>() {
        return Err(PyTypeError::new_err(format!("{what} must be a dict, got {}", convert::type_name(value))));
    }
    match convert::to_value(value, Some(objects)) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(PyTypeError::new_err(format!("{what} must be a dict"))),
        Err(e) => Err(PyTypeError::new_err(format!("{what}: {e}"))),
    }
}

/// What a finished run hands back to Python: `(run_id, result, stopped, waiting)`.
type Finished<'py> = (String, Bound<'py, PyAny>, Option<String>, bool);

pub(crate) fn finished<'py>(
    py: Python<'py>,
    run_id: String,
    outcome: RunOutcome,
    paused: &Runs,
    objects: &ObjectTable,
) -> PyResult<Finished<'py>> {
    let result = convert::to_py(py, &outcome.to_json(), Some(objects))?;
    let waiting = outcome.stopped.is_none() && !outcome.interrupts.is_empty();
    if let Some(state) = outcome.state {
        paused.lock().unwrap_or_else(PoisonError::into_inner).insert(run_id.clone(), state);
    }
    Ok((run_id, result, outcome.stopped, waiting))
}

/// Hand a finished run's outcome (or its error) to `on_done`.
pub(crate) fn deliver(
    py: Python<'_>,
    on_done: &Py<PyAny>,
    run_id: String,
    outcome: Result<RunOutcome, operonx::Error>,
    paused: &Runs,
    objects: &ObjectTable,
) -> PyResult<()> {
    match outcome.map_err(run_error).and_then(|o| finished(py, run_id, o, paused, objects)) {
        Ok(done) => on_done.call1(py, done)?,
        Err(e) => on_done.call1(py, (e.into_value(py),))?,
    };
    Ok(())
}

/// The Python exception for a run that could not start or resume.
pub(crate) fn run_error(e: operonx::Error) -> PyErr {
    match e {
        operonx::Error::Resume(m) => PyValueError::new_err(format!("cannot resume: {m}")),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// Everything a run needs before it is driven.
struct Prepared {
    run_id: String,
    objects: Arc<ObjectTable>,
    stop: StopHandle,
    future: BoxFuture<'static, Result<RunOutcome, operonx::Error>>,
}

#[pymethods]
impl NativeEngine {
    /// Load `graph_json` with `functions` (`(name, callable, flavor, leading parameter
    /// names)`), the resources of
    /// `resources` (a resources.yaml path; default ./resources.yaml when present) and the
    /// trace store at `trace_store` (default .operonx/traces.db; none when `no_trace_store`).
    /// With `resumable`, runs journal finished ops so that ops may ask for input. With
    /// `store` (a SQLite path or a `postgres://` URL), every run is recorded there with
    /// its journal (`durability`: `batched`, `sync` or `off`) and can be resumed by id
    /// from any process.
    #[new]
    #[pyo3(signature = (graph_json, functions, glue, resources=None, trace_store=None, no_trace_store=false, resumable=false, store=None, durability="batched"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        graph_json: &str,
        functions: Vec<(String, Py<PyAny>, String, Vec<String>)>,
        glue: &Bound<'_, PyModule>,
        resources: Option<PathBuf>,
        trace_store: Option<PathBuf>,
        no_trace_store: bool,
        resumable: bool,
        store: Option<String>,
        durability: &str,
    ) -> PyResult<Self> {
        let hub = operonx::providers::ResourceHub::load(resources.as_deref())
            .map_err(|e| GraphError::new_err(format!("resources: {e}")))?;
        // Langfuse and OTLP, turned on as the CLI turns them on: the usual variables (from
        // the environment, then ./.env) or the resources' `tracing:` section.
        let section = hub.tracing().map_err(|e| GraphError::new_err(format!("resources: {e}")))?;
        let remote = operonx_trace::exporters_from_env(&exporter_env()?, section)
            .map_err(|e| PyValueError::new_err(format!("tracing: {e}")))?;
        // The resources' keys and tokens, and the exporters' (Langfuse secret key, OTLP
        // header values), are redacted by value from the traces.
        let mut secrets = hub.secrets();
        for s in &remote.secrets {
            secrets.insert(s);
        }
        let durable = match store {
            Some(spec) => Some(Arc::new(Durable::open(&spec, durability, secrets.clone())?)),
            None => None,
        };
        let mut engine = Engine::new().with_resources(Arc::new(hub));
        operonx::ops::register_std(engine.registry_mut());
        for (name, func, flavor, params) in functions {
            let flavor = Flavor::parse(&flavor)
                .ok_or_else(|| PyValueError::new_err(format!("function {name}: unknown flavor {flavor:?}")))?;
            engine.registry_mut().register(name, PyOp::new(func, flavor, params));
        }
        let workflow = engine.load_str(graph_json).map_err(|e| match e {
            operonx::Error::Graph(g) => {
                let lines: Vec<String> = g.diagnostics().iter().map(ToString::to_string).collect();
                GraphError::new_err(if lines.is_empty() { g.to_string() } else { lines.join("\n") })
            }
            other => GraphError::new_err(other.to_string()),
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("operonx-engine")
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the engine's runtime: {e}")))?;
        let store = if no_trace_store {
            None
        } else {
            let path = trace_store.unwrap_or_else(operonx_trace::SqliteStore::default_path);
            match operonx_trace::SqliteStore::open(&path) {
                Ok(store) => Some(store),
                Err(e) => {
                    // As the CLI: a store that cannot be opened does not stop runs whose
                    // user did not ask for durability; they run unrecorded, said once.
                    let message = format!("cannot open trace store {}: {e}; runs are not recorded", path.display());
                    let py = glue.py();
                    let text = std::ffi::CString::new(message).unwrap_or_default();
                    PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &text, 1)?;
                    None
                }
            }
        };
        let mut exporters = remote.exporters;
        // Media in the events goes beside the store (`media/`), or into memory for the
        // remote exporters when there is no store; the trace keeps references.
        let media: Arc<dyn operonx_trace::media::MediaStore> = match &store {
            Some(store) => Arc::new(operonx_trace::media::LocalMediaStore::beside(store.path())),
            None => Arc::new(operonx_trace::media::MemoryMediaStore::default()),
        };
        if let Some(store) = store {
            exporters.insert(0, Arc::new(store));
        }
        let pipeline = if exporters.is_empty() {
            None
        } else {
            let _entered = runtime.enter();
            let mut builder = TracePipeline::builder()
                .media(operonx_trace::media::MediaOffload::new(media))
                .processor(operonx_trace::processor::Redact::with_defaults().secrets(&secrets))
                .processor(operonx_trace::processor::Truncate::default())
                .flush_interval(TRACE_FLUSH);
            for exporter in exporters {
                builder = builder.shared_exporter(exporter);
            }
            Some(builder.build().map_err(|e| PyRuntimeError::new_err(format!("cannot start tracing: {e}")))?)
        };
        Ok(Self {
            workflow,
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            pipeline,
            helpers: Arc::new(Helpers::load(glue)?),
            paused: Arc::default(),
            resumable,
            durable,
        })
    }

    /// The root graph's name.
    #[getter]
    fn name(&self) -> &str {
        self.workflow.name()
    }

    /// Run to the end on this thread; async ops are awaited on `event_loop`. Returns
    /// `(run_id, result, stopped, waiting)`. Ctrl-C stops the run (`stopped` then says so).
    #[pyo3(signature = (inputs, scratch, event_loop, timeout=None, fail_fast=false, resume=None))]
    #[allow(clippy::too_many_arguments)]
    fn run<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        scratch: &Bound<'py, PyAny>,
        event_loop: Py<PyAny>,
        timeout: Option<f64>,
        fail_fast: bool,
        resume: Option<(String, Bound<'py, PyAny>)>,
    ) -> PyResult<Finished<'py>> {
        let prepared = self.prepare(py, inputs, scratch, event_loop, timeout, fail_fast, resume, None)?;
        let Prepared { run_id, objects, stop, future } = prepared;
        let handle = self.handle.clone();
        let drive = async move {
            let mut future = future;
            let mut poll = tokio::time::interval(SIGNAL_POLL);
            loop {
                tokio::select! {
                    out = &mut future => return out,
                    _ = poll.tick() => {
                        if Python::attach(|py| py.check_signals()).is_err() {
                            stop.cancel(INTERRUPTED);
                        }
                    }
                }
            }
        };
        let outcome = py.detach(|| {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Called from an op of a run (an engine run inside a Python op): this
                // thread already drives a runtime, so block on another one.
                std::thread::scope(|s| s.spawn(|| handle.block_on(drive)).join())
                    .map_err(|_| PyRuntimeError::new_err("the nested run's thread panicked"))
            } else {
                Ok(handle.block_on(drive))
            }
        })?;
        finished(py, run_id, outcome.map_err(run_error)?, &self.paused, &objects)
    }

    /// Start a run and return at once. `on_event(event)` is called for each event (as
    /// `operonx run --stream` prints them) when given; `on_done` with `(run_id, result,
    /// stopped, waiting)`, or with an exception, at the end. Without `hosted`, the run
    /// goes on the engine's threads (which call the callbacks) and a `NativeRun` comes
    /// back; with `hosted`, a `HostedRun` that `event_loop` drives from its own thread
    /// (see [`crate::hosted`]), calling the callbacks there.
    #[pyo3(signature = (inputs, scratch, event_loop, on_done, on_event=None, timeout=None, fail_fast=false, resume=None, hosted=false))]
    #[allow(clippy::too_many_arguments)]
    fn start<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        scratch: &Bound<'py, PyAny>,
        event_loop: Py<PyAny>,
        on_done: Py<PyAny>,
        on_event: Option<Py<PyAny>>,
        timeout: Option<f64>,
        fail_fast: bool,
        resume: Option<(String, Bound<'py, PyAny>)>,
        hosted: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let prepared = self.prepare(py, inputs, scratch, event_loop, timeout, fail_fast, resume, on_event)?;
        let Prepared { run_id, objects, stop, future } = prepared;
        let paused = self.paused.clone();
        if hosted {
            let run = HostedRun::new(run_id, stop, future, self.handle.clone(), on_done, paused, objects)?;
            return Ok(Bound::new(py, run)?.into_any());
        }
        let id = run_id.clone();
        self.handle.spawn(async move {
            let outcome = future.await;
            Python::attach(|py| {
                if let Err(e) = deliver(py, &on_done, id, outcome, &paused, &objects) {
                    e.write_unraisable(py, None);
                }
            });
        });
        Ok(Bound::new(py, NativeRun { run_id, stop })?.into_any())
    }

    /// Run ids of runs that wait for input (answer them with `run(..., resume=...)`).
    fn waiting(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.paused.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Write what the trace store has not yet written, now.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let Some(p) = self.pipeline.clone() else { return Ok(()) };
        let handle = self.handle.clone();
        py.detach(|| {
            if tokio::runtime::Handle::try_current().is_ok() {
                std::thread::scope(|s| s.spawn(|| handle.block_on(p.flush())).join())
                    .map_err(|_| PyRuntimeError::new_err("the flushing thread panicked"))
            } else {
                handle.block_on(p.flush());
                Ok(())
            }
        })
    }

    /// Export what the trace store has not yet written and stop the engine's threads.
    /// The engine cannot run afterwards.
    fn close(&self, py: Python<'_>) {
        let runtime = self.runtime.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(rt) = runtime {
            py.detach(|| {
                if let (Some(p), Err(_)) = (&self.pipeline, tokio::runtime::Handle::try_current()) {
                    rt.block_on(p.shutdown());
                }
                rt.shutdown_timeout(Duration::from_secs(5));
            });
        }
    }
}

/// The variables the trace exporters are configured from: the environment, then ./.env
/// for what it does not set (as the CLI reads them).
fn exporter_env() -> PyResult<impl Fn(&str) -> Option<String>> {
    use operonx::providers::resource::{env_with_dotenv, load_dotenv};
    let dotenv = std::path::Path::new(".env");
    let vars = if dotenv.is_file() {
        load_dotenv(dotenv).map_err(|e| GraphError::new_err(format!("resources: {e}")))?
    } else {
        Default::default()
    };
    Ok(env_with_dotenv(vars))
}

impl NativeEngine {
    #[allow(clippy::too_many_arguments)]
    fn prepare(
        &self,
        py: Python<'_>,
        inputs: &Bound<'_, PyAny>,
        scratch: &Bound<'_, PyAny>,
        event_loop: Py<PyAny>,
        timeout: Option<f64>,
        fail_fast: bool,
        resume: Option<(String, Bound<'_, PyAny>)>,
        on_event: Option<Py<PyAny>>,
    ) -> PyResult<Prepared> {
        if self.runtime.lock().unwrap_or_else(PoisonError::into_inner).is_none() {
            return Err(PyRuntimeError::new_err("this engine is closed"));
        }
        let objects = Arc::new(ObjectTable::new());
        let stop = StopHandle::new();
        let mut options = RunOptions::default();
        // With a run store, a resume takes the stored run over; without, the paused runs
        // of this engine are resumed from memory.
        let (resume, durable, inputs, scratch) = match (&self.durable, resume) {
            (Some(d), Some((id, answers))) => {
                let answers = object_arg(&answers, "answers", &objects)?;
                let (run, stored, scratch) = d.claim(&self.workflow, &id, &answers, &stop)?;
                options = options.request_id(id).journal(run.journal());
                (None, Some(run), stored.inputs, scratch)
            }
            (Some(d), None) => {
                let inputs = object_arg(inputs, "inputs", &objects)?;
                let scratch = Scratch::new(object_arg(scratch, "scratch", &objects)?);
                let run = d.create(&self.workflow, &options.request_id, &inputs, &scratch, &stop)?;
                options = options.journal(run.journal());
                (None, Some(run), inputs, scratch)
            }
            (None, Some((id, answers))) => {
                let answers = object_arg(&answers, "answers", &objects)?;
                let state = self.paused.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                let Some(state) = state else {
                    return Err(PyValueError::new_err(format!("no run {id:?} of this engine waits for input")));
                };
                let scratch = Scratch::new(state.scratch.clone());
                (Some((state, answers)), None, object_arg(inputs, "inputs", &objects)?, scratch)
            }
            (None, None) => {
                let inputs = object_arg(inputs, "inputs", &objects)?;
                let scratch = Scratch::new(object_arg(scratch, "scratch", &objects)?);
                (None, None, inputs, scratch)
            }
        };
        let state = Py::new(py, RunState::new(scratch.clone(), objects.clone()))?;
        let host = RunHost { helpers: self.helpers.clone(), event_loop, state };
        let mut options = options
            .scratch(scratch.clone())
            .fail_fast(fail_fast)
            .frames(on_event.is_some())
            .stop_handle(stop.clone())
            .extension(Arc::new(host))
            .objects(objects.clone());
        if (self.resumable || resume.is_some()) && durable.is_none() {
            options = options.resumable();
        }
        if let Some(secs) = timeout {
            let limit =
                checked_secs("timeout", secs, Limit::TIMEOUT).map_err(|e| PyValueError::new_err(e.to_string()))?;
            options = options.timeout(limit);
        }
        let run_id = options.request_id.clone();
        let workflow = self.workflow.clone();
        let pipeline = self.pipeline.clone();
        let events_objects = objects.clone();
        let future = Box::pin(async move {
            if let Some(p) = &pipeline {
                p.begin_run(&options.request_id, workflow.name());
                options = options.trace(p.sink());
            }
            let outcome = match resume {
                Some((state, answers)) => workflow.resume(state, answers, options).await,
                None => {
                    let mut seq = 0u64;
                    workflow
                        .run_observed(Value::Object(inputs), options, |ev| {
                            if let Some(cb) = &on_event {
                                let line = ev.to_stream_json(seq);
                                seq += 1;
                                Python::attach(|py| {
                                    let sent = convert::to_py(py, &line, Some(&events_objects))
                                        .and_then(|v| cb.call1(py, (v,)));
                                    if let Err(e) = sent {
                                        e.write_unraisable(py, None);
                                    }
                                });
                            }
                        })
                        .await
                }
            };
            match durable {
                Some(run) => crate::durable::finish(run, outcome, &scratch),
                None => outcome,
            }
        });
        Ok(Prepared { run_id, objects, stop, future })
    }
}

impl Drop for NativeEngine {
    fn drop(&mut self) {
        let runtime = self.runtime.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(rt) = runtime {
            if let (Some(p), Err(_)) = (&self.pipeline, tokio::runtime::Handle::try_current()) {
                rt.block_on(p.shutdown());
            }
            // Dropped from an engine thread (a run's op held the last reference): a
            // blocking shutdown is not allowed there.
            rt.shutdown_background();
        }
    }
}
