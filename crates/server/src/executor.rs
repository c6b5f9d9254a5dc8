//! The workers of a process: tasks that claim runs from the store's queue, run them with
//! their journal written to the store (a resumed run replays what it journaled), keep
//! their events for live streams, and record how they ended.
//!
//! One claimer loops: while some of the `n` slots are free, it claims as many runs as
//! there are free slots, the oldest first ([`RunStore::claim_many`], one transaction on a
//! blocking thread), and runs each in a task of its own; with nothing to claim it sleeps
//! until woken (a run enqueued by this process, a store notification) or a poll interval
//! passes. A
//! watcher asks the store every second which of the process's runs were asked to cancel
//! (another process took the request) and stops them. Draining stops claiming; runs still
//! going after the grace period are stopped and put back on the queue for another worker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use operonx::graph::SecretSet;
use operonx::{Engine, RunOptions, Scratch, StopHandle, Value, Workflow};
use operonx_store::{
    Durability, EntryKind, Journaler, Lease, RunEnd, RunStats, RunStatus, RunStore, StoredEvent, StoredRun,
    WriterOptions,
};
use operonx_trace::TracePipeline;
use operonx_trace::counting::{Counters, CountingSink, Counts};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::live::Live;
use crate::metrics::{Metrics, StatusLabel};

/// How long the claimer, with nothing to claim, sleeps before it looks at the queue again
/// without being woken.
const POLL: Duration = Duration::from_millis(500);
/// How often the store is asked which runs of this process were asked to cancel.
const CANCEL_POLL: Duration = Duration::from_secs(1);
/// The reason a run cancelled by a request ends with.
pub const CANCELLED_BY_REQUEST: &str = "cancelled by request";
/// The reason a run stopped by a draining worker ends with, before it is queued again.
pub const HANDED_BACK: &str = "worker shutting down: run handed back to the queue";

/// What the workers run with.
#[derive(Clone)]
pub struct ExecutorConfig {
    /// The engine runs are compiled with (ops, providers).
    pub engine: Arc<Engine>,
    /// The engines of graphs with resources of their own, by graph name (see
    /// [`crate::Catalog::engines`]); other graphs use `engine`.
    pub graph_engines: HashMap<String, Arc<Engine>>,
    /// Secret values redacted from stored events.
    pub secrets: SecretSet,
    /// How the journal is written.
    pub durability: Durability,
    /// The trace pipeline runs are traced into, if any.
    pub trace: Option<TracePipeline>,
    /// The SQLite trace store behind `trace`, if any (a resumed run's trace goes on after
    /// the events it holds).
    pub trace_store: Option<std::path::PathBuf>,
    /// How many runs at once.
    pub slots: usize,
}

impl std::fmt::Debug for ExecutorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorConfig").field("slots", &self.slots).field("durability", &self.durability).finish()
    }
}

/// A run this process executes.
struct Running {
    lease: Lease,
    stop: StopHandle,
    handed_back: Arc<AtomicBool>,
}

/// The workers of a process (see the module documentation).
pub struct Executor {
    store: Arc<dyn RunStore>,
    journaler: Journaler,
    config: ExecutorConfig,
    live: Live,
    metrics: Arc<Metrics>,
    work: Notify,
    draining: AtomicBool,
    running: Mutex<HashMap<String, Running>>,
    compiled: Mutex<HashMap<String, Arc<Workflow>>>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").field("config", &self.config).finish()
    }
}

