//! `operonx serve` and `operonx worker`: an HTTP API for runs with live event streams,
//! a run queue in the durable run store shared by any number of workers, and a web view
//! of runs.
//!
//! A run submitted over HTTP is put on the store's queue ([`operonx_store::RunStore::enqueue`]);
//! workers ([`executor`]) claim queued runs, run them with their journal in the store,
//! and keep their events there for the live streams ([`api`]'s `/v1/runs/{id}/events`).
//! With the embedded SQLite store, `serve` runs its runs in-process; with Postgres, any
//! number of `operonx worker` processes on any number of machines share the queue, and a
//! run whose worker died is claimed again and resumed from its journal.

pub mod api;
pub mod catalog;
pub mod enqueuer;
mod error;
pub mod executor;
pub mod live;
pub mod metrics;
pub mod problem;
pub mod tenants;
mod waker;
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use operonx_store::RunStore;
use tokio::task::JoinSet;

pub use catalog::Catalog;
pub use error::ServerError;
pub use executor::{Executor, ExecutorConfig};
pub use tenants::Tenants;

/// What `operonx serve` runs with.
pub struct ServeConfig {
    /// The address to listen on.
    pub bind: String,
    /// The run store (its queue, journals and events).
    pub store: Arc<dyn RunStore>,
    /// The graphs on offer.
    pub catalog: Catalog,
    /// Tenants and their tokens; `None`: no auth (loopback only).
    pub tenants: Option<Tenants>,
    /// This process's workers (`None`: it only enqueues and serves).
    pub executor: Option<ExecutorConfig>,
    /// Where this process's traces are kept (served at `/v1/runs/{id}/trace`).
    pub trace_store: Option<std::path::PathBuf>,
    /// How long runs may go on after a shutdown signal before they are handed back.
    pub grace: Duration,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig").field("bind", &self.bind).field("store", &self.store.location()).finish()
    }
}

/// A server listening (see [`bind`]); [`Server::run`] serves until `shutdown`.
pub struct Server {
    listener: tokio::net::TcpListener,
    config: ServeConfig,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("config", &self.config).finish()
    }
}

/// Listen on `config.bind` (refused beyond loopback without tenants).
pub async fn bind(config: ServeConfig) -> Result<Server, ServerError> {
    let bind = config.bind.clone();
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|source| ServerError::Bind { bind: bind.clone(), source })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind { bind: bind.clone(), source })?;
    if config.tenants.is_none() && !addr.ip().is_loopback() {
        return Err(ServerError::Unprotected { bind });
    }
    Ok(Server { listener, config })
}

impl Server {
    /// The address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serve until `shutdown` resolves; then stop taking requests and runs, let runs
    /// going finish for the grace period and hand the rest back to the queue.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
        let Server { listener, config } = self;
        let live = live::Live::default();
        let metrics = Arc::new(metrics::Metrics::default());
        let mut tasks = JoinSet::new();
        let executor = match config.executor {
            Some(ec) => {
                let executor = Executor::new(config.store.clone(), ec, live.clone(), metrics.clone())?;
                executor.start(&mut tasks);
                Some(executor)
            }
            None => None,
        };
        let waker = waker::Waker::start(config.store.clone(), live.clone(), executor.clone())?;
        let enqueuer = enqueuer::Enqueuer::start(config.store.clone(), &mut tasks);
        let state = Arc::new(api::AppState {
            store: config.store.clone(),
            enqueuer,
            catalog: Arc::new(config.catalog),
            tenants: config.tenants,
            live,
            metrics,
            executor: executor.clone(),
            trace_store: config.trace_store,
        });
        let app = api::router(state);
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
        if let Some(executor) = &executor {
            executor.drain(config.grace).await;
        }
        waker.stop();
        tasks.shutdown().await;
        served.map_err(ServerError::Serve)
    }
}

/// What `operonx worker` runs with.
pub struct WorkerConfig {
    /// The run store whose queue it works.
    pub store: Arc<dyn RunStore>,
    /// How runs are executed.
    pub executor: ExecutorConfig,
    /// How long runs may go on after a shutdown signal before they are handed back.
    pub grace: Duration,
}

impl std::fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConfig").field("store", &self.store.location()).finish()
    }
}

/// Work the queue until `shutdown` resolves, then drain (see [`Server::run`]).
pub async fn work(config: WorkerConfig, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
    let live = live::Live::default();
    let metrics = Arc::new(metrics::Metrics::default());
    let executor = Executor::new(config.store.clone(), config.executor, live.clone(), metrics)?;
    let mut tasks = JoinSet::new();
    executor.start(&mut tasks);
    let waker = waker::Waker::start(config.store.clone(), live, Some(executor.clone()))?;
    shutdown.await;
    executor.drain(config.grace).await;
    waker.stop();
    tasks.shutdown().await;
    Ok(())
}
