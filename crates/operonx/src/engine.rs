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

/// Whether `id` has the form of a [`new_request_id`]: exactly 32 lowercase hex digits.
/// Check ids that come from users before they name a file or a query.
pub fn is_request_id(id: &str) -> bool {
    id.len() == 32 && is_request_id_prefix(id)
}

/// Whether `prefix` can start a [`new_request_id`]: 1 to 32 lowercase hex digits.
pub fn is_request_id_prefix(prefix: &str) -> bool {
    (1..=32).contains(&prefix.len()) && prefix.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// A fresh run id: 32 hex digits from the clock, the process id and a counter.
pub fn new_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // The process id, read once: `getpid` is a system call, and ids are made per run.
    static PROCESS: OnceLock<u64> = OnceLock::new();
    let pid = *PROCESS.get_or_init(|| u64::from(std::process::id()) << 32);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mix = pid ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // Written digit by digit: `format!` cost a traced W2 run 4% (ids are made per run).
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for v in [nanos, mix] {
        id.extend((0..16).rev().map(|i| char::from(DIGITS[((v >> (i * 4)) & 0xf) as usize])));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::{is_request_id, is_request_id_prefix, new_request_id};

    #[test]
    fn request_ids_are_recognised_by_their_exact_form() {
        assert!(is_request_id(&new_request_id()));
        assert!(is_request_id_prefix("0a9f"));
        for bad in ["", "../../elsewhere/victim", "0A9F", "0a9g", &"a".repeat(33), "0a9f/..", "0a9f%", "0a_9"] {
            assert!(!is_request_id_prefix(bad), "{bad}");
            assert!(!is_request_id(bad), "{bad}");
        }
        assert!(!is_request_id("0a9f"), "a prefix is not an id");
    }

    #[test]
    fn request_ids_are_32_hex_digits_unique_and_start_with_the_time() {
        let (a, b) = (new_request_id(), new_request_id());
        for id in [&a, &b] {
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)), "{id}");
        }
        assert_ne!(a, b);
        let nanos = |id: &str| u64::from_str_radix(&id[..16], 16).unwrap();
        assert!(nanos(&b) >= nanos(&a));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        assert!(now >= nanos(&b) && now - nanos(&b) < 60_000_000_000, "the first half is the clock in ns");
    }
}
