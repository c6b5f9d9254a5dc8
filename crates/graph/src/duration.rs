//! Checked conversion of a number of seconds, as written in `graph.json`,
//! `resources.yaml` or on the command line, into a [`Duration`].
//!
//! Every duration a user writes goes through [`checked_secs`]: a value that is not a
//! finite number within its [`Limit`] is refused with a message naming the field and its
//! allowed range, instead of panicking (`Duration::from_secs_f64(1e300)`) or waiting
//! forever. The limits:
//!
//! | what | allowed |
//! |---|---|
//! | timeouts, delays, retry delays and backoffs ([`Limit::WAIT`], [`Limit::TIMEOUT`]) | at most 7 days |
//! | cache lifetimes ([`Limit::TTL`]) | at most 365 days |
//! | request rates ([`checked_rate`]) | at least one request per 7 days |

use std::fmt;
use std::time::Duration;

/// Seconds in a day.
const DAY_SECS: u64 = 24 * 60 * 60;

/// The longest wait a graph or a resource may ask for: 7 days.
pub const MAX_WAIT: Duration = Duration::from_secs(7 * DAY_SECS);

/// The longest cache lifetime: 365 days.
pub const MAX_TTL: Duration = Duration::from_secs(365 * DAY_SECS);

/// The range a duration field accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Whether zero is accepted (otherwise the value must be positive).
    pub allow_zero: bool,
    /// The largest value accepted.
    pub max: Duration,
}

impl Limit {
    /// A timeout: positive, at most [`MAX_WAIT`].
    pub const TIMEOUT: Limit = Limit { allow_zero: false, max: MAX_WAIT };
    /// A delay or backoff: zero or more, at most [`MAX_WAIT`].
    pub const WAIT: Limit = Limit { allow_zero: true, max: MAX_WAIT };
    /// A cache lifetime: positive, at most [`MAX_TTL`].
    pub const TTL: Limit = Limit { allow_zero: false, max: MAX_TTL };

    /// What the limit accepts, in words: `a positive number of seconds, at most 604800 (7 days)`.
    pub fn expected(&self) -> String {
        let sign = if self.allow_zero { "a non-negative" } else { "a positive" };
        format!("{sign} number of seconds, at most {}", span(self.max))
    }

    fn admits(&self, secs: f64) -> bool {
        secs.is_finite() && (if self.allow_zero { secs >= 0.0 } else { secs > 0.0 }) && secs <= self.max.as_secs_f64()
    }
}

/// A value outside its field's allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{field}` must be {expected}, got {got}")]
pub struct DurationError {
    /// The field, as the user wrote it (`timeout`, `retry_max_backoff_s`, `--timeout`).
    pub field: String,
    /// The allowed range, in words.
    pub expected: String,
    /// The value given, as written back to the user.
    pub got: String,
}

impl DurationError {
    /// The message without the field's name (for diagnostics located at the field):
    /// `must be a positive number of seconds, at most 604800 (7 days), got 1e300`.
    pub fn problem(&self) -> String {
        format!("must be {}, got {}", self.expected, self.got)
    }
}

/// `value` seconds as a [`Duration`], when it is within `limit`.
pub fn checked_secs(field: &str, value: f64, limit: Limit) -> Result<Duration, DurationError> {
    if limit.admits(value) {
        // In range, hence representable; the fallback is never taken.
        Ok(Duration::try_from_secs_f64(value).unwrap_or(limit.max))
    } else {
        Err(DurationError { field: field.to_string(), expected: limit.expected(), got: Number(value).to_string() })
    }
}

/// The interval between two starts at `per_second` requests per second, when the rate is
/// positive and the interval at most [`MAX_WAIT`] (one request per 7 days).
pub fn checked_rate(field: &str, per_second: f64) -> Result<Duration, DurationError> {
    let min_rate = 1.0 / MAX_WAIT.as_secs_f64();
    if per_second.is_finite() && per_second >= min_rate {
        Ok(Duration::try_from_secs_f64(1.0 / per_second).unwrap_or(MAX_WAIT).min(MAX_WAIT))
    } else {
        Err(DurationError {
            field: field.to_string(),
            expected: format!("a number of requests per second of at least 1/{} (one per 7 days)", MAX_WAIT.as_secs()),
            got: Number(per_second).to_string(),
        })
    }
}

/// Seconds with the span in words: `604800 (7 days)`.
fn span(d: Duration) -> String {
    let secs = d.as_secs();
    if secs.is_multiple_of(DAY_SECS) && secs > 0 {
        let days = secs / DAY_SECS;
        format!("{secs} ({days} day{})", if days == 1 { "" } else { "s" })
    } else {
        format!("{}", Number(d.as_secs_f64()))
    }
}

/// A number written back readably: `2.5`, `60`, `1e300`, `NaN`.
struct Number(f64);

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v == 0.0 || (v.is_finite() && (1e-4..1e16).contains(&v.abs())) {
            write!(f, "{v}")
        } else {
            write!(f, "{v:e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_range_convert_exactly() {
        assert_eq!(checked_secs("timeout", 2.5, Limit::TIMEOUT), Ok(Duration::from_millis(2500)));
        assert_eq!(checked_secs("delay", 0.0, Limit::WAIT), Ok(Duration::ZERO));
        assert_eq!(checked_secs("timeout", 604_800.0, Limit::TIMEOUT), Ok(MAX_WAIT));
        assert_eq!(checked_secs("ttl", 365.0 * 86_400.0, Limit::TTL), Ok(MAX_TTL));
    }

    #[test]
    fn values_out_of_range_name_the_field_and_the_range() {
        for bad in [1e300, 2f64.powi(64), 9_223_372_036_854_775_807.0, 604_800.5, f64::INFINITY, f64::NAN, -1.0] {
            let e = checked_secs("timeout", bad, Limit::TIMEOUT).unwrap_err();
            assert_eq!(e.field, "timeout");
            assert!(
                e.to_string()
                    .starts_with("`timeout` must be a positive number of seconds, at most 604800 (7 days), got "),
                "{e}"
            );
        }
        assert!(checked_secs("timeout", 0.0, Limit::TIMEOUT).is_err(), "a timeout of 0 is refused");
        assert!(checked_secs("ttl", 1e300, Limit::TTL).unwrap_err().problem().contains("at most 31536000 (365 days)"));
        assert_eq!(checked_secs("x", 1e300, Limit::WAIT).unwrap_err().got, "1e300");
        assert_eq!(checked_secs("x", -2.5, Limit::WAIT).unwrap_err().got, "-2.5");
        assert_eq!(checked_secs("x", f64::NAN, Limit::WAIT).unwrap_err().got, "NaN");
    }

    #[test]
    fn rates_become_intervals_of_at_most_seven_days() {
        assert_eq!(checked_rate("rps", 4.0), Ok(Duration::from_millis(250)));
        assert_eq!(checked_rate("rps", 1e300), Ok(Duration::ZERO));
        let e = checked_rate("requests_per_second", 1e-300).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`requests_per_second` must be a number of requests per second of at least 1/604800 (one per 7 days), got 1e-300"
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(checked_rate("rps", bad).is_err(), "{bad}");
        }
    }
}
