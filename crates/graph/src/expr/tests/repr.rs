//! `repr` against what CPython 3.11 prints (expected strings generated once
//! with `python3 -c 'print(repr(x))'`).

use serde_json::json;

use super::super::{float_repr, repr, repr_str, to_py_str};

#[test]
fn strings_match_cpython() {
    for (text, expected) in [
        ("a", "'a'"),
        ("it's", "\"it's\""),
        ("a'b\"c", "'a\\'b\"c'"),
        ("say \"hi\"", "'say \"hi\"'"),
        ("x\u{a}y\u{9}z\u{d}", "'x\\ny\\tz\\r'"),
        ("back\\slash", "'back\\\\slash'"),
        ("\u{0}\u{7}\u{1b}\u{7f}", "'\\x00\\x07\\x1b\\x7f'"),
        ("\u{80}\u{9f}\u{a0}\u{ad}", "'\\x80\\x9f\\xa0\\xad'"),
        ("\u{e9} \u{fc} \u{df}", "'\u{e9} \u{fc} \u{df}'"),
        ("\u{2028}\u{2029}\u{200b}\u{feff}", "'\\u2028\\u2029\\u200b\\ufeff'"),
        ("\u{e000}", "'\\ue000'"),
        ("\u{1f600}", "'\u{1f600}'"),
        ("\u{f0000}", "'\\U000f0000'"),
        ("\u{65e5}\u{672c}\u{8a9e}", "'\u{65e5}\u{672c}\u{8a9e}'"),
        ("\u{378}", "'\\u0378'"),
        ("\u{d7ff}", "'\\ud7ff'"),
        (" \u{3000}", "' \\u3000'"),
        ("\u{e0001}", "'\\U000e0001'"),
        ("\u{600}\u{61c}", "'\\u0600\\u061c'"),
    ] {
        assert_eq!(repr_str(text), expected, "repr of {text:?}");
        assert_eq!(repr(&json!(text)), expected, "repr of {text:?}");
    }
}

#[test]
fn floats_match_cpython() {
    for (value, expected) in [
        (0.0_f64, "0.0"),
        (-0.0_f64, "-0.0"),
        (1.0_f64, "1.0"),
        (0.1_f64, "0.1"),
        (1e+16_f64, "1e+16"),
        (1_000_000_000_000_000.0_f64, "1000000000000000.0"),
        (0.0001_f64, "0.0001"),
        (1e-05_f64, "1e-05"),
        (123_456_789.125_f64, "123456789.125"),
        (5e-324_f64, "5e-324"),
        (1.797_693_134_862_315_7e308_f64, "1.7976931348623157e+308"),
        (-1.5e-07_f64, "-1.5e-07"),
        (0.300_000_000_000_000_04_f64, "0.30000000000000004"),
        (1e+22_f64, "1e+22"),
        (-1e-300_f64, "-1e-300"),
        (1.234_567_890_123_456_8e16_f64, "1.2345678901234568e+16"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
        (f64::NAN, "nan"),
    ] {
        assert_eq!(float_repr(value), expected, "repr of {value:?}");
    }
}

#[test]
fn containers_and_scalars_match_cpython() {
    assert_eq!(repr(&json!(null)), "None");
    assert_eq!(repr(&json!(true)), "True");
    assert_eq!(repr(&json!(false)), "False");
    assert_eq!(repr(&json!(-3)), "-3");
    assert_eq!(repr(&json!(u64::MAX)), "18446744073709551615");
    assert_eq!(repr(&json!(2.0)), "2.0");
    assert_eq!(repr(&json!([1, "a", null, 1.5])), "[1, 'a', None, 1.5]");
    assert_eq!(repr(&json!({"k": false, "it's": [{}]})), "{'k': False, \"it's\": [{}]}");
    assert_eq!(to_py_str(&json!("a\nb")), "a\nb");
    assert_eq!(to_py_str(&json!(["a\nb"])), "['a\\nb']");
}
