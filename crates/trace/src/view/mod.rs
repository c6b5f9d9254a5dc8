//! Viewing traces: pure functions from runs and events to text (the CLI prints them).
//! Colour is used only when asked for (the CLI asks when stdout is a terminal).

mod list;
mod spans;
mod style;
mod timeline;
mod tree;

use operonx_runtime::TraceEvent;

pub use self::list::render_list;
use self::style::{Paint, cost, duration, thousands};
pub use self::timeline::render_timeline;
pub use self::tree::render_tree;
use crate::summary::RunSummary;

/// The events as a pretty-printed JSON array, each in the wire format.
pub fn render_json(events: &[TraceEvent]) -> Result<String, serde_json::Error> {
    let mut s = serde_json::to_string_pretty(events)?;
    s.push('\n');
    Ok(s)
}

/// The first lines of a tree or timeline: the run, its graph and its totals.
fn header(s: &RunSummary, p: Paint) -> String {
    let mut parts = vec![format!("run {}", p.bold(&s.request_id))];
    if let Some(g) = &s.graph {
        parts.push(format!("graph {}", p.bold(g)));
    }
    parts.push(p.status(s.status.as_str(), s.status.as_str()));
    if let Some(ms) = s.duration_ms {
        parts.push(duration(ms));
    }
    parts.push(format!("{} ops", s.op_count));
    let errors = format!("{} errors", s.error_count);
    parts.push(if s.error_count > 0 { p.red(&errors) } else { errors });
    if s.tokens > 0 {
        parts.push(format!("{} tokens", thousands(s.tokens)));
    }
    if s.cost_usd > 0.0 {
        parts.push(cost(s.cost_usd));
    }
    let mut out = parts.join(&p.dim(" · "));
    out.push('\n');
    if s.dropped_events > 0 {
        let warning = format!("! {} events dropped (trace buffer full)", s.dropped_events);
        out.push_str(&p.yellow(&warning));
        out.push('\n');
    }
    out
}
