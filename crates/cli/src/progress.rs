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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use operonx::trace::{RawEvent, RunRecorder};
use operonx::{EventKind, TraceEvent, TraceSink, Value};

/// How often the line is redrawn.
const TICK: Duration = Duration::from_millis(200);

/// Costs are summed in billionths of a dollar (atomics hold integers).
const NANO_USD: f64 = 1e9;

/// What the run did so far, counted from its trace events.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// `op_start` events.
    started: AtomicU64,
    /// `op_end` events, whatever their status.
    ended: AtomicU64,
    /// `op_end` events with status `ok`.
    done: AtomicU64,
    /// `op_end` events with status `error`.
    failed: AtomicU64,
    /// `op_yield` events (generator items).
    items: AtomicU64,
    /// `llm_usage` events (model calls).
    llm_calls: AtomicU64,
    /// The calls' `total_tokens`.
    tokens: AtomicU64,
    /// The calls' `cost_usd`, in billionths of a dollar.
    cost_nano_usd: AtomicU64,
}

impl Counters {
    /// Count one event of `kind`: `status` is an `op_end`'s, `field` reads the payload.
    fn note(&self, kind: EventKind, status: Option<&str>, field: impl Fn(&str) -> Option<f64>) {
        let add = |c: &AtomicU64, n: u64| {
            c.fetch_add(n, Ordering::Relaxed);
        };
        match kind {
            EventKind::OpStart => add(&self.started, 1),
            EventKind::OpEnd => {
                add(&self.ended, 1);
                match status {
                    Some("ok") => add(&self.done, 1),
                    Some("error") => add(&self.failed, 1),
                    _ => {}
                }
            }
            EventKind::OpYield => add(&self.items, 1),
            EventKind::LlmUsage => {
                add(&self.llm_calls, 1);
                add(&self.tokens, field("total_tokens").map_or(0, whole));
                add(&self.cost_nano_usd, field("cost_usd").map_or(0, |usd| whole(usd * NANO_USD)));
            }
            _ => {}
        }
    }

    /// Count a recorded event.
    fn note_raw(&self, event: &RawEvent) {
        self.note(event.kind(), event.status(), |key| event.payload_value(key).and_then(|v| v.as_f64()));
    }

    /// Count a built event.
    fn note_built(&self, event: &TraceEvent) {
        let status = event.payload.get("status").and_then(Value::as_str);
        self.note(event.kind, status, |key| event.payload.get(key).and_then(Value::as_f64));
    }

    /// The counts as the line shows them, after `elapsed` (short: under 80 columns for
    /// the small numbers of most runs, so it rarely wraps).
    fn write_line(&self, elapsed: Duration, out: &mut dyn std::fmt::Write) -> std::fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let running = get(&self.started).saturating_sub(get(&self.ended));
        let cost = get(&self.cost_nano_usd) as f64 / NANO_USD;
        write!(
            out,
            "{:.1}s · ops {} done {running} running {} failed · items {} · LLM {} calls {} tok ${cost:.4}",
            elapsed.as_secs_f64(),
            get(&self.done),
            get(&self.failed),
            get(&self.items),
            get(&self.llm_calls),
            get(&self.tokens),
        )
    }
}

/// A non-negative count from a JSON number (negative and non-finite numbers count 0).
fn whole(n: f64) -> u64 {
    if n.is_finite() && n > 0.0 { n.round() as u64 } else { 0 }
}

/// The trace sink of a run shown with a progress line: counts every event, then hands
/// it on to `inner` (the run's trace pipeline), if any, exactly as the run would have.
pub(crate) struct CountingSink {
    /// The counts the line shows.
    counters: Arc<Counters>,
    /// The run's own sink.
    inner: Option<Arc<dyn TraceSink>>,
}

impl TraceSink for CountingSink {
    fn record(&self, event: TraceEvent) {
        self.counters.note_built(&event);
        if let Some(inner) = &self.inner {
            inner.record(event);
        }
    }

    fn record_raw(&self, event: RawEvent) {
        self.counters.note_raw(&event);
        if let Some(inner) = &self.inner {
            inner.record_raw(event);
        }
    }

    fn max_list_items(&self) -> Option<usize> {
        self.inner.as_ref().and_then(|inner| inner.max_list_items())
    }

    fn run_finished(&self, request_id: &str) {
        if let Some(inner) = &self.inner {
            inner.run_finished(request_id);
        }
    }

    fn open_run(&self, request_id: &Arc<str>) -> Option<Arc<dyn RunRecorder>> {
        let onward = match &self.inner {
            Some(inner) => match inner.open_run(request_id) {
                Some(recorder) => Onward::Recorder(recorder),
                None => Onward::Sink(inner.clone(), request_id.clone()),
            },
            None => Onward::Nowhere,
        };
        Some(Arc::new(CountingRecorder { counters: self.counters.clone(), onward }))
    }
}

/// Where a [`CountingRecorder`] hands one run's events on.
enum Onward {
    /// The inner sink's recorder for the run.
    Recorder(Arc<dyn RunRecorder>),
    /// The inner sink itself (it hands out no recorders), and the run's id.
    Sink(Arc<dyn TraceSink>, Arc<str>),
    /// Nowhere: the run is not traced, only counted.
    Nowhere,
}

/// One run's recorder under a [`CountingSink`].
struct CountingRecorder {
    /// The counts the line shows.
    counters: Arc<Counters>,
    /// Where the events go on.
    onward: Onward,
}

impl RunRecorder for CountingRecorder {
    fn record(&self, event: RawEvent) {
        self.counters.note_raw(&event);
        match &self.onward {
            Onward::Recorder(r) => r.record(event),
            Onward::Sink(s, _) => s.record_raw(event),
            Onward::Nowhere => {}
        }
    }

    fn finish(&self) {
        match &self.onward {
            Onward::Recorder(r) => r.finish(),
            Onward::Sink(s, id) => s.run_finished(id),
            Onward::Nowhere => {}
        }
    }
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
            let _ = line.write_line(state.elapsed(), out);
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
            Some((_, counters)) => Some(Arc::new(CountingSink { counters: counters.clone(), inner: sink })),
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
        let c = Counters::default();
        c.note(EventKind::OpStart, None, |_| None);
        c.note(EventKind::OpStart, None, |_| None);
        c.note(EventKind::OpStart, None, |_| None);
        c.note(EventKind::OpEnd, Some("ok"), |_| None);
        c.note(EventKind::OpEnd, Some("error"), |_| None);
        c.note(EventKind::OpYield, None, |_| None);
        c.note(EventKind::LlmUsage, None, |k| match k {
            "total_tokens" => Some(120.0),
            "cost_usd" => Some(0.0015),
            _ => None,
        });
        let mut line = String::new();
        assert!(c.write_line(Duration::from_millis(1540), &mut line).is_ok());
        assert_eq!(line, "1.5s · ops 1 done 1 running 1 failed · items 1 · LLM 1 calls 120 tok $0.0015");
    }
}
