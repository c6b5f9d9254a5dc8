//! Structured output: reading a model's JSON answer and checking it against a JSON
//! schema (the subset models are asked to follow: `type`, `properties`, `required`,
//! `additionalProperties: false`, `items`, `minItems`/`maxItems`, `enum`, `const`,
//! `anyOf`/`oneOf`).

use operonx_graph::type_names::json_schema_type_name;
use serde_json::Value;

/// Parse a model's answer as JSON, tolerating a surrounding Markdown code fence.
pub(crate) fn parse_json(content: &str) -> Result<Value, String> {
    let t = content.trim();
    let t = match t.strip_prefix("```") {
        Some(rest) => {
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphabetic());
            rest.trim_end().strip_suffix("```").unwrap_or(rest).trim()
        }
        None => t,
    };
    serde_json::from_str(t).map_err(|e| format!("the answer is not valid JSON ({e})"))
}

fn type_matches(v: &Value, t: &str) -> bool {
    match t {
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        other => json_schema_type_name(v) == other,
    }
}

/// Check `value` against `schema`; the error names the first offending path.
pub(crate) fn validate(value: &Value, schema: &Value) -> Result<(), String> {
    check(value, schema, "$")
}

fn check(v: &Value, s: &Value, path: &str) -> Result<(), String> {
    let Some(s) = s.as_object() else { return Ok(()) };
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| type_matches(v, t)) {
            return Err(format!("{path}: expected {}, got {}", types.join(" or "), json_schema_type_name(v)));
        }
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        return Err(format!("{path}: {v} is not one of {}", Value::Array(options.clone())));
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        return Err(format!("{path}: expected {c}"));
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = s.get(key).and_then(Value::as_array) {
            let errors: Vec<String> = branches.iter().filter_map(|b| check(v, b, path).err()).collect();
            if errors.len() == branches.len() && !branches.is_empty() {
                return Err(format!("{path}: matches none of the allowed shapes ({})", errors.join("; ")));
            }
        }
    }
    if let Value::Object(obj) = v {
        for req in s.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !obj.contains_key(req) {
                return Err(format!("{path}: missing required key \"{req}\""));
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => check(val, sub, &format!("{path}.{k}"))?,
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{path}: unexpected key \"{k}\""));
                }
                None => {}
            }
        }
    }
    if let Value::Array(items) = v {
        let len = items.len() as u64;
        if let Some(min) = s.get("minItems").and_then(Value::as_u64).filter(|m| len < *m) {
            return Err(format!("{path}: expected at least {min} items, got {len}"));
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64).filter(|m| len > *m) {
            return Err(format!("{path}: expected at most {max} items, got {len}"));
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(item, item_schema, &format!("{path}[{i}]"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validates_nested_shapes_and_names_the_path() {
        let schema = json!({"type": "object", "required": ["name", "tags"], "additionalProperties": false,
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "mood": {"enum": ["ok", "sad"]},
                           "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                           "note": {"type": ["string", "null"]}}});
        assert!(validate(&json!({"name": "a", "tags": ["x"], "age": 3, "note": null}), &schema).is_ok());
        let err = |v| validate(&v, &schema).unwrap_err();
        assert_eq!(err(json!({"tags": ["x"]})), "$: missing required key \"name\"");
        assert_eq!(err(json!({"name": 1, "tags": ["x"]})), "$.name: expected string, got integer");
        assert_eq!(err(json!({"name": "a", "tags": [1]})), "$.tags[0]: expected string, got integer");
        assert_eq!(err(json!({"name": "a", "tags": []})), "$.tags: expected at least 1 items, got 0");
        assert_eq!(err(json!({"name": "a", "tags": ["x"], "extra": 1})), "$: unexpected key \"extra\"");
        assert!(err(json!({"name": "a", "tags": ["x"], "mood": "glad"})).contains("is not one of"));
        assert_eq!(err(json!([1])), "$: expected object, got array");
    }

    #[test]
    fn parses_fenced_json() {
        assert_eq!(parse_json("```json\n{\"a\": 1}\n```").unwrap(), json!({"a": 1}));
        assert_eq!(parse_json(" [1] ").unwrap(), json!([1]));
        assert!(parse_json("Sure! {\"a\": 1}").is_err());
    }
}
