//! `trace list`: one line per run.

use std::collections::HashSet;

use super::style::{Paint, cost, duration, pad, rpad, thousands};
use crate::summary::RunSummary;

/// Ids are shown as their shortest prefix (at least this long) unique in the list.
const MIN_ID_CHARS: usize = 8;

/// A table of runs: id (shortest unique prefix), start time (UTC), graph, status,
/// duration, ops, errors, tokens, cost.
pub fn render_list(runs: &[RunSummary], color: bool) -> String {
    if runs.is_empty() {
        return "no runs recorded yet\n".to_string();
    }
    let p = Paint::new(color);
    let id_len = unique_prefix_len(runs.iter().map(|r| r.request_id.as_str()));
    let header = ["ID", "STARTED", "GRAPH", "STATUS", "DURATION", "OPS", "ERRORS", "TOKENS", "COST"];
    let right = [false, false, false, false, true, true, true, true, true];
    let rows: Vec<[String; 9]> = runs
        .iter()
        .map(|r| {
            [
                r.request_id.chars().take(id_len).collect(),
                r.started_at.map_or_else(|| "-".to_string(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
                r.graph.clone().unwrap_or_else(|| "-".to_string()),
                r.status.as_str().to_string(),
                r.duration_ms.map_or_else(|| "-".to_string(), duration),
                r.op_count.to_string(),
                r.error_count.to_string(),
                if r.tokens > 0 { thousands(r.tokens) } else { "-".to_string() },
                cost(r.cost_usd),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let align = |i: usize, text: &str| if right[i] { rpad(text, widths[i]) } else { pad(text, widths[i]) };
    let mut out = String::new();
    let head: Vec<String> = header.iter().enumerate().map(|(i, h)| align(i, h)).collect();
    out.push_str(&p.bold(head.join("  ").trim_end()));
    out.push('\n');
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let text = align(i, cell);
                match i {
                    0 => p.dim(&text),
                    3 => p.status(cell, &text),
                    6 if cell != "0" => p.red(&text),
                    _ => text,
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The shortest prefix length (at least [`MIN_ID_CHARS`]) that tells the ids apart.
fn unique_prefix_len<'a>(ids: impl Iterator<Item = &'a str> + Clone) -> usize {
    let longest = ids.clone().map(|id| id.chars().count()).max().unwrap_or(0);
    (MIN_ID_CHARS..longest)
        .find(|&n| {
            let mut seen = HashSet::new();
            ids.clone().all(|id| seen.insert(id.chars().take(n).collect::<String>()))
        })
        .unwrap_or(longest)
}

#[cfg(test)]
mod tests {
    use super::unique_prefix_len;

    #[test]
    fn prefixes_are_as_short_as_uniqueness_allows() {
        let ids = ["18a2b3c4d5e6f7a8aaaa", "18a2b3c4d5e6f7b9bbbb"];
        assert_eq!(unique_prefix_len(ids.iter().copied()), 15);
        assert_eq!(unique_prefix_len(["abcdefghijklmnop", "zzzzzzzzzzzzzz"].iter().copied()), 8);
        assert_eq!(unique_prefix_len(["r1", "r2"].iter().copied()), 2);
    }
}
