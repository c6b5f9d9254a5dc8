//! `operonx serve` and `operonx worker` with the bench op pool, so the bench graphs
//! (`shared/bench/graphs`) can be served and their HTTP figures measured with a load
//! client that is not ours (`wrk`; see BENCHMARKS.md, "Serving").
//!
//! ```text
//! operonx-serve-bench serve  --graphs DIR --store SPEC [--bind ADDR] [--workers N]
//! operonx-serve-bench worker --graphs DIR --store SPEC [--workers N]
//! ```
//!
//! Nothing is traced (the figures are the server's and the store's).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use operonx_server::{Catalog, ExecutorConfig, ServeConfig, WorkerConfig};

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// What to start.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    /// The HTTP server (with `--workers` in-process workers).
    Serve,
    /// A queue worker.
    Worker,
}

/// Serve the bench graphs.
#[derive(Parser, Debug)]
struct Args {
    /// Serve or work.
    mode: Mode,
    /// The bench graphs.
    #[arg(long)]
    graphs: PathBuf,
    /// The run store (SQLite file or postgres:// URL).
    #[arg(long)]
    store: String,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: String,
    /// Runs at once in this process.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Journal durability.
    #[arg(long, default_value = "batched")]
    durability: operonx_store::Durability,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(a: Args) -> anyhow::Result<()> {
    let mut engine = operonx::Engine::new();
    engine.registry_mut().merge(&operonx_testkit::bench_ops());
    let engine = Arc::new(engine);
    let catalog = Catalog::load_dir(engine.clone(), &a.graphs)?;
    let store = operonx_store::open(Some(&a.store)).context("the run store")?;
    let executor = ExecutorConfig {
        engine,
        graph_engines: Default::default(),
        secrets: Default::default(),
        durability: a.durability,
        trace: None,
        trace_store: None,
        slots: a.workers,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    rt.block_on(async {
        match a.mode {
            Mode::Serve => {
                let config = ServeConfig {
                    bind: a.bind.clone(),
                    store,
                    catalog,
                    tenants: None,
                    executor: (a.workers > 0).then_some(executor),
                    trace_store: None,
                    grace: Duration::from_secs(5),
                };
                let server = operonx_server::bind(config).await?;
                let addr = server.local_addr().map_or(a.bind.clone(), |a| a.to_string());
                eprintln!("serving on http://{addr}");
                server.run(stop).await?;
            }
            Mode::Worker => {
                operonx_server::work(WorkerConfig { store, executor, grace: Duration::from_secs(5) }, stop).await?;
            }
        }
        Ok(())
    })
}
