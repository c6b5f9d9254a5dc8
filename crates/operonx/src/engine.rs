//! [`Engine`]: a registry of ops plus the ability to load graphs into runnable
//! [`Workflow`]s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use operonx_runtime::outcome::Grouper;
use std::sync::Arc;

use operonx_graph::{GraphDocument, GraphError, compile};
use operonx_runtime::{
    GraphRun, Journal, MemoryCache, Middleware, OpCache, Plan, Registry, RunEnv, RunEvent, RunInputs, RunOutcome,
    RunState, RunTracer, Scratch, TraceSink,
};
use serde_json::{Map, Value};

/// Why a workflow could not be loaded or started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The graph is malformed or invalid.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Run inputs are not a JSON object.
    #[error("inputs must be a JSON object, got {0}")]
    Inputs(String),
    /// A run cannot be resumed as asked.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// The run store could not record the run.
    #[error("run store: {0}")]
    Store(String),
}

/// Holds the ops available to graphs. Build one, register your functions, then load
/// graphs with it. Loading compiles a graph once; a [`Workflow`] can run many times.
#[derive(Clone)]
pub struct Engine {
    registry: Registry,
    middleware: Vec<Arc<dyn Middleware>>,
    cache: Arc<dyn OpCache>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("registry", &self.registry).field("middleware", &self.middleware.len()).finish()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// An engine with the built-in op types (`parser`, `prompt`, and with the `providers`
    /// feature `llm`, `embedding`, `rerank` over an empty set of resources) and no
    /// functions.
    pub fn new() -> Self {
        let mut registry = Registry::new();
        operonx_ops::register_builtin_types(&mut registry);
        #[cfg(feature = "providers")]
        operonx_providers::register_provider_types(&mut registry, Arc::new(operonx_providers::ResourceHub::empty()));
        Self::with_registry(registry)
    }

    /// Use `hub` (loaded from a `resources.yaml`) for the `llm`, `embedding` and `rerank`
    /// ops of graphs loaded from now on.
    #[cfg(feature = "providers")]
    pub fn with_resources(mut self, hub: Arc<operonx_providers::ResourceHub>) -> Self {
        operonx_providers::register_provider_types(&mut self.registry, hub);
        self
    }

    /// An engine using `registry` as is (add built-in types with
    /// [`operonx_ops::register_builtin_types`] if you want them).
    pub fn with_registry(registry: Registry) -> Self {
        Self { registry, middleware: Vec::new(), cache: Arc::new(MemoryCache::default()) }
    }

    /// Add a middleware to every run of workflows loaded from now on (outermost first).
    pub fn use_middleware(&mut self, m: impl Middleware) -> &mut Self {
        self.middleware.push(Arc::new(m));
        self
    }

    /// Where results of ops marked `cache` are kept (an in-memory cache by default, shared
    /// by every workflow of this engine).
    pub fn set_cache(&mut self, cache: Arc<dyn OpCache>) -> &mut Self {
        self.cache = cache;
        self
    }

    /// The registry, to add functions and op types.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Compile a parsed document.
    pub fn compile(&self, doc: &GraphDocument) -> Result<Workflow, Error> {
        let plan = compile(&doc.root, &self.registry)?;
        let document = doc.to_value();
        let fingerprint = operonx_graph::digest::fingerprint(document.to_string().as_bytes());
        Ok(Workflow {
            plan: Arc::new(plan),
            middleware: self.middleware.clone(),
            cache: self.cache.clone(),
            fingerprint,
            document: Arc::new(document),
        })
    }

    /// Parse and compile a graph.json text.
    pub fn load_str(&self, json: &str) -> Result<Workflow, Error> {
        self.compile(&GraphDocument::from_json_str(json)?)
    }

    /// Parse and compile a graph.json value.
    pub fn load_value(&self, json: Value) -> Result<Workflow, Error> {
        self.compile(&GraphDocument::from_value(json)?)
    }

    /// Read, parse and compile a graph.json file.
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<Workflow, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.into(), source })?;
        self.load_str(&text)
    }
}

