//! `group_by`: wrap runs of consecutive events that share a key in a group.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use operonx_runtime::{EventKind, TraceEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Processor;
use crate::run_meta::RunEnd;

/// What consecutive events must share to fall in one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKey {
    /// The op name (events bound to no op are not grouped).
    OpName,
    /// The first `n` elements of the context path, e.g. `2` groups the events of each
    /// generator item `["main", "[3]"]` (events with a shorter path are not grouped).
    CtxPrefix(usize),
}

impl GroupKey {
    fn label(&self) -> &'static str {
        match self {
            GroupKey::OpName => "op_name",
            GroupKey::CtxPrefix(_) => "ctx_prefix",
        }
    }
}

/// Emits `group_start` before the first of a run of consecutive events sharing a key and
/// `group_end` (status `ok`) after its last. An event without a key closes the open
/// group; existing group events pass through untouched. A group still open when the run's
/// trace is flushed in several batches stays open across them; at the end of the run it
/// is closed with status `ok`, or `truncated` if the pipeline shut down first.
///
/// Synthetic events carry `{"name": key, "group_by": "op_name"|"ctx_prefix"}` (plus
/// `status` on the end), no op name and no span ids; they take the timestamp and `seq` of
/// the event they precede or follow and sort next to it (their `event_id` is that event's
/// id with `-grp-start`/`-grp-end` appended).
#[derive(Debug)]
pub struct GroupBy {
    key: GroupKey,
    open: Mutex<HashMap<String, OpenGroup>>,
}

#[derive(Debug)]
struct OpenGroup {
    key: String,
    ctx: Vec<String>,
    last_id: String,
    last_at: DateTime<Utc>,
    last_seq: u64,
}

impl GroupBy {
    /// Group by `key`.
    pub fn new(key: GroupKey) -> Self {
        Self { key, open: Mutex::new(HashMap::new()) }
    }

    fn key_of(&self, e: &TraceEvent) -> Option<(String, Vec<String>)> {
        match &self.key {
            GroupKey::OpName => e.op_name.clone().map(|n| (n, e.ctx.clone())),
            GroupKey::CtxPrefix(n) => {
                let prefix = e.ctx.get(..*n).filter(|p| !p.is_empty())?;
                Some((prefix.join("/"), prefix.to_vec()))
            }
        }
    }

    fn marker(&self, kind: EventKind, g: &OpenGroup, anchor: (&str, &str, DateTime<Utc>, u64)) -> TraceEvent {
        let (request_id, event_id, at, seq) = anchor;
        let mut payload = BTreeMap::new();
        payload.insert("name".to_string(), Value::String(g.key.clone()));
        payload.insert("group_by".to_string(), Value::String(self.key.label().to_string()));
        let suffix = if kind == EventKind::GroupStart { "grp-start" } else { "grp-end" };
        TraceEvent {
            event_id: format!("{event_id}-{suffix}"),
            request_id: request_id.to_string(),
            kind,
            op_name: None,
            ctx: g.ctx.clone(),
            timestamp: at,
            seq,
            payload,
        }
    }

    fn close(&self, request_id: &str, g: &OpenGroup, status: &str) -> TraceEvent {
        let mut end = self.marker(EventKind::GroupEnd, g, (request_id, &g.last_id, g.last_at, g.last_seq));
        end.payload.insert("status".to_string(), Value::String(status.to_string()));
        end
    }
}

impl Processor for GroupBy {
    fn name(&self) -> &str {
        "group_by"
    }

    fn process(&self, events: Vec<TraceEvent>) -> Vec<TraceEvent> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::with_capacity(events.len() + 2);
        for e in events {
            if matches!(e.kind, EventKind::GroupStart | EventKind::GroupEnd) {
                out.push(e);
                continue;
            }
            let key = self.key_of(&e);
            let same = matches!((open.get(&e.request_id), &key), (Some(g), Some((k, _))) if g.key == *k);
            if !same {
                if let Some(g) = open.remove(&e.request_id) {
                    out.push(self.close(&e.request_id, &g, "ok"));
                }
                if let Some((k, ctx)) = key {
                    let g = OpenGroup { key: k, ctx, last_id: String::new(), last_at: e.timestamp, last_seq: e.seq };
                    out.push(self.marker(EventKind::GroupStart, &g, (&e.request_id, &e.event_id, e.timestamp, e.seq)));
                    open.insert(e.request_id.clone(), g);
                }
            }
            if let Some(g) = open.get_mut(&e.request_id) {
                g.last_id.clone_from(&e.event_id);
                g.last_at = e.timestamp;
                g.last_seq = e.seq;
            }
            out.push(e);
        }
        out
    }

    fn end_run(&self, request_id: &str, end: RunEnd) -> Vec<TraceEvent> {
        let g = self.open.lock().unwrap_or_else(PoisonError::into_inner).remove(request_id);
        let status = if end == RunEnd::Finished { "ok" } else { "truncated" };
        g.map(|g| self.close(request_id, &g, status)).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use operonx_runtime::EventKind::*;
    use serde_json::json;

    use super::*;
    use crate::processor::test_support::event;

    fn shape(events: &[TraceEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e.kind {
                GroupStart => format!("<{}", e.payload["name"].as_str().unwrap_or("?")),
                GroupEnd => format!("{}:{}>", e.payload["name"].as_str().unwrap_or("?"), e.payload["status"]),
                _ => e.seq.to_string(),
            })
            .collect()
    }

    #[test]
    fn groups_consecutive_events_by_ctx_prefix_across_batches() {
        let p = GroupBy::new(GroupKey::CtxPrefix(2));
        let first = p.process(vec![
            event(0, OpStart, Some("main.gen"), &["main"], json!({})),
            event(1, OpStart, Some("main.c"), &["main", "[0]"], json!({})),
            event(2, OpEnd, Some("main.c"), &["main", "[0]"], json!({})),
            event(3, OpStart, Some("main.c"), &["main", "[1]"], json!({})),
        ]);
        assert_eq!(shape(&first), ["0", "<main/[0]", "1", "2", "main/[0]:\"ok\">", "<main/[1]", "3"]);
        // The group of item 1 continues in the next batch, then the run ends.
        let second = p.process(vec![event(4, OpEnd, Some("main.c"), &["main", "[1]"], json!({}))]);
        assert_eq!(shape(&second), ["4"]);
        let end = p.end_run("r1", RunEnd::Finished);
        assert_eq!(shape(&end), ["main/[1]:\"ok\">"]);
        assert_eq!(end[0].seq, 4);
        assert_eq!(end[0].event_id, "r1-4-grp-end");
        assert_eq!(end[0].ctx, ["main", "[1]"]);
        assert!(p.end_run("r1", RunEnd::Finished).is_empty());
    }

    #[test]
    fn groups_by_op_name_and_truncates_at_shutdown() {
        let p = GroupBy::new(GroupKey::OpName);
        let out = p.process(vec![
            event(0, OpStart, Some("main.a"), &["main"], json!({})),
            event(1, OpEnd, Some("main.a"), &["main"], json!({})),
            event(2, Annotation, None, &[], json!({})),
            event(3, OpStart, Some("main.b"), &["main"], json!({})),
        ]);
        assert_eq!(shape(&out), ["<main.a", "0", "1", "main.a:\"ok\">", "2", "<main.b", "3"]);
        let start = &out[0];
        assert_eq!((start.seq, start.op_name.as_deref(), start.event_id.as_str()), (0, None, "r1-0-grp-start"));
        assert_eq!(shape(&p.end_run("r1", RunEnd::Truncated)), ["main.b:\"truncated\">"]);
    }
}
