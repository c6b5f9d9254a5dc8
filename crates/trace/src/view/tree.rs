//! `trace show`: the run as a tree of spans.

use operonx_runtime::{EventKind, TraceEvent};
use serde_json::Value;

use super::header;
use super::spans::{Node, NodeKind, SpanTree};
use super::style::{Paint, cost, duration, one_line, preview, rpad, thousands};
use crate::run_meta;
use crate::summary::RunSummary;

/// Nesting deeper than this is cut (a guard against malformed traces).
const MAX_DEPTH: usize = 64;

/// One output line: a span with its columns, or a note under a span.
enum Line {
    Span { head: String, head_width: usize, status: String, status_width: usize, took: String, extra: String },
    Note(String),
}

struct Render<'t, 'a> {
    tree: &'t SpanTree<'a>,
    p: Paint,
    lines: Vec<Line>,
    done: Vec<bool>,
}

/// The run's spans as a tree: nested graphs, loop iterations (groups) and generator items
/// (labelled with their item context, e.g. `[2]`) under the span that created them, each
/// with its status, duration, yields, tokens and cost, and error message. The tree comes
/// from `span_id`/`parent_span_id` alone. Events of one run are expected (the first
/// event's run is summarised in the header).
pub fn render_tree(events: &[TraceEvent], color: bool) -> String {
    let p = Paint::new(color);
    let Some(summary) = RunSummary::from_events(events) else { return "no events\n".to_string() };
    let mut out = header(&summary, p);
    for e in events.iter().filter(|e| e.op_name.is_none() && !run_meta::is_run_meta(e)) {
        if e.kind == EventKind::Annotation && !e.payload.contains_key("span_id") {
            out.push_str(&p.dim(&format!("· {}", note_text(e))));
            out.push('\n');
        }
    }
    let tree = SpanTree::build(events);
    let mut r = Render { tree: &tree, p, lines: Vec::new(), done: vec![false; tree.nodes.len()] };
    let roots = &tree.roots;
    for (k, &i) in roots.iter().enumerate() {
        r.node(i, "", k + 1 == roots.len(), 0);
    }
    let head_w = r.lines.iter().map(|l| if let Line::Span { head_width, .. } = l { *head_width } else { 0 }).max();
    let status_w =
        r.lines.iter().map(|l| if let Line::Span { status_width, .. } = l { *status_width } else { 0 }).max();
    let (head_w, status_w) = (head_w.unwrap_or(0).min(72), status_w.unwrap_or(0));
    for line in r.lines {
        let text = match line {
            Line::Span { head, head_width, status, status_width, took, extra } => {
                let gap = " ".repeat(head_w.saturating_sub(head_width) + 2);
                let sgap = " ".repeat(status_w.saturating_sub(status_width) + 2);
                format!("{head}{gap}{status}{sgap}{}  {extra}", rpad(&took, 8))
            }
            Line::Note(text) => text,
        };
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

impl Render<'_, '_> {
    fn node(&mut self, i: usize, prefix: &str, last: bool, depth: usize) {
        let p = self.p;
        let branch = if last { "└─ " } else { "├─ " };
        let child_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
        if std::mem::replace(&mut self.done[i], true) || depth > MAX_DEPTH {
            self.lines.push(Line::Note(format!("{prefix}{branch}{}", p.dim("…"))));
            return;
        }
        let tree = self.tree;
        let n = &tree.nodes[i];
        let item = self.item_label(n);
        let name = match n.kind {
            NodeKind::Op => p.bold(&n.name),
            NodeKind::Group => p.cyan(&n.name),
        };
        let item_painted = if item.is_empty() { String::new() } else { format!("{} ", p.magenta(&item)) };
        let head = format!("{}{}{item_painted}{name}", p.dim(prefix), p.dim(branch));
        let head_width =
            prefix.chars().count() + 3 + item.chars().count() + usize::from(!item.is_empty()) + n.name.chars().count();
        let status = status_of(n);
        let took = took_of(n).map(duration).unwrap_or_default();
        let mut extra = Vec::new();
        if let Some(y) = yields_of(n) {
            extra.push(format!("{y} {}", if y == 1 { "yield" } else { "yields" }));
        }
        if n.tokens > 0 || n.cost > 0.0 {
            let mut usage = n.models.join(",");
            if n.tokens > 0 {
                usage.push_str(&format!(" {} tok", thousands(n.tokens)));
            }
            if n.cost > 0.0 {
                usage.push_str(&format!(" {}", cost(n.cost)));
            }
            extra.push(p.blue(usage.trim_start()));
        }
        if let Some(err) = n.end.and_then(|e| e.payload.get("error")).and_then(Value::as_str) {
            extra.push(p.red(&format!("✗ {}", one_line(err, 120))));
        }
        if n.orphan {
            let parent = n.parent.as_deref().unwrap_or("?");
            extra.push(p.dim(&format!("(parent {parent} not in trace)")));
        }
        self.lines.push(Line::Span {
            head,
            head_width,
            status_width: status.chars().count(),
            status: p.status(&status, &status),
            took,
            extra: extra.join("  "),
        });
        let kids = &n.children;
        for note in &n.notes {
            let bar = if kids.is_empty() { "   " } else { "│  " };
            self.lines.push(Line::Note(p.dim(&format!("{child_prefix}{bar}· {}", note_text(note)))));
        }
        for (k, &c) in kids.iter().enumerate() {
            self.node(c, &child_prefix, k + 1 == kids.len(), depth + 1);
        }
    }

    /// The part of a span's context beyond its parent's: `[2]` for generator item 2 (the
    /// `__collect__` of a collect consumer's context left out).
    fn item_label(&self, n: &Node<'_>) -> String {
        let Some(parent) = n.parent.as_deref().and_then(|p| self.tree.find(p)) else { return String::new() };
        let base = self.tree.nodes[parent].ctx;
        if n.kind == NodeKind::Op && n.ctx.len() > base.len() && n.ctx.starts_with(base) {
            n.ctx[base.len()..].iter().filter(|s| *s != "__collect__").map(String::as_str).collect()
        } else {
            String::new()
        }
    }
}

fn status_of(n: &Node<'_>) -> String {
    match n.end {
        Some(e) => e.payload.get("status").and_then(Value::as_str).unwrap_or("ended").to_string(),
        None => "unfinished".to_string(),
    }
}

fn took_of(n: &Node<'_>) -> Option<f64> {
    let end = n.end?;
    if let Some(ms) = end.payload.get("duration_ms").and_then(Value::as_f64) {
        return Some(ms);
    }
    let start = n.start?;
    (end.timestamp - start.timestamp).num_microseconds().map(|us| us as f64 / 1000.0)
}

/// Yields worth showing: those of generators (any `op_yield`, or a count other than 1).
fn yields_of(n: &Node<'_>) -> Option<u64> {
    let counted = n.end.and_then(|e| e.payload.get("yield_count")).and_then(Value::as_u64).unwrap_or(0);
    let y = counted.max(n.yields);
    (n.kind == NodeKind::Op && (n.yields > 0 || y > 1)).then_some(y)
}

/// `key = value` of an annotation, `media <mime> <size>` of a media reference.
pub(super) fn note_text(e: &TraceEvent) -> String {
    let p = &e.payload;
    match e.kind {
        EventKind::MediaRef => {
            let text = |k: &str| p.get(k).and_then(Value::as_str);
            let mime = text("mime").unwrap_or("?");
            let mut out = format!("media {mime}");
            if let Some(b) = p.get("size_bytes").and_then(Value::as_u64) {
                out.push_str(&format!(" {}", crate::media::human_size(b)));
            }
            if let Some(h) = text("handle") {
                out.push_str(&format!(" sha256:{}…", h.get(..12).unwrap_or(h)));
            }
            if let Some(at) = text("field_path") {
                out.push_str(&format!(" at {at}"));
            }
            if text("error").is_some() {
                out.push_str(" (not stored)");
            }
            out
        }
        _ => {
            let key = p.get("key").and_then(Value::as_str).unwrap_or("?");
            format!("{key} = {}", preview(p.get("value").unwrap_or(&Value::Null), 80))
        }
    }
}
