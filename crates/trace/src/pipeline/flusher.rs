//! Flushing: take buffered events out, offload their media, run the processors, hand batches to every
//! exporter with retries. Runs on the pipeline's flusher task or in `flush`/`shutdown`,
//! never on a run's task.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::FutureExt;
use futures_util::future::{join, join_all};
use operonx_runtime::TraceEvent;

use futures_util::future::BoxFuture;

use super::buffer::{RunClose, RunDrain};
use super::stats::Counters;
use super::{Shared, Signals};
use crate::export::{ExportError, Exporter};
use crate::processor;
use crate::recorded::{EventView, RecordedEvent};
use crate::run_meta::RunMeta;

/// The flusher task: flush when woken (at most once per `min_gap` for runs finishing, at
/// once for the size trigger), every `interval`, until stopped or until the pipeline is
/// gone.
pub(super) async fn run(pipeline: Weak<Shared>, signals: Arc<Signals>, interval: Duration, min_gap: Duration) {
    /// Marks the flusher as gone however the task ends (stopped, or dropped with its
    /// runtime), so the next call inside a runtime starts a new one.
    struct Alive(Arc<Signals>);
    impl Drop for Alive {
        fn drop(&mut self) {
            self.0.flusher_alive.store(false, std::sync::atomic::Ordering::Release);
        }
    }
    let _alive = Alive(Arc::clone(&signals));
    let mut last = Instant::now();
    loop {
        let soon = tokio::select! {
            biased;
            () = signals.stop.notified() => return,
            () = signals.urgent.notified() => false,
            () = signals.wake.notified() => true,
            () = tokio::time::sleep(interval) => false,
        };
        let wait = min_gap.saturating_sub(last.elapsed());
        if soon && !wait.is_zero() {
            // Let more runs finish, so they are written together.
            tokio::select! {
                biased;
                () = signals.stop.notified() => return,
                () = signals.urgent.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        let Some(shared) = pipeline.upgrade() else { return };
        last = Instant::now();
        flush_once(&shared, false).await;
    }
}

/// One flush: everything buffered now, processed and exported. `close_all` also closes
/// runs that have not finished (shutdown).
///
/// Batches of `max_batch_events` are built run by run and exported as soon as they are
/// full; the next batch is built while the exporters work on the previous one (exporters
/// see the batches one at a time, in order).
pub(super) async fn flush_once(shared: &Shared, close_all: bool) {
    let _turn = shared.flush_lock.lock().await;
    let drained = super::buffer::drain(&shared.buffers, &shared.gauge, close_all, Utc::now());
    // Room for each run's events and its start, dropped and end annotations.
    let left = drained.iter().map(|r| r.events.len() + 3).sum();
    let max = shared.gauge.config.max_batch_events;
    let mut batches = Batches { runs: drained.into_iter(), pending: Vec::new(), max, left };
    let mut next = batches.next_batch(shared);
    while let Some(batch) = next {
        tracing::debug!(events = batch.len(), exporters = shared.exporters.len(), "flushing trace events");
        let batch = Batch::new(batch, &shared.exporters);
        let export = join_all(
            shared
                .exporters
                .iter()
                .zip(&shared.failing)
                .map(|(e, failing)| export_with_retry(shared, e.as_ref(), failing, &batch)),
        );
        // `join` polls the export first, so exporters that work on another thread start
        // before the next batch is built here.
        next = join(export, async { batches.next_batch(shared) }).await.1;
    }
}

/// One batch in the forms its exporters take: as recorded, and built into wire events
/// (once, only if an exporter needs them).
struct Batch {
    len: usize,
    recorded: Arc<Vec<RecordedEvent>>,
    built: Option<Arc<Vec<TraceEvent>>>,
}

impl Batch {
    fn new(events: Vec<RecordedEvent>, exporters: &[Arc<dyn Exporter>]) -> Self {
        let len = events.len();
        let takers = exporters.iter().filter(|e| e.takes_recorded()).count();
        let (recorded, built) = if takers == exporters.len() {
            (events, None)
        } else if takers == 0 {
            (Vec::new(), Some(events.into_iter().map(RecordedEvent::into_event).collect()))
        } else {
            let built = events.iter().map(RecordedEvent::to_event).collect();
            (events, Some(built))
        };
        Self { len, recorded: Arc::new(recorded), built: built.map(Arc::new) }
    }

    /// Hand the batch to `exporter` in the form it takes.
    fn export<'a>(&self, exporter: &'a dyn Exporter) -> BoxFuture<'a, Result<(), ExportError>> {
        match &self.built {
            Some(built) if !exporter.takes_recorded() => exporter.export_shared(Arc::clone(built)),
            _ => exporter.export_recorded(Arc::clone(&self.recorded)),
        }
    }
}

