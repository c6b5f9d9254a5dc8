//! YAML 1.1 implicit typing of plain scalars, as PyYAML's `safe_load`
//! resolves them: `yes`/`no`/`on`/`off` booleans, `~`/`null` nulls, octal
//! (`010`), hexadecimal, binary and base-60 (`1:30`) integers with `_`
//! separators, and floats that contain a `.` (`1.5`, `.5`, `1.0e+3`,
//! `.inf`, `.nan`; `1e3` stays a string). Infinite and NaN floats, which
//! JSON cannot hold, become null.

use serde_json::{Number, Value};

/// The value of a plain (unquoted) scalar.
pub(crate) fn resolve_plain(text: &str) -> Value {
    if is_null(text) {
        return Value::Null;
    }
    if let Some(b) = bool_word(text) {
        return Value::Bool(b);
    }
    if is_float(text) {
        return float_value(text).map_or(Value::Null, Value::Number);
    }
    if is_int(text)
        && let Some(value) = int_value(text)
    {
        return value;
    }
    Value::String(text.to_owned())
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn bool_word(text: &str) -> Option<bool> {
    match text {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

fn strip_sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

fn all(text: &str, allowed: impl Fn(u8) -> bool) -> bool {
    text.bytes().all(allowed)
}

fn digit_or_sep(b: u8) -> bool {
    b.is_ascii_digit() || b == b'_'
}

/// `[0-5]?[0-9]`.
fn is_base60_digit(part: &str) -> bool {
    match part.as_bytes() {
        [d] => d.is_ascii_digit(),
        [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
        _ => false,
    }
}

/// `[0-9]*` after a leading digit, with `_`: `[x][0-9_]*` where `first`
/// checks the leading digit.
fn is_number_head(text: &str, first: impl Fn(u8) -> bool) -> bool {
    text.as_bytes().first().is_some_and(|&b| first(b)) && all(&text[1..], digit_or_sep)
}

/// `[eE][-+][0-9]+` (or nothing).
fn is_exponent(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.is_empty()
        || (bytes.len() >= 3
            && matches!(bytes[0], b'e' | b'E')
            && matches!(bytes[1], b'-' | b'+')
            && all(&text[2..], |b| b.is_ascii_digit()))
}

fn is_float(text: &str) -> bool {
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (_, unsigned) = strip_sign(text);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    // `.5`, `.5e+3` (no sign allowed).
    if let Some(rest) = text.strip_prefix('.') {
        let end = rest.find(['e', 'E']).unwrap_or(rest.len());
        return is_number_head(&rest[..end], |b| b.is_ascii_digit()) && is_exponent(&rest[end..]);
    }
    let Some((head, tail)) = unsigned.split_once('.') else { return false };
    let mut parts = head.split(':');
    let first = parts.next().unwrap_or_default();
    if !is_number_head(first, |b| b.is_ascii_digit()) {
        return false;
    }
    let base60: Vec<&str> = parts.collect();
    if base60.is_empty() {
        let end = tail.find(['e', 'E']).unwrap_or(tail.len());
        all(&tail[..end], digit_or_sep) && is_exponent(&tail[end..])
    } else {
        base60.iter().all(|p| is_base60_digit(p)) && all(tail, digit_or_sep)
    }
}

fn float_value(text: &str) -> Option<Number> {
    let cleaned = text.replace('_', "").to_lowercase();
    let (negative, unsigned) = strip_sign(&cleaned);
    let magnitude = if unsigned.contains(':') {
        unsigned.split(':').try_fold(0.0f64, |acc, part| part.parse::<f64>().ok().map(|d| acc * 60.0 + d))?
    } else {
        unsigned.parse::<f64>().ok()?
    };
    Number::from_f64(if negative { -magnitude } else { magnitude })
}

fn is_int(text: &str) -> bool {
    let (_, unsigned) = strip_sign(text);
    if let Some(bits) = unsigned.strip_prefix("0b") {
        return !bits.is_empty() && all(bits, |b| matches!(b, b'0' | b'1' | b'_'));
    }
    if let Some(hex) = unsigned.strip_prefix("0x") {
        return !hex.is_empty() && all(hex, |b| b.is_ascii_hexdigit() || b == b'_');
    }
    if let Some(octal) = unsigned.strip_prefix('0') {
        return octal.is_empty() || all(octal, |b| (b'0'..=b'7').contains(&b) || b == b'_');
    }
    let mut parts = unsigned.split(':');
    let first = parts.next().unwrap_or_default();
    is_number_head(first, |b| (b'1'..=b'9').contains(&b)) && parts.all(is_base60_digit)
}

fn int_value(text: &str) -> Option<Value> {
    let cleaned = text.replace('_', "");
    let (negative, unsigned) = strip_sign(&cleaned);
    let magnitude: i128 = if unsigned == "0" {
        0
    } else if let Some(bits) = unsigned.strip_prefix("0b") {
        i128::from_str_radix(bits, 2).ok()?
    } else if let Some(hex) = unsigned.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if let Some(octal) = unsigned.strip_prefix('0') {
        i128::from_str_radix(octal, 8).ok()?
    } else if unsigned.contains(':') {
        unsigned
            .split(':')
            .try_fold(0i128, |acc, part| part.parse::<i128>().ok().and_then(|d| acc.checked_mul(60)?.checked_add(d)))?
    } else {
        unsigned.parse::<i128>().ok()?
    };
    let value = if negative { -magnitude } else { magnitude };
    if let Ok(i) = i64::try_from(value) {
        Some(Value::from(i))
    } else if let Ok(u) = u64::try_from(value) {
        Some(Value::from(u))
    } else {
        // Beyond JSON's integers: the nearest float.
        Number::from_f64(value as f64).map(Value::Number)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn booleans_and_nulls() {
        for yes in ["yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"] {
            assert_eq!(resolve_plain(yes), json!(true), "{yes}");
        }
        for no in ["no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"] {
            assert_eq!(resolve_plain(no), json!(false), "{no}");
        }
        // PyYAML does not treat these as booleans.
        for word in ["y", "n", "Y", "yEs", "oN"] {
            assert_eq!(resolve_plain(word), json!(word), "{word}");
        }
        for null in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(resolve_plain(null), Value::Null, "{null:?}");
        }
        assert_eq!(resolve_plain("nULL"), json!("nULL"));
    }

    #[test]
    fn integers() {
        assert_eq!(resolve_plain("7"), json!(7));
        assert_eq!(resolve_plain("-7"), json!(-7));
        assert_eq!(resolve_plain("+7"), json!(7));
        assert_eq!(resolve_plain("0"), json!(0));
        assert_eq!(resolve_plain("010"), json!(8));
        assert_eq!(resolve_plain("-010"), json!(-8));
        assert_eq!(resolve_plain("0x1F"), json!(31));
        assert_eq!(resolve_plain("0b101"), json!(5));
        assert_eq!(resolve_plain("1_000"), json!(1000));
        assert_eq!(resolve_plain("1:30"), json!(90));
        assert_eq!(resolve_plain("-1:0:0"), json!(-3600));
        assert_eq!(resolve_plain("08"), json!("08"));
        assert_eq!(resolve_plain("1:60"), json!("1:60"));
        assert_eq!(resolve_plain("0o10"), json!("0o10"));
        assert_eq!(resolve_plain("18446744073709551615"), json!(18_446_744_073_709_551_615u64));
    }

    #[test]
    fn floats() {
        assert_eq!(resolve_plain("1.5"), json!(1.5));
        assert_eq!(resolve_plain("-1.5"), json!(-1.5));
        assert_eq!(resolve_plain(".5"), json!(0.5));
        assert_eq!(resolve_plain("1."), json!(1.0));
        assert_eq!(resolve_plain("1.0e+3"), json!(1000.0));
        assert_eq!(resolve_plain("1_0.5"), json!(10.5));
        assert_eq!(resolve_plain("1:30.5"), json!(90.5));
        assert_eq!(resolve_plain(".inf"), Value::Null);
        assert_eq!(resolve_plain("-.INF"), Value::Null);
        assert_eq!(resolve_plain(".NaN"), Value::Null);
        // YAML 1.1 floats need a dot and a signed exponent.
        assert_eq!(resolve_plain("1e3"), json!("1e3"));
        assert_eq!(resolve_plain("1.0e3"), json!("1.0e3"));
        assert_eq!(resolve_plain("inf"), json!("inf"));
        assert_eq!(resolve_plain("-.5"), json!("-.5"));
    }
}
