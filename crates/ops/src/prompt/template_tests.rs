//! Tests of [`FormatString`] against Python's `str.format_map`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use super::*;

fn try_render(template: &str, vars: &Value) -> Result<String, RenderError> {
    FormatString::compile(template).render(&|name: &str| vars.get(name).cloned())
}

fn render(template: &str, vars: Value) -> String {
    try_render(template, &vars).unwrap()
}

fn format_error(template: &str, vars: Value) -> String {
    match try_render(template, &vars) {
        Err(RenderError::Format(message)) => message,
        other => panic!("expected a format error for {template:?}, got {other:?}"),
    }
}

#[test]
fn substitutes_fields() {
    assert_eq!(render("Hello {name}!", json!({"name": "Operon"})), "Hello Operon!");
    assert_eq!(FormatString::compile("{a} {b} {a} {_c1}").variables(), ["a", "b", "a", "_c1"]);
}

#[test]
fn strings_without_an_open_brace_are_verbatim() {
    assert_eq!(render("a }} b } c", json!({})), "a }} b } c");
    assert!(FormatString::compile("a }} b").variables().is_empty());
}

#[test]
fn escapes_always_resolve() {
    assert_eq!(render("a {{b}}", json!({})), "a {b}");
    assert_eq!(render("{{{x}}}", json!({"x": 1})), "{1}");
    assert_eq!(render("{{ and }}", json!({})), "{ and }");
}

#[test]
fn values_render_with_python_str() {
    let vars = json!({"n": 3, "f": 2.5, "b": true, "l": [1, "x"], "d": {"k": null}, "s": "hi", "z": null});
    assert_eq!(render("{n} {f} {b} {l} {d} {s} {z}", vars), "3 2.5 True [1, 'x'] {'k': None} hi None");
}

#[test]
fn conversions() {
    let vars = json!({"name": "Bo", "u": "é", "n": 1});
    assert_eq!(render("{name!r} {name!s} {n!r}", vars.clone()), "'Bo' Bo 1");
    assert_eq!(render("{u!a} {u!r}", vars.clone()), "'\\xe9' 'é'");
    assert_eq!(render("{name!r:>6}", vars.clone()), "  'Bo'");
    assert_eq!(format_error("{name!x}", vars), "Unknown conversion specifier x");
}

#[test]
fn format_specs() {
    let vars = json!({"n": 7, "name": "Bo", "x": 1.23456, "w": 5});
    assert_eq!(render("{{literal}} {n:03d} {name!r} {name:>4}", vars.clone()), "{literal} 007 'Bo'   Bo");
    assert_eq!(render("{x:.2f}|{n:{w}}|{name:*^{w}}", vars.clone()), "1.23|    7|*Bo**");
    assert_eq!(render("{x:.2f}", json!({"x": 2})), "2.00");
    assert_eq!(format_error("{name:d}", vars.clone()), "Unknown format code 'd' for object of type 'str'");
    assert_eq!(format_error("{n:{w:{w}}}", vars), "Max string recursion exceeded");
}

#[test]
fn accessors() {
    let vars = json!({"l": [5, 6], "d": {"k": "v"}, "s": "abc"});
    assert_eq!(render("{l[1]} {d[k]} {s[0]}", vars.clone()), "6 v a");
    assert!(format_error("{l.x}", vars.clone()).contains("has no attribute 'x'"));
    assert!(format_error("{l[9]}", vars.clone()).contains("out of range"));
    assert_eq!(format_error("{l[0]x}", vars), "Only '.' or '[' may follow ']' in format field specifier");
}

#[test]
fn non_identifier_braces_are_errors() {
    // JSON text: the key is `"k"`, which is not a variable.
    assert_eq!(try_render("x {\"k\": 1}", &json!({})), Err(RenderError::Missing("\"k\"".to_owned())));
    assert_eq!(FormatString::compile("x {\"k\": 1}").variables(), ["\"k\""]);
    // Spaces are part of the key, as in Python.
    assert_eq!(try_render("{ a }", &json!({"a": 1})), Err(RenderError::Missing(" a ".to_owned())));
    assert_eq!(format_error("{0}", json!({})), "Format string contains positional fields");
    assert_eq!(format_error("{}", json!({})), "Format string contains positional fields");
    assert_eq!(format_error("tail {", json!({})), "Single '{' encountered in format string");
    assert_eq!(format_error("{a} }", json!({"a": 1})), "Single '}' encountered in format string");
    assert_eq!(format_error("{a", json!({"a": 1})), "expected '}' before end of string");
    assert_eq!(format_error("{a:", json!({"a": 1})), "unmatched '{' in format spec");
    assert_eq!(format_error("{a{b}", json!({})), "unexpected '{' in field name");
}

#[test]
fn errors_come_in_text_order() {
    // The missing variable comes first, so it is the reported error.
    assert_eq!(try_render("{missing} {", &json!({})), Err(RenderError::Missing("missing".to_owned())));
}

#[test]
fn handles_non_ascii_text() {
    assert_eq!(render("héllo {n} — ✓", json!({"n": "ü"})), "héllo ü — ✓");
    assert_eq!(render("{név}", json!({"név": 1})), "1");
}
