//! Validators: `{field: [allowed values...]}` with an optional `@fallback`.

use operonx_graph::expr::{repr as python_repr, repr_str as python_str_repr};
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::parser::schema::parse_schema;
    use serde_json::json;

    #[test]
    fn messages_use_the_graph_crates_python_repr() {
        let fields = parse_schema(Some(&json!(["mood: str"]))).unwrap();
        let v = parse_validators(Some(&json!({"mood": ["it's", 1e16, null]})), &fields).unwrap();
        let mut result = Map::new();
        result.insert("mood".into(), json!("a\u{2028}b"));
        let err = v[0].apply(&mut result).unwrap_err();
        assert_eq!(err, "Validation failed: 'mood' value 'a\\u2028b' not in [\"it's\", 1e+16, None]");
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
