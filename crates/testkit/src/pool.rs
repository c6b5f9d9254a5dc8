//! The conformance test-op pool (`shared/conformance/TEST_OPS.md`), with Python
//! semantics for numbers (int op int stays int) and the exact failure messages.

use std::time::Duration;

use operonx::graph::expr::{self, BinOp, CmpOp};
use operonx::{Inputs, OpError, Outputs, Registry, Value, json};

fn arith(op: BinOp, a: &Value, b: &Value) -> Result<Value, OpError> {
    expr::binary(op, a, b).map_err(|e| OpError::new(e.to_string()))
}

fn take(inputs: &mut Inputs, name: &str) -> Value {
    inputs.take(name).unwrap_or(Value::Null)
}

fn sum(values: &[Value]) -> Result<Value, OpError> {
    values.iter().try_fold(json!(0), |acc, v| arith(BinOp::Add, &acc, v))
}

fn list(v: Value, name: &str) -> Result<Vec<Value>, OpError> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(OpError::input(name, format!("expected a list, got {}", expr::type_name(&other)))),
    }
}

/// Every op of the conformance pool, registered under its pool name.
pub fn test_ops() -> Registry {
    let mut r = Registry::new();
    r.register_fn("double", |mut i, _| Ok(Outputs::one("result", arith(BinOp::Mul, &take(&mut i, "x"), &json!(2))?)));
    r.register_fn("add_one", |mut i, _| Ok(Outputs::one("answer", arith(BinOp::Add, &take(&mut i, "n"), &json!(1))?)));
    r.register_fn("echo", |mut i, _| Ok(Outputs::one("output", take(&mut i, "msg"))));
    r.register_fn("wrap_user", |mut i, _| {
        Ok(Outputs::one("msg", json!({"role": "user", "content": take(&mut i, "text")})))
    });
    r.register_fn("classify_size", |mut i, _| {
        let (n, t) = (take(&mut i, "n"), take(&mut i, "threshold"));
        let big = expr::compare(CmpOp::Gt, &n, &t).map_err(|e| OpError::new(e.to_string()))?;
        Ok(Outputs::one("label", if big { "big" } else { "small" }))
    });
    r.register_fn("lowercase", |mut i, _| {
        let text: String = i.parse("text")?;
        Ok(Outputs::one("result", text.to_lowercase()))
    });
    r.register_fn("sum_list", |mut i, _| {
        let xs = list(take(&mut i, "xs"), "xs")?;
        Ok(Outputs::one("total", sum(&xs)?))
    });
    r.register_fn("increment", |mut i, _| {
        Ok(Outputs::one("counter", arith(BinOp::Add, &take(&mut i, "counter"), &json!(1))?))
    });
    r.register_fn("passthrough", |mut i, _| Ok(Outputs::one("value", take(&mut i, "value"))));
    r.register_fn("scratch_write", |mut i, ctx| {
        let key: String = i.parse("key")?;
        ctx.scratch().set(key, take(&mut i, "value"));
        Ok(Outputs::one("signal", true))
    });
    r.register_fn("scratch_read", |mut i, ctx| {
        let key: String = i.parse("key")?;
        Ok(Outputs::one("value", ctx.scratch().get(&key).unwrap_or(Value::Null)))
    });
    r.register_generator("each_item", |mut i, _| {
        let items = list(take(&mut i, "items"), "items")?;
        Ok(items.into_iter().map(|x| Ok(Outputs::one("item", x))))
    });
    r.register_fn("accumulate", |mut i, _| {
        let values = list(take(&mut i, "values"), "values")?;
        Ok(Outputs::one("total", sum(&values)?).with("count", values.len()))
    });
    r.register_fn("choose_branch", |mut i, _| {
        let m = arith(BinOp::Mod, &take(&mut i, "n"), &json!(2))?;
        Ok(Outputs::one("route", if m == json!(0) { "even" } else { "odd" }))
    });
    r.register_fn("add", |mut i, _| {
        Ok(Outputs::one("sum", arith(BinOp::Add, &take(&mut i, "a"), &take(&mut i, "b"))?))
    });
    r.register_fn("concat", |mut i, _| {
        let a: String = i.parse("a")?;
        let b: String = i.parse("b")?;
        let sep: Option<String> = i.parse("sep")?;
        Ok(Outputs::one("text", format!("{a}{}{b}", sep.as_deref().unwrap_or("-"))))
    });
    r.register_async("sleep_echo", |mut i, _| async move {
        let ms: u64 = i.parse("ms")?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Outputs::one("value", take(&mut i, "value")))
    });
    r.register_fn("fail_if", |mut i, _| {
        let (value, bad) = (take(&mut i, "value"), take(&mut i, "bad"));
        if expr::compare(CmpOp::Eq, &value, &bad).unwrap_or(false) {
            return Err(OpError::new(format!("fail_if: value {} is bad", expr::repr(&value))));
        }
        Ok(Outputs::one("value", value))
    });
    r.register_fn("always_fail", |mut i, _| {
        Err(OpError::new(format!("always_fail: {}", expr::repr(&take(&mut i, "x")))))
    });
    r.register_fn("fib_step", |mut i, _| {
        let (a, b) = (take(&mut i, "a"), take(&mut i, "b"));
        let next = arith(BinOp::Add, &a, &b)?;
        Ok(Outputs::one("a", b).with("b", next))
    });
    r.register_fn("pick_fields", |mut i, _| {
        let Value::Object(rec) = take(&mut i, "record") else {
            return Err(OpError::input("record", "expected an object"));
        };
        let field = |k: &str| rec.get(k).cloned().ok_or_else(|| OpError::new(format!("KeyError: '{k}'")));
        let n_tags = match rec.get("tags") {
            None => 0,
            Some(Value::Array(a)) => a.len(),
            Some(Value::Object(o)) => o.len(),
            Some(Value::String(s)) => s.chars().count(),
            Some(other) => {
                return Err(OpError::new(format!("object of type '{}' has no len()", expr::type_name(other))));
            }
        };
        Ok(Outputs::one("name", field("name")?).with("score", field("score")?).with("n_tags", n_tags))
    });
    r.register_fn("make_obj", |_, _| Ok(Outputs::one("obj", json!({"name": "Alice", "age": 30}))));
    r.register_fn("echo_value", |mut i, _| Ok(Outputs::one("got", take(&mut i, "value"))));
    r
}

