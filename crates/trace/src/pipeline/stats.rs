//! Counters of what the pipeline did with the events it was given.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the pipeline's counters (all since the pipeline was built).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Events handed to the pipeline by runs.
    pub events_recorded: u64,
    /// Events not buffered because their run was not sampled.
    pub events_sampled_out: u64,
    /// Events dropped because the buffer was full (also recorded in each run's trace).
    pub events_dropped: u64,
    /// Events currently buffered.
    pub events_buffered: u64,
    /// Batches exporters accepted (one per exporter and batch).
    pub batches_exported: u64,
    /// Export attempts that failed and were tried again.
    pub export_retries: u64,
    /// Batches an exporter gave up on (after its retries, or at once for fatal errors).
    pub export_failures: u64,
    /// Events in the batches counted by `export_failures` (lost for that exporter).
    pub events_lost: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) recorded: AtomicU64,
    pub(crate) sampled_out: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) batches_exported: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) lost: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, buffered: usize) -> PipelineStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PipelineStats {
            events_recorded: get(&self.recorded),
            events_sampled_out: get(&self.sampled_out),
            events_dropped: get(&self.dropped),
            events_buffered: buffered as u64,
            batches_exported: get(&self.batches_exported),
            export_retries: get(&self.retries),
            export_failures: get(&self.failures),
            events_lost: get(&self.lost),
        }
    }
}
