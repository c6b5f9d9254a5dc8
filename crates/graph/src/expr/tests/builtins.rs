//! Builtin functions.

use serde_json::json;

use super::{ev, ev_err, js};
use crate::expr::{EvalError, call_builtin};

#[test]
fn len_abs_bool_str() {
    assert_eq!(ev("len('héllo')"), "5");
    assert_eq!(ev("len([1, [2, 3]])"), "2");
    assert_eq!(ev("abs(-3)"), "3");
    assert_eq!(ev("abs(-3.5)"), "3.5");
    assert_eq!(ev("abs(True)"), "1");
    assert_eq!(ev("bool([])"), "false");
    assert_eq!(ev("bool('x')"), "true");
    assert_eq!(ev("bool()"), "false");
    assert_eq!(ev("str(2.0)"), "\"2.0\"");
    assert_eq!(ev("str('a')"), "\"a\"");
    assert_eq!(ev("str([1, 'a', None])"), "\"[1, 'a', None]\"");
    assert_eq!(ev("str(True) + str(1e16)"), "\"True1e+16\"");
    assert_eq!(ev_err("len(5)").to_string(), "TypeError: object of type 'int' has no len()");
}

#[test]
fn min_max() {
    assert_eq!(ev("min(3, 1, 2)"), "1");
    assert_eq!(ev("max(3, 1.5, 2)"), "3");
    assert_eq!(ev("max([1, 2.5])"), "2.5");
    assert_eq!(ev("min('bca')"), "\"a\"");
    assert_eq!(ev("max(['a', 'b'], ['a'])"), "[\"a\",\"b\"]");
    // Ties keep the first candidate, like Python: min(1, 1.0) is 1.
    assert_eq!(ev("min(1, 1.0)"), "1");
    assert_eq!(ev("max(1.0, 1)"), "1.0");
    assert!(matches!(ev_err("min([])"), EvalError::Value(_)));
    assert!(matches!(ev_err("max(1, 'a')"), EvalError::Type(_)));
    assert_eq!(ev_err("min(5)").to_string(), "TypeError: 'int' object is not iterable");
    assert_eq!(ev_err("max()"), EvalError::Arity { func: "max".into(), expected: "at least 1".into(), got: 0 });
}

#[test]
fn int_and_float_conversions() {
    assert_eq!(ev("int(2.9)"), "2");
    assert_eq!(ev("int(-2.9)"), "-2");
    assert_eq!(ev("int(' 42 ')"), "42");
    assert_eq!(ev("int(True)"), "1");
    assert_eq!(ev("int()"), "0");
    assert_eq!(ev("float(2)"), "2.0");
    assert_eq!(ev("float('1e3')"), "1000.0");
    assert_eq!(ev("float(' -.5 ')"), "-0.5");
    assert_eq!(ev("float()"), "0.0");
    assert_eq!(ev_err("int('4.2')").to_string(), "ValueError: invalid literal for int() with base 10: '4.2'");
    assert_eq!(ev_err("int('99999999999999999999')"), EvalError::Overflow);
    assert_eq!(ev_err("int(1e19)"), EvalError::Overflow);
    assert_eq!(ev_err("float('inf')"), EvalError::NonFinite);
    assert_eq!(ev_err("float('x')").to_string(), "ValueError: could not convert string to float: 'x'");
    assert!(matches!(ev_err("int(None)"), EvalError::Type(_)));
    assert!(matches!(ev_err("float([])"), EvalError::Type(_)));
}

#[test]
fn round_is_bankers_rounding() {
    assert_eq!(ev("round(2.5)"), "2");
    assert_eq!(ev("round(3.5)"), "4");
    assert_eq!(ev("round(-2.5)"), "-2");
    assert_eq!(ev("round(2.6)"), "3");
    assert_eq!(ev("round(7)"), "7");
    assert_eq!(ev("round(2.675, 2)"), "2.67");
    assert_eq!(ev("round(0.125, 2)"), "0.12");
    assert_eq!(ev("round(0.375, 2)"), "0.38");
    assert_eq!(ev("round(2.5, 0)"), "2.0");
    assert_eq!(ev("round(1234.5, -2)"), "1200.0");
    assert_eq!(ev("round(1250, -2)"), "1200");
    assert_eq!(ev("round(1350, -2)"), "1400");
    assert_eq!(ev("round(-1251, -2)"), "-1300");
    assert_eq!(ev("round(17, 3)"), "17");
    assert_eq!(ev("round(2.5, None)"), "2");
    assert_eq!(ev_err("round(1e300)"), EvalError::Overflow);
    assert!(matches!(ev_err("round('x')"), EvalError::Type(_)));
    assert!(matches!(ev_err("round(1.5, 1.0)"), EvalError::Type(_)));
    assert_eq!(ev_err("round(1, 2, 3)").to_string(), "TypeError: round() takes 1 or 2 argument(s) (3 given)");
}

#[test]
fn arity_and_direct_calls() {
    assert_eq!(ev_err("len()").to_string(), "TypeError: len() takes exactly 1 argument(s) (0 given)");
    assert_eq!(ev_err("abs(1, 2)"), EvalError::Arity { func: "abs".into(), expected: "exactly 1".into(), got: 2 });
    assert!(matches!(ev_err("int(1, 2)"), EvalError::Arity { .. }));
    assert_eq!(js(&call_builtin("len", &[json!([1, 2])]).unwrap()), "2");
    assert_eq!(call_builtin("nope", &[]), Err(EvalError::UnknownFunction("nope".into())));
}