/// The benchmark op pool (`shared/bench/README.md`).
pub fn bench_ops() -> Registry {
    fn int(i: &Inputs, name: &str) -> Result<i64, OpError> {
        i.get(name).and_then(Value::as_i64).ok_or_else(|| OpError::input(name, "expected an integer"))
    }
    let mut r = Registry::new();
    r.register_fn("inc", |i, _| Ok(Outputs::one("x", int(&i, "x")? + 1)));
    r.register_fn("d_add1", |i, _| Ok(Outputs::one("a", int(&i, "x")? + 1)));
    r.register_fn("d_mul2", |i, _| Ok(Outputs::one("b", int(&i, "a")? * 2)));
    r.register_fn("d_add3", |i, _| Ok(Outputs::one("c", int(&i, "a")? + 3)));
    r.register_fn("d_sum", |i, _| Ok(Outputs::one("d", int(&i, "b")? + int(&i, "c")?)));
    r.register_fn("d_sub1", |i, _| Ok(Outputs::one("e", int(&i, "d")? - 1)));
    r.register_generator("gen_items", |i, _| {
        let n = int(&i, "n")?;
        Ok((0..n).map(|k| Ok(Outputs::one("i", k))))
    });
    r.register_fn("f1", |i, _| Ok(Outputs::one("y", int(&i, "i")? + 1)));
    r.register_fn("f2", |i, _| Ok(Outputs::one("z", int(&i, "y")? * 2)));
    r.register_generator("agen_items", |i, _| {
        let n = int(&i, "n")?;
        Ok((0..n).map(|k| Ok(Outputs::one("i", k))))
    });
    r.register_async("af1", |i, _| async move { Ok(Outputs::one("y", int(&i, "i")? + 1)) });
    r.register_async("af2", |i, _| async move { Ok(Outputs::one("z", int(&i, "y")? * 2)) });
    r.register_fn("sum_list", |i, _| {
        let xs = i.get("zs").and_then(Value::as_array).ok_or_else(|| OpError::input("zs", "expected a list"))?;
        Ok(Outputs::one("total", xs.iter().filter_map(Value::as_i64).sum::<i64>()))
    });
    r.register_fn("src_value", |i, _| Ok(Outputs::one("v", int(&i, "x")?)));
    r.register_fn("branch", |i, _| Ok(Outputs::one("w", int(&i, "v")? + int(&i, "k")?)));
    r.register_fn("join_fn", |i, _| {
        let mut total = 0i64;
        for (_, v) in i.iter() {
            total += v.as_i64().ok_or_else(|| OpError::new("join_fn: expected integers"))?;
        }
        Ok(Outputs::one("total", total))
    });
    r.register_generator("make_prompts", |i, _| {
        let n = int(&i, "n")?;
        Ok((0..n).map(|k| Ok(Outputs::one("messages", json!([{"role": "user", "content": format!("question {k}")}])))))
    });
    r
}