/// A compiled graph, ready to run any number of times (concurrently too).
#[derive(Clone)]
pub struct Workflow {
    plan: Arc<Plan>,
    middleware: Vec<Arc<dyn Middleware>>,
    cache: Arc<dyn OpCache>,
    fingerprint: String,
    document: Arc<Value>,
}

impl std::fmt::Debug for Workflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflow").field("name", &self.plan.full_name).field("ops", &self.plan.op_count()).finish()
    }
}

impl Workflow {
    /// The compiled plan.
    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// The root graph's name.
    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// A strong digest (128 bits) of the graph document: a run is resumed only on the
    /// graph it started on.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The graph document (graph.json) the workflow was compiled from.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// Start a run. Poll the returned stream to drive it; dropping it cancels the run.
    pub fn start(&self, inputs: &Map<String, Value>, scratch: Scratch) -> GraphRun {
        let options = RunOptions::untraced(scratch);
        self.start_with(inputs, &options)
    }

    /// Start a run with options (scratch seed, trace sink, request id, fail-fast). The
    /// run-level timeout is applied by [`Workflow::run_with`].
    pub fn start_with(&self, inputs: &Map<String, Value>, options: &RunOptions) -> GraphRun {
        let run = GraphRun::traced(self.plan.clone(), inputs, options.scratch.clone(), self.tracer(options));
        self.configure(run, options)
    }

    /// [`Workflow::start_with`] on inputs shared with the caller: the run copies none of
    /// them, however large.
    pub fn start_shared(&self, inputs: &RunInputs, options: &RunOptions) -> GraphRun {
        let run = GraphRun::traced_shared(self.plan.clone(), inputs, options.scratch.clone(), self.tracer(options));
        self.configure(run, options)
    }

    fn tracer(&self, options: &RunOptions) -> Option<RunTracer> {
        let sink = options.trace.as_ref()?;
        Some(match &options.continues {
            None => RunTracer::new(sink.clone(), options.request_id.as_str()),
            Some((from, note)) => {
                let t = RunTracer::continuing(sink.clone(), options.request_id.as_str(), *from);
                t.annotate_run("operonx.resume", note.clone());
                t
            }
        })
    }

