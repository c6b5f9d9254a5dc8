//! Tests of the expression language and value semantics.

mod builtins;
mod language;
mod repr;
mod values;

use serde_json::Value;

use super::{EvalError, Expr};

/// Compact JSON text of a value (distinguishes `2` from `2.0`).
fn js(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

/// Parses, binds against `vars` (slot = position) and evaluates `src`.
fn run(src: &str, vars: &[(&str, Value)]) -> Result<Value, EvalError> {
    let expr = Expr::parse(src).unwrap_or_else(|e| panic!("parse {src:?}: {e}"));
    let bound = expr
        .bind(&mut |name| vars.iter().position(|(n, _)| *n == name).map(|i| u32::try_from(i).unwrap()))
        .unwrap_or_else(|e| panic!("bind {src:?}: {e}"));
    let scope: Vec<Option<Value>> = vars.iter().map(|(_, v)| Some(v.clone())).collect();
    bound.eval(&scope)
}

/// Evaluates a variable-free expression and renders the result as JSON.
fn ev(src: &str) -> String {
    match run(src, &[]) {
        Ok(v) => js(&v),
        Err(e) => panic!("eval {src:?}: {e}"),
    }
}

/// Evaluates a variable-free expression expecting an error.
fn ev_err(src: &str) -> EvalError {
    match run(src, &[]) {
        Ok(v) => panic!("eval {src:?}: expected an error, got {}", js(&v)),
        Err(e) => e,
    }
}
