//! The trace pipeline: per-run buffering, processors, bounded memory, flush triggers,
//! exporter retries and shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{annotation, ev, eventually, op};
use futures_util::future::BoxFuture;
use operonx_runtime::{EventKind, TraceEvent, TraceSink};
use operonx_trace::processor::{DropEvents, GroupBy, GroupKey, Redact, Sample, Truncate};
use operonx_trace::run_meta::{DROPPED_EVENTS, RUN_END, RUN_START};
use operonx_trace::{
    ExportError, Exporter, MemoryExporter, PipelineStats, RetryPolicy, TracePipeline, TracePipelineBuilder, WhenFull,
};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(3600);

/// A builder that only flushes when told (or at run end), exporting to `mem`.
fn quiet(mem: &MemoryExporter) -> TracePipelineBuilder {
    TracePipeline::builder().flush_interval(LONG).flush_every_events(1_000_000).exporter(mem.clone())
}

fn of_run<'a>(events: &'a [TraceEvent], rid: &str) -> Vec<&'a TraceEvent> {
    events.iter().filter(|e| e.request_id == rid).collect()
}

fn real_seqs(events: &[&TraceEvent]) -> Vec<u64> {
    events.iter().filter(|e| e.op_name.is_some()).map(|e| e.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_runs_never_mix() {
    let mem = MemoryExporter::new();
    let pipeline = quiet(&mem).processor(GroupBy::new(GroupKey::CtxPrefix(2))).build().unwrap();
    pipeline.begin_run("A", "graph_a");
    pipeline.begin_run("B", "graph_b");
    let emit = |rid: &'static str, n: u64| {
        let sink = pipeline.sink();
        tokio::spawn(async move {
            for i in 0..n {
                let item = format!("[{}]", i / 3);
                let e = ev(rid, i, i as i64, EventKind::OpYield, Some("main.gen"), &["main", &item], json!({"idx": i}));
                sink.record(e);
                if i % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let (a, b) = (emit("A", 60), emit("B", 45));
    a.await.unwrap();
    pipeline.run_finished("A");
    b.await.unwrap();
    pipeline.flush().await;
    // A is complete; B is exported so far but still open.
    let events = mem.events();
    let (ea, eb) = (of_run(&events, "A"), of_run(&events, "B"));
    assert_eq!(real_seqs(&ea), (0..60).collect::<Vec<_>>());
    assert_eq!(real_seqs(&eb), (0..45).collect::<Vec<_>>());
    assert_eq!(ea.first().unwrap().payload["value"], json!({"graph": "graph_a"}));
    assert_eq!(eb.first().unwrap().payload["value"], json!({"graph": "graph_b"}));
    let ends = |evs: &[&TraceEvent]| evs.iter().filter(|e| e.payload.get("key") == Some(&json!(RUN_END))).count();
    assert_eq!((ends(&ea), ends(&eb)), (1, 0));
    assert_eq!(ea.last().unwrap().payload["value"], json!({"status": "finished", "recorded_events": 60}));
    // Groups are per run: 20 item groups for A, 15 for B (B's last still open).
    let groups = |evs: &[&TraceEvent], k: EventKind| evs.iter().filter(|e| e.kind == k).count();
    assert_eq!((groups(&ea, EventKind::GroupStart), groups(&ea, EventKind::GroupEnd)), (20, 20));
    assert_eq!((groups(&eb, EventKind::GroupStart), groups(&eb, EventKind::GroupEnd)), (15, 14));
    pipeline.run_finished("B");
    pipeline.shutdown().await;
    let eb = mem.events().into_iter().filter(|e| e.request_id == "B").collect::<Vec<_>>();
    assert_eq!(eb.iter().filter(|e| e.kind == EventKind::GroupEnd).count(), 15);
    assert_eq!(eb.last().unwrap().payload["value"]["recorded_events"], 45);
}

#[tokio::test]
async fn processors_run_in_order_and_run_events_are_not_processed_away() {
    let mem = MemoryExporter::new();
    let pipeline = quiet(&mem)
        .processor(DropEvents::new().kinds([EventKind::Annotation]).ops(["noisy"]))
        .processor(Redact::with_defaults())
        .processor(Truncate::new(8, 10).unwrap())
        .build()
        .unwrap();
    pipeline.begin_run("r1", "g");
    let sink = pipeline.sink();
    sink.record(ev(
        "r1",
        0,
        0,
        EventKind::OpStart,
        Some("main.x"),
        &["main"],
        json!({"inputs": {"api_key": "sk-abcdefghijklmnopqrstuvwxyz", "text": "0123456789abc"}}),
    ));
    sink.record(ev("r1", 1, 1, EventKind::OpStart, Some("main.noisy"), &["main"], json!({})));
    sink.record(ev("r1", 2, 2, EventKind::Annotation, Some("main.x"), &["main"], json!({"key": "k", "value": 1})));
    sink.run_finished("r1");
    pipeline.flush().await;
    let events = mem.events();
    let kinds: Vec<(&str, Option<&str>)> = events.iter().map(|e| (e.kind.as_str(), e.op_name.as_deref())).collect();
    assert_eq!(kinds, [("annotation", None), ("op_start", Some("main.x")), ("annotation", None)]);
    // Redacted before truncation (the marker is then cut like any string).
    assert_eq!(
        events[1].payload["inputs"],
        json!({"api_key": "<redacte...[truncated 2 bytes]", "text": "01234567...[truncated 5 bytes]"})
    );
    assert_eq!(annotation(&events, RUN_START), Some(&json!({"graph": "g"})));
    assert_eq!(annotation(&events, RUN_END), Some(&json!({"status": "finished", "recorded_events": 3})));
}

#[tokio::test]
async fn sampling_is_decided_per_run_before_buffering() {
    let mem = MemoryExporter::new();
    let pipeline = quiet(&mem).processor(Sample::new(0.5).unwrap()).build().unwrap();
    let ids: Vec<String> = (0..40).map(|i| format!("run-{i}")).collect();
    let sink = pipeline.sink();
    for id in &ids {
        pipeline.begin_run(id, "g");
        for e in op(id, 0, "main.x", 1) {
            sink.record(e);
        }
    }
    let kept: Vec<&String> = ids.iter().filter(|id| Sample::new(0.5).unwrap().keeps(id)).collect();
    assert!(!kept.is_empty() && kept.len() < ids.len(), "the fixture must sample some runs in and some out");
    let stats = pipeline.stats();
    assert_eq!(stats.events_buffered, 2 * kept.len() as u64, "unsampled runs are not buffered");
    assert_eq!(stats.events_sampled_out, 2 * (ids.len() - kept.len()) as u64);
    for id in &ids {
        sink.run_finished(id);
    }
    pipeline.shutdown().await;
    let mut exported: Vec<String> = mem.events().into_iter().map(|e| e.request_id).collect();
    exported.dedup();
    exported.sort();
    let mut want: Vec<String> = kept.into_iter().cloned().collect();
    want.sort();
    assert_eq!(exported, want);
}

async fn overflow(policy: WhenFull) -> (Vec<TraceEvent>, PipelineStats) {
    let mem = MemoryExporter::new();
    let pipeline = quiet(&mem).max_buffered_events(5).when_full(policy).build().unwrap();
    let sink = pipeline.sink();
    for seq in 0..8 {
        sink.record(ev("r1", seq, seq as i64, EventKind::OpYield, Some("main.g"), &["main"], json!({"idx": seq})));
    }
    let stats = pipeline.stats();
    sink.run_finished("r1");
    pipeline.flush().await;
    (mem.events(), stats)
}

#[tokio::test]
async fn a_full_buffer_drops_newest_and_says_so_in_the_trace() {
    let (events, stats) = overflow(WhenFull::DropNewest).await;
    let refs: Vec<&TraceEvent> = events.iter().collect();
    assert_eq!(real_seqs(&refs), [0, 1, 2, 3, 4]);
    assert_eq!((stats.events_dropped, stats.events_buffered), (3, 5));
    assert_eq!(annotation(&events, DROPPED_EVENTS), Some(&json!(3)));
    let dropped = events.iter().find(|e| e.event_id == "r1-dropped").unwrap();
    assert_eq!((dropped.seq, dropped.op_name.as_deref()), (8, None));
    assert_eq!(events.last().unwrap().seq, 9, "run end comes last, after the dropped count");
}

#[tokio::test]
async fn a_full_buffer_can_drop_oldest_instead() {
    let (events, stats) = overflow(WhenFull::DropOldest).await;
    let refs: Vec<&TraceEvent> = events.iter().collect();
    assert_eq!(real_seqs(&refs), [3, 4, 5, 6, 7]);
    assert_eq!(stats.events_dropped, 3);
    assert_eq!(annotation(&events, DROPPED_EVENTS), Some(&json!(3)));
}

/// Fails the first `failures` calls with `error`, then accepts.
struct Flaky {
    failures: u32,
    retryable: bool,
    message: String,
    calls: AtomicU32,
    accepted: MemoryExporter,
}

impl Flaky {
    fn new(failures: u32, error: ExportError) -> Arc<Self> {
        let (retryable, message) = (error.is_retryable(), error.message().to_owned());
        Arc::new(Self { failures, retryable, message, calls: AtomicU32::new(0), accepted: MemoryExporter::new() })
    }
}

impl Exporter for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    fn export<'a>(&'a self, batch: &'a [TraceEvent]) -> BoxFuture<'a, Result<(), ExportError>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.failures {
            let e = if self.retryable {
                ExportError::retryable(self.message.clone())
            } else {
                ExportError::fatal(self.message.clone())
            };
            return Box::pin(async move { Err(e) });
        }
        self.accepted.export(batch)
    }
}

fn retrying(exporters: &[Arc<dyn Exporter>], attempts: u32) -> TracePipeline {
    let mut b = TracePipeline::builder().flush_interval(LONG).retry(RetryPolicy {
        max_attempts: attempts,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(60),
    });
    for e in exporters {
        b = b.shared_exporter(Arc::clone(e));
    }
    b.build().unwrap()
}

fn record_run(pipeline: &TracePipeline, rid: &str) {
    for e in op(rid, 0, "main.x", 1) {
        pipeline.record(e);
    }
    pipeline.run_finished(rid);
}

#[tokio::test]
async fn retryable_failures_are_retried_with_backoff_then_succeed() {
    let flaky = Flaky::new(2, ExportError::retryable("503"));
    let exporter: Arc<dyn Exporter> = flaky.clone();
    let pipeline = retrying(&[exporter], 4);
    record_run(&pipeline, "r1");
    let t = Instant::now();
    pipeline.flush().await;
    assert!(t.elapsed() >= Duration::from_millis(60), "waited 20 + 40 ms between tries: {:?}", t.elapsed());
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
    assert_eq!(flaky.accepted.events().len(), 3);
    let s = pipeline.stats();
    assert_eq!((s.export_retries, s.export_failures, s.batches_exported, s.events_lost), (2, 0, 1, 0));
}

#[tokio::test]
async fn exporters_give_up_after_bounded_attempts_without_failing_anything() {
    let always = Flaky::new(u32::MAX, ExportError::retryable("connection refused"));
    let fatal = Flaky::new(u32::MAX, ExportError::fatal("401"));
    let good = Arc::new(MemoryExporter::new());
    let pipeline = retrying(&[always.clone(), fatal.clone(), good.clone()], 3);
    record_run(&pipeline, "r1");
    pipeline.flush().await;
    assert_eq!(always.calls.load(Ordering::SeqCst), 3, "bounded attempts");
    assert_eq!(fatal.calls.load(Ordering::SeqCst), 1, "fatal errors are not retried");
    assert_eq!(good.events().len(), 3, "the other exporters still get the batch");
    let s = pipeline.stats();
    assert_eq!((s.export_failures, s.events_lost, s.export_retries, s.batches_exported), (2, 6, 2, 1));
    // The pipeline keeps working after giving up; an exporter that is failing gets one
    // attempt per batch until a batch gets through.
    record_run(&pipeline, "r2");
    pipeline.shutdown().await;
    assert_eq!(good.events().iter().filter(|e| e.request_id == "r2").count(), 3);
    assert_eq!(always.calls.load(Ordering::SeqCst), 4, "one more attempt, not three");
}

#[tokio::test]
async fn an_exporter_that_recovers_gets_its_retries_back() {
    // Fails the 3 attempts of the first batch and the single one of the second, then works.
    let flaky = Flaky::new(4, ExportError::retryable("connection refused"));
    let exporter: Arc<dyn Exporter> = flaky.clone();
    let pipeline = retrying(&[exporter], 3);
    for (n, rid) in ["r1", "r2", "r3"].into_iter().enumerate() {
        record_run(&pipeline, rid);
        pipeline.flush().await;
        assert_eq!(flaky.calls.load(Ordering::SeqCst), [3, 4, 5][n], "after {rid}");
    }
    assert_eq!(flaky.accepted.events().len(), 3, "r3 got through");
    let s = pipeline.stats();
    assert_eq!((s.export_failures, s.batches_exported), (2, 1));
    pipeline.shutdown().await;
}

/// Takes `delay` per export.
struct Slow(Duration, MemoryExporter);

impl Exporter for Slow {
    fn name(&self) -> &str {
        "slow"
    }

    fn export<'a>(&'a self, batch: &'a [TraceEvent]) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async move {
            tokio::time::sleep(self.0).await;
            self.1.export(batch).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_exporter_never_blocks_recording_and_hung_exports_time_out() {
    let slow = Slow(Duration::from_millis(300), MemoryExporter::new());
    let pipeline = TracePipeline::builder()
        .flush_every_events(10)
        .export_timeout(Duration::from_millis(100))
        .retry(RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        })
        .exporter(slow)
        .build()
        .unwrap();
    let t = Instant::now();
    for seq in 0..2_000 {
        pipeline.record(ev("r1", seq, 0, EventKind::OpYield, Some("main.g"), &["main"], json!({"idx": seq})));
    }
    pipeline.run_finished("r1");
    assert!(t.elapsed() < Duration::from_millis(250), "recording took {:?}", t.elapsed());
    pipeline.shutdown().await;
    let s = pipeline.stats();
    assert!(s.export_failures >= 1 && s.export_retries >= 1, "{s:?}");
}

#[tokio::test]
async fn flushes_on_run_end_without_being_asked() {
    let mem = MemoryExporter::new();
    let pipeline = quiet(&mem).build().unwrap();
    record_run(&pipeline, "r1");
    assert!(eventually(Duration::from_secs(5), || mem.events().len() == 3).await);
    pipeline.shutdown().await;
}

#[tokio::test]
async fn runs_finishing_in_quick_succession_wait_out_the_flush_gap_together() {
    let mem = MemoryExporter::new();
    let pipeline = quiet(&mem).min_flush_gap(LONG).build().unwrap();
    for rid in ["r1", "r2", "r3"] {
        record_run(&pipeline, rid);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(mem.events().is_empty(), "within the gap, finished runs wait");
    pipeline.flush().await;
    assert_eq!(mem.batches().len(), 1, "then they are exported together");
    assert_eq!(mem.events().len(), 9);
    pipeline.shutdown().await;
}

#[tokio::test]
async fn flushes_when_the_buffer_reaches_the_size_trigger() {
    let mem = MemoryExporter::new();
    let pipeline =
        TracePipeline::builder().flush_interval(LONG).flush_every_events(4).exporter(mem.clone()).build().unwrap();
    for seq in 0..3 {
        pipeline.record(ev("r1", seq, 0, EventKind::OpYield, Some("main.g"), &["main"], json!({})));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(mem.events().is_empty(), "below the size trigger nothing is flushed");
    pipeline.record(ev("r1", 3, 0, EventKind::OpYield, Some("main.g"), &["main"], json!({})));
    assert!(eventually(Duration::from_secs(5), || mem.events().len() == 4).await);
    assert!(annotation(&mem.events(), RUN_END).is_none(), "the run is still open");
    pipeline.shutdown().await;
}

#[tokio::test]
async fn flushes_on_the_interval() {
    let mem = MemoryExporter::new();
    let pipeline = TracePipeline::builder()
        .flush_interval(Duration::from_millis(50))
        .flush_every_events(1_000_000)
        .exporter(mem.clone())
        .build()
        .unwrap();
    pipeline.record(ev("r1", 0, 0, EventKind::OpYield, Some("main.g"), &["main"], json!({})));
    assert!(eventually(Duration::from_secs(5), || mem.events().len() == 1).await);
    pipeline.record(ev("r1", 1, 1, EventKind::OpYield, Some("main.g"), &["main"], json!({})));
    assert!(eventually(Duration::from_secs(5), || mem.events().len() == 2).await);
    assert!(mem.batches().len() >= 2);
    pipeline.shutdown().await;
}

#[test]
fn records_without_a_runtime_are_buffered_and_exported_later() {
    let mem = MemoryExporter::new();
    let pipeline = quiet(&mem).build().unwrap();
    record_run(&pipeline, "r1");
    assert_eq!(pipeline.stats().events_buffered, 2);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(pipeline.shutdown());
    assert_eq!(mem.events().len(), 3);
    assert_eq!(annotation(&mem.events(), RUN_END), Some(&json!({"status": "finished", "recorded_events": 2})));
}

#[test]
fn the_flusher_starts_on_a_runtime_that_appears_later() {
    let mem = MemoryExporter::new();
    let pipeline = quiet(&mem).build().unwrap();
    for e in op("r1", 0, "main.x", 1) {
        pipeline.record(e);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        // Finishing inside a runtime starts the flusher, which exports on its own.
        pipeline.run_finished("r1");
        assert!(eventually(Duration::from_secs(5), || mem.events().len() == 3).await);
        pipeline.shutdown().await;
    });
}

#[tokio::test]
async fn shutdown_closes_open_runs_and_groups_as_truncated() {
    let mem = MemoryExporter::new();
    let pipeline = quiet(&mem).processor(GroupBy::new(GroupKey::OpName)).build().unwrap();
    pipeline.record(ev("r1", 0, 0, EventKind::OpStart, Some("main.x"), &["main"], json!({})));
    pipeline.shutdown().await;
    let events = mem.events();
    let last_two: Vec<Option<&Value>> = events.iter().rev().take(2).map(|e| e.payload.get("status")).collect();
    assert_eq!(last_two[1], Some(&json!("truncated")), "the open group ends truncated");
    assert_eq!(annotation(&events, RUN_END), Some(&json!({"status": "truncated", "recorded_events": 1})));
    assert_eq!(pipeline.stats().events_buffered, 0);
}

/// Panics on every export.
struct Panicky;

impl Exporter for Panicky {
    fn name(&self) -> &str {
        "panicky"
    }

    fn export<'a>(&'a self, _batch: &'a [TraceEvent]) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async { panic!("exporter bug") })
    }
}

#[tokio::test]
async fn a_panicking_exporter_is_contained() {
    let mem = MemoryExporter::new();
    let pipeline =
        TracePipeline::builder().flush_interval(LONG).exporter(Panicky).exporter(mem.clone()).build().unwrap();
    record_run(&pipeline, "r1");
    pipeline.flush().await;
    assert_eq!(mem.events().len(), 3);
    assert_eq!(pipeline.stats().export_failures, 1);
    record_run(&pipeline, "r2");
    pipeline.shutdown().await;
    assert_eq!(mem.events().len(), 6);
}

/// Counts shutdown calls.
#[derive(Default)]
struct Closing {
    shutdowns: AtomicU32,
    inner: MemoryExporter,
}

impl Exporter for Closing {
    fn name(&self) -> &str {
        "closing"
    }

    fn export<'a>(&'a self, batch: &'a [TraceEvent]) -> BoxFuture<'a, Result<(), ExportError>> {
        self.inner.export(batch)
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), ExportError>> {
        self.shutdowns.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Err(ExportError::fatal("already closed")) })
    }
}

#[tokio::test]
async fn shutdown_is_idempotent_and_closes_exporters_once() {
    let closing = Arc::new(Closing::default());
    let exporter: Arc<dyn Exporter> = closing.clone();
    let pipeline = retrying(&[exporter], 1);
    record_run(&pipeline, "r1");
    pipeline.shutdown().await;
    pipeline.shutdown().await;
    assert_eq!(closing.shutdowns.load(Ordering::SeqCst), 1);
    assert_eq!(closing.inner.events().len(), 3);
    // Still usable by hand afterwards.
    record_run(&pipeline, "r2");
    pipeline.flush().await;
    assert_eq!(closing.inner.events().len(), 6);
}

#[tokio::test]
async fn batches_are_split_at_max_batch_events() {
    let mem = MemoryExporter::new();
    let pipeline = quiet(&mem).max_batch_events(2).build().unwrap();
    record_run(&pipeline, "r1");
    pipeline.flush().await;
    let sizes: Vec<usize> = mem.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 1]);
}

