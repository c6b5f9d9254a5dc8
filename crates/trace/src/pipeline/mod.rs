//! The trace pipeline: one shared, configured [`TracePipeline`] that runs hand their
//! events to (it implements [`TraceSink`]), buffering per run, and a flusher task it owns
//! that processes and exports them.
//!
//! A run records into its own buffer ([`TraceSink::open_run`]): a push under a lock only
//! that run and the flusher take. Recording never blocks, never fails and needs no tokio
//! runtime. Buffers are flushed when a run finishes (at most one wake-up per flush, so
//! runs finishing faster than the exporters write are batched together), when
//! `flush_every_events` are buffered, every `flush_interval`, on [`TracePipeline::flush`]
//! and on [`TracePipeline::shutdown`]; flushes started by finishing runs are at least
//! `min_flush_gap` apart. The flusher task is started on the first call made inside a
//! tokio runtime (which must have its timer enabled) and is stopped by `shutdown`, or
//! aborted when the last handle to the pipeline is dropped.
//!
//! When every processor works on one event at a time ([`Processor::in_place`], as the
//! built-in ones except `group_by` do), events recorded by the scheduler are kept or
//! dropped and rewritten as they are, and exporters that take them as recorded (the
//! store, JSON lines) serialize them straight to text: no event is built into a
//! [`TraceEvent`] on the way to the store.

mod buffer;
mod config;
mod flusher;
mod stats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::Utc;
use operonx_runtime::trace::RawEvent;
use operonx_runtime::{RunRecorder, TraceEvent, TraceSink};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use self::buffer::{Buffers, Gauge};
pub use self::config::{PipelineConfig, RetryPolicy, WhenFull};
pub use self::stats::PipelineStats;
use crate::error::TraceError;
use crate::export::Exporter;
use crate::media::{LocalMediaStore, MediaOffload};
use crate::processor::{Processor, Redact, Truncate};
use crate::recorded::RecordedEvent;
use crate::store::SqliteStore;

/// A handle to a trace pipeline (cheap to clone; clones share everything).
///
/// ```no_run
/// # async fn demo() -> Result<(), operonx_trace::TraceError> {
/// use std::sync::Arc;
/// use operonx_trace::{SqliteStore, TracePipeline, processor::Redact};
///
/// let pipeline = TracePipeline::builder()
///     .processor(Redact::with_defaults())
///     .exporter(SqliteStore::open(".operonx/traces.db")?)
///     .build()?;
/// pipeline.begin_run("run-1", "my_graph");
/// let sink: Arc<dyn operonx_runtime::TraceSink> = pipeline.sink();
/// // ... run a workflow with `sink` and request id "run-1" ...
/// pipeline.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TracePipeline {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TracePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracePipeline")
            .field("media", &self.shared.media)
            .field("processors", &self.shared.processors.iter().map(|p| p.name()).collect::<Vec<_>>())
            .field("exporters", &self.shared.exporters.iter().map(|e| e.name()).collect::<Vec<_>>())
            .field("stats", &self.stats())
            .finish()
    }
}

/// What the flusher task shares with the pipeline without keeping it alive.
#[derive(Debug, Default)]
struct Signals {
    /// A run finished: flush, after `min_flush_gap` since the last flush.
    wake: Notify,
    /// The size trigger or a full buffer: flush now.
    urgent: Notify,
    stop: Notify,
    flusher_alive: AtomicBool,
}

struct Shared {
    /// Runs first: media out of the events, references in (see [`crate::media`]).
    media: Option<MediaOffload>,
    processors: Vec<Box<dyn Processor>>,
    /// Every processor works in place: recorded events are never built for them.
    in_place_only: bool,
    /// Lists are recorded cut to this many items (the processors' smallest list limit).
    max_list_items: Option<usize>,
    exporters: Vec<Arc<dyn Exporter>>,
    /// Per exporter: its last batch was lost (further losses are not reported again until
    /// a batch gets through, so an unreachable collector is said once, not per batch).
    failing: Vec<AtomicBool>,
    buffers: Mutex<Buffers>,
    gauge: Arc<Gauge>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    /// Serializes flushes, so each run's batches are processed and exported in order.
    flush_lock: tokio::sync::Mutex<()>,
    stopped: AtomicBool,
}

impl Shared {
    fn buffers(&self) -> MutexGuard<'_, Buffers> {
        self.buffers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn admits(&self, request_id: &str) -> bool {
        self.processors.iter().all(|p| p.admit_run(request_id))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.gauge.signals.stop.notify_one();
        if let Some(task) = self.flusher.get_mut().unwrap_or_else(PoisonError::into_inner).take() {
            task.abort();
        }
        let left = self.gauge.buffered();
        if left > 0 {
            tracing::warn!(
                events = left,
                "trace pipeline dropped without shutdown(): buffered events were not exported"
            );
        }
    }
}

