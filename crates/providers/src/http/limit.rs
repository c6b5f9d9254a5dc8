//! Per-resource admission: a concurrency cap (semaphore) and a requests-per-second pace.
//!
//! Kept rather than `governor`: the pace is ten lines of strict spacing on tokio's clock
//! (so paused-time tests and `tokio::time` drive it), where `governor` brings its own clock
//! and timer and a burst allowance we do not want, and has no concurrency cap to replace
//! the semaphore.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use operonx_graph::duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Admits requests to one resource. Owned by that resource's client.
#[derive(Debug)]
pub(crate) struct Limiter {
    slots: Option<Arc<Semaphore>>,
    interval: Option<Duration>,
    next_start: Mutex<Option<Instant>>,
}

/// Held while a request (or a stream) is in flight.
#[derive(Debug)]
pub(crate) struct Admission {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Limiter {
    /// At most `max_concurrency` requests in flight and `requests_per_second` starts.
    pub(crate) fn new(max_concurrency: Option<usize>, requests_per_second: Option<f64>) -> Self {
        Self {
            slots: max_concurrency.map(|n| Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS)))),
            // Settings are checked when parsed; values set in code are clamped, never a panic.
            interval: requests_per_second
                .filter(|r| *r > 0.0 && !r.is_nan())
                .map(|r| Duration::try_from_secs_f64(1.0 / r).unwrap_or(duration::MAX_WAIT).min(duration::MAX_WAIT)),
            next_start: Mutex::new(None),
        }
    }

    /// Wait for a slot and for this request's start time.
    pub(crate) async fn admit(&self) -> Admission {
        let permit = match &self.slots {
            Some(s) => Arc::clone(s).acquire_owned().await.ok(),
            None => None,
        };
        if let Some(interval) = self.interval {
            let start = {
                let now = Instant::now();
                let mut next = self.next_start.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let start = next.map_or(now, |n| n.max(now));
                *next = Some(start + interval);
                start
            };
            tokio::time::sleep_until(start).await;
        }
        Admission { _permit: permit }
    }

    /// Free concurrency slots (tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn available(&self) -> Option<usize> {
        self.slots.as_ref().map(|s| s.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_requests_per_second() {
        let l = Limiter::new(None, Some(4.0));
        let t0 = Instant::now();
        for _ in 0..5 {
            let _a = l.admit().await;
        }
        assert_eq!(t0.elapsed(), Duration::from_millis(1000));
    }

    #[test]
    fn absurd_limits_set_in_code_are_clamped_not_a_panic() {
        let l = Limiter::new(Some(usize::MAX), Some(1e-300));
        assert_eq!(l.available(), Some(Semaphore::MAX_PERMITS));
        assert_eq!(l.interval, Some(duration::MAX_WAIT));
        assert_eq!(Limiter::new(None, Some(f64::INFINITY)).interval, Some(Duration::ZERO));
    }

    #[tokio::test]
    async fn caps_concurrency() {
        let l = Limiter::new(Some(2), None);
        let a = l.admit().await;
        let _b = l.admit().await;
        assert_eq!(l.available(), Some(0));
        assert!(tokio::time::timeout(Duration::from_millis(20), l.admit()).await.is_err());
        drop(a);
        assert!(tokio::time::timeout(Duration::from_millis(20), l.admit()).await.is_ok());
    }
}
