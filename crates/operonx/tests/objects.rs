//! Values that are not JSON, passed between ops of a run through its object table: the
//! same value arrives, nested graphs share the table, ref transforms ask the object, and
//! built-in ops refuse a stand-in with an error naming the input and the type.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use operonx::graph::builder::{Graph, OpSpec, out, parent};
use operonx::{Engine, ObjectTable, OpError, Outputs, RunOptions, Value, json};

#[derive(Debug, Clone, PartialEq)]
struct Embedding(Vec<f32>);

fn engine() -> Engine {
    let mut e = Engine::new();
    let r = e.registry_mut();
    r.register_fn("embed", |mut i, ctx| {
        let text: String = i.parse("text")?;
        let v = Embedding(text.bytes().map(f32::from).collect());
        Ok(Outputs::one("vector", ctx.put_object(v).ok_or("no object table")?))
    });
    r.register_fn("norm", |i, ctx| {
        let stand_in = i.get("vector").cloned().unwrap_or_default();
        let Embedding(v) = ctx.object_value::<Embedding>(&stand_in).ok_or_else(|| OpError::new("not an embedding"))?;
        Ok(Outputs::one("sum", v.iter().sum::<f32>() as f64))
    });
    e
}

fn embed_then(next: OpSpec) -> Graph {
    Graph::new("main")
        .input("text")
        .op(OpSpec::code("embed", "embed").input("text", parent("text")).output_to_parent("vector", "vector"))
        .op(next)
}

#[tokio::test]
async fn a_rust_value_reaches_the_next_op_unchanged() {
    let doc =
        embed_then(OpSpec::code("norm", "norm").input("vector", out("embed", "vector")).output_to_parent("sum", "sum"))
            .build()
            .unwrap();
    let wf = engine().compile(&doc).unwrap();
    let table = Arc::new(ObjectTable::new());
    let outcome = wf.run_with(json!({"text": "ab"}), RunOptions::default().objects(table.clone())).await.unwrap();
    let out = outcome.to_json();
    assert_eq!(out["sum"], json!(195.0));
    // The graph output is the stand-in, which names the type and shows the value.
    assert_eq!(out["vector"]["$object"]["repr"], json!("Embedding([97.0, 98.0])"));
    assert_eq!(table.get_value::<Embedding>(&out["vector"]), Some(Embedding(vec![97.0, 98.0])));
}

#[tokio::test]
async fn a_built_in_op_refuses_an_object_naming_the_input_and_type() {
    let doc = embed_then(
        OpSpec::new("prompt", "p")
            .input_literal("template", "{v}")
            .input("v", out("embed", "vector"))
            .output_to_parent("messages", "messages"),
    )
    .build()
    .unwrap();
    let outcome = engine().compile(&doc).unwrap().run(json!({"text": "a"})).await.unwrap();
    assert!(outcome.outputs.get("messages").is_none());
    let failure = outcome.failures.iter().find(|f| &*f.op == "main.p").expect("the prompt op fails");
    assert!(failure.message.contains("input 'v' holds a"), "{}", failure.message);
    assert!(failure.message.contains("Embedding object"), "{}", failure.message);
}

#[tokio::test]
async fn getattr_on_a_rust_object_fails_clearly() {
    let mut norm = OpSpec::code("norm", "norm").output_to_parent("sum", "sum");
    norm = norm.input("vector", out("embed", "vector").attr("dims"));
    let doc = embed_then(norm).build().unwrap();
    let outcome = engine().compile(&doc).unwrap().run(json!({"text": "a"})).await.unwrap();
    let failure = outcome.failures.iter().find(|f| &*f.op == "main.norm").expect("norm fails");
    assert!(failure.message.contains("object has no attribute 'dims'"), "{}", failure.message);
    let _: Value = outcome.to_json();
}
