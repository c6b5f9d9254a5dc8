//! Tracing: the flat, ordered record of what happened during a run, in the wire format of
//! the original `TraceEvent`. The scheduler records events only when a [`TraceSink`] is
//! attached to the run, and records them cheaply ([`RawEvent`]): strings, timestamps and
//! payload maps are built when the sink materializes them, off the scheduler's hot path.

mod event;
mod raw;
mod wire_time;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use serde_json::Value;

pub use event::{EventKind, TraceEvent};
pub(crate) use raw::{EventCtx, Named, RawPayload};
pub use raw::{MediaRefs, RawEvent, cut_items_marker, cut_lists};
pub use wire_time::WireTime;

/// Where a run's events go (a pipeline, a file, a test collector). Called on the
/// scheduler's task: implementations must only buffer, never block.
pub trait TraceSink: Send + Sync + 'static {
    /// Take one event.
    fn record(&self, event: TraceEvent);

    /// Take one event in its raw form. The default materializes it right away; sinks
    /// that buffer should keep it raw and materialize when they flush.
    fn record_raw(&self, event: RawEvent) {
        self.record(event.materialize());
    }

    /// The longest list this sink keeps in an event, if it cuts lists (as the `truncate`
    /// processor does): runs then record every list already cut to its first `n` items
    /// followed by a `"...[truncated N items]"` marker ([`cut_lists`]), so a trace never
    /// copies a large value whole. `None` (the default): values are recorded as they are.
    fn max_list_items(&self) -> Option<usize> {
        None
    }

    /// The run with this id finished (flush its buffer).
    fn run_finished(&self, _request_id: &str) {}

    /// A recorder for the run with this id, taking its events directly (no lookup by
    /// request id per event). Asked once when the run starts; `None` (the default) sends
    /// every event to [`TraceSink::record_raw`] and the end to [`TraceSink::run_finished`].
    fn open_run(&self, _request_id: &Arc<str>) -> Option<Arc<dyn RunRecorder>> {
        None
    }
}

/// Where one run's events go when its sink hands out per-run recorders
/// ([`TraceSink::open_run`]). Called on the run's task: only buffer, never block.
pub trait RunRecorder: Send + Sync + 'static {
    /// Take one event of the run.
    fn record(&self, event: RawEvent);

    /// The run finished.
    fn finish(&self);
}

/// The tracing state one run shares with its nested runs and op bodies (cheap to
/// clone: one shared allocation).
#[derive(Clone)]
pub struct RunTracer(Arc<TracerState>);

struct TracerState {
    sink: Arc<dyn TraceSink>,
    recorder: Option<Arc<dyn RunRecorder>>,
    request_id: Arc<str>,
    /// Lists in recorded values are cut to this many items ([`TraceSink::max_list_items`]).
    max_list_items: Option<usize>,
    /// Next event sequence number, next span id.
    seq: AtomicU64,
    span: AtomicU64,
    /// The wall clock at `anchor.1`: event times are read from the monotonic clock (one
    /// clock read per event, shared with span durations) and placed on the wall clock
    /// from here, so they never go backwards within a run.
    anchor: (i64, Instant),
}

impl std::fmt::Debug for RunTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunTracer").field("request_id", &self.0.request_id).finish()
    }
}

impl RunTracer {
    /// Tracing for run `request_id` into `sink`.
    pub fn new(sink: Arc<dyn TraceSink>, request_id: impl Into<Arc<str>>) -> Self {
        let request_id: Arc<str> = request_id.into();
        let recorder = sink.open_run(&request_id);
        let max_list_items = sink.max_list_items();
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        Self(Arc::new(TracerState {
            sink,
            recorder,
            request_id,
            max_list_items,
            seq: AtomicU64::new(0),
            span: AtomicU64::new(0),
            anchor: (wall, Instant::now()),
        }))
    }

