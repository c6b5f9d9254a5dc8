//! `GET /metrics`: Prometheus text, from `prometheus-client` (the Prometheus project's
//! Rust client): runs by status and queue depth (read from the store when scraped), run
//! and op latency histograms, LLM tokens and cost (counted by this process's workers).

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A status label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// The run status.
    pub status: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Runs in the store by status (set when scraped).
    pub runs: Family<StatusLabel, Gauge>,
    /// Queued runs (set when scraped).
    pub queue_depth: Gauge,
    /// Runs ended by this process, by status.
    pub runs_ended: Family<StatusLabel, Counter>,
    /// Wall time of runs executed by this process, seconds.
    pub run_seconds: Histogram,
    /// Wall time of op calls in runs of this process, seconds.
    pub op_seconds: Histogram,
    /// LLM tokens used by runs of this process.
    pub tokens: Counter,
    /// LLM cost of runs of this process, micro-dollars.
    pub cost_micro_usd: Counter,
    lock: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("operonx");
        let runs = Family::<StatusLabel, Gauge>::default();
        let queue_depth = Gauge::default();
        let runs_ended = Family::<StatusLabel, Counter>::default();
        let run_seconds = Histogram::new(exponential_buckets(0.001, 4.0, 12));
        let op_seconds = Histogram::new(exponential_buckets(0.0001, 4.0, 12));
        let tokens = Counter::default();
        let cost_micro_usd = Counter::default();
        registry.register("runs", "Runs in the run store, by status", runs.clone());
        registry.register("queue_depth", "Runs waiting in the queue for a worker", queue_depth.clone());
        registry.register("runs_ended", "Runs ended by this process, by status", runs_ended.clone());
        registry.register("run_duration_seconds", "Wall time of runs executed here", run_seconds.clone());
        registry.register("op_duration_seconds", "Wall time of op calls in runs executed here", op_seconds.clone());
        registry.register("llm_tokens", "LLM tokens used by runs executed here", tokens.clone());
        registry.register(
            "llm_cost_micro_usd",
            "LLM cost of runs executed here, in millionths of a dollar",
            cost_micro_usd.clone(),
        );
        Metrics {
            registry,
            runs,
            queue_depth,
            runs_ended,
            run_seconds,
            op_seconds,
            tokens,
            cost_micro_usd,
            lock: Mutex::new(()),
        }
    }
}

impl Metrics {
    /// The text exposition, after setting the store's counts.
    pub fn render(&self, counts: &[(operonx_store::RunStatus, u64)]) -> String {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (status, n) in counts {
            let n = i64::try_from(*n).unwrap_or(i64::MAX);
            self.runs.get_or_create(&StatusLabel { status: status.as_str().to_string() }).set(n);
            if *status == operonx_store::RunStatus::Queued {
                self.queue_depth.set(n);
            }
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!("metrics: {e}");
        }
        text
    }
}
