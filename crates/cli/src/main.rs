//! The `operonx` command: run and validate Operon workflows.
//!
//! Exit status: 0 success, 1 an op failed (the result still prints, with `"$errors"`),
//! 2 invalid graph, inputs or usage, 3 the run timed out (`--timeout`), 4 the run waits
//! for input (resume it with `operonx resume`), 130 interrupted (Ctrl-C).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;

use operonx_trace::{JsonlExporter, SqliteOpCache, SqliteStore, TracePipeline};

use operonx::graph::duration::{Limit, checked_secs};
use operonx::graph::printable;
use operonx::{Engine, Map, RunOptions, Scratch, StopHandle, Value, json};

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
    Run {
        /// The graph.json file.
        graph: PathBuf,
        /// JSON object file with the run's inputs (`-` reads stdin).
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// JSON object file seeding the run's scratch space.
        #[arg(long)]
        scratch: Option<PathBuf>,
        /// Model providers (default: ./resources.yaml when present; `${VAR}` from the
        /// environment, then ./.env).
        #[arg(long, value_name = "FILE")]
        resources: Option<PathBuf>,
        /// Print the result on one line.
        #[arg(long)]
        compact: bool,
        /// Print events as JSON lines as they happen, then the result.
        #[arg(long)]
        stream: bool,
        /// Stop the run after this many seconds (exit status 3, partial result printed).
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<f64>,
        /// Stop the whole run at the first op failure.
        #[arg(long)]
        fail_fast: bool,
        /// Also write the run's trace events as JSON lines to this file.
        #[arg(long, value_name = "FILE")]
        trace_jsonl: Option<PathBuf>,
        /// Do not record the run in the trace store.
        #[arg(long)]
        no_trace_store: bool,
        /// The trace store (default: .operonx/traces.db under the working directory).
        #[arg(long, value_name = "PATH")]
        trace_store: Option<PathBuf>,
        /// Where results of ops marked `cache` are kept across runs (default:
        /// .operonx/cache.db under the working directory).
        #[arg(long, value_name = "PATH")]
        cache_store: Option<PathBuf>,
    },
    /// Look at recorded runs.
    #[command(subcommand)]
    Trace(TraceCommand),
    /// Continue a run that waits for input, with answers to what it asked.
    Resume {
        /// The run id `operonx run` printed.
        run_id: String,
        /// Answer one interrupt: `ID=VALUE` (VALUE is read as JSON, else as a string).
        #[arg(long = "answer", value_name = "ID=VALUE")]
        answers: Vec<String>,
        /// Answers as a JSON object file (`{id: value}`).
        #[arg(long, value_name = "FILE")]
        answers_file: Option<PathBuf>,
        /// Print the result on one line.
        #[arg(long)]
        compact: bool,
        /// Model providers (default: ./resources.yaml when present).
        #[arg(long, value_name = "FILE")]
        resources: Option<PathBuf>,
    },
    /// Check a graph and print every problem found.
    Validate {
        /// The graph.json file.
        graph: PathBuf,
        /// Model providers the graph's `llm`/`embedding`/`rerank` ops name (default:
        /// ./resources.yaml when present).
        #[arg(long, value_name = "FILE")]
        resources: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum TraceCommand {
    /// Recent runs: id, graph, status, duration, ops, errors, tokens, cost.
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
    // Diagnostics go to stderr through `tracing`, filtered by RUST_LOG (default: warnings).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match dispatch(cli) {
        Ok(code) => code,
        // The reader went away (`operonx trace show ID | head`): nothing more to say.
        Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Print to stdout. A closed pipe comes back as an error, which `main` takes as the end.
fn out(text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    std::io::stdout().lock().write_fmt(text)
}

/// [`out`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {
        out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Whether `e` is a write to a pipe whose reader has gone.
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// The CLI's engine: built-in op types, the standard functions, and the model
/// providers of `resources` (or of ./resources.yaml and ./.env when present).
fn engine_with(resources: Option<&Path>) -> anyhow::Result<Engine> {
    let hub = operonx::providers::ResourceHub::load(resources).map_err(|e| BadInput(e.to_string()))?;
    let mut engine = Engine::new().with_resources(std::sync::Arc::new(hub));
    operonx::ops::register_std(engine.registry_mut());
    Ok(engine)
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { graph, resources } => {
            let engine = engine_with(resources.as_deref())?;
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
                        outln!("{d}")?;
                    }
                    Ok(ExitCode::from(2))
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Trace(cmd) => trace_command(cmd),
        Command::Run {
            graph,
            inputs,
            scratch,
            resources,
            compact,
            stream,
            timeout,
            fail_fast,
            trace_jsonl,
            no_trace_store,
            trace_store,
            cache_store,
        } => {
            let mut engine = engine_with(resources.as_deref())?;
            // `--no-trace-store` writes nothing under .operonx: results of `cache` ops are
            // then kept in memory for this run only, unless `--cache-store` names a file.
            let cache_path = match (cache_store, no_trace_store) {
                (Some(path), _) => Some(path),
                (None, false) => Some(PathBuf::from(".operonx").join("cache.db")),
                (None, true) => None,
            };
            if let Some(path) = cache_path {
                let cache = SqliteOpCache::open(&path, 100_000).map_err(|e| BadInput(e.to_string()))?;
                engine.set_cache(std::sync::Arc::new(cache));
            }
            let wf = engine.load_file(&graph).map_err(|e| BadInput(e.to_string()))?;
            let inputs = match inputs {
                Some(p) => read_object(&p, "inputs")?,
                None => Map::new(),
            };
            let scratch = match scratch {
                Some(p) => Scratch::new(read_object(&p, "scratch")?),
                None => Scratch::default(),
            };
            let missing = wf.missing_inputs(&inputs);
            if !missing.is_empty() {
                let list = missing.iter().map(|m| format!("\"{}\" (read by {})", m.input, m.op)).collect::<Vec<_>>();
                return Err(BadInput(format!("invalid inputs: missing required input {}", list.join(", "))).into());
            }
            let mut options = RunOptions::default().scratch(scratch).fail_fast(fail_fast).resumable().frames(stream);
            if let Some(secs) = timeout {
                let limit = checked_secs("--timeout", secs, Limit::TIMEOUT).map_err(|e| BadInput(e.to_string()))?;
                options = options.timeout(limit);
            }
            let stop = StopHandle::new();
            options = options.stop_handle(stop.clone());
            eprintln!("run id: {}", options.request_id);
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let outcome = rt.block_on(async {
                let mut builder = TracePipeline::builder()
                    .processor(operonx_trace::processor::Redact::with_defaults())
                    .processor(operonx_trace::processor::Truncate::default());
                let mut traced = false;
                if !no_trace_store {
                    let path = trace_store.clone().unwrap_or_else(SqliteStore::default_path);
                    builder = builder.exporter(SqliteStore::open(&path).map_err(|e| BadInput(e.to_string()))?);
                    traced = true;
                }
                if let Some(path) = &trace_jsonl {
                    builder = builder.exporter(JsonlExporter::file(path));
                    traced = true;
                }
                let pipeline = if traced { Some(builder.build()?) } else { None };
                if let Some(p) = &pipeline {
                    p.begin_run(&options.request_id, wf.name());
                    options = options.trace(p.sink());
                }
                let interrupted = stop.clone();
                let ctrl_c = tokio::spawn(async move {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        interrupted.cancel(INTERRUPTED);
                    }
                });
                let mut seq = 0u64;
                let out = wf
                    .run_observed(Value::Object(inputs), options, |ev| {
                        if stream {
                            // A closed pipe ends the program at the result (below).
                            let _ = outln!("{}", ev.to_stream_json(seq));
                            seq += 1;
                        }
                    })
                    .await;
                ctrl_c.abort();
                if let Some(p) = &pipeline {
                    p.shutdown().await;
                }
                anyhow::Ok(out?)
            })?;
            if let Some(state) = &outcome.state {
                save_state(&graph, state)?;
            }
            let json = outcome.json_view();
            let text =
                if compact || stream { serde_json::to_string(&json)? } else { serde_json::to_string_pretty(&json)? };
            if stream {
                outln!("{{\"type\":\"result\",\"result\":{text}}}")?;
            } else {
                outln!("{text}")?;
            }
            Ok(exit_status(&outcome))
        }
        Command::Resume { run_id, answers, answers_file, compact, resources } => {
            if !operonx::is_request_id(&run_id) {
                return Err(BadInput(format!(
                    "not a run id: {:?} (a run id is 32 lowercase hex digits, as `operonx run` prints)",
                    run_id
                ))
                .into());
            }
            let path = state_path(&run_id);
            let saved: Value = read_object(&path, "run state")
                .map(Value::Object)
                .map_err(|_| BadInput(format!("no interrupted run \"{run_id}\" (looked for {})", path.display())))?;
            let graph = PathBuf::from(saved["graph"].as_str().unwrap_or_default());
            let state: operonx::RunState = serde_json::from_value(saved["state"].clone())
                .map_err(|e| BadInput(format!("{}: not a run state: {e}", path.display())))?;
            let mut given = match answers_file {
                Some(p) => read_object(&p, "answers")?,
                None => Map::new(),
            };
            for a in answers {
                let Some((id, value)) = a.split_once('=') else {
                    return Err(BadInput(format!("--answer {a}: expected ID=VALUE")).into());
                };
                let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
                given.insert(id.to_string(), value);
            }
            let wf = engine_with(resources.as_deref())?.load_file(&graph).map_err(|e| BadInput(e.to_string()))?;
            let options = RunOptions::default();
            eprintln!("run id: {} (resumes {run_id})", options.request_id);
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let outcome = rt.block_on(wf.resume(state, given, options)).map_err(|e| BadInput(e.to_string()))?;
            // The resumed run has its own id; what it still awaits is saved under that id.
            let _ = std::fs::remove_file(&path);
            if let Some(state) = &outcome.state {
                save_state(&graph, state)?;
            }
            let json = outcome.json_view();
            outln!("{}", if compact { serde_json::to_string(&json)? } else { serde_json::to_string_pretty(&json)? })?;
            Ok(exit_status(&outcome))
        }
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
                    "not a run id: {run_id:?} (a run id, or a prefix of one, is 1 to 32 lowercase hex digits)"
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

/// All of `reader` as text, refusing more than [`MAX_OBJECT_BYTES`] (`/dev/zero` ends).
fn read_capped(reader: impl Read, what: &str, path: &Path) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    reader.take(MAX_OBJECT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_OBJECT_BYTES {
        return Err(
            BadInput(format!("{what} file {} is larger than {} MiB", path.display(), MAX_OBJECT_BYTES >> 20)).into()
        );
    }
    String::from_utf8(bytes)
        .map_err(|e| BadInput(format!("{what} file {}: not UTF-8 text: {e}", path.display())).into())
}

/// Where an interrupted run's state is kept (`run_id` is checked by the caller).
fn state_path(run_id: &str) -> PathBuf {
    PathBuf::from(".operonx").join("runs").join(format!("{run_id}.json"))
}

/// Save a paused run's state (its raw inputs included): a private file in a private
/// folder (`0600` in `0700` on unix).
fn save_state(graph: &Path, state: &operonx::RunState) -> anyhow::Result<()> {
    let path = state_path(&state.request_id);
    if let Some(dir) = path.parent() {
        operonx_trace::private::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let graph = std::fs::canonicalize(graph).unwrap_or_else(|_| graph.to_path_buf());
    let saved = json!({"graph": graph.to_string_lossy(), "state": state});
    operonx_trace::private::write(&path, serde_json::to_string_pretty(&saved)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Report problems on stderr and pick the exit status.
fn exit_status(outcome: &operonx::RunOutcome) -> ExitCode {
    for f in &outcome.failures {
        eprintln!("error: op {} failed: {}", printable(&f.op), f.message);
    }
    if !outcome.interrupts.is_empty() && outcome.stopped.is_none() {
        let run_id = outcome.request_id.as_deref().unwrap_or("RUN_ID");
        eprintln!("the run waits for input:");
        for i in &outcome.interrupts {
            eprintln!("  {}: {}", printable(&i.id), i.payload);
        }
        let example =
            outcome.interrupts.iter().map(|i| format!(" --answer '{}=VALUE'", printable(&i.id))).collect::<String>();
        eprintln!("resume it with: operonx resume {run_id}{example}");
        return ExitCode::from(4);
    }
    match outcome.stopped.as_deref() {
        Some(INTERRUPTED) => {
            eprintln!("interrupted: the run was cancelled");
            ExitCode::from(130)
        }
        Some(reason) if reason.starts_with("timed out") => {
            eprintln!("error: the run {reason}; the result above is partial");
            ExitCode::from(3)
        }
        Some(reason) => {
            eprintln!("error: the run stopped: {reason}");
            ExitCode::from(1)
        }
        None if outcome.failures.is_empty() => ExitCode::SUCCESS,
        None => ExitCode::from(1),
    }
}

const INTERRUPTED: &str = "interrupted (Ctrl-C)";

/// The largest inputs, scratch or answers file read: 64 MiB.
const MAX_OBJECT_BYTES: u64 = 64 << 20;

/// A JSON object file (`-`: stdin) of at most [`MAX_OBJECT_BYTES`].
fn read_object(path: &Path, what: &str) -> anyhow::Result<Map<String, Value>> {
    let text = if path == Path::new("-") {
        read_capped(std::io::stdin().lock(), what, path).context("reading stdin")?
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("reading {what} file {}", path.display()))?;
        read_capped(file, what, path).with_context(|| format!("reading {what} file {}", path.display()))?
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => bail!(
            "{what} file {}: expected a JSON object, got {}",
            path.display(),
            operonx::graph::document::kind_of(&other)
        ),
        Err(e) => bail!("{what} file {}: invalid JSON: {e}", path.display()),
    }
}
