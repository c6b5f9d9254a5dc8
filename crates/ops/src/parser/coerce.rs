//! Type hints and the lenient coercions they apply to extracted values.

use serde_json::{Number, Value};

/// A schema field's type hint (the part after `:` in `"path: type"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeHint {
    /// No hint, or a hint we do not know: the value is left unchanged.
    Any,
    /// `str` / `string`.
    Str,
    /// `int` / `integer`.
    Int,
    /// `float` / `number`.
    Float,
    /// `bool` / `boolean`.
    Bool,
    /// `list` / `array`.
    List,
    /// `dict` / `object`.
    Dict,
}

impl TypeHint {
    /// Parse a hint, case-insensitively and ignoring surrounding whitespace.
    /// Unknown hints become [`TypeHint::Any`].
    pub(crate) fn parse(text: &str) -> Self {
        match text.trim().to_ascii_lowercase().as_str() {
            "str" | "string" => Self::Str,
            "int" | "integer" => Self::Int,
            "float" | "number" => Self::Float,
            "bool" | "boolean" => Self::Bool,
            "list" | "array" => Self::List,
            "dict" | "object" => Self::Dict,
            _ => Self::Any,
        }
    }

    /// Coerce `value` according to this hint. Never fails: a value that
    /// cannot be converted is returned unchanged, and null stays null.
    pub(crate) fn apply(self, value: Value) -> Value {
        if value.is_null() {
            return value;
        }
        match self {
            Self::Any => value,
            Self::Str => to_str(value),
            Self::Int => to_int(value),
            Self::Float => to_float(value),
            Self::Bool => Value::Bool(truthy(&value)),
            Self::List => match value {
                Value::Array(_) => value,
                other => Value::Array(vec![other]),
            },
            Self::Dict => value,
        }
    }
}

/// `str`: strings trimmed; other values stringified (compact JSON for
/// containers, `true`/`false` for booleans) and trimmed.
fn to_str(value: Value) -> Value {
    let text = match value {
        Value::String(s) => {
            let trimmed = s.trim();
            if trimmed.len() == s.len() {
                return Value::String(s);
            }
            trimmed.to_owned()
        }
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string().trim().to_owned(),
    };
    Value::String(text)
}

