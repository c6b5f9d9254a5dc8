//! An op call that ends cancelled (`OpError::cancelled`) is not a failure: no `$errors`
//! entry, nothing downstream runs, and the run stops for the reason it was given.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use operonx::graph::builder::{Graph, OpSpec, out, parent};
use operonx::{Engine, OpError, Outputs, json};

#[tokio::test]
async fn a_cancelled_call_is_not_reported_as_failed() {
    let mut engine = Engine::new();
    engine.registry_mut().register_fn("stop_here", |_, ctx| {
        ctx.cancel_own_context("interrupted (Ctrl-C)");
        Err(OpError::cancelled("interrupted (Ctrl-C)"))
    });
    engine.registry_mut().register_fn("after", |_, _| Ok(Outputs::one("ran", true)));
    let doc = Graph::new("main")
        .input("x")
        .op(OpSpec::code("a", "stop_here").input("x", parent("x")).output("y"))
        .op(OpSpec::code("b", "after").input("y", out("a", "y")).output_to_parent("ran", "ran"))
        .build()
        .unwrap();
    let outcome = engine.compile(&doc).unwrap().run(json!({"x": 1})).await.unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert!(outcome.outputs.is_empty());
    assert_eq!(outcome.stopped.as_deref(), Some("interrupted (Ctrl-C)"));
    let err = OpError::cancelled("why");
    assert!(err.is_cancelled() && !err.is_timeout());
    assert!(!OpError::new("x").is_cancelled());
}
