//! Run summaries: the per-run figures `trace list` shows, computed from events (by the
//! store as batches arrive, and by the viewers from a whole trace).

use chrono::{DateTime, SecondsFormat, Utc};
use operonx_runtime::{EventKind, TraceEvent};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::recorded::EventView;
use crate::run_meta::{self, RunEnd};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// No end seen yet.
    Running,
    /// Finished with no failed or cancelled op.
    Ok,
    /// Finished with at least one failed op.
    Error,
    /// Finished with cancelled ops and no failed or interrupted one.
    Cancelled,
    /// Stopped to wait for input (an op ended `interrupted`), no op failed.
    Interrupted,
    /// The pipeline shut down before the run finished.
    Incomplete,
    /// Left `running` by a process that no longer exists (killed, crashed): derived when
    /// the store is read, never stored.
    Crashed,
}

impl RunStatus {
    /// The stored/displayed string.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Error => "error",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Incomplete => "incomplete",
            RunStatus::Crashed => "crashed",
        }
    }

    /// Read a stored string (unknown strings read as `Running`).
    pub fn parse(s: &str) -> Self {
        match s {
            "ok" => RunStatus::Ok,
            "error" => RunStatus::Error,
            "cancelled" => RunStatus::Cancelled,
            "interrupted" => RunStatus::Interrupted,
            "incomplete" => RunStatus::Incomplete,
            "crashed" => RunStatus::Crashed,
            _ => RunStatus::Running,
        }
    }
}

/// One run's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// The run's id.
    pub request_id: String,
    /// Its graph's name (from `begin_run`, else guessed from its top-level op names).
    pub graph: Option<String>,
    /// Time of its first event.
    #[serde(serialize_with = "ser_time")]
    pub started_at: Option<DateTime<Utc>>,
    /// Time of its end (or of its last event so far).
    #[serde(serialize_with = "ser_time")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Where it stands.
    pub status: RunStatus,
    /// `ended_at - started_at`, in milliseconds.
    pub duration_ms: Option<f64>,
    /// Ops started.
    pub op_count: u64,
    /// Ops that ended with status `error`.
    pub error_count: u64,
    /// Ops that ended with status `cancelled`.
    pub cancelled_count: u64,
    /// Ops that ended with status `interrupted` (waiting for input).
    pub interrupted_count: u64,
    /// Tokens reported by `llm_usage` events.
    pub tokens: u64,
    /// Cost reported by `llm_usage` events, in US dollars.
    pub cost_usd: f64,
    /// Events in the trace.
    pub event_count: u64,
    /// Events the pipeline dropped (buffer full).
    pub dropped_events: u64,
}

fn ser_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_time(t)),
        None => s.serialize_none(),
    }
}

/// The wire form of a timestamp: RFC 3339, six fractional digits, `Z`.
pub(crate) fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl RunSummary {
    /// A run with nothing recorded yet.
    pub fn new(request_id: impl Into<String>) -> Self {
        Self {
            request_id: request_id.into(),
            graph: None,
            started_at: None,
            ended_at: None,
            status: RunStatus::Running,
            duration_ms: None,
            op_count: 0,
            error_count: 0,
            cancelled_count: 0,
            interrupted_count: 0,
            tokens: 0,
            cost_usd: 0.0,
            event_count: 0,
            dropped_events: 0,
        }
    }

    /// The summary of the run whose events these are (the first event's run, if several).
    pub fn from_events(events: &[TraceEvent]) -> Option<Self> {
        let id = &events.first()?.request_id;
        let mut mine: Vec<&TraceEvent> = events.iter().filter(|e| e.request_id == *id).collect();
        mine.sort_by_key(|e| e.sort_key());
        let mut agg = RunAggregate::default();
        mine.into_iter().for_each(|e| agg.add(e));
        let mut summary = Self::new(id.clone());
        agg.apply(&mut summary);
        Some(summary)
    }
}

/// Figures gathered from some events of one run, to fold into its summary.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct RunAggregate {
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    end: Option<(RunEnd, DateTime<Utc>)>,
    graph: Option<String>,
    graph_guess: Option<String>,
    ops: u64,
    errors: u64,
    cancelled: u64,
    interrupted: u64,
    tokens: u64,
    cost: f64,
    events: u64,
    dropped: u64,
}

fn count(v: Option<&Value>) -> u64 {
    v.and_then(|v| v.as_u64().or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))).unwrap_or(0)
}

