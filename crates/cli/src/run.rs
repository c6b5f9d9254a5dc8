//! `operonx run` and `operonx resume`: run a graph (or the rest of a paused run), traced,
//! stoppable by Ctrl-C, SIGTERM or `--timeout`, and print its result.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use operonx::graph::SecretSet;
use operonx::graph::duration::{Limit, checked_secs};
use operonx::graph::printable;
use operonx::{Engine, Map, RunOptions, Scratch, StopHandle, Value};
use operonx_trace::{JsonlExporter, SqliteOpCache, SqliteStore, TracePipeline};

use crate::BadInput;
use crate::files::{read_object, save_state, state_path};
use crate::output::{Redactor, errln, outln};
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
    /// Stop the run after this many seconds (exit status 3, partial result printed).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Stop the whole run at the first op failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Also write the run's trace events as JSON lines to this file.
    #[arg(long, value_name = "FILE")]
    pub trace_jsonl: Option<PathBuf>,
    /// Do not record the run in the trace store.
    #[arg(long)]
    pub no_trace_store: bool,
    /// The trace store (default: .operonx/traces.db under the working directory).
    #[arg(long, value_name = "PATH")]
    pub trace_store: Option<PathBuf>,
    /// Where results of ops marked `cache` are kept across runs (default:
    /// .operonx/cache.db under the working directory).
    #[arg(long, value_name = "PATH")]
    pub cache_store: Option<PathBuf>,
}

/// The CLI's engine: built-in op types, the standard functions, and the model
/// providers of `resources` (or of ./resources.yaml and ./.env when present), whose
/// secret values `redactor` redacts from then on.
pub(crate) fn engine_with(resources: Option<&Path>, redactor: &Redactor) -> anyhow::Result<Engine> {
    let hub = operonx::providers::ResourceHub::load(resources).map_err(|e| BadInput(e.to_string()))?;
    redactor.set(hub.secrets());
    let mut engine = Engine::new().with_resources(Arc::new(hub));
    operonx::ops::register_std(engine.registry_mut());
    Ok(engine)
}

/// A store that cannot be used does not stop a run: say so once, naming it, and go on.
fn unavailable(what: &str, path: &Path, consequence: &str, e: &dyn std::fmt::Display, redactor: &Redactor) {
    errln!(redactor, "warning: {what} {} is unavailable ({e}); {consequence}", path.display());
}

/// The run's trace pipeline (`None`: nothing traced): the store unless `store` is
/// `None`, skipped with a warning when it cannot be opened; the JSONL file when asked.
fn pipeline(
    store: Option<PathBuf>,
    jsonl: Option<&Path>,
    redactor: &Redactor,
) -> anyhow::Result<Option<TracePipeline>> {
    let secrets: SecretSet = redactor.secrets();
    let mut builder = TracePipeline::builder()
        .processor(operonx_trace::processor::Redact::with_defaults().secrets(&secrets))
        .processor(operonx_trace::processor::Truncate::default());
    let mut traced = false;
    if let Some(path) = store {
        match SqliteStore::open(&path) {
            Ok(store) => {
                builder = builder.exporter(store);
                traced = true;
            }
            Err(e) => unavailable("trace store", &path, "the run is not recorded", &e, redactor),
        }
    }
    if let Some(path) = jsonl {
        builder = builder.exporter(JsonlExporter::file(path));
        traced = true;
    }
    Ok(if traced { Some(builder.build()?) } else { None })
}

