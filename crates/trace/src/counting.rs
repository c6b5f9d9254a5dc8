//! Counting a run's trace events as they pass: ops started, ended, failed, generator
//! items, LLM calls, tokens and cost, in atomic counters, with an optional observer of
//! each op call's duration. A [`CountingSink`] wraps the run's own sink (or stands
//! alone) and hands every event on unchanged; the CLI's progress line and the server's
//! metrics read the counts.
//!
//! The counting is a few relaxed atomic adds per event on the scheduler's task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use operonx_runtime::trace::{EventKind, RawEvent, RunRecorder, TraceEvent, TraceSink};
use serde_json::Value;

/// Costs are summed in billionths of a dollar (atomics hold integers).
const NANO_USD: f64 = 1e9;

/// Called with each op call's duration in milliseconds as its `op_end` passes.
pub type OpDurations = Arc<dyn Fn(f64) + Send + Sync>;

/// What runs did so far, counted from their trace events.
#[derive(Debug, Default)]
pub struct Counters {
    started: AtomicU64,
    ended: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    items: AtomicU64,
    llm_calls: AtomicU64,
    tokens: AtomicU64,
    cost_nano_usd: AtomicU64,
}

/// The counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// `op_start` events.
    pub started: u64,
    /// `op_end` events, whatever their status.
    pub ended: u64,
    /// `op_end` events with status `ok`.
    pub done: u64,
    /// `op_end` events with status `error`.
    pub failed: u64,
    /// `op_yield` events (generator items).
    pub items: u64,
    /// `llm_usage` events (model calls).
    pub llm_calls: u64,
    /// The calls' `total_tokens`.
    pub tokens: u64,
    /// The calls' `cost_usd`, in billionths of a dollar.
    pub cost_nano_usd: u64,
}

impl Counts {
    /// The calls' `cost_usd`.
    pub fn cost_usd(&self) -> f64 {
        self.cost_nano_usd as f64 / NANO_USD
    }

    /// Op calls started and not ended.
    pub fn running(&self) -> u64 {
        self.started.saturating_sub(self.ended)
    }
}

impl Counters {
    /// Count one event of `kind`: `status` is an `op_end`'s, `field` reads the payload.
    pub fn note(&self, kind: EventKind, status: Option<&str>, field: impl Fn(&str) -> Option<f64>) {
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

    /// The counts now.
    pub fn snapshot(&self) -> Counts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            started: get(&self.started),
            ended: get(&self.ended),
            done: get(&self.done),
            failed: get(&self.failed),
            items: get(&self.items),
            llm_calls: get(&self.llm_calls),
            tokens: get(&self.tokens),
            cost_nano_usd: get(&self.cost_nano_usd),
        }
    }
}

/// A non-negative count from a JSON number (negative and non-finite numbers count 0).
fn whole(n: f64) -> u64 {
    if n.is_finite() && n > 0.0 { n.round() as u64 } else { 0 }
}

/// A trace sink that counts every event into [`Counters`], then hands it on to `inner`
/// (the run's own sink), if any, exactly as the run would have.
pub struct CountingSink {
    counters: Arc<Counters>,
    inner: Option<Arc<dyn TraceSink>>,
    durations: Option<OpDurations>,
}

impl CountingSink {
    /// Count into `counters`, then hand events on to `inner`.
    pub fn new(counters: Arc<Counters>, inner: Option<Arc<dyn TraceSink>>) -> Self {
        CountingSink { counters, inner, durations: None }
    }

    /// Also tell `observe` each op call's duration (ms).
    pub fn with_op_durations(mut self, observe: OpDurations) -> Self {
        self.durations = Some(observe);
        self
    }
}

/// Count a recorded event (and observe its duration).
fn note_raw(counters: &Counters, durations: Option<&OpDurations>, event: &RawEvent) {
    let kind = event.kind();
    counters.note(kind, event.status(), |key| event.payload_value(key).and_then(|v| v.as_f64()));
    if let (EventKind::OpEnd, Some(observe)) = (kind, durations)
        && let Some(ms) = event.payload_value("duration_ms").and_then(|v| v.as_f64())
    {
        observe(ms);
    }
}

impl TraceSink for CountingSink {
    fn record(&self, event: TraceEvent) {
        let status = event.payload.get("status").and_then(Value::as_str);
        self.counters.note(event.kind, status, |key| event.payload.get(key).and_then(Value::as_f64));
        if let (EventKind::OpEnd, Some(observe)) = (event.kind, &self.durations)
            && let Some(ms) = event.payload.get("duration_ms").and_then(Value::as_f64)
        {
            observe(ms);
        }
        if let Some(inner) = &self.inner {
            inner.record(event);
        }
    }

    fn record_raw(&self, event: RawEvent) {
        note_raw(&self.counters, self.durations.as_ref(), &event);
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
        Some(Arc::new(CountingRecorder { counters: self.counters.clone(), durations: self.durations.clone(), onward }))
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
    counters: Arc<Counters>,
    durations: Option<OpDurations>,
    onward: Onward,
}

impl RunRecorder for CountingRecorder {
    fn record(&self, event: RawEvent) {
        note_raw(&self.counters, self.durations.as_ref(), &event);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_by_kind_status_tokens_and_cost() {
        let c = Counters::default();
        for _ in 0..3 {
            c.note(EventKind::OpStart, None, |_| None);
        }
        c.note(EventKind::OpEnd, Some("ok"), |_| None);
        c.note(EventKind::OpEnd, Some("error"), |_| None);
        c.note(EventKind::OpYield, None, |_| None);
        c.note(EventKind::LlmUsage, None, |k| match k {
            "total_tokens" => Some(120.0),
            "cost_usd" => Some(0.0015),
            _ => None,
        });
        c.note(EventKind::LlmUsage, None, |k| (k == "total_tokens").then_some(-5.0));
        let n = c.snapshot();
        assert_eq!((n.started, n.ended, n.done, n.failed, n.running()), (3, 2, 1, 1, 1));
        assert_eq!((n.items, n.llm_calls, n.tokens), (1, 2, 120));
        assert_eq!(n.cost_nano_usd, 1_500_000);
    }
}
