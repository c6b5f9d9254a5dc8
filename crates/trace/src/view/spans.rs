//! The span tree of a trace, rebuilt exactly from `span_id`/`parent_span_id` (never
//! guessed from context paths).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use operonx_runtime::{EventKind, TraceEvent};
use serde_json::Value;

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// One op call.
    Op,
    /// A group (a loop iteration).
    Group,
}

/// One span and what the trace says about it.
#[derive(Debug)]
pub(crate) struct Node<'a> {
    pub(crate) kind: NodeKind,
    pub(crate) name: String,
    pub(crate) parent: Option<String>,
    pub(crate) ctx: &'a [String],
    /// `(timestamp, seq)` of its first event: the order among siblings.
    pub(crate) key: (DateTime<Utc>, u64),
    pub(crate) start: Option<&'a TraceEvent>,
    pub(crate) end: Option<&'a TraceEvent>,
    /// `op_yield` events seen.
    pub(crate) yields: u64,
    pub(crate) tokens: u64,
    pub(crate) cost: f64,
    pub(crate) models: Vec<String>,
    /// Annotations and media references bound to this span.
    pub(crate) notes: Vec<&'a TraceEvent>,
    pub(crate) children: Vec<usize>,
    /// Its parent span is named but not in the trace.
    pub(crate) orphan: bool,
}

/// All spans of a trace, linked.
#[derive(Debug, Default)]
pub(crate) struct SpanTree<'a> {
    pub(crate) nodes: Vec<Node<'a>>,
    pub(crate) roots: Vec<usize>,
    index: HashMap<String, usize>,
}

fn str_field<'a>(e: &'a TraceEvent, key: &str) -> Option<&'a str> {
    e.payload.get(key).and_then(Value::as_str)
}

/// `events` sorted by `(timestamp, seq)`, stable for ties.
pub(crate) fn sorted(events: &[TraceEvent]) -> Vec<&TraceEvent> {
    let mut v: Vec<&TraceEvent> = events.iter().collect();
    v.sort_by_key(|e| e.sort_key());
    v
}

