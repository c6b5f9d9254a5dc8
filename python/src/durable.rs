//! Durable runs from Python: `Engine(..., store=...)` records every run in a run store
//! (SQLite path or `postgres://` URL) with its journal, so a run of a process that died
//! is finished by `Engine.resume(run_id)` in another process, without running the ops it
//! journaled again.

use operonx::graph::SecretSet;
use operonx::{Map, RunOutcome, Scratch, StopHandle, Value, Workflow};
use operonx_store::{DEFAULT_LEASE, Durability, DurableRun, Journaler, NewRun, RunEnd, StoredRun, WriterOptions};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// An engine's run store and how its runs are journaled.
pub(crate) struct Durable {
    journaler: Journaler,
    mode: Durability,
    secrets: SecretSet,
}

impl Durable {
    /// Open the store `spec` names, journaling with `durability` (`batched`, `sync`, `off`).
    pub(crate) fn open(spec: &str, durability: &str, secrets: SecretSet) -> PyResult<Self> {
        let mode: Durability = durability.parse().map_err(PyValueError::new_err)?;
        let store = operonx_store::open(Some(spec)).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let journaler = Journaler::start(store).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok(Self { journaler, mode, secrets })
    }

    fn writer(&self, scratch: &Scratch, stop: &StopHandle) -> WriterOptions {
        let stop = stop.clone();
        WriterOptions {
            mode: self.mode,
            scratch: scratch.clone(),
            secrets: self.secrets.clone(),
            on_failure: Some(Box::new(move |message: &str| stop.cancel(message.to_string()))),
        }
    }

    /// Record a new run of `workflow` (committed before this returns).
    pub(crate) fn create(
        &self,
        workflow: &Workflow,
        run_id: &str,
        inputs: &Map<String, Value>,
        scratch: &Scratch,
        stop: &StopHandle,
    ) -> PyResult<DurableRun> {
        let new = NewRun {
            run_id: run_id.to_string(),
            graph_name: workflow.name().to_string(),
            graph_path: None,
            graph: workflow.document().clone(),
            fingerprint: workflow.fingerprint().to_string(),
            inputs: inputs.clone(),
            scratch: scratch.snapshot(),
            options: Map::new(),
            ..NewRun::default()
        };
        self.journaler
            .create(new, DEFAULT_LEASE, self.writer(scratch, stop))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// Take the stored run `run_id` over to resume it with `answers`; refused when it was
    /// started on another graph. The scratch space to run with is the stored one.
    pub(crate) fn claim(
        &self,
        workflow: &Workflow,
        run_id: &str,
        answers: &Map<String, Value>,
        stop: &StopHandle,
    ) -> PyResult<(DurableRun, StoredRun, Scratch)> {
        let saved = self.journaler.store().load(run_id).map_err(|e| PyValueError::new_err(e.to_string()))?;
        if saved.fingerprint != workflow.fingerprint() {
            let changes = operonx::graph::changes::changes(&saved.graph, workflow.document());
            return Err(PyValueError::new_err(format!(
                "run {run_id} was started on another graph: {}",
                if changes.is_empty() { "the graph document differs".to_string() } else { changes.join("; ") }
            )));
        }
        let pending: Vec<&str> = saved.pending.iter().map(|i| i.id.as_str()).collect();
        if let Some(id) = answers.keys().find(|id| !pending.contains(&id.as_str())) {
            return Err(PyValueError::new_err(format!(
                "run {run_id} has no pending interrupt {id:?} (pending: {})",
                if pending.is_empty() { "none".to_string() } else { pending.join(", ") }
            )));
        }
        let scratch = Scratch::new(saved.scratch.clone());
        let (run, stored) = self
            .journaler
            .resume(run_id, answers, DEFAULT_LEASE, self.writer(&scratch, stop))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok((run, stored, scratch))
    }
}

/// Record how the run ended; a failure to do so becomes the run's error.
pub(crate) fn finish(
    run: DurableRun,
    outcome: Result<RunOutcome, operonx::Error>,
    scratch: &Scratch,
) -> Result<RunOutcome, operonx::Error> {
    let outcome = outcome?;
    run.finish(&RunEnd::from_outcome(&outcome, scratch.snapshot()))
        .map_err(|e| operonx::Error::Store(format!("the run's end could not be recorded: {e}")))?;
    Ok(outcome)
}
