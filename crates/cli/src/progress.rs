//! The live progress line of `operonx run` and `operonx resume`: one line on stderr,
//! redrawn a few times a second while the run goes, when stderr is a terminal and
//! `--quiet` is not given.
//!
//! Where the numbers come from: a [`TraceSink`] wrapped around the run's trace pipeline
//! (or standing alone with `--no-trace-store`) counts the events it passes on — `op_start`,
//! `op_end` with its `status`, `op_yield`, and `llm_usage` with `total_tokens` and
//! `cost_usd` — in atomic counters. The trace sees every op of the run, nested ones too,
//! and the counting is a few relaxed atomic adds per event on the scheduler's task. The
//! other source, the observer's `RunEvent` frames, would have to be switched on for every
//! run shown on a terminal (`RunOptions::frames`), changing what `--stream` prints and
//! costing a frame per op for a line that only needs counts.
//!
//! The line itself is an `indicatif` spinner: its own ticker thread redraws it, reading
//! the counters, so the run's tasks never draw. It is cleared (not left behind) when the
//! run ends, before the result and any error lines are printed.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use operonx::TraceSink;
use operonx_trace::counting::{Counters, CountingSink, Counts};

/// How often the line is redrawn.
const TICK: Duration = Duration::from_millis(200);

/// The counts as the line shows them, after `elapsed` (short: under 80 columns for the
/// small numbers of most runs, so it rarely wraps).
fn write_line(counts: &Counts, elapsed: Duration, out: &mut dyn std::fmt::Write) -> std::fmt::Result {
    write!(
        out,
        "{:.1}s · ops {} done {} running {} failed · items {} · LLM {} calls {} tok ${:.4}",
        elapsed.as_secs_f64(),
        counts.done,
        counts.running(),
        counts.failed,
        counts.items,
        counts.llm_calls,
        counts.tokens,
        counts.cost_usd(),
    )
}

/// The progress line of one run; `Progress::off()` shows nothing. Dropping it clears
/// the line.
pub(crate) struct Progress {
    /// The spinner and its counters, when the line is shown.
    shown: Option<(ProgressBar, Arc<Counters>)>,
}

impl Progress {
    /// The line for a run, shown when stderr is a terminal and not `quiet`.
    pub(crate) fn new(quiet: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return Self::off();
        }
        let counters = Arc::new(Counters::default());
        let line = counters.clone();
        let tracker = move |state: &ProgressState, out: &mut dyn std::fmt::Write| {
            // A failed write only garbles this one redraw.
            let _ = write_line(&line.snapshot(), state.elapsed(), out);
        };
        let Ok(style) = ProgressStyle::with_template("{spinner} {counts}") else {
            return Self::off();
        };
        let bar = ProgressBar::new_spinner();
        bar.set_style(style.with_key("counts", tracker));
        bar.enable_steady_tick(TICK);
        Self { shown: Some((bar, counters)) }
    }

    /// No line.
    pub(crate) fn off() -> Self {
        Self { shown: None }
    }

    /// The run's trace sink: `sink` itself when no line is shown, else `sink` (or
    /// nothing) behind a [`CountingSink`] feeding the line.
    pub(crate) fn sink(&self, sink: Option<Arc<dyn TraceSink>>) -> Option<Arc<dyn TraceSink>> {
        match &self.shown {
            Some((_, counters)) => Some(Arc::new(CountingSink::new(counters.clone(), sink))),
            None => sink,
        }
    }

    /// Run `f` (which prints to the terminal) with the line out of the way.
    pub(crate) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.shown {
            Some((bar, _)) => bar.suspend(f),
            None => f(),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some((bar, _)) = &self.shown {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_the_counts() {
        let counts = Counts {
            started: 3,
            ended: 2,
            done: 1,
            failed: 1,
            items: 1,
            llm_calls: 1,
            tokens: 120,
            cost_nano_usd: 1_500_000,
        };
        let mut line = String::new();
        assert!(write_line(&counts, Duration::from_millis(1540), &mut line).is_ok());
        assert_eq!(line, "1.5s · ops 1 done 1 running 1 failed · items 1 · LLM 1 calls 120 tok $0.0015");
    }
}