impl<'a> SpanTree<'a> {
    /// Link the spans of `events` (given in any order).
    pub(crate) fn build(events: &'a [TraceEvent]) -> Self {
        let mut t = SpanTree::default();
        // Ops traced without span ids: (op name, ctx) -> the latest such node still open.
        let mut loose: HashMap<(&str, &[String]), usize> = HashMap::new();
        // Media references come just before the event that holds them (an op's start):
        // those whose span is not known yet are attached at the end.
        let mut later: Vec<&'a TraceEvent> = Vec::new();
        for e in sorted(events) {
            match e.kind {
                EventKind::OpStart | EventKind::OpEnd | EventKind::GroupStart | EventKind::GroupEnd => {
                    let group = matches!(e.kind, EventKind::GroupStart | EventKind::GroupEnd);
                    let i = match str_field(e, "span_id") {
                        Some(id) => t.node(id, e, group),
                        // Synthetic groups (the group_by processor) have no span: not in the tree.
                        None if group => continue,
                        None => {
                            let key = (e.op_name.as_deref().unwrap_or(""), e.ctx.as_slice());
                            match (e.kind, loose.get(&key)) {
                                (EventKind::OpEnd, Some(&i)) => i,
                                _ => {
                                    let i = t.node(&format!("~{}", e.event_id), e, false);
                                    loose.insert(key, i);
                                    i
                                }
                            }
                        }
                    };
                    let n = &mut t.nodes[i];
                    if let Some(p) = str_field(e, "parent_span_id") {
                        n.parent = Some(p.to_string());
                    }
                    if matches!(e.kind, EventKind::OpStart | EventKind::GroupStart) {
                        n.start = Some(e);
                    } else {
                        n.end = Some(e);
                    }
                }
                EventKind::OpYield => {
                    if let Some(i) = t.owner(e, &loose) {
                        t.nodes[i].yields += 1;
                    }
                }
                EventKind::LlmUsage => {
                    if let Some(i) = t.owner(e, &loose) {
                        let n = &mut t.nodes[i];
                        let p = &e.payload;
                        let get = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0);
                        let total = get("total_tokens");
                        n.tokens += if total > 0 { total } else { get("prompt_tokens") + get("completion_tokens") };
                        n.cost += p.get("cost_usd").and_then(Value::as_f64).unwrap_or(0.0);
                        if let Some(m) = str_field(e, "model")
                            && !n.models.iter().any(|x| x == m)
                        {
                            n.models.push(m.to_string());
                        }
                    }
                }
                EventKind::Annotation | EventKind::MediaRef => match t.owner(e, &loose) {
                    Some(i) => t.nodes[i].notes.push(e),
                    None if e.kind == EventKind::MediaRef => later.push(e),
                    None => {}
                },
            }
        }
        // They came before the span's other notes.
        let mut early: HashMap<usize, Vec<&'a TraceEvent>> = HashMap::new();
        for e in later {
            if let Some(i) = t.owner(e, &loose) {
                early.entry(i).or_default().push(e);
            }
        }
        for (i, notes) in early {
            t.nodes[i].notes.splice(0..0, notes);
        }
        t.link();
        t
    }

    /// The node of span `id`, created from `e` if new.
    fn node(&mut self, id: &str, e: &'a TraceEvent, group: bool) -> usize {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let name = if group {
            str_field(e, "name").unwrap_or("group").to_string()
        } else {
            e.op_name.clone().unwrap_or_else(|| "?".to_string())
        };
        self.nodes.push(Node {
            kind: if group { NodeKind::Group } else { NodeKind::Op },
            name,
            parent: None,
            ctx: &e.ctx,
            key: e.sort_key(),
            start: None,
            end: None,
            yields: 0,
            tokens: 0,
            cost: 0.0,
            models: Vec::new(),
            notes: Vec::new(),
            children: Vec::new(),
            orphan: false,
        });
        self.index.insert(id.to_string(), self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    /// The span an event bound to an op belongs to: its `span_id`, else the open
    /// span-less op of the same name and context. Run-level events have none.
    fn owner(&self, e: &TraceEvent, loose: &HashMap<(&str, &[String]), usize>) -> Option<usize> {
        match str_field(e, "span_id") {
            Some(id) => self.index.get(id).copied(),
            None => loose.get(&(e.op_name.as_deref()?, e.ctx.as_slice())).copied(),
        }
    }

    /// Attach children to parents; spans whose parent is missing, or that only a cycle
    /// of parent links would reach, become roots.
    fn link(&mut self) {
        for i in 0..self.nodes.len() {
            let parent = self.nodes[i].parent.as_ref().map(|p| self.index.get(p).copied());
            match parent {
                Some(Some(p)) if p != i => self.nodes[p].children.push(i),
                Some(_) => {
                    self.nodes[i].orphan = true;
                    self.roots.push(i);
                }
                None => self.roots.push(i),
            }
        }
        let mut seen = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = self.roots.clone();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut seen[i], true) {
                stack.extend(self.nodes[i].children.iter().copied());
            }
        }
        for (i, reached) in seen.iter().enumerate() {
            if !reached {
                // Part of a parent cycle: show it at the top rather than lose it.
                if let Some(p) = self.nodes[i].parent.as_ref().and_then(|p| self.index.get(p).copied()) {
                    self.nodes[p].children.retain(|&c| c != i);
                }
                self.nodes[i].orphan = true;
                self.roots.push(i);
            }
        }
        let keys: Vec<(DateTime<Utc>, u64)> = self.nodes.iter().map(|n| n.key).collect();
        self.roots.sort_by_key(|&i| keys[i]);
        for n in &mut self.nodes {
            n.children.sort_by_key(|&i| keys[i]);
        }
    }

    /// The node index of span `id`.
    pub(crate) fn find(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// How many ancestors node `i` has.
    pub(crate) fn depth(&self, i: usize) -> usize {
        let mut depth = 0;
        let mut cur = i;
        while let Some(p) = self.nodes[cur].parent.as_ref().and_then(|p| self.index.get(p).copied()) {
            if self.nodes[cur].orphan || depth > self.nodes.len() {
                break;
            }
            depth += 1;
            cur = p;
        }
        depth
    }

    /// The span of an event, for indentation: its own for ops and groups, its owner's
    /// for the rest.
    pub(crate) fn span_of(&self, e: &TraceEvent) -> Option<usize> {
        str_field(e, "span_id").and_then(|id| self.find(id))
    }
}
