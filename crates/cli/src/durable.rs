//! The run store side of `run` and `resume`: the run recorded before it starts, its
//! journal written as it goes, its end recorded, and resuming it from the store.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use operonx::{Engine, Journal, Map, RunOptions, Value, Workflow};
use operonx_store::{DEFAULT_LEASE, DurableRun, Journaler, NewRun, RunEnd, RunStore, StoredRun, WriterOptions};

use crate::BadInput;
use crate::output::{Redactor, errln};
use crate::run::ExecArgs;

/// The environment variable naming the run store when `--store` does not.
const STORE_ENV: &str = "OPERONX_STORE";

/// The store `--store` (or `$OPERONX_STORE`) names, else the default one; `None` with
/// `--no-trace-store` and no store named. A store the user named that cannot be opened
/// is an error; the default one is warned about (once, naming it) and the run goes on
/// without it, saying it cannot be resumed, like the default trace store and op cache.
pub(crate) fn store_for(exec: &ExecArgs, redactor: &Redactor) -> anyhow::Result<Option<Arc<dyn RunStore>>> {
    let named = named_store(exec);
    if named.is_none() && exec.no_trace_store {
        return Ok(None);
    }
    match (operonx_store::open(named.as_deref()), named) {
        (Ok(store), _) => Ok(Some(store)),
        (Err(e), Some(_)) => {
            Err(BadInput(format!("{e} (name another store with --store, or run unrecorded with --no-trace-store)"))
                .into())
        }
        (Err(e), None) => {
            errln!(redactor, "warning: {e}; the run is not durable (it cannot be resumed)");
            Ok(None)
        }
    }
}

/// The store `--store` or `$OPERONX_STORE` names, if any.
pub(crate) fn named_store(exec: &ExecArgs) -> Option<String> {
    store_spec(exec.store.as_deref())
}

/// The store `flag` names, else the one `$OPERONX_STORE` names, if any.
pub(crate) fn store_spec(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_string).or_else(|| std::env::var(STORE_ENV).ok().filter(|s| !s.is_empty()))
}

/// Open the store `spec` names (default: `.operonx/runs.db`).
pub(crate) fn open_store(spec: Option<&str>) -> anyhow::Result<Arc<dyn RunStore>> {
    operonx_store::open(spec).map_err(|e| {
        BadInput(format!("{e} (name another store with --store, or run unrecorded with --no-trace-store)")).into()
    })
}

/// Options for the run's journal writer; a writer failure cancels the run at once.
fn writer_options(exec: &ExecArgs, options: &mut RunOptions, redactor: &Redactor) -> WriterOptions {
    let stop = options.canceller.clone().unwrap_or_default();
    *options = options.clone().stop_handle(stop.clone());
    let on_failure: operonx_store::OnFailure = Box::new(move |message: &str| stop.cancel(message.to_string()));
    WriterOptions {
        mode: exec.durability,
        scratch: options.scratch.clone(),
        secrets: redactor.secrets(),
        on_failure: Some(on_failure),
    }
}

/// The journal writer for `store`.
fn journaler(store: Arc<dyn RunStore>) -> anyhow::Result<Journaler> {
    Journaler::start(store).map_err(|e| BadInput(e.to_string()).into())
}

/// Record a new run in `store` and start writing it; the journal to run with.
pub(crate) fn create(
    store: Arc<dyn RunStore>,
    run: NewRun,
    exec: &ExecArgs,
    options: &mut RunOptions,
    redactor: &Redactor,
) -> anyhow::Result<(DurableRun, Arc<Journal>)> {
    let writer = writer_options(exec, options, redactor);
    let durable = journaler(store)?.create(run, DEFAULT_LEASE, writer).map_err(|e| BadInput(e.to_string()))?;
    let journal = durable.journal();
    Ok((durable, journal))
}

