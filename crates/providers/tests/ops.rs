#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `llm`, `embedding` and `rerank` ops end to end: registry → compile → GraphRun.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use common::*;
use futures_util::future::BoxFuture;
use operonx_providers::{
    ChatClient, ChatRequest, ChatResponse, DeltaStream, ProviderError, ProviderOptions, ResourceHub, Usage,
};
use operonx_runtime::{EventKind, TraceEvent};
use serde_json::{Value, json};

const LLM_OUTPUTS: &[&str] = &["role", "content", "finish_reason", "model_used", "tool_calls", "usage", "extras"];

fn llm_op(extra: Value) -> Value {
    let mut op = json!({"type": "llm"});
    for (k, v) in extra.as_object().unwrap() {
        op[k] = v.clone();
    }
    op
}

/// A hub from YAML written next to the given script files.
fn hub_with_files(yaml: &str, files: &[(&str, Value)]) -> Arc<ResourceHub> {
    let dir = temp_dir("ops");
    for (name, content) in files {
        std::fs::write(dir.join(name), content.to_string()).unwrap();
    }
    std::fs::write(dir.join("resources.yaml"), yaml).unwrap();
    Arc::new(ResourceHub::from_yaml_file(dir.join("resources.yaml"), &|_| None).unwrap())
}

fn usage_events(trace: &[TraceEvent]) -> Vec<&TraceEvent> {
    trace.iter().filter(|e| e.kind == EventKind::LlmUsage).collect()
}

