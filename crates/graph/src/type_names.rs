//! Naming a JSON value's type in messages. Two schemes exist on purpose:
//!
//! - JSON's own words (`string`, `array`, `object`, ...), here: [`json_type_name`], with the
//!   JSON Schema refinement [`json_schema_type_name`] and the article form [`kind_of`] for
//!   sentences.
//! - Python's words (`str`, `list`, `dict`, `NoneType`, ...) in [`crate::expr::type_name`],
//!   for the expression language and ops whose errors must read exactly like the reference
//!   engine's (conformance tests compare them).

use serde_json::Value;

/// `"null"`, `"boolean"`, `"number"`, `"string"`, `"array"` or `"object"`: JSON's six types,
/// bare (integers are `"number"`).
pub fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The JSON Schema `type` of a value: [`json_type_name`], except that a number written
/// without a fraction or exponent is `"integer"`.
pub fn json_schema_type_name(v: &Value) -> &'static str {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        other => json_type_name(other),
    }
}

/// `"a string"`, `"an object"`, `"null"`, ...: [`json_type_name`] with an article, for
/// sentences.
pub fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Array(_) | Value::Object(_) => format!("an {}", json_type_name(v)),
        _ => format!("a {}", json_type_name(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_scheme_names_every_kind() {
        let values = [json!(null), json!(true), json!(3), json!(1.5), json!("s"), json!([1]), json!({"a": 1})];
        let bare: Vec<_> = values.iter().map(json_type_name).collect();
        assert_eq!(bare, ["null", "boolean", "number", "number", "string", "array", "object"]);
        let schema: Vec<_> = values.iter().map(json_schema_type_name).collect();
        assert_eq!(schema, ["null", "boolean", "integer", "number", "string", "array", "object"]);
        let sentence: Vec<_> = values.iter().map(kind_of).collect();
        assert_eq!(sentence, ["null", "a boolean", "a number", "a number", "a string", "an array", "an object"]);
        assert_eq!(json_schema_type_name(&json!(u64::MAX)), "integer");
    }
}
