#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The offline replay provider.

mod common;

use std::sync::Arc;

use common::temp_dir;
use operonx_providers::{ChatParams, ChatRequest, ErrorKind, ResourceHub, collect_stream};
use serde_json::{Value, json};

fn hub(script: Value, extra: &str) -> Arc<ResourceHub> {
    let dir = temp_dir("replay");
    std::fs::write(dir.join("script.json"), script.to_string()).unwrap();
    let yaml = format!("llm:\n  r:\n    api_type: replay\n    responses_file: script.json\n{extra}");
    std::fs::write(dir.join("resources.yaml"), yaml).unwrap();
    Arc::new(ResourceHub::from_yaml_file(dir.join("resources.yaml"), &|_| None).unwrap())
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest { messages: vec![json!({"role": "user", "content": text})], params: ChatParams::default() }
}

#[tokio::test]
async fn a_list_is_served_in_order_and_then_fails_loudly() {
    let client = hub(json!(["first", {"content": "second"}]), "").get_llm("r").unwrap().client().clone();
    assert_eq!(client.chat(ask("a")).await.unwrap().content.as_deref(), Some("first"));
    assert_eq!(client.chat(ask("b")).await.unwrap().content.as_deref(), Some("second"));
    let err = client.chat(ask("c")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("exhausted"), "{err}");
}

#[tokio::test]
async fn a_list_can_cycle() {
    let client = hub(json!(["x", "y"]), "    on_exhausted: cycle\n").get_llm("r").unwrap().client().clone();
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(client.chat(ask("q")).await.unwrap().content.unwrap());
    }
    assert_eq!(got, ["x", "y", "x", "y", "x"]);
}

#[tokio::test]
async fn rules_match_the_last_user_message() {
    let script = json!({"rules": [{"match": "Refund", "content": "refund policy"}, {"match": "order", "tool_calls": [{"name": "track", "arguments": {"id": 1}}]}],
                        "default": "sorry"});
    let client = hub(script, "").get_llm("r").unwrap().client().clone();
    let req = ChatRequest {
        messages: vec![
            json!({"role": "user", "content": "about my order"}),
            json!({"role": "assistant", "content": "?"}),
            json!({"role": "user", "content": [{"type": "text", "text": "a REFUND please"}]}),
        ],
        params: ChatParams::default(),
    };
    assert_eq!(client.chat(req).await.unwrap().content.as_deref(), Some("refund policy"));
    let r = client.chat(ask("where is my order")).await.unwrap();
    assert_eq!(r.content, None);
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.tool_calls[0].arguments, "{\"id\":1}");
    assert_eq!(client.chat(ask("hello")).await.unwrap().content.as_deref(), Some("sorry"));

    let strict = hub(json!({"rules": [{"match": "x", "content": "y"}]}), "").get_llm("r").unwrap().client().clone();
    assert!(strict.chat(ask("nothing")).await.unwrap_err().message().contains("no rule"));
}

#[tokio::test]
async fn canned_errors_and_streaming() {
    let client = hub(json!([{"error": {"kind": "server", "message": "boom", "status": 503}}, {"content": "a b c", "usage": {"prompt_tokens": 2, "completion_tokens": 3}}]), "")
        .get_llm("r")
        .unwrap()
        .client()
        .clone();
    let err = client.chat(ask("q")).await.unwrap_err();
    assert_eq!((err.kind(), err.status()), (ErrorKind::Server, Some(503)));
    let mut pieces = Vec::new();
    let r = collect_stream(client.chat_stream(ask("q")).await.unwrap(), |d| pieces.push(d.to_string())).await.unwrap();
    assert_eq!(pieces, ["a ", "b ", "c"]);
    assert_eq!(r.usage.total_tokens, 5);
}

#[test]
fn bad_scripts_fail_when_the_resource_is_built() {
    let e = hub(json!([{"error": {"kind": "kaboom"}}]), "").get_llm("r").unwrap_err().to_string();
    assert!(e.contains("llm:r") && e.contains("unknown error kind 'kaboom'"), "{e}");
    let e = hub(json!({"rules": [{"content": "no match key"}]}), "").get_llm("r").unwrap_err().to_string();
    assert!(e.contains("rule 0 has no `match`"), "{e}");
    let e = hub(json!([{"contnet": "typo"}]), "").get_llm("r").unwrap_err().to_string();
    assert!(e.contains("reply 0") && e.contains("unknown field `contnet`"), "{e}");
    let missing =
        ResourceHub::from_yaml_str("llm:r: {api_type: replay, responses_file: /nonexistent/nowhere.json}\n", &|_| None)
            .unwrap();
    let e = missing.get_llm("r").unwrap_err().to_string();
    assert!(e.contains("cannot read /nonexistent/nowhere.json"), "{e}");
}

#[tokio::test]
async fn yaml_scripts_work_too() {
    let dir = temp_dir("replay-yaml");
    std::fs::write(dir.join("s.yaml"), "- content: from yaml\n  usage: {prompt_tokens: 1, completion_tokens: 1}\n")
        .unwrap();
    std::fs::write(dir.join("resources.yaml"), "llm:r: {api_type: scripted, responses_file: s.yaml}\n").unwrap();
    let hub = ResourceHub::from_yaml_file(dir.join("resources.yaml"), &|_| None).unwrap();
    let r = hub.get_llm("r").unwrap().client().chat(ask("q")).await.unwrap();
    assert_eq!(r.content.as_deref(), Some("from yaml"));
}
