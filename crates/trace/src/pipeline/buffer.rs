//! Per-run buffers. A run records into its own [`RunLog`] (a push under a lock only the
//! run and the flusher take); the pipeline keeps the logs by request id for flushes and
//! for events handed over by id.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use operonx_runtime::RunRecorder;
use operonx_runtime::trace::RawEvent;

use super::Signals;
use super::config::{PipelineConfig, WhenFull};
use super::stats::Counters;
use crate::recorded::RecordedEvent;
use crate::run_meta::RunEnd;

/// What every run's log shares with the pipeline: the settings, the counters, the
/// number of events buffered across runs, and the flusher's wake-up.
///
/// The fields runs write on every event live on cache lines of their own: the flusher
/// writes the counters and flags on another core, and sharing a line with them would
/// cost every event a cache miss.
#[derive(Debug)]
pub(super) struct Gauge {
    pub(super) config: PipelineConfig,
    pub(super) counters: Counters,
    pub(super) signals: Arc<Signals>,
    buffered: Padded<AtomicUsize>,
    /// A flush was asked for and has not started draining yet (at most one wake-up per
    /// flush, however many runs finish meanwhile).
    flush_requested: Padded<AtomicBool>,
    /// The same, for flushes that must not wait (size trigger, full buffer).
    urgent_requested: Padded<AtomicBool>,
    /// Emptied run buffers, handed back by flushes for new runs to record into: a run's
    /// buffer is allocated on its thread and emptied on the flusher's, and freeing it
    /// there made the two threads contend for the allocator's lock on every run.
    spare: Padded<Mutex<Vec<Vec<RecordedEvent>>>>,
}

/// A value alone on its cache line (128 bytes: adjacent-line prefetching pairs lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl Gauge {
    pub(super) fn new(config: PipelineConfig, signals: Arc<Signals>) -> Self {
        Self {
            config,
            counters: Counters::default(),
            signals,
            buffered: Padded(AtomicUsize::new(0)),
            flush_requested: Padded(AtomicBool::new(false)),
            urgent_requested: Padded(AtomicBool::new(false)),
            spare: Padded(Mutex::new(Vec::new())),
        }
    }

    /// Keep an emptied run buffer for a later run (small ones only, up to a bound).
    pub(super) fn recycle(&self, mut events: Vec<RecordedEvent>) {
        let cap = events.capacity();
        if cap == 0 || cap > MAX_SPARE_CAPACITY {
            return;
        }
        events.clear();
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < MAX_SPARE {
            spare.push(events);
        }
    }

    /// An empty buffer for a run's first event: a recycled one, or a new one.
    fn fresh(&self) -> VecDeque<RecordedEvent> {
        let recycled = self.spare.lock().unwrap_or_else(PoisonError::into_inner).pop();
        recycled.map_or_else(|| VecDeque::with_capacity(FIRST_CAPACITY), VecDeque::from)
    }

    /// Events buffered across all runs.
    pub(super) fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Ask the flusher to run (soon, or `urgent`ly), unless that is already asked.
    pub(super) fn request_flush(&self, urgent: bool) {
        let (flag, signal) = if urgent {
            (&self.urgent_requested, &self.signals.urgent)
        } else {
            (&self.flush_requested, &self.signals.wake)
        };
        // Read first: once asked, later calls touch the flag without writing it.
        if !flag.load(Ordering::Acquire) && !flag.swap(true, Ordering::AcqRel) {
            signal.notify_one();
        }
    }
}

/// Events a run's buffer makes room for at its first event.
const FIRST_CAPACITY: usize = 16;

/// Emptied run buffers kept for reuse, and the largest kept (in events).
const MAX_SPARE: usize = 256;
const MAX_SPARE_CAPACITY: usize = 256;

/// The buffered state of one run.
#[derive(Debug, Default)]
struct RunState {
    events: VecDeque<RecordedEvent>,
    /// From `begin_run`: the graph name and when the run began, until exported.
    start: Option<(String, DateTime<Utc>)>,
    finished_at: Option<DateTime<Utc>>,
    dropped: u64,
    recorded: u64,
    /// One past the highest `seq` seen: where the run's closing events are numbered.
    next_seq: u64,
    /// Events recorded since the last drain, not yet in the pipeline's counter (kept
    /// here so recording touches nothing the flusher writes).
    uncounted: u64,
    /// Its trace was closed by a flush and nothing came since.
    closed: bool,
}

