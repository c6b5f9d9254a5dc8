//! [`RunHandle`]: a run started in the background, watched as it happens.

use operonx_runtime::{OutputFrame, RunEvent, RunOutcome};
use serde_json::{Map, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

use crate::engine::{Error, RunOptions, StopHandle, Workflow};

/// A running workflow. Events arrive numbered per run (`seq` from 0); the final result
/// can be collected grouped or flat. Dropping the handle cancels the run and everything
/// it started.
#[derive(Debug)]
pub struct RunHandle {
    events: UnboundedReceiver<(u64, RunEvent)>,
    /// Events read while waiting for something else, returned by `next` first.
    backlog: std::collections::VecDeque<(u64, RunEvent)>,
    /// Every output frame seen so far, in order (for `collect_flat`).
    frames: Vec<OutputFrame>,
    /// Per op, the sequence number of the last frame `wait_for` returned.
    waited: std::collections::HashMap<String, u64>,
    stop: StopHandle,
    task: Option<JoinHandle<Result<RunOutcome, Error>>>,
    request_id: String,
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Workflow {
    /// Start a run on the current tokio runtime and return a handle to watch it. Frames
    /// (token deltas, op lifecycle) are delivered when `options.frames` is on.
    pub fn spawn(&self, inputs: Value, options: RunOptions) -> RunHandle {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let stop = options.canceller.clone().unwrap_or_default();
        let request_id = options.request_id.clone();
        let options = RunOptions { canceller: Some(stop.clone()), ..options };
        let wf = self.clone();
        let task = tokio::spawn(async move {
            let mut seq = 0u64;
            wf.run_observed(inputs, options, move |ev| {
                // The handle may be gone; the run then stops at its next step anyway.
                let _ = tx.send((seq, ev.clone()));
                seq += 1;
            })
            .await
        });
        RunHandle {
            events: rx,
            backlog: Default::default(),
            frames: Vec::new(),
            waited: Default::default(),
            stop,
            task: Some(task),
            request_id,
        }
    }
}

impl RunHandle {
    /// The run's id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The next event (`seq`, event), or `None` once the run is over.
    pub async fn next(&mut self) -> Option<(u64, RunEvent)> {
        let item = match self.backlog.pop_front() {
            Some(item) => Some(item),
            None => self.events.recv().await,
        };
        if let Some((_, RunEvent::Output(f))) = &item {
            self.frames.push(f.clone());
        }
        item
    }

    /// Wait for the next output frame of op `op` (full name) not returned by an earlier
    /// call, and return its values (`graph output name → value`); `None` if the run ended
    /// without one. Every event read meanwhile stays available to [`RunHandle::next`].
    pub async fn wait_for(&mut self, op: &str) -> Option<Map<String, Value>> {
        let after = self.waited.get(op).copied();
        let values = |f: &OutputFrame| -> Map<String, Value> {
            f.values.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
        };
        let fresh = |seq: u64| after.is_none_or(|a| seq > a);
        let found = self.backlog.iter().find_map(|(seq, e)| match e {
            RunEvent::Output(f) if &*f.op == op && fresh(*seq) => Some((*seq, values(f))),
            _ => None,
        });
        let found = match found {
            Some(hit) => Some(hit),
            None => loop {
                let Some((seq, ev)) = self.events.recv().await else { break None };
                let hit = match &ev {
                    RunEvent::Output(f) if &*f.op == op && fresh(seq) => Some((seq, values(f))),
                    _ => None,
                };
                self.backlog.push_back((seq, ev));
                if hit.is_some() {
                    break hit;
                }
            },
        };
        let (seq, values) = found?;
        self.waited.insert(op.to_string(), seq);
        Some(values)
    }

    /// Stop the run (`reason` ends up in the outcome's `stopped`).
    pub fn cancel(&self, reason: impl Into<String>) {
        self.stop.cancel(reason);
    }

    /// Wait for the end and return the grouped result.
    pub async fn result(mut self) -> Result<RunOutcome, Error> {
        while self.next().await.is_some() {}
        match self.task.take() {
            Some(task) => task.await.map_err(|e| Error::Resume(format!("the run's task failed: {e}")))?,
            None => Err(Error::Resume("the run was already collected".into())),
        }
    }

    /// Wait for the end and return every output frame in order, each as
    /// `{"op": ..., "values": {...}}` (the flat form of the result).
    pub async fn collect_flat(mut self) -> Result<Vec<Value>, Error> {
        while self.next().await.is_some() {}
        if let Some(task) = self.task.take() {
            task.await.map_err(|e| Error::Resume(format!("the run's task failed: {e}")))??;
        }
        Ok(std::mem::take(&mut self.frames)
            .into_iter()
            .map(|f| {
                let values: Map<String, Value> = f.values.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                serde_json::json!({"op": &*f.op, "values": values})
            })
            .collect())
    }
}
