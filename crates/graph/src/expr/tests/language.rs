//! Parsing, binding and evaluating expressions.

use serde_json::{Value, json};

use super::{ev, ev_err, js, run};
use crate::expr::{BindError, BoundExpr, EvalError, Expr, ParseError, Scope};

fn parse_err(src: &str) -> ParseError {
    match Expr::parse(src) {
        Ok(e) => panic!("{src:?} should not parse, got {e:?}"),
        Err(e) => e,
    }
}

#[test]
fn example_loop_conditions() {
    let vars = [
        ("count", json!(5)),
        ("b", json!(51.5)),
        ("done", json!(false)),
        ("n", json!(9)),
        ("total", json!(3)),
        ("items", json!([])),
        ("status", json!("ok")),
        ("x", json!(7)),
        ("score", json!({"value": 4})),
        ("xs", json!([30, 20, 9])),
        ("tags", json!(["a", "b"])),
    ];
    let t = |src: &str| match run(src, &vars) {
        Ok(v) => v,
        Err(e) => panic!("{src}: {e}"),
    };
    for src in [
        "count >= 5",
        "b > 50",
        "not done and (n % 3 == 0 or total >= 10.5)",
        "len(items) == 0",
        "status == \"ok\"",
        "status == 'ok'",
        "x != None",
        "x != null",
        "score.value > 3",
        "score['value'] == 4",
        "xs[-1] < 10",
        "\"a\" in tags",
        "'z' not in tags",
        "1 < x <= 10",
        "x is not None",
        "done is False",
        "done == false",
        "count in (4, 5)",
        "x not in (1, 2,)",
        "(count, 'ok') == (5, status)",
        "(x,) == (7,)",
        "len(()) == 0",
        "(count) == 5",
    ] {
        assert_eq!(t(src), Value::Bool(true), "{src}");
    }
    for src in ["count > 5", "1 < x <= 6", "10 < x < 1", "'c' in tags", "x is None"] {
        assert_eq!(t(src), Value::Bool(false), "{src}");
    }
}

#[test]
fn operator_typing_through_the_language() {
    assert_eq!(ev("2*3"), "6");
    assert_eq!(ev("2*3.0"), "6.0");
    assert_eq!(ev("6/3"), "2.0");
    assert_eq!(ev("7//2"), "3");
    assert_eq!(ev("7.0//2"), "3.0");
    assert_eq!(ev("-7 % 3"), "2");
    assert_eq!(ev("-7 // 2"), "-4");
    assert_eq!(ev("7 % -3"), "-2");
    assert_eq!(ev("2 ** -1"), "0.5");
    assert_eq!(ev("True + 1"), "2");
    assert_eq!(ev("1e3"), "1000.0");
    assert_eq!(ev(".5 + 1"), "1.5");
    assert_eq!(ev("'ab' * 2 + 'c'"), "\"ababc\"");
    assert_eq!(ev("[1, 2] + [3]"), "[1,2,3]");
    assert_eq!(ev("[]"), "[]");
    assert_eq!(ev("[1, 2,]"), "[1,2]");
    assert_eq!(ev_err("1 / 0"), EvalError::ZeroDivision);
    assert_eq!(ev_err("5 % 0"), EvalError::ZeroDivision);
    assert_eq!(ev_err("9223372036854775807 + 1"), EvalError::Overflow);
    assert_eq!(ev("-9223372036854775807 - 1"), "-9223372036854775808");
    assert!(matches!(ev_err("1 + 'a'"), EvalError::Type(_)));
}

#[test]
fn precedence_and_associativity() {
    assert_eq!(ev("-2**2"), "-4");
    assert_eq!(ev("(-2)**2"), "4");
    assert_eq!(ev("2**3**2"), "512");
    assert_eq!(ev("2**-1**2"), "0.5");
    assert_eq!(ev("1 + 2 * 3"), "7");
    assert_eq!(ev("(1 + 2) * 3"), "9");
    assert_eq!(ev("10 - 3 - 2"), "5");
    assert_eq!(ev("100 / 10 / 5"), "2.0");
    assert_eq!(ev("2 * 3 % 4"), "2");
    assert_eq!(ev("- - 3"), "3");
    assert_eq!(ev("1 + 2 == 3"), "true");
    assert_eq!(ev("not 1 == 2"), "true");
    assert_eq!(ev("not 1 == 1 or 1"), "1");
    assert_eq!(ev("True or False and False"), "true");
    assert_eq!(ev("(True or False) and False"), "false");
    assert_eq!(ev("not 2 in [1, 2]"), "false");
    // `not a == b` is `not (a == b)`.
    let vars = [("a", json!(1)), ("b", json!(2))];
    assert_eq!(run("not a == b", &vars).unwrap(), json!(true));
    assert_eq!(run("(not a) == b", &vars).unwrap(), json!(false));
}

