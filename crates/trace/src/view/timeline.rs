//! `trace show --timeline`: every event in order, with its offset from the run's start.

use chrono::{DateTime, Utc};
use operonx_runtime::{EventKind, TraceEvent};
use serde_json::Value;

use super::header;
use super::spans::{SpanTree, sorted};
use super::style::{Paint, cost, duration, one_line, pad, preview, rpad, thousands};
use super::tree::note_text;
use crate::summary::RunSummary;

/// Every event in `(timestamp, seq)` order (ties keep their given order), one per line:
/// the offset from the run's first event, the kind, the op or group (indented by span
/// depth) and what the event says. Several runs are shown one after the other.
pub fn render_timeline(events: &[TraceEvent], color: bool) -> String {
    let p = Paint::new(color);
    if events.is_empty() {
        return "no events\n".to_string();
    }
    let mut runs: Vec<&str> = Vec::new();
    for e in events {
        if !runs.contains(&e.request_id.as_str()) {
            runs.push(&e.request_id);
        }
    }
    let mut out = String::new();
    for (k, id) in runs.iter().enumerate() {
        let mine: Vec<TraceEvent> = events.iter().filter(|e| e.request_id == *id).cloned().collect();
        if k > 0 {
            out.push('\n');
        }
        out.push_str(&run_timeline(&mine, p));
    }
    out
}

fn run_timeline(events: &[TraceEvent], p: Paint) -> String {
    let Some(summary) = RunSummary::from_events(events) else { return String::new() };
    let mut out = header(&summary, p);
    let tree = SpanTree::build(events);
    let order = sorted(events);
    let Some(t0) = order.first().map(|e| e.timestamp) else { return out };
    let rows: Vec<(String, &TraceEvent, String, String)> = order
        .iter()
        .map(|e| {
            let depth = tree.span_of(e).map_or(0, |i| tree.depth(i) + usize::from(is_inner(e)));
            let label = format!("{}{}", "  ".repeat(depth.min(32)), label_of(e));
            (offset(t0, e.timestamp), *e, label, detail(e, p))
        })
        .collect();
    let off_w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let label_w = rows.iter().map(|r| r.2.chars().count()).max().unwrap_or(0).min(60);
    for (off, e, label, detail) in rows {
        let kind = pad(e.kind.as_str(), 11);
        let kind = match e.kind {
            EventKind::OpStart | EventKind::OpEnd => p.bold(&kind),
            EventKind::GroupStart | EventKind::GroupEnd => p.cyan(&kind),
            EventKind::LlmUsage => p.blue(&kind),
            EventKind::OpYield => p.magenta(&kind),
            EventKind::Annotation | EventKind::MediaRef => p.dim(&kind),
        };
        let line = format!("{}  {kind}  {}  {detail}", p.dim(&rpad(&off, off_w)), pad(&label, label_w));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Events that belong inside a span rather than opening or closing it.
fn is_inner(e: &TraceEvent) -> bool {
    matches!(e.kind, EventKind::OpYield | EventKind::LlmUsage | EventKind::Annotation | EventKind::MediaRef)
}

/// `+12.345ms`, `+1.234s`.
fn offset(t0: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let ms = (t - t0).num_microseconds().map_or(f64::NAN, |us| us as f64 / 1000.0);
    if ms.abs() < 1000.0 { format!("+{ms:.3}ms") } else { format!("+{:.3}s", ms / 1000.0) }
}

fn label_of(e: &TraceEvent) -> String {
    match (e.kind, e.op_name.as_deref()) {
        (EventKind::GroupStart | EventKind::GroupEnd, _) => {
            e.payload.get("name").and_then(Value::as_str).unwrap_or("group").to_string()
        }
        (_, Some(op)) => op.to_string(),
        (_, None) => "run".to_string(),
    }
}

fn ctx_text(e: &TraceEvent) -> String {
    if e.ctx.is_empty() { String::new() } else { format!("@{}", e.ctx.join("/")) }
}

fn detail(e: &TraceEvent, p: Paint) -> String {
    let pl = &e.payload;
    let get = |k: &str| pl.get(k).unwrap_or(&Value::Null);
    let ctx = p.dim(&ctx_text(e));
    match e.kind {
        EventKind::OpStart => format!("{ctx}  inputs {}", preview(get("inputs"), 80)),
        EventKind::OpEnd => {
            let status = get("status").as_str().unwrap_or("?");
            let mut parts = vec![p.status(status, status)];
            if let Some(ms) = get("duration_ms").as_f64() {
                parts.push(duration(ms));
            }
            if let Some(y) = get("yield_count").as_u64().filter(|y| *y != 1) {
                parts.push(format!("{y} yields"));
            }
            match get("error").as_str() {
                Some(err) => parts.push(p.red(&one_line(err, 100))),
                None => parts.push(format!("outputs {}", preview(get("outputs"), 80))),
            }
            parts.join("  ")
        }
        EventKind::OpYield => format!("#{} {ctx}  {}", get("idx"), preview(get("yielded"), 80)),
        EventKind::GroupStart => ctx,
        EventKind::GroupEnd => {
            let status = get("status").as_str().unwrap_or("?");
            let took = get("duration_ms").as_f64().map(duration).unwrap_or_default();
            format!("{}  {took}", p.status(status, status))
        }
        EventKind::LlmUsage => {
            let tokens = get("total_tokens").as_u64().unwrap_or(0);
            let model = get("model").as_str().unwrap_or("?");
            format!("{model}  {} tok  {}", thousands(tokens), cost(get("cost_usd").as_f64().unwrap_or(0.0)))
        }
        EventKind::Annotation | EventKind::MediaRef => note_text(e),
    }
}
