#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! OpenAI-compatible and Azure chat over a raw HTTP mock: wire format, streaming,
//! retries, timeouts, limits.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::future::join_all;
use operonx_providers::{ChatParams, ChatRequest, ErrorKind, ToolCall, Usage, collect_stream};
use serde_json::{Map, Value, json};

fn resource(url: &str, extra: &str) -> std::sync::Arc<operonx_providers::LlmResource> {
    let backoff = if extra.contains("retry_initial_backoff_s") { "" } else { "    retry_initial_backoff_s: 0.01\n" };
    let yaml = format!(
        "llm:\n  x:\n    api_type: openai\n    model: gpt-test\n    api_key: sk-secret-123\n    base_url: {url}/v1\n{backoff}{extra}"
    );
    hub(&yaml).get_llm("x").unwrap()
}

fn hello() -> ChatRequest {
    ChatRequest { messages: vec![json!({"role": "user", "content": "hi"})], params: ChatParams::default() }
}

fn completion(content: Value) -> Value {
    json!({"id": "c", "model": "gpt-test-0613", "choices": [{"index": 0, "finish_reason": "stop",
           "message": {"role": "assistant", "content": content}}],
           "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
}

#[tokio::test]
async fn chat_sends_every_parameter_tools_and_bearer_auth() {
    let server = MockServer::sequence(vec![ok(json!({"model": "gpt-test", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
        "function": {"name": "search", "arguments": "{\"q\":\"rust\"}"}}]}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15, "prompt_tokens_details": {"cached_tokens": 3}}}))])
    .await;
    let res = resource(&server.url, "");
    let tool = json!({"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}});
    let mut extras = Map::new();
    extras.insert("custom_knob".into(), json!(7));
    let req = ChatRequest {
        messages: vec![json!({"role": "system", "content": "sys"}), json!({"role": "user", "content": "find rust"})],
        params: ChatParams {
            temperature: Some(0.3),
            top_p: Some(0.9),
            max_tokens: Some(64),
            stop: vec!["END".into(), "STOP".into()],
            seed: Some(42),
            n: Some(1),
            tools: Some(vec![tool.clone()]),
            tool_choice: Some(json!("auto")),
            response_format: Some(json!({"type": "json_object"})),
            logprobs: Some(true),
            top_logprobs: Some(2),
            user: Some("u-1".into()),
            frequency_penalty: Some(0.1),
            presence_penalty: Some(0.2),
            extras,
        },
    };
    let r = res.client().chat(req).await.unwrap();
    assert_eq!(
        r.tool_calls,
        vec![ToolCall { id: "call_1".into(), name: "search".into(), arguments: "{\"q\":\"rust\"}".into() }]
    );
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        r.usage,
        Usage { prompt_tokens: 11, completion_tokens: 4, total_tokens: 15, cached_tokens: 3, ..Usage::default() }
    );

    let sent = &server.requests()[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-secret-123"));
    assert_eq!(
        sent.json(),
        json!({"model": "gpt-test", "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "find rust"}],
               "temperature": 0.3, "top_p": 0.9, "max_tokens": 64, "stop": ["END", "STOP"], "seed": 42, "n": 1,
               "tools": [tool], "tool_choice": "auto", "response_format": {"type": "json_object"}, "logprobs": true,
               "top_logprobs": 2, "user": "u-1", "frequency_penalty": 0.1, "presence_penalty": 0.2, "custom_knob": 7})
    );
}

#[tokio::test]
async fn stream_survives_a_character_split_across_writes_and_merges_tool_call_deltas() {
    let chunk =
        |delta: Value| format!("data: {}\n\n", json!({"model": "gpt-test", "choices": [{"index": 0, "delta": delta}]}));
    let text = [
        ": keep-alive\n\n".to_string(),
        chunk(json!({"role": "assistant", "content": "Xin chào "})),
        chunk(json!({"content": "thế giới 🌍"})),
        chunk(json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "search", "arguments": ""}},
                                    {"index": 1, "id": "call_b", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\""}}]})),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\":"}}, {"index": 0, "function": {"arguments": "\"phở\"}"}}]})),
        chunk(json!({"tool_calls": [{"index": 1, "function": {"arguments": ":7}"}}]})),
        format!("data: {}\n\n", json!({"model": "gpt-test", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})),
        format!("data: {}\n\n", json!({"model": "gpt-test", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15,
                                        "completion_tokens_details": {"reasoning_tokens": 2}}})),
        "data: [DONE]\n\n".to_string(),
    ]
    .concat();
    // Cut inside "à" (2 bytes), inside "ế" (3 bytes), inside "🌍" (4 bytes) and inside "ở".
    let cut_in = |needle: &str, offset: usize| text.find(needle).unwrap() + offset;
    let cuts = vec![cut_in("à", 1), cut_in("ế", 2), cut_in("🌍", 1), cut_in("🌍", 3), cut_in("ở", 1)];
    let server = MockServer::sequence(vec![sse_split(&text, &cuts)]).await;
    let res = resource(&server.url, "");
    let stream = res.client().chat_stream(hello()).await.unwrap();
    let mut deltas = Vec::new();
    let r = collect_stream(stream, |d| deltas.push(d.to_string())).await.unwrap();
    assert_eq!(r.content.as_deref(), Some("Xin chào thế giới 🌍"));
    assert_eq!(deltas, vec!["Xin chào ", "thế giới 🌍"]);
    assert_eq!(
        r.tool_calls,
        vec![
            ToolCall { id: "call_a".into(), name: "search".into(), arguments: "{\"q\":\"phở\"}".into() },
            ToolCall { id: "call_b".into(), name: "lookup".into(), arguments: "{\"id\":7}".into() },
        ]
    );
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        r.usage,
        Usage { prompt_tokens: 9, completion_tokens: 6, total_tokens: 15, reasoning_tokens: 2, ..Usage::default() }
    );
    let body = server.requests()[0].json();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn mid_stream_error_event_is_an_error_not_a_truncated_success() {
    let text = format!(
        "data: {}\n\ndata: {}\n\n",
        json!({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
        json!({"error": {"message": "model overloaded", "type": "server_error"}})
    );
    let server = MockServer::sequence(vec![sse_split(&text, &[10])]).await;
    let res = resource(&server.url, "");
    let stream = res.client().chat_stream(hello()).await.unwrap();
    let err = collect_stream(stream, |_| {}).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server);
    assert!(err.message().contains("model overloaded"), "{err}");
}

#[tokio::test]
async fn stream_cut_before_completion_is_a_protocol_error() {
    let text = format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}));
    let server = MockServer::sequence(vec![sse_split(&text, &[])]).await;
    let res = resource(&server.url, "");
    let err = collect_stream(res.client().chat_stream(hello()).await.unwrap(), |_| {}).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
}