impl TracePipeline {
    /// A builder with the default settings, no processors and no exporters.
    pub fn builder() -> TracePipelineBuilder {
        TracePipelineBuilder::default()
    }

    /// The default pipeline: media offloaded beside the store, secrets redacted and long
    /// values truncated (default settings), exported to the SQLite store at
    /// [`SqliteStore::default_path`].
    pub fn open_default() -> Result<Self, TraceError> {
        let path = SqliteStore::default_path();
        Self::builder()
            .media(MediaOffload::new(Arc::new(LocalMediaStore::beside(&path))))
            .processor(Redact::with_defaults())
            .processor(Truncate::default())
            .exporter(SqliteStore::open(&path)?)
            .build()
    }

    /// This pipeline as the sink a run is given.
    pub fn sink(&self) -> Arc<dyn TraceSink> {
        Arc::new(self.clone())
    }

    /// Name the graph of run `request_id` and note when it began (before its first
    /// event, ideally). Written as the run's `operonx.run_start` annotation.
    pub fn begin_run(&self, request_id: &str, graph_name: &str) {
        self.log(request_id).begin(graph_name, Utc::now());
        self.ensure_flusher();
    }

    /// Process and export everything buffered now, and wait for the exporters (retries
    /// included). Runs that have not finished are exported so far and stay open.
    pub async fn flush(&self) {
        self.ensure_flusher();
        flusher::flush_once(&self.shared, false).await;
    }

    /// Stop the flusher, export everything (runs still open are closed as truncated) and
    /// shut the exporters down (once, however often this is called). Events recorded
    /// afterwards stay buffered until [`TracePipeline::flush`].
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        let first = !shared.stopped.swap(true, Ordering::SeqCst);
        shared.gauge.signals.stop.notify_one();
        let task = shared.flusher.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(task) = task {
            // An error only means the task's runtime is gone; there is nothing to undo.
            let _ = task.await;
        }
        flusher::flush_once(shared, true).await;
        if !first {
            return;
        }
        for exporter in &shared.exporters {
            if let Err(e) = exporter.shutdown().await {
                tracing::warn!(exporter = exporter.name(), error = %e, "trace exporter shutdown failed");
            }
        }
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> PipelineStats {
        let uncounted = self.shared.buffers().uncounted();
        let mut stats = self.shared.gauge.counters.snapshot(self.shared.gauge.buffered());
        stats.events_recorded += uncounted;
        stats
    }

    /// The settings in use.
    pub fn config(&self) -> &PipelineConfig {
        &self.shared.gauge.config
    }

    /// Start the flusher task if there is a runtime to run it on and none is running.
    fn ensure_flusher(&self) {
        let shared = &self.shared;
        let signals = &shared.gauge.signals;
        if signals.flusher_alive.load(Ordering::Acquire) || shared.stopped.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let mut slot = shared.flusher.lock().unwrap_or_else(PoisonError::into_inner);
        if signals.flusher_alive.swap(true, Ordering::AcqRel) {
            return;
        }
        let config = &shared.gauge.config;
        let task =
            flusher::run(Arc::downgrade(shared), Arc::clone(signals), config.flush_interval, config.min_flush_gap);
        *slot = Some(runtime.spawn(task));
    }

    /// The buffer of run `request_id`, created on first sight.
    fn log(&self, request_id: &str) -> Arc<buffer::RunLog> {
        let shared = &self.shared;
        shared.buffers().log(request_id, &shared.gauge, &|id| shared.admits(id))
    }
}

impl TraceSink for TracePipeline {
    fn record(&self, event: TraceEvent) {
        self.log(&event.request_id).push(RecordedEvent::Built(event));
    }

    /// Buffers the event as recorded; it is built into its wire form only if an exporter
    /// needs it.
    fn record_raw(&self, event: RawEvent) {
        self.log(event.request_id()).push(RecordedEvent::Raw(event));
    }

    /// The smallest list limit of the processors (a `truncate` step): runs record lists
    /// cut to it instead of copying them whole.
    fn max_list_items(&self) -> Option<usize> {
        self.shared.max_list_items
    }

    fn run_finished(&self, request_id: &str) {
        let log = self.shared.buffers().get(request_id);
        if let Some(log) = log {
            log.finish(Utc::now());
            self.ensure_flusher();
        }
    }

    /// The run's own buffer: its events skip the lookup by request id.
    fn open_run(&self, request_id: &Arc<str>) -> Option<Arc<dyn RunRecorder>> {
        let shared = &self.shared;
        let log = shared.buffers().log_shared(request_id, &shared.gauge, &|id| shared.admits(id));
        self.ensure_flusher();
        Some(log)
    }
}

