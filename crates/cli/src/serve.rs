//! `operonx serve` and `operonx worker`: the HTTP server and the queue workers of
//! `operonx-server`, configured from the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use operonx::graph::duration::{Limit, checked_secs};
use operonx_server::{Catalog, ExecutorConfig, ServeConfig, Tenants, WorkerConfig};
use operonx_store::RunStore;
use operonx_trace::{SqliteStore, TracePipeline};

use crate::BadInput;
use crate::durable::{open_store, store_spec};
use crate::output::Redactor;

/// What `operonx serve` was asked.
#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// The graphs to serve: every graph document DIR/NAME.json and DIR/NAME/graph.json,
    /// served as NAME.
    #[arg(long, value_name = "DIR")]
    pub graphs: PathBuf,
    /// The run store: a SQLite file, or a `postgres://` URL (default: $OPERONX_STORE,
    /// else .operonx/runs.db under the working directory).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// The address to listen on (anything but loopback needs --tokens).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Runs this process executes at once (default: 2 with a SQLite store; none with
    /// Postgres, where `operonx worker` processes run them).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Tenants and their bearer tokens: a YAML mapping, one `tenant: token` per line.
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    #[command(flatten)]
    pub exec: WorkArgs,
}

/// What `operonx worker` was asked.
#[derive(clap::Args, Debug)]
pub(crate) struct WorkerArgs {
    /// The run store whose queue to work: a `postgres://` URL shared with the server and
    /// the other workers (default: $OPERONX_STORE).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// The graphs this worker runs (checked when it starts; a run is executed on the
    /// graph it was submitted with, as stored).
    #[arg(long, value_name = "DIR")]
    pub graphs: PathBuf,
    /// Runs executed at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub concurrency: usize,
    #[command(flatten)]
    pub exec: WorkArgs,
}

/// How runs are executed, for `serve` and `worker`.
#[derive(clap::Args, Debug)]
pub(crate) struct WorkArgs {
    /// Model providers (default: ./resources.yaml when present).
    #[arg(long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Where traces of the runs executed here are kept (default: .operonx/traces.db).
    #[arg(long, value_name = "PATH")]
    pub trace_store: Option<PathBuf>,
    /// Keep no traces.
    #[arg(long)]
    pub no_trace_store: bool,
    /// How runs' journals are written (see `operonx run --help`).
    #[arg(long, value_name = "MODE", default_value = "batched")]
    pub durability: operonx_store::Durability,
    /// Seconds runs may go on after SIGTERM or Ctrl-C before they are stopped and handed
    /// back to the queue.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub grace: f64,
}

/// The store named by `--store` or `$OPERONX_STORE`, else the default one.
fn store(named: Option<&str>) -> anyhow::Result<Arc<dyn RunStore>> {
    open_store(store_spec(named).as_deref())
}

