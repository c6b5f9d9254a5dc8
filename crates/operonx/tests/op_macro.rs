//! Tests for the `#[op]` attribute macro: the generated ops are called directly through
//! the `Op` trait and their exact outputs are checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use operonx::{Inputs, Invocation, NamedOp, Op, OpContext, OpError, OpKind, OpResult, Registry, Scratch, op};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// The ops under test.

/// Doubles x.
#[op]
fn double(x: i64) -> i64 {
    x * 2
}

#[op(name = "add_one", output = "answer")]
fn add_one_impl(n: i64) -> i64 {
    n + 1
}

#[derive(serde::Serialize)]
struct Stats {
    total: i64,
    count: usize,
}

#[op]
fn accumulate(values: Vec<i64>) -> Stats {
    Stats { total: values.iter().sum(), count: values.len() }
}

#[op]
fn fail_if(value: Value, bad: Value) -> Result<Value, String> {
    if value == bad { Err(format!("bad value: {value}")) } else { Ok(value) }
}

#[op]
fn checked(x: i64) -> Result<(), OpError> {
    if x < 0 { Err(OpError::new("x must not be negative")) } else { Ok(()) }
}

#[op(output = "value")]
async fn sleep_echo(ms: u64, value: Value) -> Value {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    value
}

#[op(output = "seen")]
async fn async_scratch(key: String, ctx: OpContext) -> Option<Value> {
    tokio::task::yield_now().await;
    ctx.scratch().get(&key)
}

#[op(output = "seen")]
async fn async_scratch_ref(key: String, ctx: &OpContext) -> Option<Value> {
    tokio::task::yield_now().await;
    ctx.scratch().get(&key)
}

#[op]
async fn async_unit(ctx: OpContext) {
    ctx.scratch().set("async_unit", json!(true));
}

#[op]
async fn async_try(fail: bool) -> Result<i64, String> {
    if fail { Err("async failure".into()) } else { Ok(7) }
}

#[op(generator, output = "item")]
fn each_item(items: Vec<Value>) -> impl Iterator<Item = Value> + Send + 'static {
    items.into_iter()
}

#[op(generator)]
fn countdown(from: u32) -> Result<Vec<BTreeMap<String, u32>>, String> {
    if from > 3 {
        return Err(format!("{from} is too many"));
    }
    Ok((1..=from).rev().map(|n| BTreeMap::from([("n".to_string(), n)])).collect())
}

#[op]
fn scratch_write(key: String, value: Value, ctx: &operonx::OpContext) -> bool {
    ctx.scratch().set(key, value);
    true
}

#[op]
fn concat(a: String, b: String, sep: Option<String>) -> String {
    format!("{a}{}{b}", sep.unwrap_or_default())
}

#[op]
fn no_inputs() -> &'static str {
    "constant"
}

#[op]
fn side_effect(_signal: Value, ctx: &OpContext) {
    ctx.scratch().set("side_effect", json!("done"));
}

#[op]
fn r#type(r#in: String) -> String {
    r#in.to_uppercase()
}

mod nested {
    use operonx::op;

