//! The `operonx` command: run and validate Operon workflows.
//!
//! Exit status: 0 success, 1 an op failed (the result still prints, with `"$errors"`),
//! 2 invalid graph, inputs or usage (or a run store that cannot be used), 3 the run
//! timed out (`--timeout`), 4 the run waits for input (resume it with `operonx resume`),
//! 130 interrupted (Ctrl-C), 143 stopped by SIGTERM. A stopped run is kept in the run
//! store (`operonx runs list`) and can be resumed.
//!
//! Secret values of the resources (API keys, tokens) are redacted from everything it
//! prints, logs and saves (see `output.rs`).

mod durable;
mod files;
mod output;
mod progress;
mod run;
mod runs;
mod serve;
mod signals;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;

use operonx_trace::SqliteStore;

use output::{LogWriter, Redactor, closed_pipe, errln, out, outln};

/// The process's allocator (see the `jemalloc` feature).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Run Operon workflows (graph.json) with the operonx engine.
#[derive(Parser, Debug)]
#[command(name = "operonx", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a graph and print its result as JSON.
    #[command(after_help = "Examples:\n  operonx run graph.json --inputs inputs.json\n  \
        echo '{\"x\": 3}' | operonx run graph.json --inputs - --stream\n  \
        operonx run graph.json --resources resources.yaml --timeout 30 --no-trace-store\n  \
        OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 operonx run graph.json\n\n\
        Traces also go to Langfuse when LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are set\n\
        (LANGFUSE_HOST), and to an OpenTelemetry collector when OTEL_EXPORTER_OTLP_ENDPOINT is\n\
        set (OTEL_EXPORTER_OTLP_PROTOCOL, _HEADERS, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES),\n\
        or as the tracing: section of resources.yaml says.")]
    Run(run::RunArgs),
    /// Look at recorded runs.
    #[command(subcommand)]
    Trace(TraceCommand),
    /// Continue a stored run (crashed, cancelled, timed out, failed, or waiting for input,
    /// with answers to what it asked) from where it stopped: journaled ops are not run again.
    #[command(
        after_help = "Examples:\n  operonx resume 18eeeaf1aa894e3600001d7200000000 --answer 'main.review=\"approve\"'\n  \
        operonx resume 18eeeaf1aa894e3600001d7200000000 --store postgres://localhost/operonx --stream"
    )]
    Resume(run::ResumeArgs),
    /// List the runs of the run store, or prune old ones.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Serve runs over HTTP: an API with live event streams, and a web view at /.
    #[command(after_help = "Examples:\n  operonx serve --graphs examples/\n  \
        curl -s localhost:8080/v1/runs -d '{\"graph\": \"order_report\", \"inputs\": {}}'\n  \
        operonx serve --graphs graphs/ --store postgres://localhost/operonx --bind 0.0.0.0:8080 --tokens tokens.yaml")]
    Serve(serve::ServeArgs),
    /// Execute queued runs of a shared run store (Postgres), alongside `operonx serve`.
    #[command(
        after_help = "Example:\n  operonx worker --store postgres://localhost/operonx --graphs graphs/ --concurrency 8"
    )]
    Worker(serve::WorkerArgs),
    /// Check a graph and print every problem found.
    #[command(after_help = "Example:\n  operonx validate graph.json --resources resources.yaml")]
    Validate {
        /// The graph.json file.
        graph: PathBuf,
        /// Model providers the graph's `llm`/`embedding`/`rerank` ops name (default:
        /// ./resources.yaml when present).
        #[arg(long, value_name = "FILE")]
        resources: Option<PathBuf>,
    },
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Example:\n  operonx completions bash > ~/.local/share/bash-completion/completions/operonx")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
enum TraceCommand {
    /// Recent runs: id, graph, status, duration, ops, errors, tokens, cost.
    #[command(after_help = "Example:\n  operonx trace list --limit 5 --json")]
    List {
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The trace store (default: .operonx/traces.db).
        #[arg(long, value_name = "PATH")]
        trace_store: Option<PathBuf>,
    },
    /// One run as a tree of ops (default), a timeline, or JSON.
    #[command(after_help = "Examples:\n  operonx trace show 18eeea\n  operonx trace show 18eeea --timeline")]
    Show {
        /// The run id (or a unique prefix of it).
        run_id: String,
        /// Chronological view with offsets from the run's start.
        #[arg(long, conflicts_with = "json")]
        timeline: bool,
        /// The run's events as a JSON array.
        #[arg(long)]
        json: bool,
        /// The trace store (default: .operonx/traces.db).
        #[arg(long, value_name = "PATH")]
        trace_store: Option<PathBuf>,
    },
}

/// A problem with what the user gave us (exit status 2).
#[derive(Debug)]
struct BadInput(String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let redactor = Redactor::default();
    // Diagnostics go to stderr through `tracing`, filtered by RUST_LOG (default: warnings),
    // with the resources' secret values redacted.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter(redactor.clone()))
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match dispatch(cli, &redactor) {
        Ok(code) => code,
        // The reader went away (`operonx trace show ID | head`): nothing more to say.
        Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            errln!(redactor, "error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(cli: Cli, redactor: &Redactor) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "operonx", &mut script);
            out(format_args!("{}", String::from_utf8_lossy(&script)))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { graph, resources } => {
            let engine = run::engine_with(resources.as_deref(), redactor)?;
            match engine.load_file(&graph) {
                Ok(wf) => {
                    outln!("ok: {} ({} ops)", graph.display(), wf.plan().op_count())?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(operonx::Error::Graph(g)) => {
                    let diags = g.diagnostics();
                    eprintln!(
                        "{}: {} problem{}",
                        graph.display(),
                        diags.len(),
                        if diags.len() == 1 { "" } else { "s" }
                    );
                    for d in diags {
                        outln!("{}", redactor.text(&d.to_string()))?;
                    }
                    Ok(ExitCode::from(2))
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Trace(cmd) => trace_command(cmd),
        Command::Run(args) => run::run(args, redactor),
        Command::Resume(args) => run::resume(args, redactor),
        Command::Runs(cmd) => runs::runs_command(cmd),
        Command::Serve(args) => serve::serve(args, redactor),
        Command::Worker(args) => serve::worker(args, redactor),
    }
}

fn trace_command(cmd: TraceCommand) -> anyhow::Result<ExitCode> {
    let open = |path: Option<PathBuf>| {
        let path = path.unwrap_or_else(SqliteStore::default_path);
        SqliteStore::open_existing(&path).map_err(|e| BadInput(e.to_string()))
    };
    let color = std::io::stdout().is_terminal();
    match cmd {
        TraceCommand::List { limit, json, trace_store } => {
            let runs = open(trace_store)?.list_runs(limit)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&runs)?)?;
            } else {
                out(format_args!("{}", operonx_trace::render_list(&runs, color)))?;
            }
        }
        TraceCommand::Show { run_id, timeline, json, trace_store } => {
            if !operonx::is_request_id_prefix(&run_id) {
                return Err(BadInput(format!(
                    "not a run id: {run_id:?} (a run id is a UUID such as `operonx run` prints, or 32 lowercase hex digits; a \
                     prefix of one will do)"
                ))
                .into());
            }
            let events = open(trace_store)?.run_events(&run_id).map_err(|e| BadInput(e.to_string()))?;
            if json {
                outln!("{}", operonx_trace::render_json(&events)?)?;
            } else if timeline {
                out(format_args!("{}", operonx_trace::render_timeline(&events, color)))?;
            } else {
                out(format_args!("{}", operonx_trace::render_tree(&events, color)))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