/// Whether the store `--store` or `$OPERONX_STORE` names is Postgres.
fn is_postgres(named: Option<&str>) -> bool {
    store_spec(named).is_some_and(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
}

/// The engine, the graphs, the executor settings (without its slot count and trace
/// pipeline), the grace period, and the trace pipeline's parts: the trace store (unless
/// `--no-trace-store`) and the remote exporters the usual variables turn on.
fn prepare(graphs: &Path, exec: &WorkArgs, redactor: &Redactor) -> anyhow::Result<Prepared> {
    let (engine, hub) = crate::run::engine_and_hub(exec.resources.as_deref(), redactor)?;
    let remote = crate::run::remote_exporters(&hub, redactor)?;
    let engine = Arc::new(engine);
    // A graph with a resources.yaml beside it runs with those resources.
    let engine_for = |resources: Option<&Path>| match resources {
        None => Ok(engine.clone()),
        Some(path) => crate::run::engine_and_hub(Some(path), redactor)
            .map(|(engine, _)| Arc::new(engine))
            .map_err(|e| format!("{e:#}")),
    };
    let catalog = Catalog::load_dir_with(graphs, &engine_for).map_err(|e| BadInput(e.to_string()))?;
    if catalog.is_empty() {
        return Err(BadInput(format!(
            "no graphs in {} (expected NAME.json graph documents or NAME/graph.json)",
            graphs.display()
        ))
        .into());
    }
    let grace = checked_secs("--grace", exec.grace, Limit::TIMEOUT).map_err(|e| BadInput(e.to_string()))?;
    let trace_store =
        (!exec.no_trace_store).then(|| exec.trace_store.clone().unwrap_or_else(SqliteStore::default_path));
    let trace = crate::run::pipeline(trace_store.clone(), None, remote, redactor)?;
    let executor = ExecutorConfig {
        graph_engines: catalog.engines(),
        engine,
        secrets: redactor.secrets(),
        durability: exec.durability,
        trace_store: trace.as_ref().and(trace_store),
        trace,
        slots: 1,
    };
    Ok(Prepared { catalog, executor, grace })
}

/// What [`prepare`] gives.
struct Prepared {
    catalog: Catalog,
    executor: ExecutorConfig,
    grace: Duration,
}

/// Start the trace pipeline's flusher (inside the runtime) and, at the end, export what
/// is left.
async fn with_trace<T>(trace: Option<TracePipeline>, work: impl std::future::Future<Output = T>) -> T {
    if let Some(p) = &trace {
        p.flush().await;
    }
    let out = work.await;
    if let Some(p) = &trace {
        p.shutdown().await;
    }
    out
}

/// Resolves on the first Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    crate::signals::stopped().await;
    eprintln!("stopping: no new runs are taken; runs going finish or are handed back");
}

/// `operonx serve`.
pub(crate) fn serve(a: ServeArgs, redactor: &Redactor) -> anyhow::Result<ExitCode> {
    let store = store(a.store.as_deref())?;
    let tenants = match &a.tokens {
        Some(path) => {
            let tenants = Tenants::load(path).map_err(|e| BadInput(e.to_string()))?;
            Some(tenants)
        }
        None => None,
    };
    let Prepared { catalog, mut executor, grace } = prepare(&a.graphs, &a.exec, redactor)?;
    let slots = a.workers.unwrap_or(if is_postgres(a.store.as_deref()) { 0 } else { 2 });
    executor.slots = slots;
    let trace = executor.trace.clone();
    let trace_store = executor.trace_store.clone();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(with_trace(trace, async {
        let config = ServeConfig {
            bind: a.bind.clone(),
            store: store.clone(),
            catalog,
            tenants,
            executor: (slots > 0).then_some(executor),
            trace_store,
            grace,
        };
        let graphs = config.catalog.iter().map(|e| e.name.clone()).collect::<Vec<_>>().join(", ");
        let server = operonx_server::bind(config).await.map_err(|e| BadInput(e.to_string()))?;
        let addr = server.local_addr().map_or(a.bind.clone(), |a| a.to_string());
        eprintln!("operonx serving {graphs} on http://{addr} (run store {}, {slots} workers)", store.location());
        server.run(shutdown_signal()).await?;
        Ok::<_, anyhow::Error>(())
    }))?;
    // The store's last handle is dropped here, off the runtime: a Postgres client's drop
    // blocks.
    drop(rt);
    drop(store);
    Ok(ExitCode::SUCCESS)
}

/// `operonx worker`.
pub(crate) fn worker(a: WorkerArgs, redactor: &Redactor) -> anyhow::Result<ExitCode> {
    let store = store(a.store.as_deref())?;
    let Prepared { catalog, mut executor, grace } = prepare(&a.graphs, &a.exec, redactor)?;
    if a.concurrency == 0 {
        return Err(BadInput("--concurrency must be at least 1".into()).into());
    }
    executor.slots = a.concurrency;
    let trace = executor.trace.clone();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(with_trace(trace, async {
        eprintln!(
            "operonx worker on run store {} ({} at once; graphs: {})",
            store.location(),
            a.concurrency,
            catalog.iter().map(|e| e.name.clone()).collect::<Vec<_>>().join(", ")
        );
        operonx_server::work(WorkerConfig { store: store.clone(), executor, grace }, shutdown_signal()).await
    }))?;
    drop(rt);
    drop(store);
    Ok(ExitCode::SUCCESS)
}