impl RunAggregate {
    /// Count one event.
    ///
    /// Events must come in `(timestamp, seq)` order: an event after the run's end means
    /// the run was resumed (same request id), which answers its interruptions and opens
    /// it again.
    pub(crate) fn add<E: EventView + ?Sized>(&mut self, e: &E) {
        if self.end.is_some() {
            self.end = None;
            self.interrupted = 0;
        }
        self.events += 1;
        let at = e.timestamp();
        self.first = Some(self.first.map_or(at, |t| t.min(at)));
        self.last = Some(self.last.map_or(at, |t| t.max(at)));
        let field = |key: &str| e.payload_value(key);
        match e.kind() {
            EventKind::OpStart => {
                self.ops += 1;
                let top_level = !e.has_parent_span();
                if top_level && self.graph_guess.is_none() {
                    self.graph_guess =
                        e.op_name().map(|n| n.rsplit_once('.').map_or(n, |(graph, _)| graph).to_string());
                }
            }
            EventKind::OpEnd => match e.status().as_deref() {
                Some("error") => self.errors += 1,
                Some("cancelled") => self.cancelled += 1,
                Some("interrupted") => self.interrupted += 1,
                _ => {}
            },
            EventKind::LlmUsage => {
                let total = count(field("total_tokens").as_deref());
                self.tokens += if total > 0 {
                    total
                } else {
                    count(field("prompt_tokens").as_deref()) + count(field("completion_tokens").as_deref())
                };
                self.cost += field("cost_usd").and_then(|c| c.as_f64()).filter(|c| c.is_finite()).unwrap_or(0.0);
            }
            EventKind::Annotation if e.op_name().is_none() => {
                let value = field("value");
                let value = value.as_deref();
                match e.annotation_key().as_deref() {
                    Some(run_meta::RUN_START) => {
                        self.graph = value.and_then(|v| v.get("graph")).and_then(Value::as_str).map(str::to_string);
                    }
                    Some(run_meta::DROPPED_EVENTS) => self.dropped += count(value),
                    Some(run_meta::RUN_END) => {
                        let status = value.and_then(|v| v.get("status")).and_then(Value::as_str);
                        let end = if status == Some("truncated") { RunEnd::Truncated } else { RunEnd::Finished };
                        self.end = Some((end, at));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Fold these figures into `s` (which holds what was counted before).
    pub(crate) fn apply(&self, s: &mut RunSummary) {
        let settled = !matches!(s.status, RunStatus::Running | RunStatus::Incomplete | RunStatus::Crashed);
        if settled && self.first.zip(s.ended_at).is_some_and(|(first, ended)| first > ended) {
            // Resumed after it ended: its interruptions were answered; it runs again.
            s.interrupted_count = 0;
            s.status = RunStatus::Running;
        }
        if self.graph.is_some() {
            s.graph.clone_from(&self.graph);
        } else if s.graph.is_none() {
            s.graph.clone_from(&self.graph_guess);
        }
        s.started_at = min_opt(s.started_at, self.first);
        s.ended_at = max_opt(max_opt(s.ended_at, self.last), self.end.map(|(_, t)| t));
        s.op_count += self.ops;
        s.error_count += self.errors;
        s.cancelled_count += self.cancelled;
        s.interrupted_count += self.interrupted;
        s.tokens += self.tokens;
        s.cost_usd += self.cost;
        s.event_count += self.events;
        s.dropped_events += self.dropped;
        let finished = match self.end {
            Some((RunEnd::Truncated, _)) => None,
            Some((RunEnd::Finished, _)) => Some(true),
            None => Some(!matches!(s.status, RunStatus::Running | RunStatus::Incomplete | RunStatus::Crashed)),
        };
        s.status = match finished {
            None => RunStatus::Incomplete,
            Some(false) => s.status,
            Some(true) if s.error_count > 0 => RunStatus::Error,
            Some(true) if s.interrupted_count > 0 => RunStatus::Interrupted,
            Some(true) if s.cancelled_count > 0 => RunStatus::Cancelled,
            Some(true) => RunStatus::Ok,
        };
        s.duration_ms = match (s.started_at, s.ended_at) {
            (Some(a), Some(b)) => (b - a).num_microseconds().map(|us| us as f64 / 1000.0),
            _ => None,
        };
    }
}

fn min_opt(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_opt(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use operonx_runtime::EventKind::*;
    use serde_json::json;

    use super::*;
    use crate::processor::test_support::{at, event};
    use crate::run_meta::RunMeta;

    #[test]
    fn summary_counts_ops_errors_usage_and_status() {
        let mut events = vec![
            RunMeta::start("r1".into(), "demo".into(), at(0)).to_event(),
            event(0, OpStart, Some("main.a"), &["main"], json!({"parent_span_id": null})),
            event(1, LlmUsage, Some("main.a"), &["main"], json!({"total_tokens": 30, "cost_usd": 0.25})),
            event(2, LlmUsage, Some("main.a"), &["main"], json!({"prompt_tokens": 5, "completion_tokens": 7})),
            event(3, OpEnd, Some("main.a"), &["main"], json!({"status": "error"})),
            event(4, OpStart, Some("main.b"), &["main"], json!({})),
        ];
        let running = RunSummary::from_events(&events).unwrap();
        assert_eq!(running.status, RunStatus::Running);
        events.push(RunMeta::dropped("r1".into(), 2, at(9), 5).to_event());
        events.push(RunMeta::end("r1".into(), RunEnd::Finished, 7, at(10), 6).to_event());
        let s = RunSummary::from_events(&events).unwrap();
        assert_eq!(s.graph.as_deref(), Some("demo"));
        assert_eq!((s.op_count, s.error_count, s.tokens, s.dropped_events, s.event_count), (2, 1, 42, 2, 8));
        assert_eq!(s.cost_usd, 0.25);
        assert_eq!(s.status, RunStatus::Error);
        assert_eq!(s.duration_ms, Some(10.0));
    }

    #[test]
    fn failures_outrank_interruptions_which_outrank_cancellations() {
        let status = |ends: &[&str]| {
            let mut events: Vec<TraceEvent> = ends
                .iter()
                .enumerate()
                .map(|(i, s)| event(i as u64, OpEnd, Some("main.x"), &["main"], json!({"status": s})))
                .collect();
            events.push(RunMeta::end("r1".into(), RunEnd::Finished, 1, at(9), 9).to_event());
            RunSummary::from_events(&events).unwrap().status
        };
        assert_eq!(status(&["ok", "cancelled"]), RunStatus::Cancelled);
        assert_eq!(status(&["cancelled", "interrupted"]), RunStatus::Interrupted);
        assert_eq!(status(&["interrupted", "error"]), RunStatus::Error);
        assert_eq!(status(&["ok"]), RunStatus::Ok);
    }

    #[test]
    fn a_resumed_run_is_running_again_then_settles_on_its_new_outcome() {
        let first = [
            event(0, OpEnd, Some("main.ask"), &["main"], json!({"status": "interrupted"})),
            RunMeta::end("r1".into(), RunEnd::Finished, 1, at(1), 1).to_event(),
        ];
        let mut resumed = event(0, OpStart, Some("main.ask"), &["main"], json!({}));
        resumed.timestamp = at(50);
        let mut done = event(1, OpEnd, Some("main.ask"), &["main"], json!({"status": "ok"}));
        done.timestamp = at(60);
        let end = RunMeta::end("r1".into(), RunEnd::Finished, 2, at(61), 2).to_event();

        // The store sees the segments in separate batches.
        let mut s = RunSummary::new("r1");
        let fold = |s: &mut RunSummary, events: &[TraceEvent]| {
            let mut agg = RunAggregate::default();
            events.iter().for_each(|e| agg.add(e));
            agg.apply(s);
        };
        fold(&mut s, &first);
        assert_eq!(s.status, RunStatus::Interrupted);
        fold(&mut s, std::slice::from_ref(&resumed));
        assert_eq!(s.status, RunStatus::Running);
        fold(&mut s, &[done.clone(), end.clone()]);
        assert_eq!((s.status, s.event_count), (RunStatus::Ok, 5));

        // A viewer sees the whole trace at once.
        let all = [first[0].clone(), first[1].clone(), resumed, done, end];
        assert_eq!(RunSummary::from_events(&all).unwrap().status, RunStatus::Ok);
    }

    #[test]
    fn graph_is_guessed_from_top_level_ops_and_truncated_runs_are_incomplete() {
        let events = vec![
            event(0, OpStart, Some("inner.x"), &["main"], json!({"parent_span_id": "r1-s9"})),
            event(1, OpStart, Some("pipeline.v2.load"), &["main"], json!({"parent_span_id": null})),
            RunMeta::end("r1".into(), RunEnd::Truncated, 2, at(5), 2).to_event(),
        ];
        let s = RunSummary::from_events(&events).unwrap();
        assert_eq!(s.graph.as_deref(), Some("pipeline.v2"));
        assert_eq!(s.status, RunStatus::Incomplete);
    }
}
