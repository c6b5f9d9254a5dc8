//! Structured output: reading a model's JSON answer and checking it against its JSON
//! schema with the `jsonschema` crate (the full specification, not only the subset models
//! are asked to follow), in messages that point at the failing place.

use jsonschema::ValidationError;
use jsonschema::error::{TypeKind, ValidationErrorKind};
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

/// Check `value` against `schema` (any JSON Schema draft the `jsonschema` crate knows,
/// 2020-12 when the schema names none). The error names the first offending place as a
/// JSON pointer (`/tags/0`, `(root)` for the whole answer) and says what is wrong in words
/// a model can act on.
pub(crate) fn validate(value: &Value, schema: &Value) -> Result<(), String> {
    let validator = jsonschema::validator_for(schema).map_err(|e| format!("the output schema is invalid: {e}"))?;
    match validator.validate(value) {
        Ok(()) => Ok(()),
        Err(e) => Err(describe(&e)),
    }
}

/// `<pointer>: <what is wrong>` for one validation error.
fn describe(e: &ValidationError<'_>) -> String {
    let pointer = e.instance_path().as_str();
    let place = if pointer.is_empty() { "(root)" } else { pointer };
    format!("{place}: {}", problem(e))
}

fn problem(e: &ValidationError<'_>) -> String {
    let instance = e.instance();
    match e.kind() {
        ValidationErrorKind::Required { property } => match property.as_str() {
            Some(name) => format!("missing required key {}", Value::String(name.to_owned())),
            None => format!("missing required key {property}"),
        },
        ValidationErrorKind::Type { kind } => {
            let expected: Vec<String> = match kind {
                TypeKind::Single(t) => vec![t.to_string()],
                TypeKind::Multiple(set) => set.iter().map(|t| t.to_string()).collect(),
            };
            format!("expected {}, got {}", expected.join(" or "), json_schema_type_name(instance))
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let keys: Vec<String> = unexpected.iter().map(|k| Value::String(k.clone()).to_string()).collect();
            format!("unexpected key{} {}", if keys.len() == 1 { "" } else { "s" }, keys.join(", "))
        }
        ValidationErrorKind::MinItems { limit } => {
            format!("expected at least {limit} items, got {}", instance.as_array().map_or(0, Vec::len))
        }
        ValidationErrorKind::MaxItems { limit } => {
            format!("expected at most {limit} items, got {}", instance.as_array().map_or(0, Vec::len))
        }
        ValidationErrorKind::Enum { options } => format!("{instance} is not one of {options}"),
        ValidationErrorKind::Constant { expected_value } => format!("expected {expected_value}"),
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            let branches: Vec<String> = context.iter().filter_map(|errors| errors.first()).map(describe).collect();
            format!("matches none of the allowed shapes ({})", branches.join("; "))
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
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
        assert_eq!(err(json!({"tags": ["x"]})), "(root): missing required key \"name\"");
        assert_eq!(err(json!({"name": 1, "tags": ["x"]})), "/name: expected string, got integer");
        assert_eq!(err(json!({"name": "a", "tags": [1]})), "/tags/0: expected string, got integer");
        assert_eq!(err(json!({"name": "a", "tags": []})), "/tags: expected at least 1 items, got 0");
        assert_eq!(err(json!({"name": "a", "tags": ["x"], "extra": 1})), "(root): unexpected key \"extra\"");
        assert_eq!(
            err(json!({"name": "a", "tags": ["x"], "mood": "glad"})),
            "/mood: \"glad\" is not one of [\"ok\",\"sad\"]"
        );
        assert_eq!(err(json!([1])), "(root): expected object, got array");
        assert_eq!(err(json!({"name": "a", "tags": ["x"], "note": 3})), "/note: expected null or string, got integer");
    }

    #[test]
    fn uses_the_whole_specification() {
        let schema = json!({"type": "object", "properties": {
            "n": {"type": "integer", "minimum": 1},
            "id": {"type": "string", "pattern": "^[a-z]+$"},
            "a/b": {"anyOf": [{"type": "string"}, {"type": "array", "maxItems": 1}]},
            "k": {"const": 3}}});
        let err = |v| validate(&v, &schema).unwrap_err();
        assert!(validate(&json!({"n": 2, "id": "abc", "a/b": [1], "k": 3}), &schema).is_ok());
        assert!(err(json!({"n": 0})).starts_with("/n: 0 is less than the minimum of 1"), "{}", err(json!({"n": 0})));
        assert!(err(json!({"id": "A1"})).starts_with("/id: "), "{}", err(json!({"id": "A1"})));
        assert_eq!(
            err(json!({"a/b": [1, 2]})),
            "/a~1b: matches none of the allowed shapes (/a~1b: expected string, got array; /a~1b: expected at most 1 items, got 2)"
        );
        assert_eq!(err(json!({"k": 4})), "/k: expected 3");
        assert!(
            validate(&json!({}), &json!({"type": "nonsense"})).unwrap_err().starts_with("the output schema is invalid")
        );
    }

    #[test]
    fn parses_fenced_json() {
        assert_eq!(parse_json("```json\n{\"a\": 1}\n```").unwrap(), json!({"a": 1}));
        assert_eq!(parse_json(" [1] ").unwrap(), json!([1]));
        assert!(parse_json("Sure! {\"a\": 1}").is_err());
    }
}
