//! Retry policy: which failures are retried, how long to wait, `Retry-After`.

use std::time::Duration;

use operonx_graph::backoff::{Backoff, SplitMix};
use operonx_graph::duration;
use reqwest::header::HeaderMap;

use crate::error::ProviderError;

/// How a resource retries failed calls. Retried: rate limits (429), server errors
/// (5xx, 529, 408, 409), timeouts and connection failures. Never retried: auth errors,
/// bad requests, content-filter refusals, and a stream that already produced output.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`max_retries`, default 2).
    pub max_retries: u32,
    /// The first backoff (`retry_initial_backoff_s`, default 0.5 s); doubles per retry.
    pub initial_backoff: Duration,
    /// The backoff cap (`retry_max_backoff_s`, default 30 s). A `Retry-After` longer than
    /// this is not waited for: the error is returned instead. A `Retry-After` that is not
    /// a wait of at most 7 days (negative, not finite, absurdly long) counts as absent.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_retries: 2, initial_backoff: Duration::from_millis(500), max_backoff: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based) after `error`, or `None` when the
    /// error must be returned. With a `Retry-After` the wait is exactly that; otherwise
    /// `min(max, initial * 2^retry)` scaled by a random factor in `[0.5, 1)`.
    pub(crate) fn delay(&self, retry: u32, error: &ProviderError, rng: &SplitMix) -> Option<Duration> {
        if retry >= self.max_retries || !error.is_retryable() {
            return None;
        }
        self.schedule().wait_honouring(retry, error.retry_after(), rng)
    }

    /// The waits between tries: `initial_backoff` doubling up to `max_backoff`, jittered.
    fn schedule(&self) -> Backoff {
        Backoff::doubling(self.initial_backoff, self.max_backoff).with_jitter(true)
    }
}

/// The wait a response asks for: `retry-after-ms` (milliseconds), else `retry-after` as
/// seconds or as an HTTP date. A value that is not a wait of at most
/// [`duration::MAX_WAIT`] (negative, not finite, absurdly long) counts as no header.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let ms = headers.get("retry-after-ms").and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse::<f64>().ok());
    if let Some(wait) = ms.and_then(|ms| sane_wait(ms / 1000.0)) {
        return Some(wait);
    }
    let raw = headers.get("retry-after")?.to_str().ok()?.trim();
    parse_retry_after(raw, chrono::Utc::now())
}

/// Parse a `Retry-After` value relative to `now` (`None` when absent or absurd).
pub(crate) fn parse_retry_after(raw: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    if let Ok(secs) = raw.parse::<f64>() {
        return sane_wait(secs);
    }
    let date = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - now;
    // A date in the past means now.
    Some(wait.to_std().unwrap_or(Duration::ZERO)).filter(|w| *w <= duration::MAX_WAIT)
}

/// `secs` as a wait, when it is one a server can mean (0 to 7 days).
fn sane_wait(secs: f64) -> Option<Duration> {
    duration::checked_secs("retry-after", secs, duration::Limit::WAIT).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let p = RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let rng = SplitMix::new(1);
        let e = ProviderError::http("openai", 503, "busy");
        for (retry, base) in [(0, 100u64), (1, 200), (2, 400), (3, 800), (4, 1000), (9, 1000)] {
            let d = p.delay(retry, &e, &rng).unwrap();
            assert!(d >= Duration::from_millis(base / 2) && d < Duration::from_millis(base), "{retry}: {d:?}");
        }
        assert!(p.delay(10, &e, &rng).is_none(), "retries exhausted");
        assert!(p.delay(0, &ProviderError::http("openai", 401, "no"), &rng).is_none(), "auth is final");
        assert!(p.delay(0, &ProviderError::new(ErrorKind::Network, "openai", "reset"), &rng).is_some());
    }

    #[test]
    fn retry_after_is_honoured_or_refused() {
        let p = RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_secs(5),
        };
        let rng = SplitMix::new(1);
        let e = ProviderError::http("openai", 429, "slow").with_retry_after(Some(Duration::from_secs(3)));
        assert_eq!(p.delay(0, &e, &rng), Some(Duration::from_secs(3)));
        let long = ProviderError::http("openai", 429, "slow").with_retry_after(Some(Duration::from_secs(60)));
        assert_eq!(p.delay(0, &long, &rng), None);
    }

    #[test]
    fn parses_seconds_dates_and_ms() {
        let now =
            chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:07 GMT", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        let mut h = HeaderMap::new();
        h.insert("retry-after-ms", "250".parse().unwrap());
        h.insert("retry-after", "9".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    }

    #[test]
    fn absurd_retry_after_values_count_as_no_header() {
        let now =
            chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT").unwrap().with_timezone(&chrono::Utc);
        for raw in
            ["1e300", "-5", "NaN", "inf", "-inf", "18446744073709551616", "604801", "Fri, 21 Oct 2095 07:28:00 GMT"]
        {
            assert_eq!(parse_retry_after(raw, now), None, "{raw}");
        }
        assert_eq!(parse_retry_after("604800", now), Some(duration::MAX_WAIT));
        // An absurd `retry-after-ms` falls back to `retry-after`; both absurd: none.
        let mut h = HeaderMap::new();
        h.insert("retry-after-ms", "1e300".parse().unwrap());
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "-1".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
    }

    #[test]
    fn backoff_never_panics_on_caps_set_in_code() {
        let p = RetryPolicy { max_retries: 64, initial_backoff: Duration::MAX, max_backoff: Duration::MAX };
        let e = ProviderError::http("openai", 503, "busy");
        for retry in [0, 1, 30, 63] {
            assert!(p.delay(retry, &e, &SplitMix::new(u64::from(retry))).is_some());
        }
    }
}