#[test]
fn comparison_chains() {
    assert_eq!(ev("1 < 2 < 3"), "true");
    assert_eq!(ev("1 < 3 < 2"), "false");
    assert_eq!(ev("3 > 2 > 1 >= 1 == 1.0 != 0"), "true");
    assert_eq!(ev("1 == 1 in [True]"), "true");
    // The chain stops at the first false link, so later links are not evaluated.
    assert_eq!(ev("2 < 1 < 1/0"), "false");
    assert_eq!(ev_err("1 < 2 < 1/0"), EvalError::ZeroDivision);
    assert_eq!(
        ev_err("None < 1").to_string(),
        "TypeError: '<' not supported between instances of 'NoneType' and 'int'"
    );
    assert_eq!(ev("None == 1"), "false");
    assert_eq!(ev("'1' != 1"), "true");
    assert_eq!(ev("1 is 1.0"), "false");
    assert_eq!(ev("None is None"), "true");
    assert_eq!(ev("[1] is not [1]"), "false");
}

#[test]
fn short_circuit_returns_operands() {
    assert_eq!(ev("0 or 5"), "5");
    assert_eq!(ev("3 or 1/0"), "3");
    assert_eq!(ev("0 and 1/0"), "0");
    assert_eq!(ev("'' or [] or None"), "null");
    assert_eq!(ev("1 and 'x' and [2]"), "[2]");
    assert_eq!(ev("1 and 0.0 and 1/0"), "0.0");
    assert_eq!(ev("not ''"), "true");
    let vars = [("d", json!({"k": [1, 2]}))];
    assert_eq!(run("d.k or d.missing", &vars).unwrap(), json!([1, 2]));
    assert_eq!(run("d.missing and 1", &vars), Err(EvalError::Key("'missing'".into())));
}

#[test]
fn postfix_access() {
    let vars = [("d", json!({"a": {"b": [10, {"c": "hey"}]}, "and": 1, "True": 2, "list": [1, 2, 3]}))];
    let r = |src: &str| run(src, &vars);
    assert_eq!(r("d.a.b[0]").unwrap(), json!(10));
    assert_eq!(r("d.a.b[-1].c").unwrap(), json!("hey"));
    assert_eq!(r("d['a']['b'][1]['c'][0]").unwrap(), json!("h"));
    assert_eq!(r("d.a.b[-1].c[-1]").unwrap(), json!("y"));
    assert_eq!(r("d.and + d.True").unwrap(), json!(3));
    assert_eq!(r("d.list[True]").unwrap(), json!(2));
    assert_eq!(r("[5, 6, 7][1]").unwrap(), json!(6));
    assert_eq!(r("len(d.list) - 1").unwrap(), json!(2));
    assert_eq!(r("max(d.list)").unwrap(), json!(3));
    assert_eq!(r("d.nope").unwrap_err(), EvalError::Key("'nope'".into()));
    assert_eq!(r("d.nope").unwrap_err().to_string(), "KeyError: 'nope'");
    assert_eq!(r("d[1]").unwrap_err().to_string(), "KeyError: 1");
    assert_eq!(r("d.list[3]").unwrap_err(), EvalError::Index("list index out of range".into()));
    assert!(matches!(r("d.list[-4]").unwrap_err(), EvalError::Index(_)));
    assert!(matches!(r("'ab'[2]").unwrap_err(), EvalError::Index(_)));
    assert_eq!(
        r("d.list[1.0]").unwrap_err().to_string(),
        "TypeError: list indices must be integers or slices, not float"
    );
    assert_eq!(r("d.list.x").unwrap_err().to_string(), "AttributeError: 'list' object has no attribute 'x'");
    assert_eq!(r("5[0]").unwrap_err().to_string(), "TypeError: 'int' object is not subscriptable");
}