    /// The run's environment and options.
    fn configure(&self, run: GraphRun, options: &RunOptions) -> GraphRun {
        let env = RunEnv {
            middleware: self.middleware.clone(),
            cache: Some(self.cache.clone()),
            limiter: options
                .max_concurrency
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n.clamp(1, tokio::sync::Semaphore::MAX_PERMITS)))),
            journal: options.journal.clone(),
            run_id: (!options.request_id.is_empty()).then(|| Arc::from(options.request_id.as_str())),
            extension: options.extension.clone(),
            objects: options.objects.clone().unwrap_or_default(),
            ..RunEnv::default()
        };
        let run = run.fail_fast(options.fail_fast).with_env(env);
        if options.frames { run.stream_frames() } else { run }
    }

    /// Run to the end with options; the outcome carries the run's request id, and
    /// `stopped` when the run timed out, was cancelled or stopped on a failure.
    pub async fn run_with(&self, inputs: Value, options: RunOptions) -> Result<RunOutcome, Error> {
        self.run_observed(inputs, options, |_| {}).await
    }

    /// Like [`Workflow::run_with`], calling `observe` with every event as it happens
    /// (output frames, failures, the final `Stopped`).
    pub async fn run_observed(
        &self,
        inputs: Value,
        options: RunOptions,
        mut observe: impl FnMut(&RunEvent),
    ) -> Result<RunOutcome, Error> {
        // The inputs are moved into shared values: the run reads them without copying.
        let inputs = RunInputs::from_map(object(inputs)?);
        let mut run = self.start_shared(&inputs, &options);
        if let Some(c) = &options.canceller {
            let mine = run.canceller();
            if let Some(reason) = c.early.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                mine.cancel(reason);
            }
            // Forward the caller's cancellation to this run.
            *c.target.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(mine);
        }
        // A limit past the end of the clock is no limit (never a panic).
        let deadline = options.timeout.and_then(|d| Some((tokio::time::Instant::now().checked_add(d)?, d)));
        let mut grouper = Grouper::default();
        loop {
            let next = match deadline {
                Some((at, limit)) => match tokio::time::timeout_at(at, run.next()).await {
                    Ok(ev) => ev,
                    Err(_) => {
                        run.canceller().cancel(format!("timed out after {}s", limit.as_secs_f64()));
                        continue;
                    }
                },
                None => run.next().await,
            };
            match next {
                Some(ev) => {
                    observe(&ev);
                    grouper.push(ev);
                    if options.frames {
                        // A streamed run hands each event over before making the next, so
                        // a consumer that reads slowly (or stops) holds the run back, even
                        // when its ops never wait.
                        tokio::task::yield_now().await;
                    }
                }
                None => break,
            }
        }
        let mut outcome = grouper.finish();
        if let (Some(journal), false) = (&options.journal, outcome.interrupts.is_empty()) {
            outcome.state = Some(RunState {
                request_id: options.request_id.clone(),
                graph_fingerprint: self.fingerprint.clone(),
                inputs: inputs.to_map(),
                scratch: options.scratch.snapshot(),
                journal: journal.entries(),
                answers: options.answers.clone(),
                pending: outcome.interrupts.clone(),
            });
        }
        outcome.request_id = Some(options.request_id);
        Ok(outcome)
    }

    /// Continue an interrupted run with `answers` (`interrupt id` → value). Ops that
    /// completed before are not run again; interrupted ops receive their answers. The
    /// outcome may await more input (its `state` then resumes it again).
    pub async fn resume(
        &self,
        state: RunState,
        answers: Map<String, Value>,
        options: RunOptions,
    ) -> Result<RunOutcome, Error> {
        if state.graph_fingerprint != self.fingerprint {
            return Err(Error::Resume("the graph changed since the run was interrupted".into()));
        }
        let pending: Vec<&str> = state.pending.iter().map(|i| i.id.as_str()).collect();
        for id in answers.keys() {
            if !pending.contains(&id.as_str()) {
                return Err(Error::Resume(format!(
                    "no pending interrupt \"{id}\" (pending: {})",
                    if pending.is_empty() { "none".to_string() } else { pending.join(", ") }
                )));
            }
        }
        let mut all = state.answers.clone();
        all.extend(answers);
        let options = RunOptions {
            scratch: Scratch::new(state.scratch),
            journal: Some(Arc::new(Journal::new(state.journal, all.clone()))),
            answers: all,
            ..options
        };
        self.run_with(Value::Object(state.inputs), options).await
    }

    /// Run to the end with `inputs` (a JSON object, or `null` for none) and an empty
    /// scratch space.
    pub async fn run(&self, inputs: Value) -> Result<RunOutcome, Error> {
        self.run_with_scratch(inputs, Scratch::default()).await
    }

    /// Run to the end with `inputs` and a seeded scratch space.
    pub async fn run_with_scratch(&self, inputs: Value, scratch: Scratch) -> Result<RunOutcome, Error> {
        let map = object(inputs)?;
        Ok(self.start(&map, scratch).collect_outcome().await)
    }
}

fn object(inputs: Value) -> Result<Map<String, Value>, Error> {
    match inputs {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => Err(Error::Inputs(operonx_graph::document::kind_of(&other))),
    }
}

/// How to run a workflow: the scratch seed, where trace events go, the run's id, and
/// how it may be stopped.
#[derive(Clone)]
pub struct RunOptions {
    /// The run's scratch space (shared with the caller).
    pub scratch: Scratch,
    /// Where trace events go; `None` = not traced.
    pub trace: Option<Arc<dyn TraceSink>>,
    /// The run's id (`request_id` of its trace events). A fresh one by default.
    pub request_id: String,
    /// Stop the run (cancelling what is still running) after this long.
    pub timeout: Option<Duration>,
    /// Stop the whole run at the first op failure.
    pub fail_fast: bool,
    /// Cancel the run from elsewhere (e.g. Ctrl-C).
    pub canceller: Option<StopHandle>,
    /// Run-wide bound on io ops running at once, across nested graphs.
    pub max_concurrency: Option<usize>,
    /// Record completed ops so the run can be resumed after an interrupt
    /// (see [`RunOptions::resumable`]).
    pub journal: Option<Arc<Journal>>,
    /// Answers given to interrupts so far (set by [`Workflow::resume`]).
    pub answers: Map<String, Value>,
    /// Deliver frames op bodies send (token deltas, progress) as `RunEvent::Custom`.
    pub frames: bool,
    /// Data of the caller's own that every op call of the run can read with
    /// `OpContext::extension` (nested graphs included).
    pub extension: Option<Arc<dyn std::any::Any + Send + Sync>>,
    /// The run's table of objects that are not JSON (a fresh one per run by default);
    /// give one to read the objects behind stand-ins in the outcome.
    pub objects: Option<Arc<operonx_runtime::ObjectTable>>,
    /// The run continues an earlier one with the same id (resumed from a run store): its
    /// trace goes on from event number `.0`, with an `operonx.resume` annotation `.1`.
    pub continues: Option<(u64, Value)>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self { request_id: new_request_id(), ..Self::untraced(Scratch::default()) }
    }
}

