//! End-to-end tests of [`ParserSpec`].
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use super::*;

fn spec(mode: Value, schema: Value, validators: Value) -> ParserSpec {
    ParserSpec::new(Some(&mode), Some(&schema), Some(&validators)).unwrap()
}

fn run(mode: &str, schema: Value, text: &str) -> Value {
    Value::Object(spec(json!(mode), schema, Value::Null).run(&json!(text)))
}

fn error_of(result: &Map<String, Value>) -> &str {
    result.get("error").and_then(Value::as_str).unwrap_or("")
}

#[test]
fn upstream_json_fixture() {
    let out = run(
        "json",
        json!(["user.name: str", "user.age: int"]),
        "```json\n{\"user\": {\"name\": \"Alice\", \"age\": 30}}\n```",
    );
    assert_eq!(out, json!({"name": "Alice", "age": 30, "error": null}));
}

#[test]
fn upstream_xml_fixture() {
    let out =
        run("xml", json!(["root.flag: bool", "root.name: str"]), "<root><flag>true</flag><name>Alice</name></root>");
    assert_eq!(out, json!({"flag": true, "name": "Alice", "error": null}));
}

#[test]
fn upstream_yaml_fixture() {
    let out = run("yaml", json!(["user.name: str", "user.age: int"]), "user:\n  name: Bob\n  age: 25");
    assert_eq!(out, json!({"name": "Bob", "age": 25, "error": null}));
}

#[test]
fn json_typed_fixture() {
    let out = run(
        "json",
        json!(["user.name: str", "user.age: int", "user.active: bool", "tags: list", "user.email: str"]),
        "```json\n{\"user\": {\"name\": \"  Ann \", \"age\": \"41\", \"active\": \"yes\"}, \"tags\": [1, \"two\"]}\n```",
    );
    assert_eq!(
        out,
        json!({"name": "Ann", "age": 41, "active": true, "tags": [1, "two"], "email": null, "error": null})
    );
    // Key order: schema order, then "error".
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "age", "active", "tags", "email", "error"]);
}

#[test]
fn output_names_follow_the_schema() {
    let s = spec(json!("json"), json!(["a.b.c: int", "d"]), Value::Null);
    assert_eq!(s.output_names(), ["c", "d", "error"]);
    let s = ParserSpec::new(None, None, None).unwrap();
    assert_eq!(s.output_names(), ["error"]);
    assert_eq!(s.mode(), ParseMode::Xml);
    assert_eq!(s.run(&json!("<a>1</a>")), json!({"error": null}).as_object().cloned().unwrap());
}

#[test]
fn modes_are_case_insensitive() {
    let mode = |m: Value| ParserSpec::new(Some(&m), None, None).map(|s| s.mode());
    assert_eq!(mode(json!("JSON")), Ok(ParseMode::Json));
    assert_eq!(mode(json!("Yml")), Ok(ParseMode::Yaml));
    assert_eq!(mode(json!(" xml ")), Ok(ParseMode::Xml));
    assert_eq!(mode(Value::Null), Ok(ParseMode::Xml));
}

#[test]
fn bad_mode_is_a_config_error() {
    let err = ParserSpec::new(Some(&json!("toml")), None, None).unwrap_err();
    assert!(err.to_string().contains("toml"), "{err}");
    let err = ParserSpec::new(Some(&json!(3)), None, None).unwrap_err();
    assert!(err.to_string().contains("mode must be a string"), "{err}");
}

#[test]
fn bad_validators_are_a_config_error() {
    let err = ParserSpec::new(None, Some(&json!(["a"])), Some(&json!("x"))).unwrap_err();
    assert_eq!(err.message(), "validators must be an object, got string");
}

#[test]
fn invalid_json_is_a_parse_error() {
    let out = spec(json!("json"), json!(["a"]), Value::Null).run(&json!("{not json"));
    assert_eq!(out.len(), 1);
    assert!(error_of(&out).starts_with("Parse error (json): "), "{out:?}");
}

#[test]
fn invalid_yaml_and_xml_are_parse_errors() {
    let out = spec(json!("yaml"), json!(["a"]), Value::Null).run(&json!("a: [1, 2"));
    assert!(error_of(&out).starts_with("Parse error (yaml): "), "{out:?}");
    let out = spec(json!("xml"), json!(["a"]), Value::Null).run(&json!("<a><b></a>"));
    assert!(error_of(&out).starts_with("Parse error (xml): "), "{out:?}");
    assert_eq!(out.len(), 1);
}

#[test]
fn empty_text_is_reported() {
    let s = spec(json!("json"), json!(["a"]), Value::Null);
    for text in [json!(""), json!("  \n\t"), Value::Null, json!(42)] {
        let out = s.run(&text);
        assert_eq!(Value::Object(out), json!({"error": "Empty input text"}), "{text}");
    }
}

