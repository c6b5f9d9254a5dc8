//! `operonx run` and `operonx resume`: run a graph (or the rest of a paused run), traced,
//! stoppable by Ctrl-C, SIGTERM or `--timeout`, and print its result.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use operonx::graph::SecretSet;
use operonx::graph::duration::{Limit, checked_secs};
use operonx::graph::printable;
use operonx::providers::ResourceHub;
use operonx::providers::resource::{env_with_dotenv, load_dotenv};
use operonx::{Engine, Map, RunOptions, Scratch, Value};
use operonx_trace::media::{LocalMediaStore, MediaOffload, MediaStore, MemoryMediaStore};
use operonx_trace::{Exporter, JsonlExporter, SqliteOpCache, SqliteStore, TracePipeline, exporters_from_env};

use crate::BadInput;
use crate::durable;
use crate::files::read_object;
use crate::output::{Redactor, errln, outln};
use crate::progress::Progress;
use crate::signals::{self, INTERRUPTED, TERMINATED};

/// What `operonx run` was asked.
#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// The graph.json file.
    pub graph: PathBuf,
    /// JSON object file with the run's inputs (`-` reads stdin).
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// JSON object file seeding the run's scratch space.
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// What `operonx resume` was asked.
#[derive(clap::Args, Debug)]
pub(crate) struct ResumeArgs {
    /// The run id `operonx run` printed (see `operonx runs list`).
    pub run_id: String,
    /// Answer one interrupt: `ID=VALUE` (VALUE is read as JSON, else as a string).
    #[arg(long = "answer", value_name = "ID=VALUE")]
    pub answers: Vec<String>,
    /// Answers as a JSON object file (`{id: value}`).
    #[arg(long, value_name = "FILE")]
    pub answers_file: Option<PathBuf>,
    /// Resume on this graph file (default: the file the run started from when it is
    /// still there, else the copy kept in the run store).
    #[arg(long, value_name = "FILE")]
    pub graph: Option<PathBuf>,
    /// Resume even though the graph changed since the run started (journaled results of
    /// changed ops are reused as they are).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// How `run` and `resume` execute a run.
#[derive(clap::Args, Debug)]
pub(crate) struct ExecArgs {
    /// Model providers (default: ./resources.yaml when present; `${VAR}` from the
    /// environment, then ./.env).
    #[arg(long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Print the result on one line.
    #[arg(long)]
    pub compact: bool,
    /// Print events as JSON lines as they happen, then the result.
    #[arg(long)]
    pub stream: bool,
    /// Show no progress line on stderr (it is shown only when stderr is a terminal).
    #[arg(long)]
    pub quiet: bool,
    /// Stop the run after this many seconds (exit status 3, partial result printed).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Stop the whole run at the first op failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Also write the run's trace events as JSON lines to this file.
    #[arg(long, value_name = "FILE")]
    pub trace_jsonl: Option<PathBuf>,
    /// Record nothing under .operonx: no trace, and no run store unless --store names
    /// one (the run cannot be resumed then).
    #[arg(long)]
    pub no_trace_store: bool,
    /// The trace store (default: .operonx/traces.db under the working directory).
    #[arg(long, value_name = "PATH")]
    pub trace_store: Option<PathBuf>,
    /// Where results of ops marked `cache` are kept across runs (default:
    /// .operonx/cache.db under the working directory).
    #[arg(long, value_name = "PATH")]
    pub cache_store: Option<PathBuf>,
    /// The run store: a SQLite file, or a `postgres://` URL (default: $OPERONX_STORE,
    /// else .operonx/runs.db under the working directory).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// How the run's journal is written: `batched` (committed in groups as the run goes;
    /// a crash loses at most the last group, which runs again on resume), `sync` (each
    /// op's result committed before it is used), `off` (written only when the run stops).
    #[arg(long, value_name = "MODE", default_value = "batched")]
    pub durability: operonx_store::Durability,
}

/// The CLI's engine: built-in op types, the standard functions, and the model
/// providers of `resources` (or of ./resources.yaml and ./.env when present), whose
/// secret values `redactor` redacts from then on.
pub(crate) fn engine_with(resources: Option<&Path>, redactor: &Redactor) -> anyhow::Result<Engine> {
    Ok(engine_and_hub(resources, redactor)?.0)
}

/// [`engine_with`], and the resources it was given (their `tracing:` section turns
/// exporters on).
pub(crate) fn engine_and_hub(
    resources: Option<&Path>,
    redactor: &Redactor,
) -> anyhow::Result<(Engine, Arc<ResourceHub>)> {
    let hub = Arc::new(ResourceHub::load(resources).map_err(|e| BadInput(e.to_string()))?);
    redactor.merge(&hub.secrets());
    let mut engine = Engine::new().with_resources(Arc::clone(&hub));
    operonx::ops::register_std(engine.registry_mut());
    Ok((engine, hub))
}

/// The variables the exporters are configured from: the environment, then `./.env` for
/// what the environment does not set (as `${VAR}` in resources.yaml).
fn exporter_env() -> anyhow::Result<impl Fn(&str) -> Option<String>> {
    let dotenv = Path::new(".env");
    let vars =
        if dotenv.is_file() { load_dotenv(dotenv).map_err(|e| BadInput(e.to_string()))? } else { Default::default() };
    Ok(env_with_dotenv(vars))
}

/// The remote exporters the user turned on (Langfuse, OTLP: the usual variables or the
/// `tracing:` section of `hub`), their secrets added to what `redactor` redacts, and said
/// on stderr. A bad setting is an error naming it.
pub(crate) fn remote_exporters(hub: &ResourceHub, redactor: &Redactor) -> anyhow::Result<Vec<Arc<dyn Exporter>>> {
    let section = hub.tracing().map_err(|e| BadInput(e.to_string()))?;
    let env = exporter_env()?;
    let configured = exporters_from_env(&env, section).map_err(|e| BadInput(format!("tracing: {e}")))?;
    redactor.add(&configured.secrets);
    if !configured.descriptions.is_empty() {
        errln!(redactor, "exporting traces: {}", configured.descriptions.join("; "));
    }
    Ok(configured.exporters)
}

/// A store that cannot be used does not stop a run: say so once, naming it, and go on.
fn unavailable(what: &str, path: &Path, consequence: &str, e: &dyn std::fmt::Display, redactor: &Redactor) {
    errln!(redactor, "warning: {what} {} is unavailable ({e}); {consequence}", path.display());
}

/// The run's trace pipeline (`None`: nothing traced): the store unless `store` is
/// `None`, skipped with a warning when it cannot be opened; the JSONL file when asked;
/// the `remote` exporters (their secrets already in `redactor`). Media in the events
/// (data URLs, base64 content parts) goes to `media/` beside the store, or, with no
/// store, into memory for the exporters of this process (Langfuse uploads it); the
/// trace keeps references.
pub(crate) fn pipeline(
    store: Option<PathBuf>,
    jsonl: Option<&Path>,
    remote: Vec<Arc<dyn Exporter>>,
    redactor: &Redactor,
) -> anyhow::Result<Option<TracePipeline>> {
    let secrets: SecretSet = redactor.secrets();
    let mut builder = TracePipeline::builder()
        .processor(operonx_trace::processor::Redact::with_defaults().secrets(&secrets))
        .processor(operonx_trace::processor::Truncate::default());
    let mut traced = false;
    let mut media: Arc<dyn MediaStore> = Arc::new(MemoryMediaStore::default());
    if let Some(path) = store {
        match SqliteStore::open(&path) {
            Ok(store) => {
                builder = builder.exporter(store);
                media = Arc::new(LocalMediaStore::beside(&path));
                traced = true;
            }
            Err(e) => unavailable("trace store", &path, "the run is not recorded", &e, redactor),
        }
    }
    builder = builder.media(MediaOffload::new(media));
    if let Some(path) = jsonl {
        builder = builder.exporter(JsonlExporter::file(path));
        traced = true;
    }
    for exporter in remote {
        builder = builder.shared_exporter(exporter);
        traced = true;
    }
    Ok(if traced { Some(builder.build()?) } else { None })
}

/// Run `options` on `wf` with `inputs`, traced by `pipeline`, stopped by Ctrl-C or
/// SIGTERM (or by `options.canceller`), printing events with `--stream` and the progress
/// line on a terminal unless `--quiet` (cleared before this returns).
fn drive(
    wf: &operonx::Workflow,
    inputs: Value,
    pipeline: Option<TracePipeline>,
    mut options: RunOptions,
    exec: &ExecArgs,
    redactor: &Redactor,
) -> anyhow::Result<operonx::RunOutcome> {
    let stream = exec.stream;
    let progress = Progress::new(exec.quiet);
    // Streamed lines on the same terminal as the line move it out of the way.
    let progress_in_the_way = stream && std::io::stdout().is_terminal();
    let progress = &progress;
    let stop = options.canceller.clone().unwrap_or_default();
    options = options.stop_handle(stop.clone());
    let request_id = options.request_id.clone();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut seq = 0u64;
    let outcome = rt.block_on(async {
        if let Some(p) = &pipeline {
            p.begin_run(&request_id, wf.name());
        }
        if let Some(sink) = progress.sink(pipeline.as_ref().map(TracePipeline::sink)) {
            options = options.trace(sink);
        }
        let watcher = signals::watch(stop);
        let out = wf
            .run_observed(inputs, options, move |ev| {
                if stream {
                    let mut line = ev.to_stream_json(seq);
                    redactor.value(&mut line);
                    // A closed pipe ends the program at the result (below).
                    let print = || outln!("{line}");
                    let _ = if progress_in_the_way { progress.suspend(print) } else { print() };
                    seq += 1;
                }
            })
            .await;
        watcher.abort();
        if let Some(p) = &pipeline {
            p.shutdown().await;
        }
        out
    });
    outcome.map_err(|e| BadInput(e.to_string()).into())
}

/// The CLI's engine with the op cache `exec` names (or the default one), and the remote
/// trace exporters turned on.
fn engine_for(exec: &ExecArgs, redactor: &Redactor) -> anyhow::Result<(Engine, Vec<Arc<dyn Exporter>>)> {
    let (mut engine, hub) = engine_and_hub(exec.resources.as_deref(), redactor)?;
    let remote = remote_exporters(&hub, redactor)?;
    // `--no-trace-store` writes nothing under .operonx: results of `cache` ops are
    // then kept in memory for this run only, unless `--cache-store` names a file.
    let cache_path = match (&exec.cache_store, exec.no_trace_store) {
        (Some(path), _) => Some(path.clone()),
        (None, false) => Some(PathBuf::from(".operonx").join("cache.db")),
        (None, true) => None,
    };
    if let Some(path) = cache_path {
        match SqliteOpCache::open(&path, 100_000) {
            Ok(cache) => {
                engine.set_cache(Arc::new(cache));
            }
            Err(e) => unavailable("op cache", &path, "cached results are kept for this run only", &e, redactor),
        }
    }
    Ok((engine, remote))
}

/// Run options from `exec` (timeout, fail-fast, frames).
fn options_for(exec: &ExecArgs) -> anyhow::Result<RunOptions> {
    let mut options = RunOptions::default().fail_fast(exec.fail_fast).resumable().frames(exec.stream);
    if let Some(secs) = exec.timeout {
        let limit = checked_secs("--timeout", secs, Limit::TIMEOUT).map_err(|e| BadInput(e.to_string()))?;
        options = options.timeout(limit);
    }
    Ok(options)
}

/// The trace store `exec` names, `None` with `--no-trace-store`.
fn trace_store_for(exec: &ExecArgs) -> Option<PathBuf> {
    (!exec.no_trace_store).then(|| exec.trace_store.clone().unwrap_or_else(SqliteStore::default_path))
}

/// Print the result (after the streamed events, if any) and pick the exit status.
fn report(outcome: &operonx::RunOutcome, exec: &ExecArgs, redactor: &Redactor) -> anyhow::Result<ExitCode> {
    // Serialized straight from the outcome (a large result is not copied to be printed),
    // then redacted as text.
    let json = outcome.json_view();
    let text =
        if exec.compact || exec.stream { serde_json::to_string(&json)? } else { serde_json::to_string_pretty(&json)? };
    let text = redactor.text(&text);
    if exec.stream {
        outln!("{{\"type\":\"result\",\"result\":{text}}}")?;
    } else {
        outln!("{text}")?;
    }
    Ok(exit_status(outcome, redactor))
}

/// `operonx run`.
pub(crate) fn run(a: RunArgs, redactor: &Redactor) -> anyhow::Result<ExitCode> {
    let exec = &a.exec;
    let (engine, remote) = engine_for(exec, redactor)?;
    let wf = engine.load_file(&a.graph).map_err(|e| BadInput(e.to_string()))?;
    let inputs = match &a.inputs {
        Some(p) => read_object(p, "inputs")?,
        None => Map::new(),
    };
    let scratch = match &a.scratch {
        Some(p) => read_object(p, "scratch")?,
        None => Map::new(),
    };
    let missing = wf.missing_inputs(&inputs);
    if !missing.is_empty() {
        let list = missing.iter().map(|m| format!("\"{}\" (read by {})", m.input, m.op)).collect::<Vec<_>>();
        return Err(BadInput(format!("invalid inputs: missing required input {}", list.join(", "))).into());
    }
    let mut options = options_for(exec)?.scratch(Scratch::new(scratch.clone()));
    let request_id = options.request_id.clone();
    let durable = match durable::store_for(exec, redactor)? {
        Some(store) => {
            let graph_path = std::fs::canonicalize(&a.graph).unwrap_or_else(|_| a.graph.clone());
            let new = operonx_store::NewRun {
                run_id: request_id.clone(),
                graph_name: wf.name().to_string(),
                graph_path: Some(graph_path.to_string_lossy().into_owned()),
                graph: wf.document().clone(),
                fingerprint: wf.fingerprint().to_string(),
                inputs: inputs.clone(),
                scratch,
                options: Map::new(),
                ..operonx_store::NewRun::default()
            };
            let (run, journal) = durable::create(store, new, exec, &mut options, redactor)?;
            options = options.journal(journal);
            Some(run)
        }
        None => None,
    };
    let pipeline = pipeline(trace_store_for(exec), exec.trace_jsonl.as_deref(), remote, redactor)?;
    eprintln!("run id: {request_id}");
    let scratch = options.scratch.clone();
    let outcome = drive(&wf, Value::Object(inputs), pipeline, options, exec, redactor)?;
    let stored = durable::finish(durable, &outcome, &scratch);
    let code = report(&outcome, exec, redactor)?;
    Ok(durable::exit_with(code, stored, redactor))
}

/// `operonx resume`.
pub(crate) fn resume(a: ResumeArgs, redactor: &Redactor) -> anyhow::Result<ExitCode> {
    let exec = &a.exec;
    let run_id = &a.run_id;
    if !operonx::is_request_id(run_id) {
        return Err(BadInput(format!(
            "not a run id: {run_id:?} (a run id is a UUID, as `operonx run` prints, or 32 lowercase hex digits)"
        ))
        .into());
    }
    let mut given = match &a.answers_file {
        Some(p) => read_object(p, "answers")?,
        None => Map::new(),
    };
    for answer in &a.answers {
        let Some((id, value)) = answer.split_once('=') else {
            return Err(BadInput(format!("--answer {answer}: expected ID=VALUE")).into());
        };
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        given.insert(id.to_string(), value);
    }
    // The store must be there to resume from: any failure to open it is an error.
    let store = durable::open_store(durable::named_store(exec).as_deref())?;
    let (engine, remote) = engine_for(exec, redactor)?;
    let saved = store.load(run_id).map_err(|e| BadInput(e.to_string()))?;
    let wf = durable::graph_for_resume(&engine, &saved, a.graph.as_deref(), a.force)?;
    durable::check_answers(&saved, &given)?;
    let mut options = options_for(exec)?.request_id(run_id.clone());
    let (run, journal, stored) = durable::claim(store, &saved, &given, exec, &mut options, redactor)?;
    options = options.journal(journal);
    let trace_store = trace_store_for(exec);
    let from = trace_store.as_deref().map_or(0, |p| SqliteStore::recorded_events(p, run_id));
    let note = operonx::json!({
        "resume": stored.summary.resumes,
        "journal_entries": stored.entries.len(),
        "answers": given.keys().collect::<Vec<_>>(),
    });
    options = options.continue_trace(from, note);
    let pipeline = pipeline(trace_store, exec.trace_jsonl.as_deref(), remote, redactor)?;
    eprintln!("run id: {run_id} (resumed)");
    let scratch = options.scratch.clone();
    let outcome = drive(&wf, Value::Object(stored.inputs), pipeline, options, exec, redactor)?;
    let stored = durable::finish(Some(run), &outcome, &scratch);
    let code = report(&outcome, exec, redactor)?;
    Ok(durable::exit_with(code, stored, redactor))
}

/// Report problems on stderr (secrets redacted) and pick the exit status.
pub(crate) fn exit_status(outcome: &operonx::RunOutcome, redactor: &Redactor) -> ExitCode {
    for f in &outcome.failures {
        errln!(redactor, "error: op {} failed: {}", printable(&f.op), f.message);
    }
    if !outcome.interrupts.is_empty() && outcome.stopped.is_none() {
        let run_id = outcome.request_id.as_deref().unwrap_or("RUN_ID");
        eprintln!("the run waits for input:");
        for i in &outcome.interrupts {
            errln!(redactor, "  {}: {}", printable(&i.id), i.payload);
        }
        let example =
            outcome.interrupts.iter().map(|i| format!(" --answer '{}=VALUE'", printable(&i.id))).collect::<String>();
        errln!(redactor, "resume it with: operonx resume {run_id}{example}");
        return ExitCode::from(4);
    }
    match outcome.stopped.as_deref() {
        Some(INTERRUPTED) => {
            eprintln!("interrupted: the run was cancelled");
            ExitCode::from(130)
        }
        Some(TERMINATED) => {
            eprintln!("terminated (SIGTERM): the run was cancelled; the result above is partial");
            ExitCode::from(143)
        }
        Some(reason) if reason.starts_with("timed out") => {
            eprintln!("error: the run {reason}; the result above is partial");
            ExitCode::from(3)
        }
        Some(reason) => {
            errln!(redactor, "error: the run stopped: {reason}");
            ExitCode::from(1)
        }
        None if outcome.failures.is_empty() => ExitCode::SUCCESS,
        None => ExitCode::from(1),
    }
}
