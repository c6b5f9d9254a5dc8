//! End-to-end tests of [`PromptTemplate`].
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use super::*;

/// Render with variables taken from a JSON object.
fn render_with(template: Value, vars: Value) -> Result<Vec<Value>, PromptError> {
    render_full(template, vars, &[], &[])
}

fn render_full(template: Value, vars: Value, history: &[Value], tools: &[Value]) -> Result<Vec<Value>, PromptError> {
    let compiled = PromptTemplate::new(&template)?;
    let lookup = |name: &str| vars.get(name).cloned();
    compiled.render(&lookup, history, tools)
}

#[test]
fn upstream_fixture() {
    let out = render_with(json!({"system": "You are friendly.", "user": "Hello {name}!"}), json!({"name": "Operon"}))
        .unwrap();
    assert_eq!(
        out,
        vec![
            json!({"role": "system", "content": "You are friendly."}),
            json!({"role": "user", "content": "Hello Operon!"}),
        ]
    );
}

#[test]
fn message_list_passes_through() {
    let template = json!([
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Summarize."}
    ]);
    let compiled = PromptTemplate::new(&template).unwrap();
    assert!(compiled.variables().is_empty());
    let out = compiled.render(&|_| None, &[], &[]).unwrap();
    assert_eq!(Value::Array(out), template);
}

#[test]
fn template_without_variables_still_unescapes() {
    let out = render_with(json!("Keep {{this}} and {{\"a\": 1}}"), json!({})).unwrap();
    assert_eq!(out, vec![json!({"role": "user", "content": "Keep {this} and {\"a\": 1}"})]);
    // Without any `{` the string is verbatim, `}}` included.
    let out = render_with(json!("Keep }} as is"), json!({})).unwrap();
    assert_eq!(out, vec![json!({"role": "user", "content": "Keep }} as is"})]);
}

#[test]
fn escapes_become_literal_braces() {
    let out = render_with(json!("Use {{x}} for {what}"), json!({"what": "sets"})).unwrap();
    assert_eq!(out, vec![json!({"role": "user", "content": "Use {x} for sets"})]);
}

#[test]
fn json_braces_are_an_error() {
    let err = render_with(json!("Return {\"key\": 1} for {x}"), json!({"x": "v"})).unwrap_err();
    assert_eq!(err, PromptError::MissingVariables(vec!["\"key\"".into()]));
    assert_eq!(err.to_string(), "missing template variable(s): \"key\"");
    let err = render_with(json!("lone { brace"), json!({})).unwrap_err();
    assert_eq!(err, PromptError::Format("expected '}' before end of string".into()));
    let err = render_with(json!({"user": "{0}"}), json!({})).unwrap_err();
    assert_eq!(err, PromptError::Format("Format string contains positional fields".into()));
    let err = render_with(json!("{n:d}"), json!({"n": "seven"})).unwrap_err();
    assert!(err.to_string().contains("Unknown format code 'd'"), "{err}");
}

#[test]
fn escaped_json_braces_are_kept() {
    let out = render_with(json!("Reply as {{\"answer\": {n:03d}}} about {topic!r}."), json!({"topic": "cats", "n": 7}))
        .unwrap();
    assert_eq!(out[0]["content"], json!("Reply as {\"answer\": 007} about 'cats'."));
}

#[test]
fn missing_variables_are_all_listed() {
    let err = render_with(json!({"system": "{role} {tone}", "user": "{question} {role} {known}"}), json!({"known": 1}))
        .unwrap_err();
    assert_eq!(err, PromptError::MissingVariables(vec!["role".into(), "tone".into(), "question".into()]));
    assert_eq!(err.to_string(), "missing template variable(s): role, tone, question");
}

#[test]
fn variables_are_deduplicated_in_order() {
    let compiled = PromptTemplate::new(&json!({
        "user": "{b} {a} {b}",
        "system": "{c}",
        "other": "{ignored}"
    }))
    .unwrap();
    assert_eq!(compiled.variables(), ["c", "b", "a"]);
}

#[test]
fn values_render_python_style() {
    let out = render_with(
        json!("{n} {t} {f} {i} {x} {l} {o} {s}"),
        json!({"n": null, "t": true, "f": false, "i": 3, "x": 1.5, "l": [1, "a"], "o": {"k": 2}, "s": "str"}),
    )
    .unwrap();
    assert_eq!(out[0]["content"], json!("None True False 3 1.5 [1, 'a'] {'k': 2} str"));
}

#[test]
fn null_template_renders_nothing_but_history() {
    let history = [json!({"role": "user", "content": "hi"})];
    let out = render_full(Value::Null, json!({}), &history, &[]).unwrap();
    assert_eq!(out, history.to_vec());
}

