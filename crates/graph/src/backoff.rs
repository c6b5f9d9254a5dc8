//! The one backoff schedule of the engine, for every loop that waits before trying again:
//! an op's `retry` (graph.json), a provider's HTTP retries (`max_retries`,
//! `retry_initial_backoff_s`, `retry_max_backoff_s`, `Retry-After`), trace export retries
//! (`retry.initial_backoff_ms`, `retry.max_backoff_ms`), Langfuse's per-item retries, the
//! SQLite stores' retries while the database is busy, and the event stream's re-reads.
//!
//! Retry `n` (counted from 0: the wait after the first failure) waits
//! `min(max, initial × factor^n)`. With jitter, the wait is drawn uniformly from the upper
//! half of that, `[wait / 2, wait)`: clients failing together spread out, and none waits
//! less than half the schedule. A server's own wait (`Retry-After`) takes precedence when
//! it is within `max` (see [`Backoff::wait_honouring`]).
//!
//! Nothing here panics, whatever the values (`Duration::MAX`, retry 64 or `u32::MAX`, a
//! factor that is huge or not a number): a wait that does not fit is the cap.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// An exponential backoff: retry `n` waits `min(max, initial × factor^n)`, optionally
/// jittered into `[wait / 2, wait)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The wait before the first retry.
    pub initial: Duration,
    /// Each further wait is this many times the previous one (below 1, or not a number,
    /// counts as 1).
    pub factor: f64,
    /// The longest wait.
    pub max: Duration,
    /// Whether [`Backoff::wait`] draws each wait from `[wait / 2, wait)`.
    pub jitter: bool,
}

impl Backoff {
    /// `initial`, doubling each retry up to `max`, without jitter.
    pub const fn doubling(initial: Duration, max: Duration) -> Self {
        Self { initial, factor: 2.0, max, jitter: false }
    }

    /// The same schedule with jitter on or off.
    pub const fn with_jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The wait before retry `retry` (0-based), before jitter: `min(max, initial × factor^retry)`.
    ///
    /// Computed in nanoseconds, so integral factors of whole durations are exact (100 ms
    /// doubling is 200 ms, 400 ms, ..., never 399.999 ms).
    pub fn delay(&self, retry: u32) -> Duration {
        let power = self.factor.max(1.0).powi(i32::try_from(retry).unwrap_or(i32::MAX));
        let nanos = self.initial.as_nanos() as f64 * power;
        // Also false for NaN (a zero initial wait times an infinite power): the cap.
        if nanos < self.max.as_nanos() as f64 { from_nanos(nanos as u128).min(self.max) } else { self.max }
    }

    /// The wait before retry `retry` (0-based): [`Backoff::delay`], drawn from
    /// `[delay / 2, delay)` with `rng` when jitter is on.
    pub fn wait(&self, retry: u32, rng: &SplitMix) -> Duration {
        let full = self.delay(retry);
        if self.jitter { jittered(full, rng.next_f64()) } else { full }
    }

    /// The wait before retry `retry` (0-based) when the server may have said how long to
    /// wait (`Retry-After`): exactly the server's wait when it is at most `max`; `None`
    /// when it is longer (more than this schedule ever waits: give up instead); without
    /// one, [`Backoff::wait`].
    pub fn wait_honouring(&self, retry: u32, server_wait: Option<Duration>, rng: &SplitMix) -> Option<Duration> {
        match server_wait {
            Some(wait) => (wait <= self.max).then_some(wait),
            None => Some(self.wait(retry, rng)),
        }
    }
}

/// `full` scaled into `[full / 2, full)` by `unit` in `[0, 1)` (zero stays zero).
fn jittered(full: Duration, unit: f64) -> Duration {
    let half = full / 2;
    let rest = (full - half).as_nanos();
    // Strictly below `rest` even where the product rounds up.
    let extra = ((rest as f64 * unit.clamp(0.0, 1.0)) as u128).min(rest.saturating_sub(1));
    half + from_nanos(extra)
}

