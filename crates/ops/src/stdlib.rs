//! A small standard library of code-op functions, registered by the `operonx` CLI so
//! that graphs can run without any Rust code of the user's. Numbers follow Python
//! semantics (int op int stays int).

use std::time::Duration;

use operonx_graph::expr::{self, BinOp};
use operonx_runtime::{Inputs, OpError, Outputs, Registry};
use serde_json::{Value, json};

fn take(i: &mut Inputs, name: &str) -> Value {
    i.take(name).unwrap_or(Value::Null)
}

fn text(i: &mut Inputs, name: &str) -> Result<String, OpError> {
    match take(i, name) {
        Value::String(s) => Ok(s),
        other => Err(OpError::input(name, format!("expected a string, got {}", expr::type_name(&other)))),
    }
}

fn list(i: &mut Inputs, name: &str) -> Result<Vec<Value>, OpError> {
    match take(i, name) {
        Value::Array(a) => Ok(a),
        other => Err(OpError::input(name, format!("expected a list, got {}", expr::type_name(&other)))),
    }
}

/// Input `name` read in place (these functions only look at their inputs: a large value
/// the run holds is not copied for them).
fn get<'a>(i: &'a Inputs, name: &str) -> &'a Value {
    i.get(name).unwrap_or(&Value::Null)
}

/// Input `name` as a list, read in place.
fn list_ref<'a>(i: &'a Inputs, name: &str) -> Result<&'a [Value], OpError> {
    match get(i, name) {
        Value::Array(a) => Ok(a),
        other => Err(OpError::input(name, format!("expected a list, got {}", expr::type_name(other)))),
    }
}

fn eval_err(e: expr::EvalError) -> OpError {
    OpError::new(e.to_string())
}

