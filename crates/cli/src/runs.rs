//! `operonx runs`: the runs of a run store, and keeping the store small.

use std::process::ExitCode;

use operonx_store::{ListFilter, RunStatus, RunSummary};

use crate::BadInput;
use crate::durable::open_store;
use crate::output::{out, outln};

/// What `operonx runs` was asked.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum RunsCommand {
    /// Runs of the run store, newest first: id, status, graph, created, journal entries.
    #[command(after_help = "Examples:\n  operonx runs list --status crashed\n  operonx runs list --json --limit 5")]
    List {
        /// Only runs with this status (running, waiting, failed, cancelled, timed_out,
        /// crashed, done).
        #[arg(long, value_name = "STATUS")]
        status: Option<RunStatus>,
        /// Only runs of this graph (its name).
        #[arg(long, value_name = "NAME")]
        graph: Option<String>,
        /// How many runs.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The run store: a SQLite file or a `postgres://` URL (default: $OPERONX_STORE,
        /// else .operonx/runs.db).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
    /// Delete runs (and their journals) not changed for a while; running runs are kept.
    #[command(after_help = "Examples:\n  operonx runs prune --older-than 30d\n  \
        operonx runs prune --older-than 12h --status done")]
    Prune {
        /// Delete runs last changed longer ago than this (`90s`, `30m`, `12h`, `7d`, `2w`).
        #[arg(long, value_name = "DURATION")]
        older_than: String,
        /// Only runs with this status.
        #[arg(long, value_name = "STATUS")]
        status: Option<RunStatus>,
        /// The run store (as for `runs list`).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
}

/// The store `--store` or `$OPERONX_STORE` names, else the default.
fn store(named: Option<String>) -> anyhow::Result<std::sync::Arc<dyn operonx_store::RunStore>> {
    let named = crate::durable::store_spec(named.as_deref());
    // Listing or pruning a store that is not there creates nothing.
    if let Some(path) = named
        .as_deref()
        .filter(|s| !s.contains("://"))
        .or(Some(operonx_store::DEFAULT_RUN_STORE).filter(|_| named.is_none()))
        && !std::path::Path::new(path).exists()
    {
        return Err(BadInput(format!("no run store at {path}")).into());
    }
    open_store(named.as_deref())
}

/// `operonx runs ...`.
pub(crate) fn runs_command(cmd: RunsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RunsCommand::List { status, graph, limit, json, store: named } => {
            let runs = store(named)?
                .list(&ListFilter { status, graph, limit, ..ListFilter::default() })
                .map_err(|e| BadInput(e.to_string()))?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&runs)?)?;
            } else {
                out(format_args!("{}", table(&runs)))?;
            }
        }
        RunsCommand::Prune { older_than, status, store: named } => {
            let age = humantime::parse_duration(&older_than)
                .map_err(|e| BadInput(format!("--older-than {older_than:?}: {e} (e.g. 90s, 30m, 12h, 7d)")))?;
            let age = chrono::Duration::from_std(age)
                .map_err(|_| BadInput(format!("--older-than {older_than:?}: too long")))?;
            let cutoff = chrono::Utc::now()
                .checked_sub_signed(age)
                .ok_or_else(|| BadInput(format!("--older-than {older_than:?}: too long")))?;
            let n = store(named)?.prune(cutoff, status).map_err(|e| BadInput(e.to_string()))?;
            outln!("pruned {n} run{}", if n == 1 { "" } else { "s" })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs as a plain table.
fn table(runs: &[RunSummary]) -> String {
    if runs.is_empty() {
        return "no runs\n".to_string();
    }
    let mut s = format!(
        "{:<32}  {:<9}  {:<20}  {:<19}  {:>7}  {:>7}\n",
        "RUN", "STATUS", "GRAPH", "CREATED", "ENTRIES", "RESUMES"
    );
    for r in runs {
        let graph = operonx::graph::printable(&r.graph);
        s.push_str(&format!(
            "{:<32}  {:<9}  {:<20}  {:<19}  {:>7}  {:>7}\n",
            r.run_id,
            r.status.as_str(),
            graph,
            r.created_at.format("%Y-%m-%d %H:%M:%S"),
            r.entries,
            r.resumes
        ));
    }
    s
}