/// Drained runs, turned into batches of at most `max` events.
struct Batches {
    runs: std::vec::IntoIter<RunDrain>,
    /// Processed events not yet handed out.
    pending: Vec<RecordedEvent>,
    max: usize,
    /// About how many events the remaining runs make (to size batches once).
    left: usize,
}

impl Batches {
    /// The next batch: full unless the runs are used up; `None` when nothing is left.
    fn next_batch(&mut self, shared: &Shared) -> Option<Vec<RecordedEvent>> {
        if self.pending.capacity() == 0 {
            self.pending.reserve(self.left.min(self.max));
        }
        while self.pending.len() < self.max {
            let Some(run) = self.runs.next() else { break };
            self.left = self.left.saturating_sub(run.events.len() + 3);
            process_run(shared, run, &mut self.pending);
        }
        if self.pending.is_empty() {
            return None;
        }
        if self.pending.len() <= self.max {
            return Some(std::mem::take(&mut self.pending));
        }
        let rest = self.pending.split_off(self.max);
        Some(std::mem::replace(&mut self.pending, rest))
    }
}

/// Order one run's drained events, offload their media (before any processor: `truncate`
/// would cut a data URL), run the processors, and add the pipeline's run-level
/// events (start, dropped count, end).
fn process_run(shared: &Shared, run: RunDrain, out: &mut Vec<RecordedEvent>) {
    let RunDrain { request_id, mut events, start, close } = run;
    events.sort_by_key(RecordedEvent::sort_key);
    let offloaded = match &shared.media {
        Some(media) => {
            let n = events.len() as u64;
            std::panic::catch_unwind(AssertUnwindSafe(|| media.apply(&mut events))).map_err(|_| ("media", n))
        }
        None => Ok(()),
    };
    let processed = if let Err(panicked) = offloaded {
        Err(panicked)
    } else if shared.in_place_only {
        in_place_run(shared, &request_id, close.is_some(), events)
    } else {
        process_built(shared, &request_id, close.as_ref(), events)
    };
    let mut events = match processed {
        Ok(events) => events,
        Err((processor, lost)) => {
            tracing::error!(processor, request_id = %request_id, "trace processor panicked; batch dropped");
            Counters::add(&shared.gauge.counters.lost, lost);
            Vec::new()
        }
    };
    if let Some((graph, at)) = start {
        let at = events.first().map_or(at, |e| e.timestamp().min(at));
        out.push(RunMeta::start(request_id.clone(), graph, at).into());
    }
    let last = events.last().map(EventView::timestamp);
    out.append(&mut events);
    shared.gauge.recycle(events);
    if let Some(c) = close {
        let at = last.map_or(c.at, |t| t.max(c.at));
        let mut seq = c.next_seq;
        if c.dropped > 0 {
            out.push(RunMeta::dropped(request_id.clone(), c.dropped, at, seq).into());
            seq += 1;
        }
        out.push(RunMeta::end(request_id, c.end, c.recorded, at, seq).into());
    }
}

/// A processor panicked: its name, and how many events were lost with the batch.
type Panicked<'a> = (&'a str, u64);

