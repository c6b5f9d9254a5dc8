//! Graphs authored with `operonx::graph::builder`, compiled by an [`Engine`] and run.
//! Where a conformance case was exported from Python, the builder's document is also
//! compared with the exported one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use operonx::graph::builder::{Bound, Graph, OpSpec, out, parent};
use operonx::{Engine, GraphDocument, Outputs, Value, json};

fn engine() -> Engine {
    let mut e = Engine::new();
    let r = e.registry_mut();
    r.register_fn("double", |mut i, _| Ok(Outputs::one("result", i.parse::<i64>("x")? * 2)));
    r.register_fn("add_one", |mut i, _| Ok(Outputs::one("answer", i.parse::<i64>("n")? + 1)));
    r.register_fn("choose_branch", |mut i, _| {
        let n: i64 = i.parse("n")?;
        Ok(Outputs::one("route", if n % 2 == 0 { "even" } else { "odd" }))
    });
    r.register_generator("each_item", |mut i, _| {
        let items: Vec<Value> = i.parse("items")?;
        Ok(items.into_iter().map(|item| Ok(Outputs::one("item", item))))
    });
    r.register_fn("accumulate", |mut i, _| {
        let values: Vec<i64> = i.parse("values")?;
        Ok(Outputs::one("total", values.iter().sum::<i64>()).with("count", values.len()))
    });
    r.register_fn("increment", |mut i, _| Ok(Outputs::one("counter", i.parse::<i64>("counter")? + 1)));
    r.register_fn("fib_step", |mut i, _| {
        let (a, b): (i64, i64) = (i.parse("a")?, i.parse("b")?);
        Ok(Outputs::one("a", b).with("b", a + b))
    });
    r.register_async("sleep_echo", |mut i, _| async move {
        let ms: u64 = i.parse("ms")?;
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        Ok(Outputs::one("value", i.require("value")?))
    });
    e
}

async fn run(doc: &GraphDocument, inputs: Value) -> Value {
    let workflow = engine().compile(doc).unwrap_or_else(|e| panic!("does not compile: {e}"));
    workflow.run(inputs).await.unwrap().to_json()
}

/// The document of a conformance case exported from Python.
fn case(path: &str) -> GraphDocument {
    let file = format!("{}/../../tests/conformance/cases/{path}/graph.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    GraphDocument::from_json_str(&text).unwrap()
}

/// A document as JSON with `null` members dropped: the exporter writes absent optional
/// fields of nested ops (`"func_name": null`, `"loop_config": null`) as `null`, which
/// reads the same as leaving them out.
fn canonical(doc: &GraphDocument) -> Value {
    fn strip(v: Value) -> Value {
        match v {
            Value::Object(m) => {
                Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, strip(v))).collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(strip).collect()),
            other => other,
        }
    }
    strip(doc.to_value())
}

#[tokio::test]
async fn two_op_chain() {
    let doc = Graph::new("main")
        .input("x")
        .output("answer")
        .op(OpSpec::code("double", "double").input("x", parent("x")).output("result"))
        .op(OpSpec::code("add_one", "add_one").input("n", out("double", "result")).output_to_parent("answer", "answer"))
        .build()
        .unwrap();
    assert_eq!(run(&doc, json!({"x": 5})).await, json!({"answer": 11}));
}

#[tokio::test]
async fn branch_routes_each_item() {
    let doc = Graph::new("main")
        .input("items")
        .output("evens")
        .output("odds")
        .op(OpSpec::code("src", "each_item").generator().input("items", parent("items")).output("item"))
        .op(OpSpec::code("cb", "choose_branch").input("n", out("src", "item")).output("route"))
        .op(OpSpec::branch("router").case(out("cb", "route").eq("even"), "ev").default("od"))
        .op(OpSpec::code("ev", "double").input("x", out("src", "item")).output_to_parent("result", "evens"))
        .op(OpSpec::code("od", "add_one").input("n", out("src", "item")).output_to_parent("answer", "odds"))
        .build()
        .unwrap();
    assert_eq!(run(&doc, json!({"items": [1, 2, 3, 4, 5]})).await, json!({"odds": [2, 4, 6], "evens": [4, 8]}));
}