#[test]
fn literals_and_strings() {
    assert_eq!(ev(r#"'a\'b' + "c\"d" + '\n'"#), r#""a'bc\"d\n""#);
    assert_eq!(ev("'\\u00e9'"), "\"é\"");
    assert_eq!(ev("[true, false, null, True, False, None]"), "[true,false,null,true,false,null]");
    assert_eq!(ev("  1\t+\n2  "), "3");
    assert_eq!(ev("-5"), "-5");
    assert_eq!(ev("-2.5"), "-2.5");
}

#[test]
fn parse_errors_report_offsets() {
    let cases = [
        ("", 0),
        ("   ", 0),
        ("x = 1", 2),
        ("a && b", 2),
        ("a || b", 2),
        ("(1 + 2", 6),
        ("1 + 2)", 5),
        ("[1, 2", 5),
        ("1 +", 3),
        ("x y", 2),
        ("lambda x: x", 7),
        ("f(1", 3),
        ("a.b(1)", 3),
        ("a == not b", 5),
        ("'abc", 0),
        ("1 2", 2),
        ("a.", 2),
        ("a[]", 2),
        ("x not", 2),
        ("x is in y", 5),
        ("!x", 0),
        ("a ! b", 2),
    ];
    for (src, offset) in cases {
        let e = parse_err(src);
        assert_eq!(e.offset, offset, "{src:?}: {e}");
    }
    let e = parse_err("x = 1");
    assert_eq!(e.to_string(), format!("{} at offset 2", e.message));
    assert_eq!(parse_err("").message, "empty expression");
}

#[test]
fn nesting_is_limited() {
    let deep = format!("{}1{}", "(".repeat(60), ")".repeat(60));
    assert_eq!(ev(&deep), "1");
    let deep_list = format!("{}{}", "[".repeat(60), "]".repeat(60));
    assert_eq!(Expr::parse(&deep_list).map(|_| ()), Ok(()));
    for too_deep in [
        format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("{}1", "-".repeat(100_000)),
        format!("{}1", "not ".repeat(100_000)),
        "[".repeat(100_000),
        vec!["2"; 100_000].join(" ** "),
        vec!["1"; 100_000].join(" + "),
    ] {
        let e = parse_err(&too_deep);
        assert!(e.message.contains("nested too deeply"), "{e}");
    }
    let long_sum = vec!["1"; 60].join(" + ");
    assert_eq!(ev(&long_sum), "60");
    let many_ors = vec!["0"; 10_000].join(" or ");
    assert_eq!(ev(&many_ors), "0");
    let long_chain = vec!["1"; 10_000].join(" <= ");
    assert_eq!(ev(&long_chain), "true");
}

#[test]
fn names_and_binding() {
    let e = Expr::parse("b + a * b > len(c) and a.x").unwrap();
    assert_eq!(e.names(), vec!["b", "a", "c"]);
    assert_eq!(e.source(), "b + a * b > len(c) and a.x");
    let mut calls = Vec::new();
    let bound = e
        .bind(&mut |n| {
            calls.push(n.to_owned());
            Some(match n {
                "a" => 10,
                "b" => 11,
                _ => 12,
            })
        })
        .unwrap();
    assert_eq!(calls, ["b", "a", "c"], "resolve is called once per distinct name");
    assert_eq!(bound.source(), e.source());

    let unknown_name = Expr::parse("a + zz + nope(1)").unwrap();
    let err = unknown_name.bind(&mut |n| (n == "a").then_some(0)).unwrap_err();
    assert_eq!(err, BindError::UnknownName("zz".into()));
    assert_eq!(err.to_string(), "unknown name 'zz'");
    let err = unknown_name.bind(&mut |_| Some(0)).unwrap_err();
    assert_eq!(err, BindError::UnknownFunction("nope".into()));
    assert_eq!(err.to_string(), "unknown function 'nope'");
    // A variable used as a function is an unknown function.
    let err = Expr::parse("f(1)").unwrap().bind(&mut |_| Some(0)).unwrap_err();
    assert_eq!(err, BindError::UnknownFunction("f".into()));
}

#[test]
fn evaluation_reads_slots_only() {
    let bound = Expr::parse("a + b").unwrap().bind(&mut |n| Some(if n == "a" { 2 } else { 0 })).unwrap();
    let scope = vec![Some(json!(1)), None, Some(json!(41))];
    assert_eq!(bound.eval(&scope).unwrap(), json!(42));
    let partial: Vec<Option<Value>> = vec![None, None, Some(json!(1))];
    assert_eq!(bound.eval(&partial), Err(EvalError::Unbound("b".into())));
    let short: &[Option<Value>] = &[Some(json!(1))];
    assert_eq!(bound.eval(&short), Err(EvalError::Unbound("a".into())));
    assert_eq!(EvalError::Unbound("b".into()).to_string(), "NameError: name 'b' has no value yet");

    struct Fixed(Value);
    impl Scope for Fixed {
        fn get(&self, _slot: u32) -> Option<&Value> {
            Some(&self.0)
        }
    }
    assert!(bound.eval_bool(&Fixed(json!(1))).unwrap());
    assert!(!bound.eval_bool(&Fixed(json!(""))).unwrap());
    assert_eq!(js(&bound.eval(&Fixed(json!([1]))).unwrap()), "[1,1]");
}

#[test]
fn bound_expr_is_send_sync_clone() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_traits::<BoundExpr>();
    assert_traits::<Expr>();
    let e: Expr = "1 + 1".parse().unwrap();
    assert_eq!(e.to_string(), "1 + 1");
}