#[test]
fn chat_template_with_only_one_role() {
    let out = render_with(json!({"user": "Q: {q}", "model": "x"}), json!({"q": "why"})).unwrap();
    assert_eq!(out, vec![json!({"role": "user", "content": "Q: why"})]);
    let out = render_with(json!({"system": "S", "user": null}), json!({})).unwrap();
    assert_eq!(out, vec![json!({"role": "system", "content": "S"})]);
}

#[test]
fn raw_message_object_is_formatted() {
    let out =
        render_with(json!({"role": "assistant", "content": "Hi {name}", "weight": 2}), json!({"name": "Bo"})).unwrap();
    assert_eq!(out, vec![json!({"role": "assistant", "content": "Hi Bo", "weight": 2})]);
}

#[test]
fn history_goes_before_the_last_user_message() {
    let template = json!([
        {"role": "system", "content": "S"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "Now: {q}"}
    ]);
    let history = [json!({"role": "user", "content": "h1"}), json!({"role": "assistant", "content": "h2"})];
    let out = render_full(template, json!({"q": "go"}), &history, &[]).unwrap();
    let contents: Vec<&str> = out.iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(contents, ["S", "first", "A", "h1", "h2", "Now: go"]);
}

#[test]
fn history_is_appended_without_a_user_message() {
    let history = [json!({"role": "user", "content": "h"})];
    let out = render_full(json!({"system": "S"}), json!({}), &history, &[]).unwrap();
    assert_eq!(out, vec![json!({"role": "system", "content": "S"}), json!({"role": "user", "content": "h"}),]);
}

#[test]
fn invalid_history_names_the_index() {
    let history = [json!({"role": "user", "content": "ok"}), json!("oops")];
    let err = render_full(json!("x"), json!({}), &history, &[]).unwrap_err();
    assert_eq!(err, PromptError::InvalidHistory(1));
    assert!(err.to_string().contains("index 1"));
    let err = render_full(json!("x"), json!({}), &[json!({"content": "no role"})], &[]);
    assert_eq!(err, Err(PromptError::InvalidHistory(0)));
}

#[test]
fn tool_results_are_appended() {
    let tools = [
        json!({"role": "tool", "tool_call_id": "c1", "content": "kept"}),
        json!({"tool_call_id": "c2", "content": {"temp": 20}}),
        json!({"temp": 21}),
        json!("plain"),
        json!(7),
    ];
    let history = [json!({"role": "assistant", "content": "calling"})];
    let out = render_full(json!("Weather?"), json!({}), &history, &tools).unwrap();
    assert_eq!(
        out,
        vec![
            json!({"role": "assistant", "content": "calling"}),
            json!({"role": "user", "content": "Weather?"}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "kept"}),
            json!({"role": "tool", "tool_call_id": "c2", "content": "{\"temp\":20}"}),
            json!({"role": "tool", "content": "{\"temp\":21}"}),
            json!({"role": "tool", "content": "plain"}),
            json!({"role": "tool", "content": "7"}),
        ]
    );
}

#[test]
fn multimodal_lists_are_formatted_recursively() {
    let template = json!([
        {"role": "user", "content": [
            {"type": "text", "text": "Describe {thing} in {n} words."},
            {"type": "image_url", "image_url": {"url": "{url}", "detail": "low"}},
            {"type": "text", "text": "No vars {here}}}", "cache": true}
        ]}
    ]);
    let compiled = PromptTemplate::new(&template).unwrap();
    assert_eq!(compiled.variables(), ["thing", "n", "url", "here"]);
    let vars = json!({"thing": "a cat", "n": 5, "url": "http://x/cat.png", "here": "h"});
    let out = compiled.render(&|name| vars.get(name).cloned(), &[], &[]).unwrap();
    assert_eq!(
        Value::Array(out),
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "Describe a cat in 5 words."},
                {"type": "image_url", "image_url": {"url": "http://x/cat.png", "detail": "low"}},
                {"type": "text", "text": "No vars h}", "cache": true}
            ]}
        ])
    );
}

#[test]
fn chat_template_accepts_content_parts() {
    let out = render_with(json!({"user": [{"type": "text", "text": "Hi {n}"}]}), json!({"n": "Al"})).unwrap();
    assert_eq!(out, vec![json!({"role": "user", "content": [{"type": "text", "text": "Hi Al"}]})]);
}

#[test]
fn invalid_templates_are_rejected() {
    assert!(matches!(PromptTemplate::new(&json!(3)), Err(PromptError::InvalidTemplate(_))));
    assert!(matches!(PromptTemplate::new(&json!({"system": 1})), Err(PromptError::InvalidTemplate(_))));
}

#[test]
fn compiled_template_is_shareable() {
    fn assert_traits<T: Clone + std::fmt::Debug + Send + Sync>() {}
    assert_traits::<PromptTemplate>();
    assert_traits::<crate::parser::ParserSpec>();
}