impl RunState {
    fn idle(&self) -> bool {
        self.events.is_empty() && self.start.is_none() && self.finished_at.is_none()
    }
}

/// One run's buffer; the recorder a traced run writes to.
#[derive(Debug)]
pub(super) struct RunLog {
    request_id: Arc<str>,
    /// Whether the run is traced at all (sampling), decided when it was first seen.
    admitted: bool,
    gauge: Arc<Gauge>,
    state: Mutex<RunState>,
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
    pub(super) request_id: Arc<str>,
    pub(super) events: Vec<RecordedEvent>,
    /// The run's start (graph name, time), still to be written.
    pub(super) start: Option<(String, DateTime<Utc>)>,
    /// Set when the run's trace is complete with this batch.
    pub(super) close: Option<RunClose>,
}

impl RunLog {
    fn state(&self) -> MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Buffer one event (or drop it, by the sampling decision or the full policy).
    pub(super) fn push(&self, event: RecordedEvent) {
        let gauge = &*self.gauge;
        if !self.admitted {
            Counters::add(&gauge.counters.recorded, 1);
            Counters::add(&gauge.counters.sampled_out, 1);
            return;
        }
        let config = &gauge.config;
        let full = gauge.buffered() >= config.max_buffered_events;
        let mut st = self.state();
        st.closed = false;
        st.recorded += 1;
        st.uncounted += 1;
        st.next_seq = st.next_seq.max(crate::EventView::seq(&event).saturating_add(1));
        if full {
            st.dropped += 1;
            let first = st.dropped == 1;
            if config.when_full == WhenFull::DropOldest && st.events.pop_front().is_some() {
                st.events.push_back(event);
            }
            drop(st);
            Counters::add(&gauge.counters.dropped, 1);
            if first {
                tracing::warn!(
                    max_buffered_events = config.max_buffered_events,
                    policy = ?config.when_full,
                    request_id = %self.request_id,
                    "trace buffer full: dropping events (the count is recorded in the run's trace)"
                );
            }
            gauge.request_flush(true);
            return;
        }
        if st.events.capacity() == 0 {
            // Room for a small run's events at once, instead of growing 4, 8, 16.
            st.events = gauge.fresh();
        }
        st.events.push_back(event);
        // Counted under the run's lock, which a drain holds while it subtracts what it
        // takes: the count never dips below the events actually buffered.
        let buffered = gauge.buffered.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        drop(st);
        if buffered >= config.flush_every_events {
            gauge.request_flush(true);
        }
    }

    /// Note the run's graph name and start time.
    pub(super) fn begin(&self, graph: &str, at: DateTime<Utc>) {
        if self.admitted {
            let mut st = self.state();
            st.closed = false;
            st.start = Some((graph.to_string(), at));
        }
    }

    /// The run finished: its trace is closed by the next flush, which is asked for.
    pub(super) fn finish(&self, at: DateTime<Utc>) {
        let mut st = self.state();
        st.closed = false;
        st.finished_at = Some(at);
        drop(st);
        if self.admitted {
            self.gauge.request_flush(false);
        }
    }

    /// Nothing is left to write for this run (see [`RunLog::closed_state`]).
    fn closed(&self, close_all: bool) -> bool {
        self.closed_state(&self.state(), close_all)
    }

    /// Whether the log, in state `st`, has nothing left to write: a sampled-out run that
    /// finished (or everything is being closed), or a run whose trace a flush closed.
    fn closed_state(&self, st: &RunState, close_all: bool) -> bool {
        if self.admitted { st.idle() && st.closed } else { st.finished_at.is_some() || close_all }
    }
}

impl RunRecorder for RunLog {
    fn record(&self, event: RawEvent) {
        self.push(RecordedEvent::Raw(event));
    }

    fn finish(&self) {
        RunLog::finish(self, Utc::now());
    }
}

/// All runs' logs, by request id.
#[derive(Debug, Default)]
pub(super) struct Buffers {
    runs: HashMap<Arc<str>, Arc<RunLog>>,
}

