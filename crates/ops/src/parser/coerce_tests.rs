//! Tests of the type-hint coercions against Python's conversions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use super::*;

#[test]
fn parses_hints() {
    assert_eq!(TypeHint::parse(" STRING "), TypeHint::Str);
    assert_eq!(TypeHint::parse("Int"), TypeHint::Int);
    assert_eq!(TypeHint::parse("number"), TypeHint::Float);
    assert_eq!(TypeHint::parse("boolean"), TypeHint::Bool);
    // The reference only converts `int`; these keep the value as-is.
    for as_is in ["integer", "list", "array", "dict", "object", "uuid", ""] {
        assert_eq!(TypeHint::parse(as_is), TypeHint::Any, "{as_is}");
    }
}

#[test]
fn null_stays_null_for_every_hint() {
    for hint in [TypeHint::Any, TypeHint::Str, TypeHint::Int, TypeHint::Float, TypeHint::Bool] {
        assert_eq!(hint.apply(Value::Null), Value::Null, "{hint:?}");
    }
}

#[test]
fn str_is_python_str_stripped() {
    let s = |v: Value| TypeHint::Str.apply(v);
    assert_eq!(s(json!("  Ann ")), json!("Ann"));
    assert_eq!(s(json!(30)), json!("30"));
    assert_eq!(s(json!(2.5)), json!("2.5"));
    assert_eq!(s(json!(1e16)), json!("1e+16"));
    assert_eq!(s(json!(true)), json!("True"));
    assert_eq!(s(json!(false)), json!("False"));
    assert_eq!(s(json!([1, "x"])), json!("[1, 'x']"));
    assert_eq!(s(json!({"a": 1})), json!("{'a': 1}"));
    assert_eq!(s(json!({"k": null})), json!("{'k': None}"));
}

#[test]
fn int_is_python_int() {
    let i = |v: Value| TypeHint::Int.apply(v);
    assert_eq!(i(json!(30)), json!(30));
    assert_eq!(i(json!(3.7)), json!(3));
    assert_eq!(i(json!(-3.7)), json!(-3));
    assert_eq!(i(json!(4.0)), json!(4));
    assert_eq!(i(json!(" 41 ")), json!(41));
    assert_eq!(i(json!("-7")), json!(-7));
    assert_eq!(i(json!("+7")), json!(7));
    assert_eq!(i(json!("007")), json!(7));
    assert_eq!(i(json!("1_000")), json!(1000));
    assert_eq!(i(json!(true)), json!(1));
    assert_eq!(i(json!(false)), json!(0));
    // Python's int() rejects these, so the value is kept.
    for kept in [json!("3.0"), json!("3.7"), json!("1__0"), json!("_1"), json!("abc"), json!("nan"), json!("")] {
        assert_eq!(i(kept.clone()), kept);
    }
    assert_eq!(i(json!([1])), json!([1]));
    assert_eq!(i(json!({"a": 1})), json!({"a": 1}));
    assert_eq!(i(json!(1e300)), json!(1e300));
}

#[test]
fn float_is_python_float() {
    let f = |v: Value| TypeHint::Float.apply(v);
    assert_eq!(f(json!(3)), json!(3.0));
    assert_eq!(f(json!(" 2.5 ")), json!(2.5));
    assert_eq!(f(json!("1e3")), json!(1000.0));
    assert_eq!(f(json!("1_000.5")), json!(1000.5));
    assert_eq!(f(json!(".5")), json!(0.5));
    assert_eq!(f(json!(true)), json!(1.0));
    assert_eq!(f(json!("x")), json!("x"));
    assert_eq!(f(json!("inf")), json!("inf"));
    assert_eq!(f(json!([1])), json!([1]));
    assert_eq!(f(json!({"a": 1})), json!({"a": 1}));
}

#[test]
fn bool_words_then_truthiness() {
    let b = |v: Value| TypeHint::Bool.apply(v);
    for yes in ["true", " YES ", "1", "TRUE", "maybe", "off", "n", " "] {
        // " " strips to "", which is false; handled below.
        if yes.trim().is_empty() {
            continue;
        }
        assert_eq!(b(json!(yes)), json!(true), "{yes}");
    }
    for no in ["false", "No", "0", "", "   ", " FALSE "] {
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
fn list_and_dict_hints_keep_the_value() {
    assert_eq!(TypeHint::parse("list").apply(json!("a")), json!("a"));
    assert_eq!(TypeHint::parse("dict").apply(json!("a")), json!("a"));
    assert_eq!(TypeHint::parse("integer").apply(json!("3")), json!("3"));
}