/// The fast path: every processor works in place, on the events as recorded.
fn in_place_run<'a>(
    shared: &'a Shared,
    request_id: &str,
    closes: bool,
    mut events: Vec<RecordedEvent>,
) -> Result<Vec<RecordedEvent>, Panicked<'a>> {
    for p in &shared.processors {
        let Some(step) = p.in_place() else { continue };
        let n = events.len() as u64;
        let applied = std::panic::catch_unwind(AssertUnwindSafe(|| {
            processor::apply_in_place(step, request_id, &mut events);
            if closes {
                step.forget_run(request_id);
            }
        }));
        if applied.is_err() {
            return Err((p.name(), n));
        }
        tracing::trace!(processor = p.name(), request_id, events = events.len(), "processed trace events in place");
    }
    Ok(events)
}

/// The general path: events built into wire events, each processor over the batch.
fn process_built<'a>(
    shared: &'a Shared,
    request_id: &str,
    close: Option<&RunClose>,
    events: Vec<RecordedEvent>,
) -> Result<Vec<RecordedEvent>, Panicked<'a>> {
    let mut events: Vec<TraceEvent> = events.into_iter().map(RecordedEvent::into_event).collect();
    for p in &shared.processors {
        let n = events.len() as u64;
        let step = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut processed = p.process(std::mem::take(&mut events));
            if let Some(c) = close {
                processed.extend(p.end_run(request_id, c.end));
            }
            processed
        }));
        match step {
            Ok(processed) => events = processed,
            Err(_) => return Err((p.name(), n)),
        }
    }
    Ok(events.into_iter().map(RecordedEvent::Built).collect())
}

/// Export one batch to one exporter: retry retryable failures with backoff, give up on
/// fatal ones, and report (log + counters) instead of failing. A lost batch is logged as a
/// warning only when the exporter's previous batch got through (`failing` says whether it
/// did not): an unreachable collector is said once, and again only after it recovered.
/// While an exporter is failing, each batch gets a single attempt: a dead collector costs
/// one request per batch, not every retry with its waits (at shutdown too).
async fn export_with_retry(shared: &Shared, exporter: &dyn Exporter, failing: &AtomicBool, batch: &Batch) {
    let mut policy = shared.gauge.config.retry;
    if failing.load(Ordering::Relaxed) {
        policy.max_attempts = 1;
    }
    let timeout = shared.gauge.config.export_timeout;
    let counters = &shared.gauge.counters;
    let mut attempt = 1u32;
    loop {
        let call = AssertUnwindSafe(tokio::time::timeout(timeout, batch.export(exporter))).catch_unwind();
        let result = match call.await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ExportError::retryable(format!("no answer within {timeout:?}"))),
            Err(_) => Err(ExportError::fatal("the exporter panicked")),
        };
        let error = match result {
            Ok(()) => {
                Counters::add(&counters.batches_exported, 1);
                if failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(exporter = exporter.name(), "trace export works again");
                }
                return;
            }
            Err(e) => e,
        };
        if error.is_retryable() && attempt < policy.max_attempts {
            let wait = policy.backoff(attempt);
            tracing::debug!(exporter = exporter.name(), attempt, ?wait, error = %error, "trace export failed; retrying");
            Counters::add(&counters.retries, 1);
            tokio::time::sleep(wait).await;
            attempt += 1;
            continue;
        }
        if failing.swap(true, Ordering::Relaxed) {
            tracing::debug!(exporter = exporter.name(), attempts = attempt, events = batch.len, error = %error,
                "trace export failed again; batch dropped for this exporter");
        } else {
            tracing::warn!(
                exporter = exporter.name(),
                attempts = attempt,
                events = batch.len,
                error = %error,
                "trace export failed; batch dropped for this exporter (further failures are not reported until it recovers)"
            );
        }
        Counters::add(&counters.failures, 1);
        Counters::add(&counters.lost, batch.len as u64);
        return;
    }
}