/// Run `options` on `wf` (a new run or a resumed one, as `start` does), traced by
/// `pipeline`, stopped by Ctrl-C or SIGTERM; `seen` gets each event.
fn drive<F>(
    pipeline: Option<TracePipeline>,
    request_id: &str,
    graph_name: &str,
    mut options: RunOptions,
    start: impl FnOnce(RunOptions) -> F,
) -> anyhow::Result<Result<operonx::RunOutcome, operonx::Error>>
where
    F: std::future::Future<Output = Result<operonx::RunOutcome, operonx::Error>>,
{
    let stop = StopHandle::new();
    options = options.stop_handle(stop.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    Ok(rt.block_on(async {
        if let Some(p) = &pipeline {
            p.begin_run(request_id, graph_name);
            options = options.trace(p.sink());
        }
        let watcher = signals::watch(stop);
        let out = start(options).await;
        watcher.abort();
        if let Some(p) = &pipeline {
            p.shutdown().await;
        }
        out
    }))
}

/// `operonx run`.
pub(crate) fn run(a: RunArgs, redactor: &Redactor) -> anyhow::Result<ExitCode> {
    let mut engine = engine_with(a.resources.as_deref(), redactor)?;
    // `--no-trace-store` writes nothing under .operonx: results of `cache` ops are
    // then kept in memory for this run only, unless `--cache-store` names a file.
    let cache_path = match (a.cache_store, a.no_trace_store) {
        (Some(path), _) => Some(path),
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
    let wf = engine.load_file(&a.graph).map_err(|e| BadInput(e.to_string()))?;
    let inputs = match a.inputs {
        Some(p) => read_object(&p, "inputs")?,
        None => Map::new(),
    };
    let scratch = match a.scratch {
        Some(p) => Scratch::new(read_object(&p, "scratch")?),
        None => Scratch::default(),
    };
    let missing = wf.missing_inputs(&inputs);
    if !missing.is_empty() {
        let list = missing.iter().map(|m| format!("\"{}\" (read by {})", m.input, m.op)).collect::<Vec<_>>();
        return Err(BadInput(format!("invalid inputs: missing required input {}", list.join(", "))).into());
    }
    let mut options = RunOptions::default().scratch(scratch).fail_fast(a.fail_fast).resumable().frames(a.stream);
    if let Some(secs) = a.timeout {
        let limit = checked_secs("--timeout", secs, Limit::TIMEOUT).map_err(|e| BadInput(e.to_string()))?;
        options = options.timeout(limit);
    }
    let store = (!a.no_trace_store).then(|| a.trace_store.clone().unwrap_or_else(SqliteStore::default_path));
    let pipeline = pipeline(store, a.trace_jsonl.as_deref(), redactor)?;
    let request_id = options.request_id.clone();
    eprintln!("run id: {request_id}");
    let stream = a.stream;
    let mut seq = 0u64;
    let outcome = drive(pipeline, &request_id, wf.name(), options, |options| {
        wf.run_observed(Value::Object(inputs), options, move |ev| {
            if stream {
                let mut line = ev.to_stream_json(seq);
                redactor.value(&mut line);
                // A closed pipe ends the program at the result (below).
                let _ = outln!("{line}");
                seq += 1;
            }
        })
    })??;
    if let Some(state) = &outcome.state {
        save_state(&a.graph, state, redactor)?;
    }
    // Serialized straight from the outcome (a large result is not copied to be printed),
    // then redacted as text.
    let json = outcome.json_view();
    let text = if a.compact || stream { serde_json::to_string(&json)? } else { serde_json::to_string_pretty(&json)? };
    let text = redactor.text(&text);
    if stream {
        outln!("{{\"type\":\"result\",\"result\":{text}}}")?;
    } else {
        outln!("{text}")?;
    }
    Ok(exit_status(&outcome, redactor))
}

/// `operonx resume`.
pub(crate) fn resume(
    run_id: String,
    answers: Vec<String>,
    answers_file: Option<PathBuf>,
    compact: bool,
    resources: Option<PathBuf>,
    redactor: &Redactor,
) -> anyhow::Result<ExitCode> {
    if !operonx::is_request_id(&run_id) {
        return Err(BadInput(format!(
            "not a run id: {run_id:?} (a run id is 32 lowercase hex digits, as `operonx run` prints)"
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
    let wf = engine_with(resources.as_deref(), redactor)?.load_file(&graph).map_err(|e| BadInput(e.to_string()))?;
    let options = RunOptions::default();
    let request_id = options.request_id.clone();
    eprintln!("run id: {request_id} (resumes {run_id})");
    let pipeline = pipeline(Some(SqliteStore::default_path()), None, redactor)?;
    let outcome = drive(pipeline, &request_id, wf.name(), options, |options| wf.resume(state, given, options))?
        .map_err(|e| BadInput(e.to_string()))?;
    // The resumed run has its own id; what it still awaits is saved under that id.
    let _ = std::fs::remove_file(&path);
    if let Some(state) = &outcome.state {
        save_state(&graph, state, redactor)?;
    }
    let json = outcome.json_view();
    let text = if compact { serde_json::to_string(&json)? } else { serde_json::to_string_pretty(&json)? };
    outln!("{}", redactor.text(&text))?;
    Ok(exit_status(&outcome, redactor))
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