#[tokio::test]
async fn each_run_reaches_exporters_in_timestamp_then_seq_order() {
    let mem = MemoryExporter::new();
    let pipeline = quiet(&mem).build().unwrap();
    // Recorded out of order, as concurrent op tasks of one run can.
    for (seq, ms) in [(2, 5), (0, 0), (3, 5), (1, 9)] {
        pipeline.record(ev("r1", seq, ms, EventKind::OpYield, Some("main.g"), &["main"], json!({})));
    }
    pipeline.flush().await;
    let order: Vec<u64> = mem.events().iter().map(|e| e.seq).collect();
    assert_eq!(order, [0, 2, 3, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_while_flushing_keeps_the_buffered_count_exact() {
    const PER_WRITER: u64 = 20_000;
    let mem = MemoryExporter::new();
    // Small batches flushed all the time, by the flusher and by this task.
    let pipeline = TracePipeline::builder()
        .flush_interval(Duration::from_millis(1))
        .flush_every_events(16)
        .exporter(mem.clone())
        .build()
        .unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let sink = pipeline.sink();
            std::thread::spawn(move || {
                let rid = format!("w{w}");
                for seq in 0..PER_WRITER {
                    sink.record(ev(&rid, seq, seq as i64, EventKind::OpYield, Some("main.g"), &["main"], json!({})));
                }
                sink.run_finished(&rid);
            })
        })
        .collect();
    while !writers.iter().all(std::thread::JoinHandle::is_finished) {
        pipeline.flush().await;
        assert!(pipeline.stats().events_buffered <= 4 * PER_WRITER, "{:?}", pipeline.stats());
    }
    for w in writers {
        w.join().unwrap();
    }
    pipeline.shutdown().await;
    let stats = pipeline.stats();
    assert_eq!((stats.events_buffered, stats.events_recorded, stats.events_dropped), (0, 4 * PER_WRITER, 0));
    assert_eq!(mem.events().iter().filter(|e| e.op_name.is_some()).count() as u64, 4 * PER_WRITER);
}