/// `int`: integers kept, floats truncated toward zero, numeric strings
/// parsed, booleans → 0/1; anything else unchanged.
fn to_int(value: Value) -> Value {
    match value {
        Value::Number(ref n) => {
            if n.is_i64() || n.is_u64() {
                return value;
            }
            n.as_f64().and_then(truncate_float).unwrap_or(value)
        }
        Value::String(ref s) => parse_int_str(s).unwrap_or(value),
        Value::Bool(b) => Value::from(i64::from(b)),
        other => other,
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

/// Parse an integer (optional sign, digits) or a float string (truncated).
fn parse_int_str(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Ok(i) = text.parse::<i64>() {
        return Some(Value::from(i));
    }
    if let Ok(u) = text.parse::<u64>() {
        return Some(Value::from(u));
    }
    parse_finite_float(text).and_then(truncate_float)
}

/// Parse a finite float from trimmed text. Rejects words such as `inf` or
/// `nan`, which JSON cannot represent anyway.
fn parse_finite_float(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

/// `float`: numbers → float, numeric strings parsed, booleans → 0.0/1.0;
/// anything else unchanged.
fn to_float(value: Value) -> Value {
    let parsed = match &value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_finite_float(s),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    };
    match parsed.and_then(Number::from_f64) {
        Some(n) => Value::Number(n),
        None => value,
    }
}

/// `bool`: lenient truthiness. Strings follow the usual yes/no words
/// (other non-empty strings are true); numbers, arrays and objects are true
/// when non-zero / non-empty.
pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => {
            let word = s.trim().to_ascii_lowercase();
            !matches!(word.as_str(), "false" | "0" | "no" | "n" | "off" | "")
        }
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_hints() {
        assert_eq!(TypeHint::parse(" STRING "), TypeHint::Str);
        assert_eq!(TypeHint::parse("Integer"), TypeHint::Int);
        assert_eq!(TypeHint::parse("number"), TypeHint::Float);
        assert_eq!(TypeHint::parse("boolean"), TypeHint::Bool);
        assert_eq!(TypeHint::parse("array"), TypeHint::List);
        assert_eq!(TypeHint::parse("object"), TypeHint::Dict);
        assert_eq!(TypeHint::parse("uuid"), TypeHint::Any);
        assert_eq!(TypeHint::parse(""), TypeHint::Any);
    }

    #[test]
    fn null_stays_null_for_every_hint() {
        for hint in [
            TypeHint::Any,
            TypeHint::Str,
            TypeHint::Int,
            TypeHint::Float,
            TypeHint::Bool,
            TypeHint::List,
            TypeHint::Dict,
        ] {
            assert_eq!(hint.apply(Value::Null), Value::Null, "{hint:?}");
        }
    }

    #[test]
    fn coerces_to_str() {
        let s = |v: Value| TypeHint::Str.apply(v);
        assert_eq!(s(json!("  Ann ")), json!("Ann"));
        assert_eq!(s(json!(30)), json!("30"));
        assert_eq!(s(json!(2.5)), json!("2.5"));
        assert_eq!(s(json!(true)), json!("true"));
        assert_eq!(s(json!([1, "a"])), json!("[1,\"a\"]"));
        assert_eq!(s(json!({"k": 1})), json!("{\"k\":1}"));
    }

    #[test]
    fn coerces_to_int() {
        let i = |v: Value| TypeHint::Int.apply(v);
        assert_eq!(i(json!(30)), json!(30));
        assert_eq!(i(json!(3.7)), json!(3));
        assert_eq!(i(json!(-3.7)), json!(-3));
        assert_eq!(i(json!(4.0)), json!(4));
        assert_eq!(i(json!(" 41 ")), json!(41));
        assert_eq!(i(json!("-7")), json!(-7));
        assert_eq!(i(json!("+7")), json!(7));
        assert_eq!(i(json!("3.7")), json!(3));
        assert_eq!(i(json!(true)), json!(1));
        assert_eq!(i(json!(false)), json!(0));
        assert_eq!(i(json!("abc")), json!("abc"));
        assert_eq!(i(json!("nan")), json!("nan"));
        assert_eq!(i(json!(1e300)), json!(1e300));
        assert_eq!(i(json!([1])), json!([1]));
    }

    #[test]
    fn coerces_to_float() {
        let f = |v: Value| TypeHint::Float.apply(v);
        assert_eq!(f(json!(3)), json!(3.0));
        assert_eq!(f(json!(" 2.5 ")), json!(2.5));
        assert_eq!(f(json!("1e3")), json!(1000.0));
        assert_eq!(f(json!(true)), json!(1.0));
        assert_eq!(f(json!("x")), json!("x"));
        assert_eq!(f(json!("inf")), json!("inf"));
        assert_eq!(f(json!({"a": 1})), json!({"a": 1}));
    }

    #[test]
    fn coerces_to_bool() {
        let b = |v: Value| TypeHint::Bool.apply(v);
        for yes in ["true", " YES ", "1", "y", "On", "maybe"] {
            assert_eq!(b(json!(yes)), json!(true), "{yes}");
        }
        for no in ["false", "No", "0", "n", "OFF", "", "   "] {
            assert_eq!(b(json!(no)), json!(false), "{no:?}");
        }
        assert_eq!(b(json!(0)), json!(false));
        assert_eq!(b(json!(0.0)), json!(false));
        assert_eq!(b(json!(2)), json!(true));
        assert_eq!(b(json!([])), json!(false));
        assert_eq!(b(json!([0])), json!(true));
        assert_eq!(b(json!({})), json!(false));
        assert_eq!(b(json!(true)), json!(true));
    }

    #[test]
    fn coerces_to_list_and_dict() {
        assert_eq!(TypeHint::List.apply(json!([1])), json!([1]));
        assert_eq!(TypeHint::List.apply(json!("a")), json!(["a"]));
        assert_eq!(TypeHint::List.apply(json!({"a": 1})), json!([{"a": 1}]));
        assert_eq!(TypeHint::Dict.apply(json!({"a": 1})), json!({"a": 1}));
        assert_eq!(TypeHint::Dict.apply(json!("a")), json!("a"));
        assert_eq!(TypeHint::Any.apply(json!(" a ")), json!(" a "));
    }
}