/// Cancels a run started with [`Workflow::run_with`] from another task. Create it before
/// the run, pass a clone in [`RunOptions::stop_handle`], call [`StopHandle::cancel`].
#[derive(Clone, Default)]
pub struct StopHandle {
    target: Arc<std::sync::Mutex<Option<operonx_runtime::Canceller>>>,
    early: Arc<std::sync::Mutex<Option<String>>>,
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopHandle")
    }
}

impl StopHandle {
    /// A handle not yet bound to a run.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stop the run with `reason` (or as soon as it starts, if it has not yet).
    pub fn cancel(&self, reason: impl Into<String>) {
        let reason = reason.into();
        match &*self.target.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            Some(c) => c.cancel(reason),
            None => *self.early.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason),
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("request_id", &self.request_id)
            .field("traced", &self.trace.is_some())
            .finish()
    }
}

impl RunOptions {
    /// Plain options without a request id (nothing is traced, so none is needed).
    fn untraced(scratch: Scratch) -> Self {
        Self {
            scratch,
            trace: None,
            request_id: String::new(),
            timeout: None,
            fail_fast: false,
            canceller: None,
            max_concurrency: None,
            journal: None,
            answers: Map::new(),
            frames: false,
            extension: None,
            objects: None,
            continues: None,
        }
    }

    /// Seed the scratch space.
    pub fn scratch(mut self, scratch: Scratch) -> Self {
        self.scratch = scratch;
        self
    }

    /// Send trace events to `sink`.
    pub fn trace(mut self, sink: Arc<dyn TraceSink>) -> Self {
        self.trace = Some(sink);
        self
    }

    /// Use this request id.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = id.into();
        self
    }

    /// Stop the run after `limit`.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Stop the whole run at the first op failure.
    pub fn fail_fast(mut self, on: bool) -> Self {
        self.fail_fast = on;
        self
    }

    /// Run at most `n` io ops at once in the whole run, nested graphs included.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// Make the run resumable: ops may ask for input (`OpContext::interrupt`), and an
    /// interrupted run's outcome carries the [`RunState`] that [`Workflow::resume`] takes.
    pub fn resumable(mut self) -> Self {
        self.journal = Some(Arc::new(Journal::default()));
        self
    }

    /// Deliver frames op bodies send (LLM token deltas, progress) as `RunEvent::Custom`
    /// events to [`Workflow::run_observed`] and [`Workflow::start_with`] streams.
    pub fn frames(mut self, on: bool) -> Self {
        self.frames = on;
        self
    }

    /// Hand `data` to every op call of the run (read it with `OpContext::extension`).
    pub fn extension(mut self, data: Arc<dyn std::any::Any + Send + Sync>) -> Self {
        self.extension = Some(data);
        self
    }

    /// Keep the run's objects that are not JSON in `table` (see `operonx_runtime::object`).
    pub fn objects(mut self, table: Arc<operonx_runtime::ObjectTable>) -> Self {
        self.objects = Some(table);
        self
    }

    /// Run with `journal` (a durable run store's, say: see `operonx-store`), and the
    /// answers it holds: journaled op calls are replayed, not run again.
    pub fn journal(mut self, journal: Arc<Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Continue the trace of an earlier run with the same id from event number `from`,
    /// marking the point with an `operonx.resume` annotation holding `note`.
    pub fn continue_trace(mut self, from: u64, note: Value) -> Self {
        self.continues = Some((from, note));
        self
    }

    /// Let `handle` cancel the run.
    pub fn stop_handle(mut self, handle: StopHandle) -> Self {
        self.canceller = Some(handle);
        self
    }
}

