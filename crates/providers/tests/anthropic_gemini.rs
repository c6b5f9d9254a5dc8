#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Anthropic Messages and Gemini generateContent over a raw HTTP mock.

mod common;

use common::*;
use operonx_providers::{ChatParams, ChatRequest, ErrorKind, ToolCall, Usage, collect_stream};
use serde_json::{Value, json};

fn anthropic(url: &str) -> std::sync::Arc<operonx_providers::LlmResource> {
    let yaml = format!(
        "llm:\n  claude:\n    api_type: anthropic\n    model: claude-test\n    api_key: ant-key\n    base_url: {url}/v1\n    retry_initial_backoff_s: 0.01\n"
    );
    hub(&yaml).get_llm("claude").unwrap()
}

fn gemini(url: &str) -> std::sync::Arc<operonx_providers::LlmResource> {
    let yaml = format!(
        "llm:\n  gem:\n    api_type: gemini\n    model: gemini-test\n    api_key: g-key\n    base_url: {url}/v1beta\n"
    );
    hub(&yaml).get_llm("gem").unwrap()
}

fn tool_request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            json!({"role": "system", "content": "You are terse."}),
            json!({"role": "user", "content": "Weather in Paris?"}),
        ],
        params: ChatParams {
            max_tokens: Some(100),
            temperature: Some(0.0),
            stop: vec!["##".into()],
            tools: Some(vec![json!({"type": "function", "function": {"name": "weather", "description": "Get weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})]),
            tool_choice: Some(json!("auto")),
            ..ChatParams::default()
        },
    }
}

fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

#[tokio::test]
async fn anthropic_messages_wire_format_with_tool_use_and_cache_usage() {
    let server = MockServer::sequence(vec![ok(json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test-2025",
        "content": [{"type": "text", "text": "Checking."}, {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 20, "output_tokens": 9, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 30}}))])
    .await;
    let r = anthropic(&server.url).client().chat(tool_request()).await.unwrap();
    assert_eq!(r.content.as_deref(), Some("Checking."));
    assert_eq!(
        r.tool_calls,
        vec![ToolCall { id: "toolu_1".into(), name: "weather".into(), arguments: "{\"city\":\"Paris\"}".into() }]
    );
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        r.usage,
        Usage {
            prompt_tokens: 150,
            completion_tokens: 9,
            total_tokens: 159,
            cached_tokens: 100,
            cache_write_tokens: 30,
            reasoning_tokens: 0
        }
    );
    let sent = &server.requests()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("ant-key"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        sent.json(),
        json!({"model": "claude-test", "max_tokens": 100, "system": "You are terse.",
               "messages": [{"role": "user", "content": "Weather in Paris?"}], "temperature": 0.0, "stop_sequences": ["##"],
               "tools": [{"name": "weather", "description": "Get weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
               "tool_choice": {"type": "auto"}})
    );
}

#[tokio::test]
async fn anthropic_stream_events_build_text_tool_calls_and_usage() {
    let text = [
        event("message_start", json!({"type": "message_start", "message": {"id": "m", "model": "claude-test-2025", "content": [],
            "usage": {"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 5}}})),
        event("ping", json!({"type": "ping"})),
        event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
        event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Ça va, "}})),
        event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "garçon"}})),
        event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        event("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {}}})),
        event("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}})),
        event("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}})),
        event("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}})),
        event("message_stop", json!({"type": "message_stop"})),
    ]
    .concat();
    let cuts = vec![text.find("Ç").unwrap() + 1, text.find("ç").unwrap() + 1];
    let server = MockServer::sequence(vec![sse_split(&text, &cuts)]).await;
    let stream = anthropic(&server.url).client().chat_stream(tool_request()).await.unwrap();
    let r = collect_stream(stream, |_| {}).await.unwrap();
    assert_eq!(r.content.as_deref(), Some("Ça va, garçon"));
    assert_eq!(
        r.tool_calls,
        vec![ToolCall { id: "toolu_9".into(), name: "weather".into(), arguments: "{\"city\": \"Paris\"}".into() }]
    );
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.model.as_deref(), Some("claude-test-2025"));
    assert_eq!(
        r.usage,
        Usage { prompt_tokens: 15, completion_tokens: 12, total_tokens: 27, cached_tokens: 5, ..Usage::default() }
    );
    assert_eq!(server.requests()[0].json()["stream"], true);
}

#[tokio::test]
async fn anthropic_error_event_after_200_is_an_error() {
    let text = [
        event("message_start", json!({"type": "message_start", "message": {"usage": {"input_tokens": 3}}})),
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "partial"}}),
        ),
        event("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
    ]
    .concat();
    let server = MockServer::sequence(vec![sse_split(&text, &[])]).await;
    let stream = anthropic(&server.url).client().chat_stream(tool_request()).await.unwrap();
    let err = collect_stream(stream, |_| {}).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server);
    assert!(err.message().contains("Overloaded"), "{err}");
}

#[tokio::test]
async fn anthropic_529_overloaded_is_retried() {
    let server = MockServer::sequence(vec![
        json_reply(529, &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}), &[]),
        ok(json!({"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}})),
    ])
    .await;
    let r = anthropic(&server.url).client().chat(tool_request()).await.unwrap();
    assert_eq!(r.content.as_deref(), Some("ok"));
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn gemini_generate_content_wire_format() {
    let server = MockServer::sequence(vec![ok(json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 5, "totalTokenCount": 17}, "modelVersion": "gemini-test-001"}))])
    .await;
    let r = gemini(&server.url).client().chat(tool_request()).await.unwrap();
    assert_eq!(
        r.tool_calls,
        vec![ToolCall { id: "call_0".into(), name: "weather".into(), arguments: "{\"city\":\"Paris\"}".into() }]
    );
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.usage.total_tokens, 17);
    let sent = &server.requests()[0];
    assert_eq!(sent.path, "/v1beta/models/gemini-test:generateContent");
    assert_eq!(sent.header("x-goog-api-key"), Some("g-key"));
    let body = sent.json();
    assert_eq!(body["systemInstruction"], json!({"parts": [{"text": "You are terse."}]}));
    assert_eq!(body["contents"], json!([{"role": "user", "parts": [{"text": "Weather in Paris?"}]}]));
    assert_eq!(body["generationConfig"], json!({"temperature": 0.0, "maxOutputTokens": 100, "stopSequences": ["##"]}));
    assert_eq!(body["toolConfig"], json!({"functionCallingConfig": {"mode": "AUTO"}}));
    assert_eq!(body["tools"][0]["functionDeclarations"][0]["name"], "weather");
}

#[tokio::test]
async fn gemini_sse_stream() {
    let chunk = |v: Value| format!("data: {v}\r\n\r\n");
    let text = [
        chunk(json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Trời "}]}}], "modelVersion": "gemini-test-001"})),
        chunk(json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "đẹp"}]}}]})),
        chunk(json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "!"}]}, "finishReason": "STOP"}],
                     "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 3, "totalTokenCount": 7, "cachedContentTokenCount": 2}})),
    ]
    .concat();
    let cuts = vec![text.find("ờ").unwrap() + 2, text.find("đ").unwrap() + 1];
    let server = MockServer::sequence(vec![sse_split(&text, &cuts)]).await;
    let stream = gemini(&server.url).client().chat_stream(tool_request()).await.unwrap();
    let r = collect_stream(stream, |_| {}).await.unwrap();
    assert_eq!(r.content.as_deref(), Some("Trời đẹp!"));
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    assert_eq!(
        r.usage,
        Usage { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7, cached_tokens: 2, ..Usage::default() }
    );
    assert_eq!(server.requests()[0].path, "/v1beta/models/gemini-test:streamGenerateContent?alt=sse");
}

#[tokio::test]
async fn gemini_error_status_keeps_the_message() {
    let server = MockServer::sequence(vec![json_reply(
        400,
        &json!({"error": {"code": 400, "message": "API key not valid", "status": "INVALID_ARGUMENT"}}),
        &[],
    )])
    .await;
    let err = gemini(&server.url).client().chat(tool_request()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert_eq!(err.status(), Some(400));
    assert!(err.message().contains("API key not valid"), "{err}");
}
