//! Per-run buffers: what `record` touches on the run's task (a push under a short lock,
//! nothing else), and what a flush takes out.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use operonx_runtime::TraceEvent;
use operonx_runtime::trace::RawEvent;

use super::config::{PipelineConfig, WhenFull};
use crate::run_meta::RunEnd;

/// A buffered event: as the scheduler recorded it (built into its wire form at flush
/// time, off the run's task) or already built.
#[derive(Debug)]
pub(super) enum Pending {
    /// From `TraceSink::record_raw`.
    Raw(RawEvent),
    /// From `TraceSink::record`.
    Built(TraceEvent),
}

impl Pending {
    fn request_id(&self) -> &str {
        match self {
            Pending::Raw(e) => e.request_id(),
            Pending::Built(e) => &e.request_id,
        }
    }

    fn seq(&self) -> u64 {
        match self {
            Pending::Raw(e) => e.seq(),
            Pending::Built(e) => e.seq,
        }
    }

    /// The wire event.
    pub(super) fn build(self) -> TraceEvent {
        match self {
            Pending::Raw(e) => e.materialize(),
            Pending::Built(e) => e,
        }
    }
}

/// The buffered state of one run.
#[derive(Debug)]
struct RunBuffer {
    /// Whether the run is traced at all (sampling), decided when it was first seen.
    admitted: bool,
    events: VecDeque<Pending>,
    /// From `begin_run`: the graph name and when the run began, until exported.
    start: Option<(String, DateTime<Utc>)>,
    finished_at: Option<DateTime<Utc>>,
    dropped: u64,
    recorded: u64,
    /// One past the highest `seq` seen: where the run's closing events are numbered.
    next_seq: u64,
}

impl RunBuffer {
    fn new(admitted: bool) -> Self {
        Self { admitted, events: VecDeque::new(), start: None, finished_at: None, dropped: 0, recorded: 0, next_seq: 0 }
    }
}

/// What became of a recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Recorded {
    /// Buffered; `wake` when the flusher should run now.
    Buffered {
        /// Whether a flush was just requested.
        wake: bool,
    },
    /// The buffer was full and an event of this run was dropped.
    Dropped {
        /// The run's id, on its first drop only.
        first: Option<String>,
        /// Whether a flush was just requested.
        wake: bool,
    },
    /// The run is not sampled.
    SampledOut,
}

/// How a drained run's trace closes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RunClose {
    pub(super) end: RunEnd,
    pub(super) at: DateTime<Utc>,
    pub(super) dropped: u64,
    pub(super) recorded: u64,
    pub(super) next_seq: u64,
}

/// Everything a flush took out of one run's buffer.
#[derive(Debug)]
pub(super) struct RunDrain {
    pub(super) request_id: String,
    pub(super) events: Vec<Pending>,
    /// The run's start (graph name, time), still to be written.
    pub(super) start: Option<(String, DateTime<Utc>)>,
    /// Set when the run's trace is complete with this batch.
    pub(super) close: Option<RunClose>,
}

/// All runs' buffers.
#[derive(Debug, Default)]
pub(super) struct Buffers {
    runs: HashMap<String, RunBuffer>,
    buffered: usize,
    flush_requested: bool,
}

impl Buffers {
    /// Events currently buffered.
    pub(super) fn buffered(&self) -> usize {
        self.buffered
    }

    /// The run's buffer, created (with its sampling decision) on first sight. Always
    /// `Some`; an `Option` only because a map cannot hand out the entry it just made
    /// without a second owned key.
    fn run_mut(&mut self, request_id: &str, admit: &dyn Fn(&str) -> bool) -> Option<&mut RunBuffer> {
        if !self.runs.contains_key(request_id) {
            self.runs.insert(request_id.to_string(), RunBuffer::new(admit(request_id)));
        }
        self.runs.get_mut(request_id)
    }

    fn request_flush(&mut self) -> bool {
        !std::mem::replace(&mut self.flush_requested, true)
    }

    /// Buffer one event (or drop it, by the sampling decision or the full policy).
    pub(super) fn record(&mut self, event: Pending, config: &PipelineConfig, admit: &dyn Fn(&str) -> bool) -> Recorded {
        let full = self.buffered >= config.max_buffered_events;
        let Some(run) = self.run_mut(event.request_id(), admit) else { return Recorded::SampledOut };
        run.recorded += 1;
        run.next_seq = run.next_seq.max(event.seq().saturating_add(1));
        if !run.admitted {
            return Recorded::SampledOut;
        }
        if full {
            run.dropped += 1;
            let first = (run.dropped == 1).then(|| event.request_id().to_string());
            if config.when_full == WhenFull::DropOldest && run.events.pop_front().is_some() {
                run.events.push_back(event);
            }
            let wake = self.request_flush();
            return Recorded::Dropped { first, wake };
        }
        run.events.push_back(event);
        self.buffered += 1;
        let wake = self.buffered >= config.flush_every_events && self.request_flush();
        Recorded::Buffered { wake }
    }

    /// Note the run's graph name and start time (ignored for unsampled runs).
    pub(super) fn begin(&mut self, request_id: &str, graph: &str, at: DateTime<Utc>, admit: &dyn Fn(&str) -> bool) {
        if let Some(run) = self.run_mut(request_id, admit).filter(|r| r.admitted) {
            run.start = Some((graph.to_string(), at));
        }
    }

    /// The run finished; returns whether there is anything to flush.
    pub(super) fn finish(&mut self, request_id: &str, at: DateTime<Utc>) -> bool {
        let Some(run) = self.runs.get_mut(request_id) else { return false };
        if !run.admitted {
            self.runs.remove(request_id);
            return false;
        }
        run.finished_at = Some(at);
        true
    }

    /// Take every buffered event out, run by run. Finished runs are closed and forgotten;
    /// with `close_all`, so are unfinished ones (their traces end as truncated).
    pub(super) fn drain(&mut self, close_all: bool, now: DateTime<Utc>) -> Vec<RunDrain> {
        self.flush_requested = false;
        let mut out = Vec::new();
        let mut closed = Vec::new();
        for (request_id, run) in &mut self.runs {
            if !run.admitted {
                if close_all {
                    closed.push(request_id.clone());
                }
                continue;
            }
            let end = match run.finished_at {
                Some(at) => Some((RunEnd::Finished, at)),
                None => close_all.then_some((RunEnd::Truncated, now)),
            };
            if run.events.is_empty() && run.start.is_none() && end.is_none() {
                continue;
            }
            let events: Vec<Pending> = run.events.drain(..).collect();
            self.buffered -= events.len();
            let close = end.map(|(end, at)| {
                closed.push(request_id.clone());
                RunClose { end, at, dropped: run.dropped, recorded: run.recorded, next_seq: run.next_seq }
            });
            out.push(RunDrain { request_id: request_id.clone(), events, start: run.start.take(), close });
        }
        for id in closed {
            self.runs.remove(&id);
        }
        out
    }
}