#[tokio::test]
async fn generator_map_collect_matches_the_export() {
    let doc = Graph::new("main")
        .input("items")
        .output("results")
        .output("total")
        .output("count")
        .op(OpSpec::code("src", "each_item").generator().input("items", parent("items")).output("item"))
        .op(OpSpec::code("d", "double").input("x", out("src", "item")).output_to_parent("result", "results"))
        .op(OpSpec::code("acc", "accumulate")
            .input("values", out("src", "item").collect())
            .output_to_parent("total", "total")
            .output_to_parent("count", "count"))
        .build()
        .unwrap();
    assert_eq!(canonical(&doc), canonical(&case("holdout-public/iteration/generator_map_collect")));
    assert_eq!(
        run(&doc, json!({"items": [1, 2, 3, 4, 5]})).await,
        json!({"results": [2, 4, 6, 8, 10], "total": 15, "count": 5})
    );
}

#[tokio::test]
async fn nested_graph_matches_the_export() {
    let sub = Graph::new("sub")
        .input("x")
        .op(OpSpec::code("a", "double").input("x", parent("x")).output("result"))
        .op(OpSpec::code("b", "add_one").input("n", out("a", "result")).output_to_parent("answer", "y"));
    let doc = Graph::new("main")
        .input("x")
        .op(OpSpec::graph(sub).input("x", parent("x")).output_to_parent("y", "inner_y"))
        .op(OpSpec::code("c", "double").input("x", out("sub", "y")).output_to_parent("result", "result"))
        .build()
        .unwrap();
    assert_eq!(canonical(&doc), canonical(&case("holdout-public/subgraph/nested_basic")));
    assert_eq!(run(&doc, json!({"x": 5})).await, json!({"inner_y": 11, "result": 22}));
}

#[tokio::test]
async fn loop_counts_until_done() {
    let doc = Graph::new("main")
        .input_with("count", 0)
        .output("count")
        .op(OpSpec::code("inc", "increment").input("counter", parent("count")).output_to_parent("counter", "count"))
        .looping("count >= 5", Some(100))
        .build()
        .unwrap();
    assert_eq!(run(&doc, json!({})).await, json!({"count": 5}));
}

#[tokio::test]
async fn loop_fibonacci_rebuilt_matches_the_export_and_runs() {
    let doc = Graph::new("main")
        .input_with("a", 0)
        .input_with("b", 1)
        .output("a")
        .output("b")
        .op(OpSpec::code("f", "fib_step")
            .input("a", parent("a"))
            .input("b", parent("b"))
            .output_to_parent("a", "a")
            .output_to_parent("b", "b"))
        .looping("b > 50", Some(100))
        .build()
        .unwrap();
    let exported = case("holdout-public/iteration/loop_fibonacci");
    assert_eq!(doc, exported);
    assert_eq!(canonical(&doc), canonical(&exported));
    assert_eq!(run(&doc, json!({})).await, json!({"a": 34, "b": 55}));
    assert_eq!(run(&exported, json!({})).await, json!({"a": 34, "b": 55}));
}

#[tokio::test]
async fn io_ops_with_literal_inputs_make_their_nested_graph_io() {
    let sub = Graph::new("waits")
        .input("v")
        .op(OpSpec::code("s1", "sleep_echo")
            .bound(Bound::Io)
            .input_literal("ms", 10)
            .input("value", parent("v"))
            .output_to_parent("value", "first"))
        .op(OpSpec::code("s2", "sleep_echo")
            .bound(Bound::Io)
            .input_literal("ms", 10)
            .input("value", parent("v").add(1))
            .output_to_parent("value", "second"));
    let doc = Graph::new("main")
        .input("v")
        .op(OpSpec::graph(sub)
            .input("v", parent("v"))
            .output_to_parent("first", "first")
            .output_to_parent("second", "second"))
        .build()
        .unwrap();
    assert_eq!(doc.root.bound, Bound::Io);
    assert_eq!(run(&doc, json!({"v": 41})).await, json!({"first": 41, "second": 42}));
}

#[tokio::test]
async fn build_errors_list_every_problem() {
    let err = Graph::new("main")
        .op(OpSpec::code("a", "double").input("x", out("missing", "x")))
        .op(OpSpec::code("a", "double"))
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("main.a: duplicate op name \"a\""), "{text}");
    assert!(text.contains("main.a.inputs.x: the ref reads op \"missing\""), "{text}");
    // A build error converts into the facade's error type through GraphError.
    let e: operonx::Error = operonx::GraphError::from(err).into();
    assert!(e.to_string().starts_with("invalid graph (2 problems)"), "{e}");
}