impl Buffers {
    /// The run's log, created (with its sampling decision) on first sight.
    pub(super) fn log(&mut self, request_id: &str, gauge: &Arc<Gauge>, admit: &dyn Fn(&str) -> bool) -> Arc<RunLog> {
        match self.runs.get(request_id) {
            Some(log) => Arc::clone(log),
            None => self.add(Arc::from(request_id), gauge, admit),
        }
    }

    /// [`Buffers::log`] for a run whose id the caller already shares (no copy of it).
    pub(super) fn log_shared(
        &mut self,
        request_id: &Arc<str>,
        gauge: &Arc<Gauge>,
        admit: &dyn Fn(&str) -> bool,
    ) -> Arc<RunLog> {
        match self.runs.get(&**request_id) {
            Some(log) => Arc::clone(log),
            None => self.add(Arc::clone(request_id), gauge, admit),
        }
    }

    fn add(&mut self, request_id: Arc<str>, gauge: &Arc<Gauge>, admit: &dyn Fn(&str) -> bool) -> Arc<RunLog> {
        let log = Arc::new(RunLog {
            admitted: admit(&request_id),
            request_id: Arc::clone(&request_id),
            gauge: Arc::clone(gauge),
            state: Mutex::new(RunState::default()),
        });
        self.runs.insert(request_id, Arc::clone(&log));
        log
    }

    /// The run's log, if it has one.
    pub(super) fn get(&self, request_id: &str) -> Option<Arc<RunLog>> {
        self.runs.get(request_id).cloned()
    }

    /// Events recorded and not yet counted in the pipeline's `recorded` counter.
    pub(super) fn uncounted(&self) -> u64 {
        self.runs.values().map(|log| log.state().uncounted).sum()
    }

    /// Forget the logs of `ids` that are closed and that no run holds any more.
    fn forget(&mut self, ids: Vec<Arc<str>>, close_all: bool) {
        for id in ids {
            let done = self.runs.get(&*id).is_some_and(|log| Arc::strong_count(log) == 1 && log.closed(close_all));
            if done {
                self.runs.remove(&*id);
            }
        }
    }
}

/// Take every buffered event out of `buffers`, run by run. Finished runs are closed;
/// with `close_all`, so are unfinished ones (their traces end as truncated). A closed
/// log is forgotten once no run holds it any more.
///
/// The registry's lock is held only to list the logs and then to forget closed ones:
/// runs starting meanwhile (which register their logs) never wait for a drain.
pub(super) fn drain(buffers: &Mutex<Buffers>, gauge: &Gauge, close_all: bool, now: DateTime<Utc>) -> Vec<RunDrain> {
    let registry = || buffers.lock().unwrap_or_else(PoisonError::into_inner);
    gauge.flush_requested.store(false, Ordering::Release);
    gauge.urgent_requested.store(false, Ordering::Release);
    let logs: Vec<Arc<RunLog>> = registry().runs.values().cloned().collect();
    let mut out = Vec::new();
    let mut forget = Vec::new();
    for log in &logs {
        let mut st = log.state();
        Counters::add(&gauge.counters.recorded, std::mem::take(&mut st.uncounted));
        if !log.admitted || st.idle() {
            if log.closed_state(&st, close_all) {
                forget.push(log.request_id.clone());
            }
            continue;
        }
        let end = match st.finished_at {
            Some(at) => Some((RunEnd::Finished, at)),
            None => close_all.then_some((RunEnd::Truncated, now)),
        };
        let events: Vec<RecordedEvent> = std::mem::take(&mut st.events).into();
        gauge.buffered.fetch_sub(events.len(), Ordering::Relaxed);
        let close = end.map(|(end, at)| RunClose {
            end,
            at,
            dropped: st.dropped,
            recorded: st.recorded,
            next_seq: st.next_seq,
        });
        let start = st.start.take();
        if close.is_some() {
            // Anything recorded for this id later starts a new segment of its trace.
            *st = RunState { closed: true, ..RunState::default() };
            forget.push(log.request_id.clone());
        }
        out.push(RunDrain { request_id: log.request_id.clone(), events, start, close });
    }
    drop(logs);
    if !forget.is_empty() {
        registry().forget(forget, close_all);
    }
    out
}
