//! Timestamps in the wire format (RFC 3339, UTC, exactly six fractional digits, `Z`),
//! written straight from microseconds since the Unix epoch: events are serialized by the
//! thousand, and a general-purpose date formatter is several times slower.

use std::fmt;

/// A timestamp in microseconds since the Unix epoch, displayed in the wire format
/// (`2026-11-26T08:52:59.123456Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireTime(pub i64);

/// The length of a wire timestamp in years 0 to 9999.
const WIRE_LEN: usize = 27;

impl WireTime {
    /// Its fields: year, month, day, hours, minutes, seconds, microseconds.
    fn fields(self) -> (i64, u32, u32, i64, i64, i64, i64) {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let in_day = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        (y, m, d, in_day / 3600, in_day % 3600 / 60, in_day % 60, micros)
    }

    /// The wire text written into `buf`, for years 0 to 9999 (`None` beyond: the
    /// [`fmt::Display`] form covers every year).
    pub fn write(self, buf: &mut [u8; WIRE_LEN]) -> Option<&str> {
        let (y, m, d, hh, mm, ss, micros) = self.fields();
        if !(0..=9999).contains(&y) {
            return None;
        }
        let mut at = 0;
        let mut put = |value: i64, digits: usize, then: u8| {
            let mut v = value;
            for k in (0..digits).rev() {
                // Every field is non-negative and below 10^digits here.
                buf[at + k] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            buf[at + digits] = then;
            at += digits + 1;
        };
        put(y, 4, b'-');
        put(i64::from(m), 2, b'-');
        put(i64::from(d), 2, b'T');
        put(hh, 2, b':');
        put(mm, 2, b':');
        put(ss, 2, b'.');
        put(micros, 6, b'Z');
        std::str::from_utf8(&buf[..]).ok()
    }
}

impl fmt::Display for WireTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = self.write(&mut [0; WIRE_LEN]) {
            return f.write_str(text);
        }
        let (y, m, d, hh, mm, ss, micros) = self.fields();
        write!(f, "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{micros:06}Z")
    }
}

impl serde::Serialize for WireTime {
    /// The wire text, as a string.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.write(&mut [0; WIRE_LEN]) {
            Some(text) => s.serialize_str(text),
            None => s.collect_str(self),
        }
    }
}

/// Year, month and day of the day `days` after 1970-01-01 (proleptic Gregorian
/// calendar; the era arithmetic of Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, SecondsFormat};

    use super::WireTime;

    #[test]
    fn matches_chrono_rfc3339_with_micros_across_centuries_and_leap_days() {
        let mut us: i64 = -2_208_988_800_000_000; // 1900-01-01
        let end: i64 = 7_258_118_400_000_000; // 2200-01-01
        let mut step: i64 = 86_399_999_937;
        while us < end {
            let expected = DateTime::from_timestamp_micros(us).unwrap().to_rfc3339_opts(SecondsFormat::Micros, true);
            assert_eq!(WireTime(us).to_string(), expected, "{us}");
            us += step;
            step = step * 7 % 1_000_000_000_007 + 3_600_000_000;
        }
        for s in ["2024-02-29T23:59:59.999999Z", "2000-03-01T00:00:00.000000Z", "1970-01-01T00:00:00.000001Z"] {
            let us = DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
            assert_eq!(WireTime(us).to_string(), s);
        }
    }
}