/// Where the hyphens of a run id in the standard UUID form stand.
const UUID_HYPHENS: [usize; 4] = [8, 13, 18, 23];

/// Whether `id` has the form of a run id: a UUID in its standard form, lowercase and
/// hyphenated (36 characters, what [`new_request_id`] makes), or 32 lowercase hex
/// digits (the ids of earlier versions, which stores and traces still hold). Check ids
/// that come from users before they name a file or a query.
pub fn is_request_id(id: &str) -> bool {
    matches!(id.len(), 32 | 36) && is_request_id_prefix(id)
}

/// Whether `prefix` can start a run id (see [`is_request_id`]): 1 to 36 characters,
/// lowercase hex digits with hyphens where a UUID has them, or 1 to 32 lowercase hex
/// digits. Nothing else (so a prefix is safe in a file name or a SQL `LIKE` pattern).
pub fn is_request_id_prefix(prefix: &str) -> bool {
    let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    let uuid_like = prefix.len() <= 36
        && prefix.bytes().enumerate().all(|(i, c)| if UUID_HYPHENS.contains(&i) { c == b'-' } else { hex(c) });
    let plain = prefix.len() <= 32 && prefix.bytes().all(hex);
    !prefix.is_empty() && (uuid_like || plain)
}

/// A fresh run id: a UUIDv7 in its standard form (`0190b6f4-...`, 36 characters,
/// lowercase). It starts with the time in milliseconds, and ids made by one process
/// are in the order they were made, so ids sort by when their runs started.
pub fn new_request_id() -> String {
    let mut buf = uuid::Uuid::encode_buffer();
    String::from(&*uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf))
}

#[cfg(test)]
mod tests {
    use super::{is_request_id, is_request_id_prefix, new_request_id};

    #[test]
    fn request_ids_are_recognised_by_their_exact_form() {
        let fresh = new_request_id();
        assert!(is_request_id(&fresh));
        assert!(is_request_id(&"0a9f".repeat(8)), "the 32 hex digits of earlier versions");
        assert!(is_request_id("0190b6f4-9d2c-7b3e-8f00-0123456789ab"));
        for good in ["0a9f", "0190b6f4", "0190b6f4-", "0190b6f4-9d", &fresh[..20], &fresh, &"0a9f".repeat(8)] {
            assert!(is_request_id_prefix(good), "{good}");
        }
        for bad in [
            "",
            "../../elsewhere/victim",
            "0A9F",
            "0a9g",
            &"a".repeat(33),
            "0a9f/..",
            "0a9f%",
            "0a_9",
            "-",
            "0a9f-",
            "0190b6f4--",
            "0190b6f4-9d2c7b3e8f000123456789ab",
            "0190B6F4-9D2C-7B3E-8F00-0123456789AB",
            "0190b6f4-9d2c-7b3e-8f00-0123456789abc",
            "{0190b6f4-9d2c-7b3e-8f00-0123456789ab}",
        ] {
            assert!(!is_request_id_prefix(bad), "{bad}");
            assert!(!is_request_id(bad), "{bad}");
        }
        assert!(!is_request_id("0a9f"), "a prefix is not an id");
        assert!(!is_request_id(&fresh[..35]), "a prefix is not an id");
    }

    #[test]
    fn request_ids_are_uuid_v7_unique_and_sort_by_time() {
        let ids: Vec<String> = (0..1000).map(|_| new_request_id()).collect();
        for id in &ids {
            assert_eq!(id.len(), 36, "{id}");
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 7, "{id}");
            assert_eq!(u.hyphenated().to_string(), *id, "the standard lowercase form");
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids, "unique, and made in sorted order");
        let ms = |id: &str| u64::from_str_radix(&id.replace('-', "")[..12], 16).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(now >= ms(&ids[999]) && now - ms(&ids[0]) < 60_000, "the first 48 bits are the clock in ms");
    }
}