/// Register the standard functions:
///
/// | name | inputs → outputs |
/// |---|---|
/// | `identity` | `value` → `value` |
/// | `upper`, `lower`, `strip` | `text` → `text` |
/// | `split` | `text`, `sep` (optional; whitespace when absent) → `parts` |
/// | `join` | `parts`, `sep` (optional, `""`) → `text` |
/// | `length` | `value` (string, list or object) → `length` |
/// | `add` | `a`, `b` → `sum` (numbers add; strings and lists concatenate) |
/// | `sum` | `values` → `total` |
/// | `get` | `object`, `key`, `default` (optional) → `value` (a missing key without default fails) |
/// | `json_parse` | `text` → `value` |
/// | `json_dump` | `value` → `text` |
/// | `items` | `items` → `item` (generator: one frame per element) |
/// | `range` | `n` → `i` (generator: 0..n) |
/// | `sleep` | `ms`, `value` → `value` (async) |
/// | `ask` | `question` → `answer` (asks for input: the run pauses until it is resumed with an answer) |
pub fn register_std(r: &mut Registry) {
    // The value is passed on shared, not copied.
    r.register_fn("identity", |mut i, _| {
        Ok(Outputs::one_shared("value", i.take_shared("value").unwrap_or_else(|| Value::Null.into())))
    });
    r.register_fn("upper", |mut i, _| Ok(Outputs::one("text", text(&mut i, "text")?.to_uppercase())));
    r.register_fn("lower", |mut i, _| Ok(Outputs::one("text", text(&mut i, "text")?.to_lowercase())));
    r.register_fn("strip", |mut i, _| Ok(Outputs::one("text", text(&mut i, "text")?.trim().to_string())));
    r.register_fn("split", |mut i, _| {
        let t = text(&mut i, "text")?;
        let parts: Vec<Value> = match take(&mut i, "sep") {
            Value::Null => t.split_whitespace().map(|s| json!(s)).collect(),
            Value::String(sep) if !sep.is_empty() => t.split(sep.as_str()).map(|s| json!(s)).collect(),
            other => return Err(OpError::input("sep", format!("expected a non-empty string, got {other}"))),
        };
        Ok(Outputs::one("parts", parts))
    });
    r.register_fn("join", |mut i, _| {
        let parts = list(&mut i, "parts")?;
        let sep = match take(&mut i, "sep") {
            Value::Null => String::new(),
            Value::String(s) => s,
            other => return Err(OpError::input("sep", format!("expected a string, got {other}"))),
        };
        let strs: Result<Vec<String>, OpError> = parts
            .into_iter()
            .map(|p| match p {
                Value::String(s) => Ok(s),
                other => Err(OpError::input("parts", format!("expected strings, got {}", expr::type_name(&other)))),
            })
            .collect();
        Ok(Outputs::one("text", strs?.join(&sep)))
    });
    r.register_fn("length", |i, _| {
        let n = match get(&i, "value") {
            Value::String(s) => s.chars().count(),
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            other => return Err(OpError::input("value", format!("{} has no length", expr::type_name(other)))),
        };
        Ok(Outputs::one("length", n))
    });
    r.register_fn("add", |mut i, _| {
        let (a, b) = (take(&mut i, "a"), take(&mut i, "b"));
        Ok(Outputs::one("sum", expr::binary(BinOp::Add, &a, &b).map_err(eval_err)?))
    });
    r.register_fn("sum", |i, _| {
        let values = list_ref(&i, "values")?;
        let total = values.iter().try_fold(json!(0), |acc, v| expr::binary(BinOp::Add, &acc, v)).map_err(eval_err)?;
        Ok(Outputs::one("total", total))
    });
    r.register_fn("get", |mut i, _| {
        let key = take(&mut i, "key");
        let default = i.take("default").filter(|d| !d.is_null());
        // Only the item found is copied, not the object it is found in.
        let found = match (get(&i, "object"), &key) {
            (Value::Object(m), Value::String(k)) => m.get(k).cloned(),
            (Value::Array(a), Value::Number(n)) => {
                let len = a.len() as i64;
                n.as_i64()
                    .map(|x| if x < 0 { len + x } else { x })
                    .filter(|x| (0..len).contains(x))
                    .and_then(|x| a.get(x as usize).cloned())
            }
            (other, _) => {
                return Err(OpError::input("object", format!("cannot index {} with {key}", expr::type_name(other))));
            }
        };
        match found.or(default) {
            Some(v) => Ok(Outputs::one("value", v)),
            None => Err(OpError::new(format!("get: key {key} not found and no default given"))),
        }
    });
    r.register_fn("json_parse", |mut i, _| {
        let t = text(&mut i, "text")?;
        let v: Value = serde_json::from_str(&t).map_err(|e| OpError::with_source("json_parse: invalid JSON", e))?;
        Ok(Outputs::one("value", v))
    });
    r.register_fn("json_dump", |i, _| Ok(Outputs::one("text", get(&i, "value").to_string())));
    r.register_generator("items", |mut i, _| {
        // The list is shared with the run: each item is copied as it is made, never the list.
        let items = i.take_shared("items").unwrap_or_default();
        let Value::Array(a) = &*items else {
            return Err(OpError::input("items", format!("expected a list, got {}", expr::type_name(&items))));
        };
        let n = a.len();
        Ok((0..n).map(move |k| match &*items {
            Value::Array(a) => Ok(Outputs::one("item", a.get(k).cloned().unwrap_or(Value::Null))),
            _ => Ok(Outputs::one("item", Value::Null)),
        }))
    });
    r.register_generator("range", |mut i, _| {
        let n = take(&mut i, "n").as_i64().ok_or_else(|| OpError::input("n", "expected an integer"))?;
        Ok((0..n.max(0)).map(|k| Ok(Outputs::one("i", k))))
    });
    r.register_fn("ask", |mut i, ctx| {
        let answer = ctx.interrupt(take(&mut i, "question"))?;
        Ok(Outputs::one("answer", answer))
    });
    r.register_async("sleep", |mut i, _| async move {
        let ms = take(&mut i, "ms").as_u64().ok_or_else(|| OpError::input("ms", "expected a non-negative integer"))?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Outputs::one("value", take(&mut i, "value")))
    });
}
