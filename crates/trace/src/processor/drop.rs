//! `drop`: remove events by kind, by op name, or because they carry nothing.

use std::collections::HashSet;

use operonx_runtime::{EventKind, TraceEvent};
use serde_json::Value;

use super::{InPlace, Processor};
use crate::glob::Glob;
use crate::recorded::{EventView, RecordedEvent};

/// Removes events by kind, by op name pattern (full or short name, see
/// [`Glob::matches_op`]), by an allow-list of op names, or — with [`DropEvents::empty`] —
/// successful `op_end`/`op_yield` events whose outputs are empty or all null. Events of
/// failed or cancelled ops are never dropped as empty.
#[derive(Debug, Clone, Default)]
pub struct DropEvents {
    kinds: HashSet<EventKind>,
    ops: Vec<Glob>,
    keep_ops: Vec<Glob>,
    empty: bool,
}

impl DropEvents {
    /// A processor that drops nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also drop events of these kinds.
    #[must_use]
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = EventKind>) -> Self {
        self.kinds.extend(kinds);
        self
    }

    /// Also drop the events of ops matching any of these patterns.
    #[must_use]
    pub fn ops<'a>(mut self, patterns: impl IntoIterator<Item = &'a str>) -> Self {
        self.ops.extend(patterns.into_iter().map(Glob::new));
        self
    }

    /// Keep only the events of ops matching one of these patterns (plus events bound to
    /// no op). An empty list keeps every op.
    #[must_use]
    pub fn keep_ops<'a>(mut self, patterns: impl IntoIterator<Item = &'a str>) -> Self {
        self.keep_ops.extend(patterns.into_iter().map(Glob::new));
        self
    }

    /// Whether successful `op_end`/`op_yield` events with empty outputs are dropped.
    #[must_use]
    pub fn empty(mut self, on: bool) -> Self {
        self.empty = on;
        self
    }

    fn keeps_event<E: EventView + ?Sized>(&self, e: &E) -> bool {
        if self.kinds.contains(&e.kind()) {
            return false;
        }
        if let Some(op) = e.op_name() {
            if self.ops.iter().any(|g| g.matches_op(op)) {
                return false;
            }
            if !self.keep_ops.is_empty() && !self.keep_ops.iter().any(|g| g.matches_op(op)) {
                return false;
            }
        }
        !(self.empty && is_empty_result(e))
    }
}

/// A successful `op_end` or an `op_yield` whose data is missing, empty, or all null.
fn is_empty_result<E: EventView + ?Sized>(e: &E) -> bool {
    let data = match e.kind() {
        EventKind::OpEnd => {
            if e.payload_value("status").is_some_and(|s| s.as_str().is_some_and(|s| s != "ok")) {
                return false;
            }
            e.payload_value("outputs")
        }
        EventKind::OpYield => e.payload_value("yielded"),
        _ => return false,
    };
    match data.as_deref() {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.values().all(Value::is_null),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    }
}

impl Processor for DropEvents {
    fn name(&self) -> &str {
        "drop"
    }

    fn process(&self, mut events: Vec<TraceEvent>) -> Vec<TraceEvent> {
        events.retain(|e| self.keeps_event(e));
        events
    }

    fn in_place(&self) -> Option<&dyn InPlace> {
        Some(self)
    }
}

impl InPlace for DropEvents {
    fn keeps(&self, event: &RecordedEvent) -> bool {
        self.keeps_event(event)
    }
}

#[cfg(test)]
mod tests {
    use operonx_runtime::EventKind::*;
    use serde_json::json;

    use super::*;
    use crate::processor::test_support::event;

    fn sample() -> Vec<TraceEvent> {
        vec![
            event(0, OpStart, Some("main.load"), &["main"], json!({"inputs": {}})),
            event(1, OpEnd, Some("main.load"), &["main"], json!({"status": "ok", "outputs": {"a": null}})),
            event(2, OpYield, Some("main.gen"), &["main", "[0]"], json!({"yielded": {"x": 1}, "idx": 0})),
            event(3, OpEnd, Some("main.gen"), &["main"], json!({"status": "ok", "outputs": {"x": 1}})),
            event(4, OpEnd, Some("main.bad"), &["main"], json!({"status": "error", "outputs": {}, "error": "boom"})),
            event(5, Annotation, None, &[], json!({"key": "k", "value": 1})),
            event(6, OpEnd, Some("sub.debug_dump"), &["main"], json!({"status": "ok", "outputs": {}})),
        ]
    }

    fn seqs(p: &DropEvents) -> Vec<u64> {
        p.process(sample()).iter().map(|e| e.seq).collect()
    }

    #[test]
    fn drops_by_kind() {
        assert_eq!(seqs(&DropEvents::new().kinds([OpYield, Annotation])), [0, 1, 3, 4, 6]);
    }

    #[test]
    fn drops_by_op_glob_on_full_or_short_name() {
        assert_eq!(seqs(&DropEvents::new().ops(["debug_*"])), [0, 1, 2, 3, 4, 5]);
        assert_eq!(seqs(&DropEvents::new().ops(["main.*"])), [5, 6]);
    }

    #[test]
    fn keep_ops_keeps_listed_ops_and_unbound_events() {
        assert_eq!(seqs(&DropEvents::new().keep_ops(["gen"])), [2, 3, 5]);
    }

    #[test]
    fn drops_empty_successful_results_only() {
        // seq 1: all-null outputs; seq 6: empty outputs; seq 4 is empty but failed.
        assert_eq!(seqs(&DropEvents::new().empty(true)), [0, 2, 3, 4, 5]);
        assert_eq!(seqs(&DropEvents::new()), [0, 1, 2, 3, 4, 5, 6]);
    }
}
