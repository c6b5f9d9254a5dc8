//! Pipeline settings: buffering bounds, flush triggers, export retries.

use std::time::Duration;

use operonx_graph::backoff::Backoff;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// What to do with a new event when the buffer holds `max_buffered_events`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Drop the new event (keeps the start of every trace intact).
    #[default]
    DropNewest,
    /// Drop the oldest buffered event of the same run to make room (keeps the latest).
    DropOldest,
}

/// How failed exports are retried: `max_attempts` tries in all, waiting
/// `initial_backoff`, then twice as long each time, at most `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Tries in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait before the second try.
    #[serde(rename = "initial_backoff_ms", with = "millis")]
    pub initial_backoff: Duration,
    /// Longest wait between tries.
    #[serde(rename = "max_backoff_ms", with = "millis")]
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 4, initial_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(5) }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        Backoff::doubling(self.initial_backoff, self.max_backoff).delay(attempt.saturating_sub(1))
    }
}

/// Settings of a [`TracePipeline`](crate::TracePipeline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Most events held in memory across all runs; beyond it `when_full` applies.
    pub max_buffered_events: usize,
    /// What happens to events beyond `max_buffered_events`.
    pub when_full: WhenFull,
    /// Flush as soon as this many events are buffered.
    pub flush_every_events: usize,
    /// Flush at least this often.
    #[serde(rename = "flush_interval_ms", with = "millis")]
    pub flush_interval: Duration,
    /// Shortest time between two flushes started by runs finishing: runs that finish in
    /// quick succession are written together (one store transaction, not one each). The
    /// size trigger, `flush`, and `shutdown` do not wait for it.
    #[serde(rename = "min_flush_gap_ms", with = "millis")]
    pub min_flush_gap: Duration,
    /// Largest batch handed to an exporter at once.
    pub max_batch_events: usize,
    /// Longest one export attempt may take before it counts as failed.
    #[serde(rename = "export_timeout_ms", with = "millis")]
    pub export_timeout: Duration,
    /// How failed exports are retried.
    pub retry: RetryPolicy,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_buffered_events: 100_000,
            when_full: WhenFull::DropNewest,
            flush_every_events: 1_000,
            flush_interval: Duration::from_secs(2),
            min_flush_gap: Duration::from_millis(25),
            max_batch_events: 5_000,
            export_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

impl PipelineConfig {
    /// Check that every size and duration can work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks: [(bool, &'static str); 6] = [
            (self.max_buffered_events > 0, "max_buffered_events"),
            (self.flush_every_events > 0, "flush_every_events"),
            (!self.flush_interval.is_zero(), "flush_interval"),
            (self.max_batch_events > 0, "max_batch_events"),
            (!self.export_timeout.is_zero(), "export_timeout"),
            (self.retry.max_attempts > 0, "retry.max_attempts"),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, name)) => Err(ConfigError::Zero(name)),
            None => Ok(()),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(700),
        };
        let waits: Vec<u128> = (1..=5).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 700, 700]);
        assert_eq!(p.backoff(60), Duration::from_millis(700));
    }

    #[test]
    fn config_reads_from_json_with_defaults_and_validates() {
        let c: PipelineConfig =
            serde_json::from_str(r#"{"max_buffered_events": 10, "when_full": "drop_oldest", "flush_interval_ms": 50, "min_flush_gap_ms": 5}"#)
                .unwrap();
        assert_eq!(c.max_buffered_events, 10);
        assert_eq!(c.when_full, WhenFull::DropOldest);
        assert_eq!(c.flush_interval, Duration::from_millis(50));
        assert_eq!(c.min_flush_gap, Duration::from_millis(5));
        assert_eq!(c.retry, RetryPolicy::default());
        assert!(c.validate().is_ok());
        let bad = PipelineConfig { flush_every_events: 0, ..PipelineConfig::default() };
        assert!(matches!(bad.validate(), Err(ConfigError::Zero("flush_every_events"))));
    }
}
