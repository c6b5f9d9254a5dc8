//! The result of a finished run: grouped outputs plus the failures.

use serde_json::{Map, Value};

use crate::event::{OpFailure, RunEvent};

/// A finished run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOutcome {
    /// Grouped outputs: a key emitted once holds its value, a key emitted several times
    /// holds the list of values in emission order; keys never emitted are absent.
    pub outputs: Map<String, Value>,
    /// Every op that failed, in the order they failed.
    pub failures: Vec<OpFailure>,
    /// The run's id, when the caller gave or asked for one.
    pub request_id: Option<String>,
    /// Why the run stopped early (cancelled, timed out, fail-fast); `None` when it finished.
    pub stopped: Option<String>,
    /// What the run awaits (ops that asked for input).
    pub interrupts: Vec<crate::interrupt::Interrupt>,
    /// For a resumable run that awaits input: what resuming it needs.
    pub state: Option<crate::interrupt::RunState>,
}

impl RunOutcome {
    /// Fold a run's events into an outcome.
    pub fn from_events(events: impl IntoIterator<Item = RunEvent>) -> Self {
        let mut grouper = Grouper::default();
        for ev in events {
            grouper.push(ev);
        }
        grouper.finish()
    }

    /// `true` when no op failed, none awaits input, and the run was not stopped.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty() && self.stopped.is_none() && self.interrupts.is_empty()
    }

    /// The result as JSON: the outputs, plus `"$errors": {op: message}` when ops failed.
    pub fn to_json(&self) -> Value {
        let mut m = self.outputs.clone();
        if !self.failures.is_empty() {
            let errs: Map<String, Value> =
                self.failures.iter().map(|f| (f.op.to_string(), Value::String(f.message.clone()))).collect();
            m.insert("$errors".into(), Value::Object(errs));
        }
        if !self.interrupts.is_empty() {
            let awaited: Map<String, Value> =
                self.interrupts.iter().map(|i| (i.id.clone(), i.payload.clone())).collect();
            m.insert("$interrupts".into(), Value::Object(awaited));
        }
        if let Some(reason) = &self.stopped {
            m.insert("$stopped".into(), Value::String(reason.clone()));
        }
        Value::Object(m)
    }
}

/// Incremental grouping of output events.
#[derive(Debug, Default)]
pub struct Grouper {
    values: Map<String, Value>,
    counts: Map<String, Value>,
    failures: Vec<OpFailure>,
    stopped: Option<String>,
    interrupts: Vec<crate::interrupt::Interrupt>,
}

impl Grouper {
    /// Account for one event.
    pub fn push(&mut self, ev: RunEvent) {
        match ev {
            RunEvent::Output(frame) => {
                for (k, v) in frame.values {
                    match self.values.get_mut(&*k) {
                        None => {
                            self.values.insert(k.to_string(), v);
                        }
                        Some(existing) => {
                            let many = self.counts.contains_key(&*k);
                            if many {
                                if let Value::Array(a) = existing {
                                    a.push(v);
                                }
                            } else {
                                let first = std::mem::take(existing);
                                *existing = Value::Array(vec![first, v]);
                                self.counts.insert(k.to_string(), Value::Bool(true));
                            }
                        }
                    }
                }
            }
            RunEvent::Failure(f) => self.failures.push(f),
            RunEvent::Stopped(reason) => self.stopped = Some(reason),
            RunEvent::Interrupted(i) => self.interrupts.push(i),
            RunEvent::Custom(_) => {}
        }
    }

    /// The grouped outcome.
    pub fn finish(self) -> RunOutcome {
        RunOutcome {
            outputs: self.values,
            failures: self.failures,
            request_id: None,
            stopped: self.stopped,
            interrupts: self.interrupts,
            state: None,
        }
    }
}