/// `nanos` as a duration, `Duration::MAX` when longer.
fn from_nanos(nanos: u128) -> Duration {
    match u64::try_from(nanos / NANOS_PER_SEC) {
        // The remainder is below 10^9.
        Ok(secs) => Duration::new(secs, (nanos % NANOS_PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}

/// A small random sequence (SplitMix64), safe to share between threads: backoff jitter,
/// and picks that only need to look random (a provider's weighted choice of resource).
/// Seedable, so tests and `selection_seed` get the same sequence every time. Not for
/// anything secret.
#[derive(Debug)]
pub struct SplitMix(AtomicU64);

impl SplitMix {
    /// The sequence starting from `seed`.
    pub const fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }

    /// A sequence with an unpredictable seed: std's per-thread random hash keys, which
    /// differ between processes and, for each new `RandomState`, between calls (so
    /// processes started together do not retry in step). No state of ours is shared.
    pub fn from_entropy() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x5DEE_CE66_D1CE_4E5B);
        Self::new(hasher.finish())
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut z = self.0.fetch_add(GAMMA, Ordering::Relaxed).wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `[0, 1)`.
    pub fn next_f64(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn grows_by_the_factor_up_to_the_cap_exactly() {
        let b = Backoff::doubling(MS(100), MS(700));
        let waits: Vec<Duration> = (0..6).map(|n| b.delay(n)).collect();
        assert_eq!(waits, [MS(100), MS(200), MS(400), MS(700), MS(700), MS(700)]);
        let b = Backoff { factor: 1.5, ..Backoff::doubling(MS(40), Duration::from_secs(30)) };
        assert_eq!((0..4).map(|n| b.delay(n)).collect::<Vec<_>>(), [MS(40), MS(60), MS(90), MS(135)]);
        // A factor below 1 (or not a number) counts as 1: the wait never shrinks.
        for factor in [0.5, f64::NAN, 1.0] {
            let b = Backoff { factor, ..b };
            assert_eq!(b.delay(5), MS(40), "{factor}");
        }
        assert_eq!(Backoff::doubling(Duration::ZERO, MS(5)).delay(3), Duration::ZERO);
        assert_eq!(Backoff::doubling(MS(9), MS(5)).delay(0), MS(5), "an initial wait above the cap is the cap");
    }

    #[test]
    fn huge_values_saturate_at_the_cap_without_panicking() {
        let huge = Backoff::doubling(Duration::MAX, Duration::MAX).with_jitter(true);
        let rng = SplitMix::new(3);
        for retry in [0, 1, 63, 64, 1_000, u32::MAX] {
            assert_eq!(huge.delay(retry), Duration::MAX, "{retry}");
            let w = huge.wait(retry, &rng);
            assert!(w >= Duration::MAX / 2 && w < Duration::MAX, "{retry}: {w:?}");
        }
        let b = Backoff { factor: 1e300, ..Backoff::doubling(Duration::from_nanos(1), Duration::from_secs(7)) };
        assert_eq!(b.delay(64), Duration::from_secs(7));
        assert_eq!(Backoff { factor: f64::INFINITY, ..b }.delay(2), Duration::from_secs(7));
        let zero = Backoff { factor: f64::INFINITY, ..Backoff::doubling(Duration::ZERO, Duration::from_secs(7)) };
        assert_eq!(zero.delay(2), Duration::from_secs(7), "0 × inf is not a number: the cap");
        assert_eq!(
            Backoff::doubling(MS(1), Duration::MAX).delay(64),
            Duration::new(18_446_744_073_709_551, 616_000_000)
        );
        assert_eq!(Backoff::doubling(MS(1), Duration::MAX).delay(u32::MAX), Duration::MAX);
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        let b = Backoff::doubling(MS(100), MS(1000)).with_jitter(true);
        let rng = SplitMix::new(1);
        let mut seen_low = false;
        let mut seen_high = false;
        for retry in 0..8 {
            let full = b.delay(retry);
            for _ in 0..200 {
                let w = b.wait(retry, &rng);
                assert!(w >= full / 2 && w < full, "{retry}: {w:?} of {full:?}");
                seen_low |= w < full * 6 / 10;
                seen_high |= w > full * 9 / 10;
            }
        }
        assert!(seen_low && seen_high, "the draws cover the range");
        // The bounds hold at the ends of the unit range too.
        assert_eq!(jittered(MS(10), 0.0), MS(5));
        assert!(jittered(MS(10), 1.0 - f64::EPSILON) < MS(10));
        assert_eq!(jittered(Duration::ZERO, 0.7), Duration::ZERO);
        assert_eq!(jittered(Duration::from_nanos(1), 0.99), Duration::ZERO);
        // Without jitter, the wait is the schedule.
        assert_eq!(Backoff::doubling(MS(100), MS(1000)).wait(2, &rng), MS(400));
    }

    #[test]
    fn a_server_wait_within_the_cap_takes_precedence() {
        let b = Backoff::doubling(MS(1), Duration::from_secs(5)).with_jitter(true);
        let rng = SplitMix::new(1);
        assert_eq!(b.wait_honouring(0, Some(Duration::from_secs(3)), &rng), Some(Duration::from_secs(3)));
        assert_eq!(b.wait_honouring(9, Some(Duration::ZERO), &rng), Some(Duration::ZERO), "even a shorter one");
        assert_eq!(b.wait_honouring(0, Some(Duration::from_secs(5)), &rng), Some(Duration::from_secs(5)));
        assert_eq!(b.wait_honouring(0, Some(Duration::from_secs(60)), &rng), None, "longer than the cap: give up");
        let own = b.wait_honouring(2, None, &rng).unwrap();
        assert!(own >= MS(2) && own < MS(4), "{own:?}");
    }

    #[test]
    fn split_mix_is_deterministic_per_seed_and_in_range() {
        let (a, b) = (SplitMix::new(7), SplitMix::new(7));
        for _ in 0..100 {
            let x = a.next_f64();
            assert!((0.0..1.0).contains(&x));
            assert_eq!(x, b.next_f64());
        }
        // The first value of seed 0 (the published SplitMix64 sequence).
        assert_eq!(SplitMix::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_ne!(SplitMix::from_entropy().next_u64(), SplitMix::from_entropy().next_u64());
    }
}