#[tokio::test]
async fn malformed_json_is_a_protocol_error_and_not_retried() {
    let server = MockServer::sequence(vec![text_reply(200, "{\"choices\": [")]).await;
    let res = resource(&server.url, "");
    let err = res.client().chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(err.message().contains("malformed JSON"), "{err}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_succeeds() {
    let server = MockServer::sequence(vec![
        json_reply(
            429,
            &json!({"error": {"message": "slow down", "type": "rate_limit_error"}}),
            &[("retry-after", "1")],
        ),
        ok(completion(json!("done"))),
    ])
    .await;
    let res = resource(&server.url, "");
    let t0 = Instant::now();
    let r = res.client().chat(hello()).await.unwrap();
    assert_eq!(r.content.as_deref(), Some("done"));
    assert_eq!(server.requests().len(), 2);
    assert!(t0.elapsed() >= Duration::from_millis(950), "Retry-After: 1 was not honoured: {:?}", t0.elapsed());
}

#[tokio::test]
async fn retry_after_beyond_the_backoff_cap_is_returned_not_waited() {
    let server = MockServer::sequence(vec![
        json_reply(429, &json!({"error": {"message": "quota"}}), &[("retry-after", "3600")]),
        ok(completion(json!("never"))),
    ])
    .await;
    let res = resource(&server.url, "");
    let err = res.client().chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimit);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn absurd_retry_after_headers_count_as_absent_and_the_backoff_applies() {
    let slow = |headers: &'static [(&'static str, &'static str)]| {
        json_reply(429, &json!({"error": {"message": "slow down"}}), headers)
    };
    let server = MockServer::sequence(vec![
        slow(&[("retry-after", "1e300")]),
        slow(&[("retry-after-ms", "1e300")]),
        slow(&[("retry-after-ms", "-5"), ("retry-after", "NaN")]),
        slow(&[("retry-after", "18446744073709551616")]),
        ok(completion(json!("done"))),
    ])
    .await;
    let res = resource(&server.url, "    max_retries: 4\n");
    let t0 = Instant::now();
    let r = res.client().chat(hello()).await.unwrap();
    assert_eq!(r.content.as_deref(), Some("done"));
    assert_eq!(server.requests().len(), 5, "each absurd header is retried after the backoff");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_then_reported_with_status_and_message() {
    let server =
        MockServer::sequence(vec![json_reply(503, &json!({"error": {"message": "upstream busy"}}), &[])]).await;
    let res = resource(&server.url, "    max_retries: 3\n    retry_initial_backoff_s: 0.04\n");
    let t0 = Instant::now();
    let err = res.client().chat(hello()).await.unwrap_err();
    assert_eq!(server.requests().len(), 4, "one call and three retries");
    assert_eq!(err.kind(), ErrorKind::Server);
    assert_eq!(err.status(), Some(503));
    assert!(err.to_string().starts_with("[HTTP 503] openai server: upstream busy"), "{err}");
    // Backoff 40, 80, 160 ms, each jittered to at least half.
    assert!(t0.elapsed() >= Duration::from_millis(140), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn a_500_then_success_recovers() {
    let server = MockServer::sequence(vec![text_reply(500, "oops"), ok(completion(json!("fine")))]).await;
    let res = resource(&server.url, "");
    assert_eq!(res.client().chat(hello()).await.unwrap().content.as_deref(), Some("fine"));
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn auth_errors_are_final_and_never_show_the_key() {
    let server =
        MockServer::sequence(vec![json_reply(401, &json!({"error": {"message": "Incorrect API key provided"}}), &[])])
            .await;
    let res = resource(&server.url, "");
    let err = res.client().chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert_eq!(server.requests().len(), 1);
    let shown = format!("{err} {err:?} {res:?}");
    assert!(!shown.contains("sk-secret-123"), "{shown}");
}

#[tokio::test]
async fn content_filter_rejections_get_their_own_kind() {
    let server = MockServer::sequence(vec![json_reply(
        400,
        &json!({"error": {"message": "blocked", "code": "content_filter"}}),
        &[],
    )])
    .await;
    let err = resource(&server.url, "").client().chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContentFilter);
}

#[tokio::test]
async fn stalled_responses_time_out_and_are_retried() {
    let server = MockServer::sequence(vec![stall(Duration::from_secs(30))]).await;
    let res = resource(&server.url, "    timeout_s: 0.2\n    max_retries: 1\n");
    let t0 = Instant::now();
    let err = res.client().chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(server.requests().len(), 2);
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_stream_that_stops_sending_times_out() {
    let first = format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": "a"}}]}));
    let mut reply = sse_pieces(vec![first.into_bytes()], Duration::from_millis(1));
    reply.push(Step::Sleep(Duration::from_secs(30)));
    let server = MockServer::sequence(vec![reply]).await;
    let res = resource(&server.url, "    timeout_s: 0.3\n");
    let t0 = Instant::now();
    let err = collect_stream(res.client().chat_stream(hello()).await.unwrap(), |_| {}).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn concurrency_limit_caps_requests_in_flight() {
    let server = MockServer::with(|_, _| {
        let mut r = vec![Step::Sleep(Duration::from_millis(80))];
        r.extend(ok(completion(json!("x"))));
        r
    })
    .await;
    let res = resource(&server.url, "    max_concurrency: 2\n");
    let calls = (0..6).map(|_| res.client().chat(hello()));
    let results = join_all(calls).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(server.requests().len(), 6);
    assert_eq!(server.max_active(), 2);
}

#[tokio::test]
async fn without_a_limit_requests_run_together() {
    let server = MockServer::with(|_, _| {
        let mut r = vec![Step::Sleep(Duration::from_millis(80))];
        r.extend(ok(completion(json!("x"))));
        r
    })
    .await;
    let res = resource(&server.url, "");
    join_all((0..4).map(|_| res.client().chat(hello()))).await;
    assert!(server.max_active() > 2, "{}", server.max_active());
}

#[tokio::test]
async fn connection_refused_is_a_network_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let res = resource(&url, "    max_retries: 1\n");
    let err = res.client().chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Network);
}

#[tokio::test]
async fn azure_uses_the_deployment_url_api_version_and_api_key_header() {
    let server = MockServer::sequence(vec![ok(completion(json!("hi from azure")))]).await;
    let yaml = format!(
        "llm:azure-gpt:\n  api_type: azure\n  model: gpt-4o\n  deployment: prod-gpt4o\n  api_version: 2024-06-01\n  api_key: az-key\n  base_url: {}\n",
        server.url
    );
    let r = hub(&yaml).get_llm("azure-gpt").unwrap().client().chat(hello()).await.unwrap();
    assert_eq!(r.content.as_deref(), Some("hi from azure"));
    let sent = &server.requests()[0];
    assert_eq!(sent.path, "/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-06-01");
    assert_eq!(sent.header("api-key"), Some("az-key"));
    assert_eq!(sent.header("authorization"), None);
}

#[tokio::test]
async fn without_a_key_no_authorization_header_is_sent_and_extra_headers_are() {
    let server = MockServer::sequence(vec![ok(completion(json!(null)))]).await;
    let yaml = format!(
        "llm:\n  local:\n    api_type: vllm\n    model: qwen\n    base_url: {}/v1\n    headers: {{x-team: search}}\n",
        server.url
    );
    let r = hub(&yaml).get_llm("local").unwrap().client().chat(hello()).await.unwrap();
    assert_eq!(r.content, None);
    let sent = &server.requests()[0];
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.header("x-team"), Some("search"));
}
