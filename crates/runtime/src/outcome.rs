//! The result of a finished run: grouped outputs plus the failures.

use serde_json::{Map, Value};

use crate::run_event::{OpFailure, RunEvent};

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

impl RunOutcome {
    /// The result as [`RunOutcome::to_json`] makes it, serialized straight from the
    /// outcome (no copy of the outputs is made to print them).
    pub fn json_view(&self) -> JsonView<'_> {
        JsonView(self)
    }
}

/// See [`RunOutcome::json_view`].
#[derive(Debug, Clone, Copy)]
pub struct JsonView<'a>(&'a RunOutcome);

impl serde::Serialize for JsonView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let o = self.0;
        // The same keys, in the same order, as `to_json` (which inserts into the outputs).
        let extra = |k: &str| {
            matches!(k, "$errors") && !o.failures.is_empty()
                || matches!(k, "$interrupts") && !o.interrupts.is_empty()
                || matches!(k, "$stopped") && o.stopped.is_some()
        };
        let mut m = s.serialize_map(None)?;
        for (k, v) in &o.outputs {
            match k.as_str() {
                "$errors" if extra(k) => m.serialize_entry(k, &Errors(o))?,
                "$interrupts" if extra(k) => m.serialize_entry(k, &Awaited(o))?,
                "$stopped" if extra(k) => m.serialize_entry(k, &o.stopped)?,
                _ => m.serialize_entry(k, v)?,
            }
        }
        if !o.failures.is_empty() && !o.outputs.contains_key("$errors") {
            m.serialize_entry("$errors", &Errors(o))?;
        }
        if !o.interrupts.is_empty() && !o.outputs.contains_key("$interrupts") {
            m.serialize_entry("$interrupts", &Awaited(o))?;
        }
        if let Some(reason) = &o.stopped
            && !o.outputs.contains_key("$stopped")
        {
            m.serialize_entry("$stopped", reason)?;
        }
        m.end()
    }
}

/// `"$errors"`: op → message, the last failure of an op winning (as in a JSON object).
struct Errors<'a>(&'a RunOutcome);

impl serde::Serialize for Errors<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let errs: Map<String, Value> =
            self.0.failures.iter().map(|f| (f.op.to_string(), Value::String(f.message.clone()))).collect();
        serde::Serialize::serialize(&errs, s)
    }
}

/// `"$interrupts"`: interrupt id → what it asked.
struct Awaited<'a>(&'a RunOutcome);

impl serde::Serialize for Awaited<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut keys: Map<String, Value> = Map::new();
        for i in &self.0.interrupts {
            keys.insert(i.id.clone(), Value::Null);
        }
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(keys.len()))?;
        for k in keys.keys() {
            // The last interrupt of an id wins, as when inserted into an object.
            if let Some(i) = self.0.interrupts.iter().rev().find(|i| &i.id == k) {
                m.serialize_entry(k, &i.payload)?;
            }
        }
        m.end()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::interrupt::Interrupt;
    use crate::run_event::OpFailure;

    fn failure(op: &str, message: &str) -> OpFailure {
        OpFailure { op: op.into(), context: "main".into(), message: message.into() }
    }

    #[test]
    fn the_json_view_prints_exactly_what_to_json_makes() {
        let ask = |id: &str, q: &str| Interrupt { id: id.into(), op: "main.a".into(), payload: json!(q) };
        let mut cases = vec![RunOutcome::default()];
        let mut full = RunOutcome {
            failures: vec![failure("main.x", "one"), failure("main.y", "two"), failure("main.x", "three")],
            stopped: Some("timed out".into()),
            interrupts: vec![ask("main.a", "first?"), ask("main.b", "second?"), ask("main.a", "again?")],
            ..RunOutcome::default()
        };
        full.outputs.insert("z".into(), json!([1, {"k": "v"}]));
        full.outputs.insert("a".into(), json!(null));
        cases.push(full.clone());
        // Outputs named like the extra keys: `to_json` overwrites them in place.
        full.outputs.insert("$errors".into(), json!("mine"));
        full.outputs.insert("$stopped".into(), json!(1));
        cases.push(full.clone());
        full.failures.clear();
        full.stopped = None;
        cases.push(full);
        for o in cases {
            let direct = serde_json::to_string(&o.json_view()).unwrap();
            assert_eq!(direct, serde_json::to_string(&o.to_json()).unwrap());
            let pretty = serde_json::to_string_pretty(&o.json_view()).unwrap();
            assert_eq!(pretty, serde_json::to_string_pretty(&o.to_json()).unwrap());
        }
    }
}