impl Executor {
    /// Workers for `store`.
    pub fn new(
        store: Arc<dyn RunStore>,
        config: ExecutorConfig,
        live: Live,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, operonx_store::StoreError> {
        let journaler = Journaler::start(store.clone())?;
        Ok(Arc::new(Executor {
            store,
            journaler,
            config,
            live,
            metrics,
            work: Notify::new(),
            draining: AtomicBool::new(false),
            running: Mutex::new(HashMap::new()),
            compiled: Mutex::new(HashMap::new()),
        }))
    }

    /// Start the claimer (which runs what it claims, up to `slots` at once) and the
    /// cancel watcher in `tasks` (they end once draining).
    pub fn start(self: &Arc<Self>, tasks: &mut JoinSet<()>) {
        let me = self.clone();
        tasks.spawn(async move { me.claimer().await });
        let me = self.clone();
        tasks.spawn(async move { me.watch_cancels().await });
    }

    /// Say there may be work (a run was enqueued by this process, or a notification
    /// came).
    pub fn wake(&self) {
        self.work.notify_waiters();
    }

    /// Stop run `run_id` now if this process runs it; whether it does.
    pub fn cancel_local(&self, run_id: &str, reason: &str) -> bool {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        match running.get(run_id) {
            Some(r) => {
                r.stop.cancel(reason.to_string());
                true
            }
            None => false,
        }
    }

    /// How many runs this process executes now.
    pub fn busy(&self) -> usize {
        self.running.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Stop claiming; wait up to `grace` for the runs going to end, then stop them and put
    /// them back on the queue (another worker resumes them from their journal).
    pub async fn drain(&self, grace: Duration) {
        self.draining.store(true, Ordering::SeqCst);
        self.work.notify_waiters();
        let deadline = Instant::now() + grace;
        while self.busy() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        {
            let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            for r in running.values() {
                r.handed_back.store(true, Ordering::SeqCst);
                r.stop.cancel(HANDED_BACK.to_string());
            }
        }
        while self.busy() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Err(e) = self.journaler.flush() {
            tracing::error!("run store: {e}");
        }
    }

    fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Claims runs while there are free slots, as many at once as there are free slots
    /// (one transaction), and runs each in a task of its own; with nothing to claim it
    /// sleeps until woken or [`POLL`] passes. One claimer per process: a wake-up costs
    /// one claim, not one per idle slot. Once draining, it waits for its runs to end.
    async fn claimer(self: Arc<Self>) {
        let slots = Arc::new(Semaphore::new(self.config.slots.max(1)));
        let mut runs = JoinSet::new();
        while !self.draining() {
            // Registered before looking, so a wake-up while looking is not lost.
            let woken = self.work.notified();
            let Ok(first) = slots.clone().acquire_owned().await else { break };
            let mut free = vec![first];
            while let Ok(permit) = slots.clone().try_acquire_owned() {
                free.push(permit);
            }
            if self.draining() {
                break;
            }
            let store = self.store.clone();
            let owner = self.journaler.owner().to_string();
            let (ttl, max) = (operonx_store::DEFAULT_LEASE, free.len());
            let claimed = tokio::task::spawn_blocking(move || store.claim_many(&owner, ttl, max)).await;
            let claimed = match claimed {
                Ok(Ok(claimed)) => claimed,
                Ok(Err(e)) => {
                    tracing::error!("claiming runs: {e}");
                    Vec::new()
                }
                Err(e) => {
                    tracing::error!("claiming runs: {e}");
                    Vec::new()
                }
            };
            // Fewer than asked for: the queue was empty as of that claim.
            let idle = claimed.len() < max;
            for ((lease, run), permit) in claimed.into_iter().zip(free) {
                let me = self.clone();
                runs.spawn(async move {
                    me.execute(lease, run).await;
                    drop(permit);
                });
            }
            // Reap the runs that ended, so the set holds only those going.
            while runs.try_join_next().is_some() {}
            if idle {
                let _ = tokio::time::timeout(POLL, woken).await;
            }
        }
        while runs.join_next().await.is_some() {}
    }

    async fn watch_cancels(self: Arc<Self>) {
        while !self.draining() {
            tokio::time::sleep(CANCEL_POLL).await;
            let leases: Vec<Lease> = {
                let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
                running.values().map(|r| r.lease.clone()).collect()
            };
            if leases.is_empty() {
                continue;
            }
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || store.cancel_requests(&leases)).await {
                Ok(Ok(ids)) => {
                    for id in ids {
                        self.cancel_local(&id, CANCELLED_BY_REQUEST);
                    }
                }
                Ok(Err(e)) => tracing::error!("reading cancel requests: {e}"),
                Err(e) => tracing::error!("reading cancel requests: {e}"),
            }
        }
    }

    /// The compiled graph of a stored run (compiled once per graph and fingerprint, with
    /// the graph's engine).
    fn workflow(&self, run: &StoredRun) -> Result<Arc<Workflow>, String> {
        let key = format!("{}@{}", run.summary.graph, run.fingerprint);
        let mut compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(wf) = compiled.get(&key) {
            return Ok(wf.clone());
        }
        let engine = self.config.graph_engines.get(&run.summary.graph).unwrap_or(&self.config.engine);
        let wf = Arc::new(engine.load_value(run.graph.clone()).map_err(|e| e.to_string())?);
        compiled.insert(key, wf.clone());
        Ok(wf)
    }

    /// Run a claimed run to its end (or stop) and record it.
    async fn execute(&self, lease: Lease, stored: StoredRun) {
        let run_id = lease.run_id.clone();
        let started = Instant::now();
        let stop = StopHandle::new();
        let handed_back = Arc::new(AtomicBool::new(false));
        let scratch = Scratch::new(stored.scratch.clone());
        let on_failure: operonx_store::OnFailure = {
            let stop = stop.clone();
            Box::new(move |message: &str| stop.cancel(message.to_string()))
        };
        let writer = WriterOptions {
            mode: self.config.durability,
            scratch: scratch.clone(),
            secrets: self.config.secrets.clone(),
            on_failure: Some(on_failure),
        };
        let durable = match self.journaler.adopt(lease.clone(), &stored, writer) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("run {run_id}: {e}");
                return;
            }
        };
        let wf = match self.workflow(&stored) {
            Ok(wf) => wf,
            Err(message) => {
                let end = RunEnd {
                    status: RunStatus::Failed,
                    result: None,
                    pending: Vec::new(),
                    scratch: stored.scratch.clone(),
                    reason: Some(format!("the run's graph does not compile: {message}")),
                    stats: None,
                };
                self.end(durable, end, &run_id).await;
                return;
            }
        };
        self.running.lock().unwrap_or_else(PoisonError::into_inner).insert(
            run_id.clone(),
            Running { lease: lease.clone(), stop: stop.clone(), handed_back: handed_back.clone() },
        );
        let resumed = stored.summary.events > 0 || !stored.entries.is_empty();
        let mut options = RunOptions::default()
            .request_id(run_id.clone())
            .resumable()
            .scratch(scratch.clone())
            .journal(durable.journal())
            .stop_handle(stop.clone());
        if let Some(trace) = &self.config.trace {
            if !resumed {
                trace.begin_run(&run_id, wf.name());
            } else {
                let note = operonx::json!({"resume": stored.summary.resumes, "journal_entries": stored.entries.len()});
                options = options.continue_trace(self.recorded_events(&run_id), note);
            }
        }
        // Counted for the metrics (op latency, tokens, cost), then traced, if traced.
        let counters = Arc::new(Counters::default());
        let metrics = self.metrics.clone();
        let sink = CountingSink::new(counters.clone(), self.config.trace.as_ref().map(TracePipeline::sink))
            .with_op_durations(Arc::new(move |ms| metrics.op_seconds.observe(ms / 1000.0)));
        options = options.trace(Arc::new(sink));
        let mut seq = stored.summary.events;
        let secrets = &self.config.secrets;
        let live = &self.live;
        let record = |seq: u64, mut event: Value| {
            secrets.redact_value(&mut event);
            if let Err(e) = durable.record_event(StoredEvent { seq, event }) {
                tracing::error!("run {run_id}: {e}");
            }
            live.changed(&run_id);
        };
        let outcome = wf
            .run_observed(Value::Object(stored.inputs.clone()), options, |ev| {
                seq += 1;
                record(seq, ev.to_stream_json(seq));
            })
            .await;
        let counts = counters.snapshot();
        let stats = Some(run_stats(&stored, &counts));
        let end = match outcome {
            Ok(outcome) => {
                seq += 1;
                record(seq, operonx::json!({"seq": seq, "type": "result", "result": outcome.to_json()}));
                RunEnd { stats, ..RunEnd::from_outcome(&outcome, scratch.snapshot()) }
            }
            Err(e) => RunEnd {
                status: RunStatus::Failed,
                result: None,
                pending: Vec::new(),
                scratch: scratch.snapshot(),
                reason: Some(e.to_string()),
                stats,
            },
        };
        self.metrics.run_seconds.observe(started.elapsed().as_secs_f64());
        self.metrics.tokens.inc_by(counts.tokens);
        self.metrics.cost_micro_usd.inc_by(counts.cost_nano_usd / 1000);
        let status = end.status;
        self.end(durable, end, &run_id).await;
        self.running.lock().unwrap_or_else(PoisonError::into_inner).remove(&run_id);
        if handed_back.load(Ordering::SeqCst) && status == RunStatus::Cancelled {
            self.hand_back(&run_id).await;
        } else {
            self.metrics.runs_ended.get_or_create(&StatusLabel { status: status.as_str().to_string() }).inc();
        }
        self.live.changed(&run_id);
    }

    /// How many trace events run `run_id` recorded before (its resumed trace goes on
    /// from there).
    fn recorded_events(&self, run_id: &str) -> u64 {
        self.config.trace_store.as_ref().map_or(0, |path| operonx_trace::SqliteStore::recorded_events(path, run_id))
    }

    /// Record the run's end (on a blocking thread: the commit is waited for).
    async fn end(&self, durable: operonx_store::DurableRun, end: RunEnd, run_id: &str) {
        match tokio::task::spawn_blocking(move || durable.finish(&end)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("run {run_id}: its end could not be recorded: {e}"),
            Err(e) => tracing::error!("run {run_id}: its end could not be recorded: {e}"),
        }
    }

    /// Put a run this process stopped back on the queue.
    async fn hand_back(&self, run_id: &str) {
        let store = self.store.clone();
        let id = run_id.to_string();
        match tokio::task::spawn_blocking(move || store.requeue(&id, &operonx::Map::new())).await {
            Ok(Ok(())) => tracing::info!("run {run_id} handed back to the queue"),
            Ok(Err(e)) => tracing::error!("run {run_id} could not be handed back: {e}"),
            Err(e) => tracing::error!("run {run_id} could not be handed back: {e}"),
        }
    }
}

