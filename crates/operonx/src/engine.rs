//! [`Engine`]: a registry of ops plus the ability to load graphs into runnable
//! [`Workflow`]s.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use operonx_graph::{GraphDocument, GraphError, compile};
use operonx_runtime::{GraphRun, Plan, Registry, RunOutcome, RunTracer, Scratch, TraceSink};
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
}

/// Holds the ops available to graphs. Build one, register your functions, then load
/// graphs with it. Loading compiles a graph once; a [`Workflow`] can run many times.
#[derive(Debug, Clone)]
pub struct Engine {
    registry: Registry,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// An engine with the built-in op types (`parser`, `prompt`) and no functions.
    pub fn new() -> Self {
        let mut registry = Registry::new();
        operonx_ops::register_builtin_types(&mut registry);
        Self { registry }
    }

    /// An engine using `registry` as is (add built-in types with
    /// [`operonx_ops::register_builtin_types`] if you want them).
    pub fn with_registry(registry: Registry) -> Self {
        Self { registry }
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
        Ok(Workflow { plan: Arc::new(plan) })
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

    /// Start a run. Poll the returned stream to drive it; dropping it cancels the run.
    pub fn start(&self, inputs: &Map<String, Value>, scratch: Scratch) -> GraphRun {
        GraphRun::new(self.plan.clone(), inputs, scratch)
    }

    /// Start a run with options (scratch seed, trace sink, request id).
    pub fn start_with(&self, inputs: &Map<String, Value>, options: &RunOptions) -> GraphRun {
        let tracer = options.trace.as_ref().map(|sink| RunTracer::new(sink.clone(), options.request_id.as_str()));
        GraphRun::traced(self.plan.clone(), inputs, options.scratch.clone(), tracer)
    }

    /// Run to the end with options; the outcome carries the run's request id.
    pub async fn run_with(&self, inputs: Value, options: RunOptions) -> Result<RunOutcome, Error> {
        let map = object(inputs)?;
        let mut outcome = self.start_with(&map, &options).collect_outcome().await;
        outcome.request_id = Some(options.request_id);
        Ok(outcome)
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
        other => Err(Error::Inputs(operonx_graph::document::kind_of(&other).to_string())),
    }
}

/// How to run a workflow: the scratch seed, where trace events go, and the run's id.
#[derive(Clone)]
pub struct RunOptions {
    /// The run's scratch space (shared with the caller).
    pub scratch: Scratch,
    /// Where trace events go; `None` = not traced.
    pub trace: Option<Arc<dyn TraceSink>>,
    /// The run's id (`request_id` of its trace events). A fresh one by default.
    pub request_id: String,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self { scratch: Scratch::default(), trace: None, request_id: new_request_id() }
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
}

/// A fresh run id: 32 hex digits from the clock, the process id and a counter.
pub fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mix = (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{nanos:016x}{mix:016x}")
}