/// Take the stored run `run_id` over (adding `answers`); the journal that replays it.
pub(crate) fn claim(
    store: Arc<dyn RunStore>,
    saved: &StoredRun,
    answers: &Map<String, Value>,
    exec: &ExecArgs,
    options: &mut RunOptions,
    redactor: &Redactor,
) -> anyhow::Result<(DurableRun, Arc<Journal>, StoredRun)> {
    let mut writer = writer_options(exec, options, redactor);
    // The scratch space is the stored one: the writer watches the space the run will use.
    let run_id = saved.summary.run_id.as_str();
    let scratch = operonx::Scratch::new(saved.scratch.clone());
    writer.scratch = scratch.clone();
    *options = options.clone().scratch(scratch);
    let (durable, stored) =
        journaler(store)?.resume(run_id, answers, DEFAULT_LEASE, writer).map_err(|e| BadInput(e.to_string()))?;
    let journal = durable.journal();
    Ok((durable, journal, stored))
}

/// The workflow a stored run resumes on: `--graph FILE`, else the file it started from
/// when it is still there, else the copy in the store. A graph that changed since the
/// run started is refused, saying what changed, unless `force`.
pub(crate) fn graph_for_resume(
    engine: &Engine,
    saved: &StoredRun,
    graph: Option<&Path>,
    force: bool,
) -> anyhow::Result<Workflow> {
    let bad = |e: operonx::Error| BadInput(e.to_string());
    let started_on = saved.graph_path.as_deref().map(Path::new).filter(|p| p.is_file());
    let (wf, source) = match (graph, started_on) {
        (Some(p), _) | (None, Some(p)) => (engine.load_file(p).map_err(bad)?, p.display().to_string()),
        (None, None) => (engine.load_value(saved.graph.clone()).map_err(bad)?, "the run store's copy".to_string()),
    };
    if wf.fingerprint() == saved.fingerprint {
        return Ok(wf);
    }
    let mut changes = operonx::graph::changes::changes(&saved.graph, wf.document());
    if changes.is_empty() {
        changes.push("the graph document differs".to_string());
    }
    let list = changes.iter().map(|c| format!("\n  {}", operonx::graph::printable(c))).collect::<String>();
    if !force {
        return Err(BadInput(format!(
            "the graph changed since run {} started ({source}):{list}\nresume anyway with --force (journaled \
             results of changed ops are reused as they are), or name the graph it started on with --graph FILE",
            saved.summary.run_id
        ))
        .into());
    }
    eprintln!("warning: resuming on a changed graph (--force):{list}");
    Ok(wf)
}

/// Every answer must be for an interrupt the run waits for.
pub(crate) fn check_answers(saved: &StoredRun, given: &Map<String, Value>) -> anyhow::Result<()> {
    let pending: Vec<&str> = saved.pending.iter().map(|i| i.id.as_str()).collect();
    for id in given.keys() {
        if !pending.contains(&id.as_str()) {
            return Err(BadInput(format!(
                "run {} has no pending interrupt \"{}\" (pending: {})",
                saved.summary.run_id,
                operonx::graph::printable(id),
                if pending.is_empty() { "none".to_string() } else { pending.join(", ") }
            ))
            .into());
        }
    }
    Ok(())
}

/// Record how the run ended; the error, if that failed.
pub(crate) fn finish(
    run: Option<DurableRun>,
    outcome: &operonx::RunOutcome,
    scratch: &operonx::Scratch,
) -> Option<String> {
    let run = run?;
    run.finish(&RunEnd::from_outcome(outcome, scratch.snapshot())).err().map(|e| e.to_string())
}

/// The exit status, once the run's end is recorded (or could not be: then say so, and
/// never exit 0).
pub(crate) fn exit_with(code: ExitCode, stored: Option<String>, redactor: &Redactor) -> ExitCode {
    match stored {
        None => code,
        Some(e) => {
            errln!(redactor, "error: the run's end could not be recorded: {e}");
            if code == ExitCode::SUCCESS { ExitCode::from(1) } else { code }
        }
    }
}