fn user(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn llm_op_outputs_usage_cost_and_an_llm_usage_event_before_op_end() {
    let hub = hub_with_files(
        "llm:\n  bot:\n    api_type: replay\n    model: replay-1\n    responses_file: replies.json\n    pricing: {input_per_mtok: 1.0, output_per_mtok: 4.0, cached_input_per_mtok: 0.1}\n",
        &[(
            "replies.json",
            json!({"rules": [{"match": "weather", "content": "Sunny.", "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "cached_tokens": 200}}]}),
        )],
    );
    let registry = registry(hub, ProviderOptions::default());
    let plan =
        compile(one_op_graph(llm_op(json!({"resource": "bot"})), &["messages"], LLM_OUTPUTS), &registry).unwrap();
    let (out, trace) = run(plan, user("What's the WEATHER?")).await;
    assert!(out.is_ok(), "{:?}", out.failures);
    let o = &out.outputs;
    assert_eq!(o["role"], "assistant");
    assert_eq!(o["content"], "Sunny.");
    assert_eq!(o["finish_reason"], "stop");
    assert_eq!(o["model_used"], "bot");
    assert_eq!(o["tool_calls"], json!([]));
    let cost = (800.0 * 1.0 + 200.0 * 0.1 + 500.0 * 4.0) / 1e6;
    assert_eq!(
        o["usage"],
        json!({"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500, "cached_tokens": 200,
               "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": cost})
    );
    assert_eq!(o["extras"]["provider_model"], "replay-1");

    let usage = usage_events(&trace);
    assert_eq!(usage.len(), 1);
    let p = &usage[0].payload;
    assert_eq!(p["model"], "bot");
    assert_eq!(p["resource"], "llm:bot");
    assert_eq!(p["provider_model"], "replay-1");
    assert_eq!(
        (p["prompt_tokens"].as_u64(), p["completion_tokens"].as_u64(), p["total_tokens"].as_u64()),
        (Some(1000), Some(500), Some(1500))
    );
    assert_eq!(p["cached_tokens"], 200);
    assert_eq!(p["cost_usd"].as_f64(), Some(cost));
    assert_eq!(usage[0].op_name.as_deref(), Some("main.op"));
    let end = trace.iter().find(|e| e.kind == EventKind::OpEnd && e.op_name.as_deref() == Some("main.op")).unwrap();
    assert!(usage[0].seq < end.seq, "llm_usage comes before op_end");
}

#[tokio::test]
async fn unpriced_resources_report_null_cost_and_estimated_usage() {
    let hub = hub_with_files(
        "llm:\n  bot: {api_type: replay, responses_file: r.json}\n",
        &[("r.json", json!(["one two three"]))],
    );
    let registry = registry(hub, ProviderOptions::default());
    let plan =
        compile(one_op_graph(llm_op(json!({"resource": "bot"})), &["messages"], LLM_OUTPUTS), &registry).unwrap();
    let (out, trace) = run(plan, user("a b")).await;
    assert_eq!(out.outputs["usage"]["cost_usd"], Value::Null);
    assert_eq!(out.outputs["usage"]["prompt_tokens"], 2);
    assert_eq!(out.outputs["usage"]["completion_tokens"], 3);
    assert_eq!(usage_events(&trace)[0].payload["cost_usd"], Value::Null);
}

#[tokio::test]
async fn every_op_parameter_reaches_the_provider_and_nulls_do_not() {
    let server = MockServer::sequence(vec![ok(json!({"model": "gpt-x", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\":3}"}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}))])
    .await;
    let hub =
        hub(&format!("llm:\n  gpt: {{api_type: openai, model: gpt-x, api_key: k, base_url: '{}/v1'}}\n", server.url));
    let registry = registry(hub, ProviderOptions::default());
    let tool = json!({"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}});
    let op = llm_op(json!({"resource": "gpt", "inputs": {
        "temperature": {"default": 0.0}, "max_tokens": {"literal": 50}, "tools": {"literal": [tool]},
        "tool_choice": {"literal": "required"}, "stop": {"literal": "###"}, "seed": {"literal": 7}, "top_p": {"default": null},
        "logprobs": {"default": null}, "user": {"literal": "u9"}, "custom_knob": {"literal": {"a": 1}}, "unused_null": {"default": null}
    }}));
    let plan = compile(one_op_graph(op, &["messages"], LLM_OUTPUTS), &registry).unwrap();
    let (out, _) = run(plan, user("find 3")).await;
    assert!(out.is_ok(), "{:?}", out.failures);
    assert_eq!(out.outputs["content"], "");
    assert_eq!(out.outputs["finish_reason"], "tool_calls");
    assert_eq!(
        out.outputs["tool_calls"],
        json!([{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\":3}"}}])
    );
    let body = server.requests()[0].json();
    assert_eq!(
        body,
        json!({"model": "gpt-x", "messages": [{"role": "user", "content": "find 3"}], "temperature": 0.0, "max_tokens": 50,
               "stop": ["###"], "seed": 7, "tools": [tool], "tool_choice": "required", "user": "u9", "custom_knob": {"a": 1}})
    );
}

#[tokio::test]
async fn fallback_serves_when_the_primary_fails_and_errors_name_every_resource() {
    let hub = hub_with_files(
        "llm:\n  primary: {api_type: replay, responses_file: bad.json, on_exhausted: cycle}\n  backup: {api_type: replay, responses_file: good.json, on_exhausted: cycle}\n  also-bad: {api_type: replay, responses_file: bad.json, on_exhausted: cycle}\n",
        &[
            ("bad.json", json!([{"error": {"kind": "rate_limit", "message": "quota exceeded", "status": 429}}])),
            ("good.json", json!(["from backup"])),
        ],
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let options = ProviderOptions {
        on_usage: Some(Arc::new(move |op: &str, p: &_| s.lock().unwrap().push((op.to_string(), p.clone())))),
        ..ProviderOptions::default()
    };
    let registry = registry(hub, options);
    let plan = compile(
        one_op_graph(llm_op(json!({"resource": "primary", "fallback": ["backup"]})), &["messages"], LLM_OUTPUTS),
        &registry,
    )
    .unwrap();
    let (out, trace) = run(plan, user("hi")).await;
    assert!(out.is_ok(), "{:?}", out.failures);
    assert_eq!(out.outputs["content"], "from backup");
    assert_eq!(out.outputs["model_used"], "backup");
    let usage = usage_events(&trace);
    assert_eq!(usage.len(), 1, "only the successful call reports usage");
    assert_eq!(usage[0].payload["model"], "backup");
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(seen.lock().unwrap()[0].0, "main.op");

    let plan = compile(
        one_op_graph(llm_op(json!({"resource": "primary", "fallback": ["also-bad"]})), &["messages"], LLM_OUTPUTS),
        &registry,
    )
    .unwrap();
    let (out, _) = run(plan, user("hi")).await;
    let msg = &out.failures[0].message;
    assert!(
        msg.contains("model call failed on llm:also-bad")
            && msg.contains("after llm:primary")
            && msg.contains("quota exceeded"),
        "{msg}"
    );
}

#[tokio::test]
async fn ratios_pick_resources_by_weight() {
    let hub = hub_with_files(
        "llm:\n  a: {api_type: replay, responses_file: a.json, on_exhausted: cycle}\n  b: {api_type: replay, responses_file: b.json, on_exhausted: cycle}\n",
        &[("a.json", json!(["A"])), ("b.json", json!(["B"]))],
    );
    let registry = registry(hub, ProviderOptions::default());
    let pick = |ratios: Value| {
        compile(
            one_op_graph(
                llm_op(json!({"resource": ["a", "b"], "ratios": ratios, "selection_seed": 3})),
                &["messages"],
                LLM_OUTPUTS,
            ),
            &registry,
        )
        .unwrap()
    };
    let only_b = pick(json!([0.0, 1.0]));
    let even = pick(json!([0.5, 0.5]));
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let (out, _) = run(Arc::clone(&only_b), user("x")).await;
        assert_eq!(out.outputs["model_used"], "b");
        let (out, _) = run(Arc::clone(&even), user("x")).await;
        *counts.entry(out.outputs["content"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    assert!(counts["A"] >= 8 && counts["B"] >= 8, "{counts:?}");
    let bad = compile_err(
        one_op_graph(llm_op(json!({"resource": ["a", "b"], "ratios": [1.0]})), &["messages"], LLM_OUTPUTS),
        &registry,
    );
    assert!(bad.contains("`ratios` has 1 entries but `resource` names 2"));
}

#[tokio::test]
async fn streaming_ops_accumulate_and_feed_the_token_hook() {
    let hub = hub_with_files(
        "llm:\n  bot: {api_type: replay, responses_file: r.json}\n",
        &[(
            "r.json",
            json!([{"content": "one two three", "tool_calls": [{"name": "f", "arguments": {"x": "é"}}], "usage": {"prompt_tokens": 4, "completion_tokens": 6}}]),
        )],
    );
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let t = Arc::clone(&tokens);
    let options = ProviderOptions {
        on_token: Some(Arc::new(move |op: &str, d: &str| t.lock().unwrap().push(format!("{op}:{d}")))),
        ..ProviderOptions::default()
    };
    let registry = registry(hub, options);
    let plan = compile(
        one_op_graph(llm_op(json!({"resource": "bot", "stream": true})), &["messages"], LLM_OUTPUTS),
        &registry,
    )
    .unwrap();
    let (out, trace) = run(plan, user("go")).await;
    assert!(out.is_ok(), "{:?}", out.failures);
    assert_eq!(out.outputs["content"], "one two three");
    assert_eq!(
        out.outputs["tool_calls"],
        json!([{"id": "call_0", "type": "function", "function": {"name": "f", "arguments": "{\"x\":\"é\"}"}}])
    );
    assert_eq!(out.outputs["usage"]["total_tokens"], 10);
    assert_eq!(*tokens.lock().unwrap(), vec!["main.op:one ", "main.op:two ", "main.op:three"]);
    assert_eq!(usage_events(&trace).len(), 1);
}

#[tokio::test]
async fn streaming_op_over_http_sends_stream_true() {
    let text = format!(
        "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        json!({"choices": [{"index": 0, "delta": {"content": "hé"}}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    );
    let cut = text.find('é').unwrap() + 1;
    let server = MockServer::sequence(vec![sse_split(&text, &[cut])]).await;
    let hub = hub(&format!("llm:\n  gpt: {{api_type: openai, model: m, base_url: '{}/v1'}}\n", server.url));
    let registry = registry(hub, ProviderOptions::default());
    let plan = compile(
        one_op_graph(llm_op(json!({"resource": "gpt", "stream": true})), &["messages"], LLM_OUTPUTS),
        &registry,
    )
    .unwrap();
    let (out, _) = run(plan, user("x")).await;
    assert_eq!(out.outputs["content"], "hé");
    assert_eq!(out.outputs["usage"]["total_tokens"], 2);
    assert_eq!(server.requests()[0].json()["stream"], true);
}

/// A chat client that answers from a queue and records what it was asked.
#[derive(Debug)]
struct Recording {
    replies: Mutex<VecDeque<String>>,
    seen: Arc<Mutex<Vec<ChatRequest>>>,
}

impl ChatClient for Recording {
    fn provider(&self) -> &'static str {
        "recording"
    }
    fn model(&self) -> &str {
        "rec"
    }
    fn chat(&self, request: ChatRequest) -> BoxFuture<'static, Result<ChatResponse, ProviderError>> {
        self.seen.lock().unwrap().push(request);
        let content = self.replies.lock().unwrap().pop_front().unwrap_or_default();
        Box::pin(async move {
            Ok(ChatResponse {
                content: Some(content),
                finish_reason: Some("stop".into()),
                usage: Usage { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, ..Usage::default() },
                ..ChatResponse::default()
            })
        })
    }
    fn chat_stream(&self, _request: ChatRequest) -> BoxFuture<'static, Result<DeltaStream, ProviderError>> {
        unimplemented!()
    }
}

fn recording(replies: &[&str]) -> (Arc<ResourceHub>, Arc<Mutex<Vec<ChatRequest>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hub = Arc::new(ResourceHub::empty());
    let client =
        Recording { replies: Mutex::new(replies.iter().map(|s| s.to_string()).collect()), seen: Arc::clone(&seen) };
    hub.insert_llm("rec", Arc::new(client), None);
    (hub, seen)
}

fn schema_format() -> Value {
    json!({"type": "json_schema", "json_schema": {"name": "person", "schema": {"type": "object", "required": ["name", "age"],
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}}})
}

#[tokio::test]
async fn structured_output_is_validated_and_reasked_with_the_error() {
    let (hub, seen) = recording(&["{\"name\": \"Ada\"}", "```json\n{\"name\": \"Ada\", \"age\": 36}\n```"]);
    let registry = registry(hub, ProviderOptions::default());
    let op = llm_op(json!({"resource": "rec", "inputs": {"response_format": {"literal": schema_format()}}}));
    let plan = compile(one_op_graph(op, &["messages"], LLM_OUTPUTS), &registry).unwrap();
    let (out, trace) = run(plan, user("who?")).await;
    assert!(out.is_ok(), "{:?}", out.failures);
    assert_eq!(out.outputs["extras"]["parsed"], json!({"name": "Ada", "age": 36}));
    assert_eq!(out.outputs["usage"]["total_tokens"], 30, "usage covers both calls");
    assert_eq!(usage_events(&trace).len(), 2, "one llm_usage per call");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].params.response_format, Some(schema_format()));
    let retry = &seen[1].messages;
    assert_eq!(retry.len(), 3);
    assert_eq!(retry[1], json!({"role": "assistant", "content": "{\"name\": \"Ada\"}"}));
    let ask = retry[2]["content"].as_str().unwrap();
    assert!(retry[2]["role"] == "user" && ask.contains("missing required key \"age\""), "{ask}");
}

#[tokio::test]
async fn structured_output_fails_loudly_after_the_retries() {
    let (hub, seen) = recording(&["not json", "{\"name\": 1, \"age\": 2}", "{}"]);
    let registry = registry(hub, ProviderOptions::default());
    let op = llm_op(
        json!({"resource": "rec", "structured_retries": 2, "inputs": {"output_schema": {"literal": schema_format()["json_schema"]["schema"]}}}),
    );
    let plan = compile(one_op_graph(op, &["messages"], LLM_OUTPUTS), &registry).unwrap();
    let (out, _) = run(plan, user("who?")).await;
    assert!(out.outputs.get("content").is_none(), "no plausible output on failure");
    let msg = &out.failures[0].message;
    assert!(
        msg.contains("did not match the schema after 3 attempt(s)") && msg.contains("missing required key \"name\""),
        "{msg}"
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(
        seen.lock().unwrap()[0].params.response_format.as_ref().unwrap()["type"],
        "json_schema",
        "output_schema becomes a json_schema response_format"
    );
}

#[tokio::test]
async fn binding_a_missing_resource_is_a_compile_error_naming_the_op_and_key() {
    let registry =
        registry(hub("llm:\n  real: {api_type: replay, responses_file: x.json}\n"), ProviderOptions::default());
    let err =
        compile_err(one_op_graph(llm_op(json!({"resource": "imaginary"})), &["messages"], LLM_OUTPUTS), &registry);
    assert!(
        err.contains("main.op")
            && err.contains("resource 'llm:imaginary' not found")
            && err.contains("available: llm:real"),
        "{err}"
    );
    let err =
        compile_err(one_op_graph(json!({"type": "rerank", "resource": "nope"}), &["query"], &["reranks"]), &registry);
    assert!(err.contains("reranking:nope"), "{err}");
    let err = compile_err(one_op_graph(json!({"type": "llm"}), &["messages"], LLM_OUTPUTS), &registry);
    assert!(err.contains("no `resource` given"), "{err}");
}

#[tokio::test]
async fn bad_inputs_are_op_errors() {
    let (hub, _) = recording(&["x"]);
    let registry = registry(hub, ProviderOptions::default());
    let plan =
        compile(one_op_graph(llm_op(json!({"resource": "rec"})), &["messages"], LLM_OUTPUTS), &registry).unwrap();
    let (out, _) = run(Arc::clone(&plan), json!({"messages": "hello"})).await;
    assert!(out.failures[0].message.contains("input 'messages'"), "{:?}", out.failures);
    let (out, _) = run(plan, json!({"messages": [{"content": "no role"}]})).await;
    assert!(out.failures[0].message.contains("string `role`"), "{:?}", out.failures);
}

#[tokio::test]
async fn embedding_and_rerank_ops() {
    let hub = hub("embedding:\n  h: {api_type: replay, dimensions: 16}\nreranking:\n  lex: {api_type: replay}\n");
    let registry = registry(hub, ProviderOptions::default());
    let plan =
        compile(one_op_graph(json!({"type": "embedding", "resource": "h"}), &["texts"], &["embeddings"]), &registry)
            .unwrap();
    let (out, _) = run(Arc::clone(&plan), json!({"texts": "one text"})).await;
    let e = out.outputs["embeddings"].as_array().unwrap();
    assert_eq!((e.len(), e[0].as_array().unwrap().len()), (1, 16));
    let (out, _) = run(Arc::clone(&plan), json!({"texts": ["a b", "c d", "a b"]})).await;
    let e = out.outputs["embeddings"].as_array().unwrap();
    assert_eq!(e.len(), 3);
    assert_eq!(e[0], e[2]);
    assert_ne!(e[0], e[1]);
    let (out, _) = run(plan, json!({"texts": [1]})).await;
    assert!(out.failures[0].message.contains("item 0 is not a string"));

    let plan = compile(
        one_op_graph(
            json!({"type": "rerank", "resource": "reranking:lex"}),
            &["query", "documents", "top_k", "threshold"],
            &["reranks"],
        ),
        &registry,
    )
    .unwrap();
    let docs = json!([{"content": "cats purr", "id": 1}, {"content": "dogs bark at cats", "id": 2}, {"content": "rust", "id": 3}, "cats and dogs"]);
    let (out, _) =
        run(Arc::clone(&plan), json!({"query": "dogs cats", "documents": docs, "top_k": 2, "threshold": 0.4})).await;
    assert_eq!(
        out.outputs["reranks"],
        json!([{"content": "dogs bark at cats", "id": 2, "score": 1.0}, {"content": "cats and dogs", "score": 1.0}])
    );
    let (out, _) =
        run(Arc::clone(&plan), json!({"query": "dogs cats", "documents": docs, "top_k": null, "threshold": 0.4})).await;
    assert_eq!(out.outputs["reranks"].as_array().unwrap().len(), 3, "no top_k keeps all above the threshold");
    let (out, _) = run(plan, json!({"query": "q", "documents": []})).await;
    assert_eq!(out.outputs["reranks"], json!([]));
}
