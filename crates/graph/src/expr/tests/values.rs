//! Value semantics: arithmetic typing, Python division rules, comparisons,
//! membership, truthiness and repr.

use serde_json::{Value, json};

use super::js;
use crate::expr::{BinOp, CmpOp, EvalError, UnaryOp, binary, compare, contains, repr, truthy, type_name, unary};

fn b(op: BinOp, x: Value, y: Value) -> String {
    match binary(op, &x, &y) {
        Ok(v) => js(&v),
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn int_ops_stay_int_and_float_ops_are_float() {
    use BinOp::*;
    let cases = [
        (Add, json!(2), json!(3), "5"),
        (Sub, json!(2), json!(3), "-1"),
        (Mul, json!(2), json!(3), "6"),
        (TrueDiv, json!(6), json!(3), "2.0"),
        (FloorDiv, json!(7), json!(2), "3"),
        (Mod, json!(7), json!(2), "1"),
        (Pow, json!(2), json!(10), "1024"),
        (Pow, json!(2), json!(0), "1"),
        (Pow, json!(2), json!(-1), "0.5"),
        (Add, json!(2), json!(1.0), "3.0"),
        (Sub, json!(2.5), json!(0.5), "2.0"),
        (Mul, json!(2.0), json!(3), "6.0"),
        (TrueDiv, json!(1), json!(4), "0.25"),
        (FloorDiv, json!(7.0), json!(2), "3.0"),
        (Mod, json!(7.5), json!(2), "1.5"),
        (Pow, json!(2.0), json!(2), "4.0"),
        (Pow, json!(4), json!(0.5), "2.0"),
        (Add, json!(true), json!(1), "2"),
        (Mul, json!(true), json!(false), "0"),
        (Add, json!(true), json!(0.5), "1.5"),
    ];
    for (op, x, y, want) in cases {
        assert_eq!(b(op, x.clone(), y.clone()), want, "{x} {op:?} {y}");
    }
}

#[test]
fn python_floor_division_and_modulo_with_negatives() {
    use BinOp::*;
    assert_eq!(b(Mod, json!(-7), json!(3)), "2");
    assert_eq!(b(Mod, json!(7), json!(-3)), "-2");
    assert_eq!(b(Mod, json!(-7), json!(-3)), "-1");
    assert_eq!(b(FloorDiv, json!(-7), json!(2)), "-4");
    assert_eq!(b(FloorDiv, json!(7), json!(-2)), "-4");
    assert_eq!(b(FloorDiv, json!(-7), json!(-2)), "3");
    assert_eq!(b(Mod, json!(-7.5), json!(2)), "0.5");
    assert_eq!(b(Mod, json!(7.5), json!(-2)), "-0.5");
    assert_eq!(b(FloorDiv, json!(-7.5), json!(2)), "-4.0");
    assert_eq!(b(Mod, json!(i64::MIN), json!(-1)), "0");
    assert_eq!(b(Mod, json!(-6.0), json!(3)), "0.0");
}

#[test]
fn zero_division_overflow_and_non_finite() {
    use BinOp::*;
    for op in [TrueDiv, FloorDiv, Mod] {
        for (x, y) in [(json!(1), json!(0)), (json!(1.5), json!(0.0)), (json!(1), json!(false))] {
            assert_eq!(binary(op, &x, &y), Err(EvalError::ZeroDivision), "{op:?}");
        }
    }
    assert_eq!(binary(Pow, &json!(0), &json!(-1)), Err(EvalError::ZeroDivision));
    assert_eq!(binary(Pow, &json!(0.0), &json!(-2)), Err(EvalError::ZeroDivision));
    assert_eq!(binary(Add, &json!(i64::MAX), &json!(1)), Err(EvalError::Overflow));
    assert_eq!(binary(Sub, &json!(i64::MIN), &json!(1)), Err(EvalError::Overflow));
    assert_eq!(binary(Mul, &json!(1_i64 << 62), &json!(4)), Err(EvalError::Overflow));
    assert_eq!(binary(Pow, &json!(2), &json!(63)), Err(EvalError::Overflow));
    assert_eq!(binary(Pow, &json!(3), &json!(1_i64 << 40)), Err(EvalError::Overflow));
    assert_eq!(b(Pow, json!(-1), json!(1_i64 << 40)), "1");
    assert_eq!(b(Pow, json!(2), json!(62)), "4611686018427387904");
    assert_eq!(binary(FloorDiv, &json!(i64::MIN), &json!(-1)), Err(EvalError::Overflow));
    assert_eq!(binary(Mul, &json!(1e300), &json!(1e10)), Err(EvalError::NonFinite));
    assert_eq!(binary(Pow, &json!(10.0), &json!(400)), Err(EvalError::NonFinite));
    assert_eq!(unary(UnaryOp::Neg, &json!(i64::MIN)), Err(EvalError::Overflow));
    assert_eq!(unary(UnaryOp::Abs, &json!(i64::MIN)), Err(EvalError::Overflow));
    assert!(matches!(binary(Pow, &json!(-8), &json!(0.5)), Err(EvalError::Value(_))));
    assert_eq!(EvalError::ZeroDivision.to_string(), "ZeroDivisionError: division by zero");
}

#[test]
fn concatenation_and_repetition() {
    use BinOp::*;
    assert_eq!(b(Add, json!("ab"), json!("cd")), "\"abcd\"");
    assert_eq!(b(Add, json!([1]), json!([2, "x"])), "[1,2,\"x\"]");
    assert_eq!(b(Mul, json!("ab"), json!(3)), "\"ababab\"");
    assert_eq!(b(Mul, json!(2), json!("ab")), "\"abab\"");
    assert_eq!(b(Mul, json!([1, 2]), json!(2)), "[1,2,1,2]");
    assert_eq!(b(Mul, json!(true), json!([0])), "[0]");
    assert_eq!(b(Mul, json!("ab"), json!(-2)), "\"\"");
    assert_eq!(b(Mul, json!([1]), json!(0)), "[]");
    assert!(matches!(binary(Mul, &json!("ab"), &json!(i64::MAX)), Err(EvalError::SequenceTooLong { .. })));
    let cases = [
        (Add, json!(1), json!("a"), "TypeError: unsupported operand type(s) for +: 'int' and 'str'"),
        (Add, json!("a"), json!(1), "TypeError: can only concatenate str (not \"int\") to str"),
        (Add, json!([1]), json!("a"), "TypeError: can only concatenate list (not \"str\") to list"),
        (Sub, json!("a"), json!("a"), "TypeError: unsupported operand type(s) for -: 'str' and 'str'"),
        (Mul, json!("a"), json!(2.0), "TypeError: can't multiply sequence by non-int of type 'float'"),
        (Mul, json!("a"), json!("b"), "TypeError: can't multiply sequence by non-int of type 'str'"),
        (Pow, json!(null), json!(2), "TypeError: unsupported operand type(s) for ** or pow(): 'NoneType' and 'int'"),
        (Add, json!({}), json!({}), "TypeError: unsupported operand type(s) for +: 'dict' and 'dict'"),
        (Mod, json!("%s"), json!(1), "TypeError: unsupported operand type(s) for %: 'str' and 'int'"),
    ];
    for (op, x, y, want) in cases {
        assert_eq!(b(op, x, y), format!("error: {want}"));
    }
}

#[test]
fn unary_ops() {
    let u = |op, v: Value| unary(op, &v).map(|r| js(&r));
    assert_eq!(u(UnaryOp::Neg, json!(3)).unwrap(), "-3");
    assert_eq!(u(UnaryOp::Neg, json!(2.5)).unwrap(), "-2.5");
    assert_eq!(u(UnaryOp::Neg, json!(true)).unwrap(), "-1");
    assert_eq!(u(UnaryOp::Pos, json!(false)).unwrap(), "0");
    assert_eq!(u(UnaryOp::Abs, json!(-2.0)).unwrap(), "2.0");
    assert_eq!(u(UnaryOp::Abs, json!(-7)).unwrap(), "7");
    assert_eq!(u(UnaryOp::Not, json!([])).unwrap(), "true");
    assert_eq!(u(UnaryOp::Not, json!("x")).unwrap(), "false");
    assert_eq!(u(UnaryOp::Neg, json!("x")).unwrap_err().to_string(), "TypeError: bad operand type for unary -: 'str'");
    assert_eq!(
        u(UnaryOp::Abs, json!(null)).unwrap_err().to_string(),
        "TypeError: bad operand type for abs(): 'NoneType'"
    );
}

#[test]
fn comparisons() {
    use CmpOp::*;
    let c = |op, x: Value, y: Value| compare(op, &x, &y);
    assert!(c(Eq, json!(1), json!(1.0)).unwrap());
    assert!(c(Eq, json!(true), json!(1)).unwrap());
    assert!(c(Lt, json!(1), json!(1.5)).unwrap());
    assert!(c(Ge, json!(2.0), json!(2)).unwrap());
    assert!(c(Lt, json!(false), json!(true)).unwrap());
    assert!(c(Lt, json!(i64::MAX), json!(9.3e18)).unwrap());
    assert!(!c(Eq, json!(i64::MAX), json!(9_223_372_036_854_775_807.0_f64)).unwrap());
    assert!(c(Lt, json!("abc"), json!("abd")).unwrap());
    assert!(c(Lt, json!("Z"), json!("a")).unwrap());
    assert!(c(Lt, json!("ab"), json!("abc")).unwrap());
    assert!(c(Gt, json!("é"), json!("z")).unwrap());
    assert!(c(Lt, json!([1, 2]), json!([1, 3])).unwrap());
    assert!(c(Lt, json!([1, 2]), json!([1, 2, 0])).unwrap());
    assert!(c(Le, json!([1, 2]), json!([1.0, 2])).unwrap());
    assert!(c(Gt, json!([2]), json!([1, "x"])).unwrap());
    assert!(c(Eq, json!({"a": 1, "b": [2]}), json!({"b": [2.0], "a": true})).unwrap());
    assert!(!c(Eq, json!({"a": 1}), json!({"a": 1, "b": 2})).unwrap());
    assert!(!c(Eq, json!(1), json!("1")).unwrap());
    assert!(c(Ne, json!(null), json!(0)).unwrap());
    assert!(c(Eq, json!(null), json!(null)).unwrap());
    assert!(!c(Eq, json!([1]), json!({"0": 1})).unwrap());
    let err = |op, x: Value, y: Value| c(op, x, y).unwrap_err().to_string();
    assert_eq!(
        err(Lt, json!(null), json!(1)),
        "TypeError: '<' not supported between instances of 'NoneType' and 'int'"
    );
    assert_eq!(err(Ge, json!("a"), json!(1)), "TypeError: '>=' not supported between instances of 'str' and 'int'");
    assert_eq!(err(Gt, json!({}), json!({})), "TypeError: '>' not supported between instances of 'dict' and 'dict'");
    assert_eq!(
        err(Lt, json!([1, "a"]), json!([1, 2])),
        "TypeError: '<' not supported between instances of 'str' and 'int'"
    );
}

#[test]
fn membership() {
    let c = |x: Value, y: Value| contains(&x, &y);
    assert!(c(json!("hello"), json!("ell")).unwrap());
    assert!(c(json!("hello"), json!("")).unwrap());
    assert!(!c(json!("hello"), json!("z")).unwrap());
    assert!(c(json!([1, 2]), json!(1.0)).unwrap());
    assert!(c(json!([[1], "a"]), json!([1])).unwrap());
    assert!(!c(json!([1, 2]), json!("1")).unwrap());
    assert!(c(json!({"k": 1}), json!("k")).unwrap());
    assert!(!c(json!({"k": 1}), json!(1)).unwrap());
    assert_eq!(c(json!(5), json!(1)).unwrap_err().to_string(), "TypeError: argument of type 'int' is not iterable");
    assert_eq!(
        c(json!("abc"), json!(1)).unwrap_err().to_string(),
        "TypeError: 'in <string>' requires string as left operand, not int"
    );
    assert!(c(json!({"k": 1}), json!([1])).is_err());
}

#[test]
fn truthiness_and_type_names() {
    for v in [json!(null), json!(false), json!(0), json!(0.0), json!(""), json!([]), json!({})] {
        assert!(!truthy(&v), "{v}");
    }
    for v in [json!(true), json!(-1), json!(0.1), json!(" "), json!([0]), json!({"a": null})] {
        assert!(truthy(&v), "{v}");
    }
    let names: Vec<&str> = [json!(null), json!(true), json!(1), json!(1.0), json!("s"), json!([]), json!({})]
        .iter()
        .map(type_name)
        .collect();
    assert_eq!(names, ["NoneType", "bool", "int", "float", "str", "list", "dict"]);
    assert_eq!(type_name(&json!(u64::MAX)), "int");
}

#[test]
fn repr_matches_python() {
    let cases = [
        (json!(5), "5"),
        (json!(-5), "-5"),
        (json!(2.5), "2.5"),
        (json!(2.0), "2.0"),
        (json!(-0.0), "-0.0"),
        (json!(0.1), "0.1"),
        (json!(1e16), "1e+16"),
        (json!(1e15), "1000000000000000.0"),
        (json!(123456789012345678.0), "1.2345678901234568e+17"),
        (json!(0.0001), "0.0001"),
        (json!(0.00001), "1e-05"),
        (json!(1.5e-7), "1.5e-07"),
        (json!(1.5e300), "1.5e+300"),
        (json!(u64::MAX), "18446744073709551615"),
        (json!("x"), "'x'"),
        (json!("it's"), "\"it's\""),
        (json!("it's \"q\""), "'it\\'s \"q\"'"),
        (json!("a\\b\n\t\u{1}\u{7f}é\u{a0}\u{200b}"), "'a\\\\b\\n\\t\\x01\\x7fé\\xa0\\u200b'"),
        (json!(null), "None"),
        (json!(true), "True"),
        (json!(false), "False"),
        (json!([1, "a", [null, 2.5]]), "[1, 'a', [None, 2.5]]"),
        (json!({"k": 1, "n": {"x": [true]}}), "{'k': 1, 'n': {'x': [True]}}"),
        (json!([]), "[]"),
        (json!({}), "{}"),
    ];
    for (v, want) in cases {
        assert_eq!(repr(&v), want, "{v}");
    }
}

/// Integer arithmetic agrees with reference i64 results computed with
/// Python's floor semantics, over a grid including negatives and zero.
#[test]
fn integer_arithmetic_matches_reference_grid() {
    let floor_div = |x: i64, y: i64| {
        let q = x / y;
        if (x % y != 0) && ((x < 0) != (y < 0)) { q - 1 } else { q }
    };
    for x in -12_i64..=12 {
        for y in -12_i64..=12 {
            let (vx, vy) = (json!(x), json!(y));
            let get = |op| binary(op, &vx, &vy).map(|v| js(&v));
            assert_eq!(get(BinOp::Add).unwrap(), (x + y).to_string());
            assert_eq!(get(BinOp::Sub).unwrap(), (x - y).to_string());
            assert_eq!(get(BinOp::Mul).unwrap(), (x * y).to_string());
            if y == 0 {
                for op in [BinOp::FloorDiv, BinOp::Mod, BinOp::TrueDiv] {
                    assert_eq!(get(op), Err(EvalError::ZeroDivision));
                }
            } else {
                let q = floor_div(x, y);
                let r = x - q * y;
                assert_eq!(get(BinOp::FloorDiv).unwrap(), q.to_string(), "{x} // {y}");
                assert_eq!(get(BinOp::Mod).unwrap(), r.to_string(), "{x} % {y}");
                assert!(r == 0 || (r < 0) == (y < 0), "sign of {x} % {y}");
                let div = binary(BinOp::TrueDiv, &vx, &vy).unwrap();
                assert!(div.is_f64(), "{x} / {y} must be a float");
                assert_eq!(div.as_f64().unwrap(), x as f64 / y as f64);
            }
            if (0..=8).contains(&y) {
                assert_eq!(get(BinOp::Pow).unwrap(), x.pow(y as u32).to_string());
            }
            for (op, want) in [
                (CmpOp::Eq, x == y),
                (CmpOp::Ne, x != y),
                (CmpOp::Lt, x < y),
                (CmpOp::Le, x <= y),
                (CmpOp::Gt, x > y),
                (CmpOp::Ge, x >= y),
            ] {
                assert_eq!(compare(op, &vx, &vy).unwrap(), want);
                // Mixed int/float comparisons agree with the int ones.
                assert_eq!(compare(op, &vx, &json!(y as f64)).unwrap(), want);
            }
        }
    }
}
