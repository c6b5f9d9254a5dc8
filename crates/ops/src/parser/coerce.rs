//! Type hints and the coercions they apply to extracted values, following
//! the reference's use of Python's `int()`, `float()`, `str()` and its own
//! boolean words.

use operonx_graph::expr::to_py_str;
use serde_json::{Number, Value};

/// A schema field's type hint (the part after `:` in `"path: type"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeHint {
    /// No hint, or a hint without a coercion (`list`, `dict`, `integer`,
    /// unknown words): the value is left unchanged.
    Any,
    /// `str` / `string`: Python `str()`, then stripped.
    Str,
    /// `int` (only that spelling): Python `int()`.
    Int,
    /// `float` / `number`: Python `float()`.
    Float,
    /// `bool` / `boolean`: yes/no words, else Python truthiness.
    Bool,
}

impl TypeHint {
    /// Parse a hint, case-insensitively and ignoring surrounding whitespace.
    /// Hints without a coercion become [`TypeHint::Any`].
    pub(crate) fn parse(text: &str) -> Self {
        match text.trim().to_lowercase().as_str() {
            "str" | "string" => Self::Str,
            "int" => Self::Int,
            "float" | "number" => Self::Float,
            "bool" | "boolean" => Self::Bool,
            _ => Self::Any,
        }
    }

    /// Coerce `value` according to this hint. Never fails: when Python's
    /// conversion would raise, the value is returned unchanged; null stays
    /// null.
    pub(crate) fn apply(self, value: Value) -> Value {
        if value.is_null() {
            return value;
        }
        match self {
            Self::Any => value,
            Self::Str => Value::String(to_py_str(&value).trim().to_owned()),
            Self::Int => to_int(&value).unwrap_or(value),
            Self::Float => to_float(&value).unwrap_or(value),
            Self::Bool => Value::Bool(truthy(&value)),
        }
    }
}

/// Python `int(value)`, when it succeeds and fits a JSON number.
fn to_int(value: &Value) -> Option<Value> {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(value.clone()),
        Value::Number(n) => n.as_f64().and_then(truncate_float),
        Value::String(s) => parse_py_int(s),
        Value::Bool(b) => Some(Value::from(i64::from(*b))),
        _ => None,
    }
}

/// Truncate a float toward zero, if the result fits an `i64`.
fn truncate_float(f: f64) -> Option<Value> {
    // 2^63 is exactly representable; everything strictly inside fits.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !f.is_finite() {
        return None;
    }
    let truncated = f.trunc();
    if !(-LIMIT..LIMIT).contains(&truncated) {
        return None;
    }
    // In range and integral, so the conversion is exact.
    Some(Value::from(truncated as i64))
}

/// Remove the `_` digit separators Python accepts in numeric strings (each
/// one between two digits); `None` when one is misplaced.
fn strip_separators(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        if c == '_' {
            let digit_before = i > 0 && bytes[i - 1].is_ascii_digit();
            let digit_after = bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !(digit_before && digit_after) {
                return None;
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Python `int(text)`: surrounding whitespace, an optional sign, decimal
/// digits with `_` separators. A float string such as `"3.0"` is rejected.
fn parse_py_int(text: &str) -> Option<Value> {
    let cleaned = strip_separators(text.trim())?;
    let digits = cleaned.strip_prefix(['+', '-']).unwrap_or(&cleaned);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let unsigned = cleaned.strip_prefix('+').unwrap_or(&cleaned);
    if let Ok(i) = unsigned.parse::<i64>() {
        return Some(Value::from(i));
    }
    unsigned.parse::<u64>().ok().map(Value::from)
}

/// Python `float(value)`, when it succeeds with a finite result (JSON has
/// no infinity or NaN, so those leave the value unchanged).
fn to_float(value: &Value) -> Option<Value> {
    let parsed = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => strip_separators(s.trim()).and_then(|t| t.parse::<f64>().ok()),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    };
    parsed.and_then(Number::from_f64).map(Value::Number)
}

/// `bool`: the strings `true`/`1`/`yes` and `false`/`0`/`no`/`""` (any
/// case, surrounding whitespace ignored); anything else by Python
/// truthiness (other non-empty strings are true, zero and empty containers
/// false).
pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" | "" => false,
            _ => !s.is_empty(),
        },
        other => operonx_graph::expr::truthy(other),
    }
}

#[cfg(test)]
#[path = "coerce_tests.rs"]
mod tests;