/// A run's usage totals once this attempt ended: what it had before (`stored.summary.stats`,
/// recorded by its earlier attempts) plus what this attempt's trace counted. Ops replayed
/// from the journal (one per journaled op call or finished generator) end again in this
/// attempt's trace without running: they are not counted again, except those an attempt
/// that crashed journaled without recording its stats (the ops before are at least the
/// journaled ones). Model calls are only counted when they run (a replayed op makes none).
fn run_stats(stored: &StoredRun, counts: &Counts) -> RunStats {
    let before = stored.summary.stats.unwrap_or_default();
    let replayed = stored.entries.iter().filter(|e| matches!(e.kind, EntryKind::Op | EntryKind::StreamEnd)).count();
    let replayed = u64::try_from(replayed).unwrap_or(u64::MAX);
    let this = RunStats {
        ops: counts.ended.saturating_sub(replayed),
        errors: counts.failed,
        llm_calls: counts.llm_calls,
        tokens: counts.tokens,
        cost_usd: counts.cost_usd(),
    };
    RunStats { ops: before.ops.max(replayed), ..before }.plus(&this)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn stored(stats: Option<RunStats>, journaled: usize) -> StoredRun {
        let summary = operonx_store::RunSummary {
            run_id: "r".into(),
            graph: "g".into(),
            status: RunStatus::Running,
            created_at: chrono::DateTime::default(),
            updated_at: chrono::DateTime::default(),
            entries: journaled as u64,
            resumes: 1,
            reason: None,
            tenant: None,
            events: 0,
            stats,
        };
        let entry = |seq: i64, kind| operonx_store::Entry {
            seq,
            kind,
            key: format!("op{seq}"),
            index: None,
            body: "{}".into(),
        };
        let mut entries: Vec<_> = (1..=journaled as i64).map(|i| entry(i, EntryKind::Op)).collect();
        entries.push(entry(99, EntryKind::Item));
        StoredRun {
            summary,
            graph_path: None,
            graph: Value::Null,
            fingerprint: String::new(),
            inputs: operonx::Map::new(),
            scratch: operonx::Map::new(),
            options: operonx::Map::new(),
            answers: operonx::Map::new(),
            pending: Vec::new(),
            result: None,
            entries,
        }
    }

    #[test]
    fn stats_span_resumes_without_counting_replayed_ops_twice() {
        let counts = Counts {
            started: 5,
            ended: 5,
            done: 4,
            failed: 1,
            llm_calls: 2,
            tokens: 30,
            cost_nano_usd: 500_000_000,
            ..Counts::default()
        };
        let fresh = run_stats(&stored(None, 0), &counts);
        assert_eq!((fresh.ops, fresh.errors, fresh.llm_calls, fresh.tokens), (5, 1, 2, 30));
        assert!((fresh.cost_usd - 0.5).abs() < 1e-9);
        // Resumed after a finished attempt: 3 of its ops journaled, ended again as replays.
        let before = RunStats { ops: 4, errors: 1, llm_calls: 1, tokens: 10, cost_usd: 0.25 };
        let resumed = run_stats(&stored(Some(before), 3), &counts);
        assert_eq!((resumed.ops, resumed.errors, resumed.llm_calls, resumed.tokens), (6, 2, 3, 40));
        assert!((resumed.cost_usd - 0.75).abs() < 1e-9);
        // Resumed after a crash that journaled 3 ops and recorded no stats.
        let crashed = run_stats(&stored(None, 3), &counts);
        assert_eq!(crashed.ops, 5, "the 3 journaled and the 2 run now");
    }
}