/// Builds a [`TracePipeline`].
#[derive(Default)]
pub struct TracePipelineBuilder {
    config: PipelineConfig,
    media: Option<MediaOffload>,
    processors: Vec<Box<dyn Processor>>,
    exporters: Vec<Arc<dyn Exporter>>,
}

impl std::fmt::Debug for TracePipelineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracePipelineBuilder")
            .field("config", &self.config)
            .field("media", &self.media)
            .field("processors", &self.processors.iter().map(|p| p.name()).collect::<Vec<_>>())
            .field("exporters", &self.exporters.iter().map(|e| e.name()).collect::<Vec<_>>())
            .finish()
    }
}

impl TracePipelineBuilder {
    /// Use these settings (replacing any set before).
    #[must_use]
    pub fn config(mut self, config: PipelineConfig) -> Self {
        self.config = config;
        self
    }

    /// Most events buffered across all runs.
    #[must_use]
    pub fn max_buffered_events(mut self, n: usize) -> Self {
        self.config.max_buffered_events = n;
        self
    }

    /// What to drop when the buffer is full.
    #[must_use]
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.config.when_full = policy;
        self
    }

    /// Flush as soon as this many events are buffered.
    #[must_use]
    pub fn flush_every_events(mut self, n: usize) -> Self {
        self.config.flush_every_events = n;
        self
    }

    /// Flush at least this often.
    #[must_use]
    pub fn flush_interval(mut self, every: Duration) -> Self {
        self.config.flush_interval = every;
        self
    }

    /// Shortest time between two flushes started by runs finishing.
    #[must_use]
    pub fn min_flush_gap(mut self, gap: Duration) -> Self {
        self.config.min_flush_gap = gap;
        self
    }

    /// How failed exports are retried.
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Largest batch handed to an exporter at once.
    #[must_use]
    pub fn max_batch_events(mut self, n: usize) -> Self {
        self.config.max_batch_events = n;
        self
    }

    /// Longest one export attempt may take.
    #[must_use]
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.config.export_timeout = timeout;
        self
    }

    /// Offload media (data URLs, base64 content parts) from events into a store before
    /// anything else sees them: the processors, then every exporter, get references
    /// (see [`crate::media`]). Exporters are handed the store
    /// ([`Exporter::use_media_store`]).
    #[must_use]
    pub fn media(mut self, offload: MediaOffload) -> Self {
        self.media = Some(offload);
        self
    }

    /// Add a processor (they run in the order added, after the media offload).
    #[must_use]
    pub fn processor(self, processor: impl Processor) -> Self {
        self.boxed_processor(Box::new(processor))
    }

    /// Add a boxed processor (from [`ProcessorConfig::build`](crate::processor::ProcessorConfig::build)).
    #[must_use]
    pub fn boxed_processor(mut self, processor: Box<dyn Processor>) -> Self {
        self.processors.push(processor);
        self
    }

    /// Add an exporter; every batch goes to every exporter.
    #[must_use]
    pub fn exporter(self, exporter: impl Exporter) -> Self {
        self.shared_exporter(Arc::new(exporter))
    }

    /// Add an exporter the caller keeps a handle to.
    #[must_use]
    pub fn shared_exporter(mut self, exporter: Arc<dyn Exporter>) -> Self {
        self.exporters.push(exporter);
        self
    }

    /// Check the settings and build. With no exporter added, events go to the SQLite
    /// store at [`SqliteStore::default_path`] (created if needed).
    pub fn build(self) -> Result<TracePipeline, TraceError> {
        self.config.validate()?;
        let mut exporters = self.exporters;
        if exporters.is_empty() {
            exporters.push(Arc::new(SqliteStore::open_default()?));
        }
        if let Some(media) = &self.media {
            for exporter in &exporters {
                exporter.use_media_store(Arc::clone(media.store()));
            }
        }
        let in_place_only = self.processors.iter().all(|p| p.in_place().is_some());
        let max_list_items = self.processors.iter().filter_map(|p| p.max_list_items()).min();
        let shared = Arc::new(Shared {
            media: self.media,
            processors: self.processors,
            in_place_only,
            max_list_items,
            failing: exporters.iter().map(|_| AtomicBool::new(false)).collect(),
            exporters,
            buffers: Mutex::new(Buffers::default()),
            gauge: Arc::new(Gauge::new(self.config, Arc::new(Signals::default()))),
            flusher: Mutex::new(None),
            flush_lock: tokio::sync::Mutex::new(()),
            stopped: AtomicBool::new(false),
        });
        let pipeline = TracePipeline { shared };
        pipeline.ensure_flusher();
        Ok(pipeline)
    }
}
