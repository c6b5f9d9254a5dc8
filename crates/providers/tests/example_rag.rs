#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `examples/rag` workflow end to end, offline, through the registry.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{compile, registry, run};
use operonx_providers::{ProviderOptions, ResourceHub};
use operonx_runtime::EventKind;
use serde_json::{Value, json};

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/rag")
}

fn read_json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(example_dir().join(name)).unwrap()).unwrap()
}

#[tokio::test]
async fn rag_example_runs_offline_end_to_end() {
    let hub = Arc::new(ResourceHub::discover(example_dir()).unwrap());
    let registry = registry(hub, ProviderOptions::default());
    let plan = compile(read_json("graph.json"), &registry).unwrap();
    let (out, trace) = run(plan, read_json("inputs.json")).await;
    assert!(out.is_ok(), "{:?}", out.failures);
    let o = &out.outputs;

    let vectors = o["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 4);
    assert!(vectors.iter().all(|v| v.as_array().unwrap().len() == 32));

    let context = o["context"].as_array().unwrap();
    assert_eq!(context.len(), 2, "top_k 2 above the threshold");
    assert!(context[0]["content"].as_str().unwrap().starts_with("How long do refunds take?"));
    assert!(context[1]["content"].as_str().unwrap().starts_with("Where is my order?"));
    assert!(context.iter().all(|c| c["score"].as_f64().unwrap() >= 0.2));

    assert_eq!(
        o["answer"].as_str().unwrap(),
        "Refunds reach your original payment method within 5 business days; I am checking order 1042 for you."
    );
    assert_eq!(o["sources"], json!([1, 2]));
    assert_eq!(
        o["tool_calls"],
        json!([{"id": "call_order_1042", "type": "function", "function": {"name": "get_order_status", "arguments": "{\"order_id\":\"1042\"}"}}])
    );
    assert_eq!(o["model_used"], "assistant");
    let cost = ((412.0 - 128.0) * 0.15 + 128.0 * 0.075 + 58.0 * 0.6) / 1e6;
    assert_eq!(o["usage"]["total_tokens"], 470);
    assert!((o["usage"]["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-15);

    let usage: Vec<_> = trace.iter().filter(|e| e.kind == EventKind::LlmUsage).collect();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].op_name.as_deref(), Some("rag.llm"));
    assert_eq!(usage[0].payload["model"], "assistant");
}
