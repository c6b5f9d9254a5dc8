//! `sample`: trace a deterministic fraction of runs.

use md5::{Digest, Md5};
use operonx_runtime::TraceEvent;

use super::{InPlace, Processor};
use crate::error::ConfigError;

/// Keeps a fraction of runs, decided once per run from its request id before anything of
/// it is buffered, so an unsampled run costs nothing. The decision is deterministic and
/// portable: the first 8 bytes of the MD5 digest of the request id, read big-endian and
/// divided by 2^64, must be below the rate (the same rule as the original Python engine,
/// so both sample the same runs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    rate: f64,
}

impl Sample {
    /// Keep `rate` of runs (`0` none, `1` all).
    pub fn new(rate: f64) -> Result<Self, ConfigError> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(ConfigError::SampleRate(rate));
        }
        Ok(Self { rate })
    }

    /// The configured rate.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Where `request_id` falls in `[0, 1)`.
    pub fn position(request_id: &str) -> f64 {
        let digest = Md5::digest(request_id.as_bytes());
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(head) as f64 / 18_446_744_073_709_551_616.0
    }

    /// Whether the run with this id is kept.
    pub fn keeps(&self, request_id: &str) -> bool {
        if self.rate >= 1.0 {
            return true;
        }
        if self.rate <= 0.0 {
            return false;
        }
        Self::position(request_id) < self.rate
    }
}

impl Processor for Sample {
    fn name(&self) -> &str {
        "sample"
    }

    fn admit_run(&self, request_id: &str) -> bool {
        self.keeps(request_id)
    }

    fn process(&self, events: Vec<TraceEvent>) -> Vec<TraceEvent> {
        events
    }

    fn in_place(&self) -> Option<&dyn InPlace> {
        Some(self)
    }
}

/// Sampling happens before anything is buffered: every event of a kept run stays as it is.
impl InPlace for Sample {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_is_md5_prefix_over_two_to_the_64() {
        // md5("r1") = 7c92cf1eee8d99cc85f8... (computed independently).
        let expected = 0x7c92_cf1e_ee8d_99cc_u64 as f64 / 2f64.powi(64);
        assert!((Sample::position("r1") - expected).abs() < 1e-15, "{}", Sample::position("r1"));
    }

    #[test]
    fn decisions_are_deterministic_and_near_the_rate() {
        let s = Sample::new(0.3).unwrap();
        let ids: Vec<String> = (0..4000).map(|i| format!("req-{i}")).collect();
        let first: Vec<bool> = ids.iter().map(|id| s.keeps(id)).collect();
        let again: Vec<bool> = ids.iter().map(|id| Sample::new(0.3).unwrap().keeps(id)).collect();
        assert_eq!(first, again);
        let kept = first.iter().filter(|k| **k).count();
        // The same rule in Python (`int.from_bytes(md5(id).digest()[:8], "big") / 2**64 < 0.3`)
        // keeps exactly 1207 of these ids.
        assert_eq!(kept, 1207);
        // A lower rate keeps a subset of a higher one.
        let low = Sample::new(0.1).unwrap();
        assert!(ids.iter().all(|id| !low.keeps(id) || s.keeps(id)));
    }

    #[test]
    fn edges_keep_all_or_none() {
        assert!(Sample::new(1.0).unwrap().keeps("anything"));
        assert!(!Sample::new(0.0).unwrap().keeps("anything"));
        assert!(Sample::new(-0.1).is_err());
    }
}
