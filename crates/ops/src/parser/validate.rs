//! Validators: `{field: [allowed values...]}` with an optional `@fallback`.

use serde_json::{Map, Value};

use super::schema::Field;
use super::{ParserConfigError, json_type_name};

/// One compiled validator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Validator {
    /// The field name as written in the validators object (used in messages).
    label: String,
    /// The output key the validator checks.
    output: String,
    /// The allowed values, with any `@` fallback marker stripped.
    allowed: Vec<Value>,
    /// The value used when the field's value is not allowed.
    fallback: Option<Value>,
}

/// Compile the `validators` input against the schema fields. A validator key
/// names a field by its output name or by its full path.
pub(crate) fn parse_validators(
    validators: Option<&Value>,
    fields: &[Field],
) -> Result<Vec<Validator>, ParserConfigError> {
    let map = match validators {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(ParserConfigError::new(format!("validators must be an object, got {}", json_type_name(other))));
        }
    };

    let mut compiled = Vec::with_capacity(map.len());
    for (label, allowed) in map {
        let field =
            fields.iter().find(|f| f.name == *label).or_else(|| fields.iter().find(|f| f.path == *label)).ok_or_else(
                || ParserConfigError::new(format!("validator field {label:?} is not a field of the schema")),
            )?;
        let Value::Array(items) = allowed else {
            return Err(ParserConfigError::new(format!(
                "validators[{label:?}] must be a list of allowed values, got {}",
                json_type_name(allowed)
            )));
        };

        let mut values = Vec::with_capacity(items.len());
        let mut fallback = None;
        for item in items {
            match item.as_str().and_then(|s| s.strip_prefix('@')) {
                Some(stripped) => {
                    let value = Value::String(stripped.to_owned());
                    if fallback.is_none() {
                        fallback = Some(value.clone());
                    }
                    values.push(value);
                }
                None => values.push(item.clone()),
            }
        }
        compiled.push(Validator { label: label.clone(), output: field.name.clone(), allowed: values, fallback });
    }
    Ok(compiled)
}

impl Validator {
    /// Check (and possibly replace with the fallback) the field's value in
    /// `result`. Returns the failure message when the value is not allowed
    /// and there is no fallback.
    pub(crate) fn apply(&self, result: &mut Map<String, Value>) -> Result<(), String> {
        let value = result.get(&self.output).unwrap_or(&Value::Null);
        if !value.is_null() && self.allowed.iter().any(|a| loosely_equal(a, value)) {
            return Ok(());
        }
        if let Some(fallback) = &self.fallback {
            result.insert(self.output.clone(), fallback.clone());
            return Ok(());
        }
        let allowed: Vec<String> = self.allowed.iter().map(python_repr).collect();
        Err(format!(
            "Validation failed: {} value {} not in [{}]",
            python_str_repr(&self.label),
            python_repr(value),
            allowed.join(", ")
        ))
    }
}

/// Equality where numbers compare by value (`1 == 1.0`), like Python.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return x == y;
            }
            if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                return x == y;
            }
            matches!((x.as_f64(), y.as_f64()), (Some(x), Some(y)) if x == y)
        }
        _ => a == b,
    }
}

/// Render a JSON value the way Python's `repr` renders the equivalent
/// Python object (`'text'`, `None`, `True`, `[1, 'a']`, `{'k': 1}`).
pub(crate) fn python_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !(n.is_i64() || n.is_u64()) => python_float_repr(f),
            _ => n.to_string(),
        },
        Value::String(s) => python_str_repr(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(python_repr).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> =
                map.iter().map(|(k, v)| format!("{}: {}", python_str_repr(k), python_repr(v))).collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// Python's `repr` of a float: shortest round-trip digits, positional
/// notation for exponents in `-4..16`, else `1e+16` / `1e-05` style.
/// (JSON numbers are always finite.)
fn python_float_repr(f: f64) -> String {
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..16).contains(&exponent) {
        let positional = f.to_string();
        if positional.contains('.') { positional } else { format!("{positional}.0") }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

/// Python's `repr` of a string: single quotes unless the text contains a
/// single quote and no double quote.
fn python_str_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::parser::schema::parse_schema;
    use serde_json::json;

    #[test]
    fn renders_python_reprs() {
        assert_eq!(python_repr(&json!("a")), "'a'");
        assert_eq!(python_repr(&json!("it's")), "\"it's\"");
        assert_eq!(python_repr(&json!("a'b\"c")), "'a\\'b\"c'");
        assert_eq!(python_repr(&json!("x\ny")), "'x\\ny'");
        assert_eq!(python_repr(&json!(null)), "None");
        assert_eq!(python_repr(&json!(true)), "True");
        assert_eq!(python_repr(&json!(1.5)), "1.5");
        assert_eq!(python_repr(&json!(1e20)), "1e+20");
        assert_eq!(python_repr(&json!(2.0)), "2.0");
        for (value, expected) in [
            (1e-7, "1e-07"),
            (1e-5, "1e-05"),
            (1e-4, "0.0001"),
            (0.0001234, "0.0001234"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e300, "1e+300"),
            (-2.5e-10, "-2.5e-10"),
        ] {
            assert_eq!(python_repr(&json!(value)), expected);
        }
        assert_eq!(python_repr(&json!(-3)), "-3");
        assert_eq!(python_repr(&json!([1, "a", null])), "[1, 'a', None]");
        assert_eq!(python_repr(&json!({"k": false})), "{'k': False}");
    }

    #[test]
    fn compares_numbers_by_value() {
        assert!(loosely_equal(&json!(1), &json!(1.0)));
        assert!(!loosely_equal(&json!(1), &json!("1")));
        assert!(loosely_equal(&json!("a"), &json!("a")));
    }

    #[test]
    fn resolves_fields_by_name_or_path() {
        let fields = parse_schema(Some(&json!(["a.mood: str", "b.level"]))).unwrap();
        let v = parse_validators(Some(&json!({"mood": ["x"], "b.level": [1]})), &fields).unwrap();
        assert_eq!(v[0].output, "mood");
        assert_eq!(v[1].output, "level");
        assert!(parse_validators(Some(&json!({"nope": ["x"]})), &fields).is_err());
        assert!(parse_validators(Some(&json!({"mood": "x"})), &fields).is_err());
        let err = parse_validators(Some(&json!(["mood"])), &fields).unwrap_err();
        assert!(err.to_string().contains("validators must be an object, got array"));
    }
}