#[test]
fn validator_fallback_replaces_disallowed_values() {
    let s = spec(
        json!("json"),
        json!(["r.mood: str", "r.level: int"]),
        json!({"mood": ["happy", "sad", "@neutral"], "level": [1, 2, "@2"]}),
    );
    let out = Value::Object(s.run(&json!(r#"{"r": {"mood": "angry", "level": "1"}}"#)));
    assert_eq!(out, json!({"mood": "neutral", "level": 1, "error": null}));
    let out = Value::Object(s.run(&json!(r#"{"r": {"mood": "sad"}}"#)));
    assert_eq!(out, json!({"mood": "sad", "level": "2", "error": null}));
    // The fallback itself is an allowed value.
    let out = Value::Object(s.run(&json!(r#"{"r": {"mood": "neutral", "level": 2}}"#)));
    assert_eq!(out, json!({"mood": "neutral", "level": 2, "error": null}));
}

#[test]
fn validator_failure_reports_python_reprs() {
    let s = spec(json!("json"), json!(["mood: str", "n: int"]), json!({"mood": ["happy", "sad"], "n": [1, 2]}));
    let out = s.run(&json!(r#"{"mood": "angry", "n": 1}"#));
    assert_eq!(Value::Object(out), json!({"error": "Validation failed: 'mood' value 'angry' not in ['happy', 'sad']"}));
    let out = s.run(&json!(r#"{"mood": "sad"}"#));
    assert_eq!(error_of(&out), "Validation failed: 'n' value None not in [1, 2]");
}

#[test]
fn repeated_xml_leaves_keep_the_last_groups_form_a_list() {
    let out = run(
        "xml",
        json!(["list.item: list", "list.one: list", "list.g"]),
        "<list><item>a</item><item>b</item><one>x</one><g><x>1</x></g><g><x>2</x></g></list>",
    );
    assert_eq!(out, json!({"item": "b", "one": "x", "g": [{"x": "1"}, {"x": "2"}], "error": null}));
}

#[test]
fn multi_root_xml_is_wrapped() {
    let out = run("xml", json!(["a: int", "b: str", "c"]), "Answer:\n<a>1</a>\n<b>two</b>");
    assert_eq!(out, json!({"a": 1, "b": "two", "c": null, "error": null}));
}

#[test]
fn only_a_leading_fence_is_removed() {
    // As in the reference engine: prose before a fence is part of the text.
    let out = run("json", json!(["answer: int"]), "Here you go:\n```json\n{\"answer\": 42}\n```\nthanks");
    assert_eq!(out, json!({"error": "Parse error (json): Expecting value: line 1 column 1 (char 0)"}));
    let out = run("json", json!(["answer: int"]), "\n  ```json\n{\"answer\": 42}\n```\n");
    assert_eq!(out, json!({"answer": 42, "error": null}));
    let out = run("yaml", json!(["answer: int"]), "```yaml\nanswer: 7\n```");
    assert_eq!(out, json!({"answer": 7, "error": null}));
}

#[test]
fn int_coercion_follows_python_int() {
    // int(3.7) truncates; int("3.7") and int("3.0") raise, so the text is
    // kept; `integer` is not a hint the reference converts.
    let out = run(
        "json",
        json!(["a: int", "b: int", "c: integer", "d: int"]),
        r#"{"a": 3.7, "b": "3.7", "c": -0.5, "d": "3.0"}"#,
    );
    assert_eq!(out, json!({"a": 3, "b": "3.7", "c": -0.5, "d": "3.0", "error": null}));
}

#[test]
fn str_coercion_is_python_str() {
    let out = run("json", json!(["s: str", "t: str", "u: string"]), r#"{"s": [1, "x"], "t": true, "u": {"a": 1}}"#);
    assert_eq!(out, json!({"s": "[1, 'x']", "t": "True", "u": "{'a': 1}", "error": null}));
}

#[test]
fn paths_do_not_walk_into_lists() {
    let out = run(
        "json",
        json!(["items.0.name", "items: list", "meta.n: int"]),
        r#"{"items": [{"name": "x"}, {"qty": 2}], "meta": {"n": "3"}}"#,
    );
    assert_eq!(out, json!({"name": null, "items": [{"name": "x"}, {"qty": 2}], "n": 3, "error": null}));
}

#[test]
fn duplicate_output_names_are_rejected() {
    let err = ParserSpec::new(None, Some(&json!(["a.name", "b.name"])), None).unwrap_err();
    assert!(err.message().contains("both produce the output"), "{err}");
}

#[test]
fn deeply_nested_json_is_an_error_not_a_crash() {
    let out = run("json", json!(["a"]), &"[".repeat(100_000));
    let error = out["error"].as_str().unwrap_or("");
    assert!(error.starts_with("Parse error (json): recursion limit exceeded"), "{out:?}");
}