    /// Tracing for run `request_id` continued after a resume: sequence numbers and span
    /// ids start at `from` (the number of events the run recorded before), so the resumed
    /// part adds to the run's one trace without reusing any.
    pub fn continuing(sink: Arc<dyn TraceSink>, request_id: impl Into<Arc<str>>, from: u64) -> Self {
        let t = Self::new(sink, request_id);
        t.0.seq.store(from, Ordering::Relaxed);
        t.0.span.store(from, Ordering::Relaxed);
        t
    }

    /// Record an annotation of the run itself (no op): `key = value`, in context `main`.
    pub fn annotate_run(&self, key: &str, value: Value) {
        let mut p = std::collections::BTreeMap::new();
        p.insert("key".to_string(), Value::String(key.to_string()));
        p.insert("value".to_string(), value);
        let ctx = EventCtx { prefix: Arc::from(vec!["main".to_string()]), iteration: 0, items: Vec::new() };
        self.record(EventKind::Annotation, None, Some(ctx), RawPayload::Map(p));
    }

    /// The run's id.
    pub fn request_id(&self) -> &str {
        &self.0.request_id
    }

    /// The longest list recorded in an event, if lists are cut ([`TraceSink::max_list_items`]).
    pub(crate) fn max_list_items(&self) -> Option<usize> {
        self.0.max_list_items
    }

    /// A new span id, unique within the run.
    pub fn next_span(&self) -> u64 {
        self.0.span.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The wire form of a span id.
    pub fn span_name(&self, span: u64) -> Value {
        Value::String(format!("{}-s{span}", self.0.request_id))
    }

    /// Record an event happening now (cheap: nothing is formatted here).
    pub(crate) fn record(&self, kind: EventKind, op: Option<Arc<str>>, ctx: Option<EventCtx>, payload: RawPayload) {
        self.record_at(Instant::now(), kind, op, ctx, payload);
    }

    /// Record an event that happened at `at` (a clock read the caller already made).
    pub(crate) fn record_at(
        &self,
        at: Instant,
        kind: EventKind,
        op: Option<Arc<str>>,
        ctx: Option<EventCtx>,
        payload: RawPayload,
    ) {
        let t = &*self.0;
        let seq = t.seq.fetch_add(1, Ordering::Relaxed);
        let since = i64::try_from(at.saturating_duration_since(t.anchor.1).as_micros()).unwrap_or(i64::MAX);
        let at_us = t.anchor.0.saturating_add(since);
        let event = RawEvent { kind, seq, at_us, request_id: t.request_id.clone(), op, ctx, payload };
        match &t.recorder {
            Some(r) => r.record(event),
            None => t.sink.record_raw(event),
        }
    }

    /// Tell the sink the run is over.
    pub fn finish(&self) {
        match &self.0.recorder {
            Some(r) => r.finish(),
            None => self.0.sink.run_finished(&self.0.request_id),
        }
    }
}

/// The trace scope of one op call: lets an op body annotate its span and report usage.
#[derive(Debug, Clone)]
pub struct OpTrace {
    pub(crate) tracer: RunTracer,
    pub(crate) op: Arc<str>,
    pub(crate) ctx: EventCtx,
    pub(crate) span: u64,
}

impl OpTrace {
    /// Record an event of `kind` bound to this op call (its span id is added).
    pub fn emit(&self, kind: EventKind, mut payload: BTreeMap<String, Value>) {
        payload.insert("span_id".into(), self.tracer.span_name(self.span));
        self.tracer.record(kind, Some(self.op.clone()), Some(self.ctx.clone()), RawPayload::Map(payload));
    }
}

/// A sink that keeps every event in memory (tests, small tools).
#[derive(Debug, Default, Clone)]
pub struct MemorySink(Arc<std::sync::Mutex<Vec<TraceEvent>>>);

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything recorded so far.
    pub fn events(&self) -> Vec<TraceEvent> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl TraceSink for MemorySink {
    fn record(&self, event: TraceEvent) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event);
        }
    }
}