    /// A public op in a module: the struct is as visible as the function.
    #[op(name = "nested.shout")]
    pub fn shout(text: String) -> String {
        text.to_uppercase()
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn inputs(value: Value) -> Inputs {
    Inputs::from_map(value.as_object().cloned().unwrap_or_default())
}

fn context() -> OpContext {
    OpContext::new("main.x".into(), Scratch::default())
}

fn json_of(result: OpResult) -> Result<Value, String> {
    result.map(|o| Value::Object(o.into_map())).map_err(|e| e.to_string())
}

/// Run a plain op (sync or async) and return its outputs as a JSON object, or its error.
async fn run(op: &dyn Op, input: Value, ctx: &OpContext) -> Result<Value, String> {
    match op.call(inputs(input), ctx) {
        Invocation::Ready(result) => json_of(result),
        Invocation::Future(future) => json_of(future.await),
        other => panic!("expected a plain op, got {other:?}"),
    }
}

/// Run a sync op that must answer immediately.
fn run_sync(op: &dyn Op, input: Value) -> Result<Value, String> {
    match op.call(inputs(input), &context()) {
        Invocation::Ready(result) => json_of(result),
        other => panic!("expected Invocation::Ready, got {other:?}"),
    }
}

/// Run a generator and collect its frames (an immediate failure is `Err`).
fn run_generator(op: &dyn Op, input: Value) -> Result<Vec<Result<Value, String>>, String> {
    match op.call(inputs(input), &context()) {
        Invocation::Items(items) => Ok(items.map(json_of).collect()),
        Invocation::Ready(result) => Err(json_of(result).err().unwrap_or_else(|| "Ready(Ok)".into())),
        other => panic!("expected Invocation::Items, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Plain sync ops.

#[test]
fn scalar_return_is_output_result() {
    assert_eq!(run_sync(&double_op, json!({"x": 21})), Ok(json!({"result": 42})));
    let out = run_sync(&double_op, json!({"x": 21})).unwrap();
    assert!(out["result"].is_i64(), "an integer stays an integer: {out}");
}

#[test]
fn the_function_itself_is_unchanged() {
    assert_eq!(double(4), 8);
    assert_eq!(add_one_impl(1), 2);
    assert_eq!(concat("a".into(), "b".into(), None), "ab");
}

#[test]
fn name_and_output_arguments() {
    assert_eq!(add_one_impl_op.name(), "add_one");
    assert_eq!(double_op.name(), "double");
    assert_eq!(run_sync(&add_one_impl_op, json!({"n": 41})), Ok(json!({"answer": 42})));
}

#[test]
fn struct_return_fields_are_outputs() {
    assert_eq!(run_sync(&accumulate_op, json!({"values": [1, 2, 3, 4]})), Ok(json!({"total": 10, "count": 4})));
}

#[test]
fn result_return() {
    assert_eq!(run_sync(&fail_if_op, json!({"value": 1, "bad": 2})), Ok(json!({"result": 1})));
    assert_eq!(run_sync(&fail_if_op, json!({"value": "x", "bad": "x"})), Err("bad value: \"x\"".to_string()));
}

#[test]
fn result_of_unit_with_op_error() {
    assert_eq!(run_sync(&checked_op, json!({"x": 1})), Ok(json!({})));
    assert_eq!(run_sync(&checked_op, json!({"x": -1})), Err("x must not be negative".to_string()));
}

#[test]
fn missing_required_input_names_it() {
    let err = run_sync(&double_op, json!({})).unwrap_err();
    assert!(err.starts_with("input 'x': "), "{err}");
    let err = run_sync(&double_op, json!({"x": "not a number"})).unwrap_err();
    assert!(err.starts_with("input 'x': "), "{err}");
}

#[test]
fn option_parameters_are_optional() {
    assert_eq!(run_sync(&concat_op, json!({"a": "x", "b": "y"})), Ok(json!({"result": "xy"})));
    assert_eq!(run_sync(&concat_op, json!({"a": "x", "b": "y", "sep": null})), Ok(json!({"result": "xy"})));
    assert_eq!(run_sync(&concat_op, json!({"a": "x", "b": "y", "sep": "-"})), Ok(json!({"result": "x-y"})));
    let err = run_sync(&concat_op, json!({"a": "x"})).unwrap_err();
    assert!(err.starts_with("input 'b': "), "{err}");
}

#[test]
fn extra_inputs_are_ignored_and_no_inputs_is_fine() {
    assert_eq!(run_sync(&no_inputs_op, json!({"unused": 1})), Ok(json!({"result": "constant"})));
    assert_eq!(run_sync(&double_op, json!({"x": 2, "y": 3})), Ok(json!({"result": 4})));
}

#[test]
fn context_parameter_by_reference() {
    let ctx = context();
    let out = match scratch_write_op.call(inputs(json!({"key": "k", "value": [1]})), &ctx) {
        Invocation::Ready(result) => json_of(result),
        other => panic!("expected Ready, got {other:?}"),
    };
    assert_eq!(out, Ok(json!({"result": true})));
    assert_eq!(ctx.scratch().get("k"), Some(json!([1])));
}

#[test]
fn unit_return_has_no_outputs() {
    let ctx = context();
    let out = match side_effect_op.call(inputs(json!({"_signal": 1})), &ctx) {
        Invocation::Ready(result) => json_of(result),
        other => panic!("expected Ready, got {other:?}"),
    };
    assert_eq!(out, Ok(json!({})));
    assert_eq!(ctx.scratch().get("side_effect"), Some(json!("done")));
}

#[test]
fn raw_identifiers() {
    assert_eq!(type_op.name(), "type");
    assert_eq!(run_sync(&type_op, json!({"in": "abc"})), Ok(json!({"result": "ABC"})));
}

#[test]
fn ops_in_modules() {
    assert_eq!(nested::shout_op.name(), "nested.shout");
    assert_eq!(run_sync(&nested::shout_op, json!({"text": "hi"})), Ok(json!({"result": "HI"})));
}

#[test]
fn generated_struct_traits() {
    let op = double_op;
    let copy = op;
    let _clone = Clone::clone(&copy);
    let _default: double_op = Default::default();
    assert_eq!(format!("{op:?}"), "double_op");
}

// ---------------------------------------------------------------------------------------
// Async ops.

#[tokio::test]
async fn async_op_returns_a_future() {
    let ctx = context();
    let invocation = sleep_echo_op.call(inputs(json!({"ms": 1, "value": {"a": 1}})), &ctx);
    assert!(matches!(invocation, Invocation::Future(_)), "{invocation:?}");
    assert_eq!(run(&sleep_echo_op, json!({"ms": 1, "value": {"a": 1}}), &ctx).await, Ok(json!({"value": {"a": 1}})));
}

#[tokio::test]
async fn async_input_errors_are_immediate() {
    match sleep_echo_op.call(inputs(json!({"value": 1})), &context()) {
        Invocation::Ready(Err(e)) => assert!(e.to_string().starts_with("input 'ms': "), "{e}"),
        other => panic!("expected an immediate input error, got {other:?}"),
    }
}

#[tokio::test]
async fn async_context_parameter_by_value() {
    let ctx = context();
    ctx.scratch().set("k", json!("v"));
    assert_eq!(run(&async_scratch_op, json!({"key": "k"}), &ctx).await, Ok(json!({"seen": "v"})));
    assert_eq!(run(&async_scratch_op, json!({"key": "other"}), &ctx).await, Ok(json!({"seen": null})));
}

#[tokio::test]
async fn async_context_parameter_by_reference_and_unit_return() {
    let ctx = context();
    ctx.scratch().set("k", json!(1));
    assert_eq!(run(&async_scratch_ref_op, json!({"key": "k"}), &ctx).await, Ok(json!({"seen": 1})));
    assert_eq!(run(&async_unit_op, json!({}), &ctx).await, Ok(json!({})));
    assert_eq!(ctx.scratch().get("async_unit"), Some(json!(true)));
}

#[tokio::test]
async fn async_result_return() {
    let ctx = context();
    assert_eq!(run(&async_try_op, json!({"fail": false}), &ctx).await, Ok(json!({"result": 7})));
    assert_eq!(run(&async_try_op, json!({"fail": true}), &ctx).await, Err("async failure".to_string()));
}

// ---------------------------------------------------------------------------------------
// Generators.

#[test]
fn generator_items_are_frames() {
    assert_eq!(each_item_op.kind(), OpKind::Generator);
    assert_eq!(double_op.kind(), OpKind::Plain);
    assert_eq!(
        run_generator(&each_item_op, json!({"items": [1, "two", {"three": 3}]})),
        Ok(vec![Ok(json!({"item": 1})), Ok(json!({"item": "two"})), Ok(json!({"item": {"three": 3}}))])
    );
    assert_eq!(run_generator(&each_item_op, json!({"items": []})), Ok(vec![]));
}

#[test]
fn generator_result_and_object_items() {
    assert_eq!(countdown_op.kind(), OpKind::Generator);
    assert_eq!(run_generator(&countdown_op, json!({"from": 2})), Ok(vec![Ok(json!({"n": 2})), Ok(json!({"n": 1}))]));
    assert_eq!(run_generator(&countdown_op, json!({"from": 9})), Err("9 is too many".to_string()));
    let err = run_generator(&countdown_op, json!({})).unwrap_err();
    assert!(err.starts_with("input 'from': "), "{err}");
}

// ---------------------------------------------------------------------------------------
// Registration.

#[tokio::test]
async fn registry_add_and_lookup() {
    let mut registry = Registry::new();
    registry.add(double_op).add(add_one_impl_op).add(each_item_op).add(sleep_echo_op);
    assert_eq!(registry.function_names(), vec!["add_one", "double", "each_item", "sleep_echo"]);
    assert!(registry.lookup("add_one_impl").is_none(), "registered under its `name` only");

    let ctx = context();
    let found = registry.lookup("double").cloned().unwrap();
    assert_eq!(run(found.as_ref(), json!({"x": 5}), &ctx).await, Ok(json!({"result": 10})));
    let found = registry.lookup("tests.ops.add_one").cloned().unwrap();
    assert_eq!(run(found.as_ref(), json!({"n": 1}), &ctx).await, Ok(json!({"answer": 2})));
    assert_eq!(registry.lookup("each_item").map(|op| op.kind()), Some(OpKind::Generator));
}
