#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! resources.yaml: layouts, interpolation, .env, errors, secrets.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::temp_dir;
use operonx_providers::resource::{env_with_dotenv, load_dotenv};
use operonx_providers::{ChatParams, ChatRequest, ResourceError, ResourceHub};
use serde_json::json;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

const YAML: &str = "
llm:gpt-flat:
  api_type: openai
  model: gpt-4o-mini
  api_key: ${OPENAI_API_KEY}
llm:
  local:
    api_type: vllm
    model: ${LOCAL_MODEL:qwen2.5-7b}
    base_url: http://${LOCAL_HOST:127.0.0.1:8000}/v1
  broken:
    api_type: anthropic
    model: claude
    api_key: ${ANTHROPIC_API_KEY}
    base_url: ${ANTHROPIC_BASE_URL}
embedding:
  e5: {api_type: replay, dimensions: 8}
reranking:
  overlap: {api_type: replay}
langfuse:
  public_key: pk
";

#[test]
fn flat_and_nested_keys_with_interpolation() {
    let hub =
        ResourceHub::from_yaml_str(YAML, &env(&[("OPENAI_API_KEY", "sk-1"), ("LOCAL_HOST", "10.0.0.1:9")])).unwrap();
    assert_eq!(hub.keys(), vec!["embedding:e5", "llm:broken", "llm:gpt-flat", "llm:local", "reranking:overlap"]);
    assert_eq!(hub.ignored_keys(), ["langfuse"]);
    assert_eq!(hub.get_llm("gpt-flat").unwrap().client().model(), "gpt-4o-mini");
    assert_eq!(hub.get_llm("llm:local").unwrap().client().model(), "qwen2.5-7b", "defaults apply");
    assert!(hub.get_embedding("e5").is_ok());
    assert!(hub.get_reranker("reranking:overlap").is_ok());
    let unresolved = hub.unresolved();
    assert_eq!(unresolved.len(), 1);
    assert_eq!(unresolved[0].0, "llm:broken");
}

#[test]
fn clients_are_built_once_and_shared() {
    let hub = ResourceHub::from_yaml_str(YAML, &env(&[("OPENAI_API_KEY", "k")])).unwrap();
    let a = hub.get_llm("local").unwrap();
    let b = hub.get_llm("llm:local").unwrap();
    assert!(Arc::ptr_eq(&a, &b), "one client (and one concurrency limit) per resource");
}

#[test]
fn unset_variables_are_all_named_with_key_path_and_file() {
    let dir = temp_dir("vars");
    let path = dir.join("resources.yaml");
    std::fs::write(&path, YAML).unwrap();
    let hub = ResourceHub::from_yaml_file(&path, &env(&[])).unwrap();
    let err = hub.get_llm("broken").unwrap_err();
    let ResourceError::MissingVars { key, vars, .. } = &err else { panic!("{err:?}") };
    assert_eq!(key, "llm:broken");
    assert_eq!(
        vars.iter().map(|v| v.var.as_str()).collect::<Vec<_>>(),
        vec!["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"]
    );
    assert_eq!(vars[0].path, "llm:broken.api_key");
    let msg = err.to_string();
    assert!(
        msg.contains("llm:broken") && msg.contains("resources.yaml") && msg.contains("ANTHROPIC_BASE_URL"),
        "{msg}"
    );
    // Other resources are unaffected.
    assert!(hub.get_llm("local").is_ok());
}

#[test]
fn a_missing_resource_names_the_file_and_the_available_keys() {
    let hub = ResourceHub::from_yaml_str(YAML, &env(&[])).unwrap();
    let msg = hub.get_llm("gpt-5").unwrap_err().to_string();
    assert!(msg.contains("resource 'llm:gpt-5' not found in <in-memory resources>"), "{msg}");
    assert!(msg.contains("available: embedding:e5, llm:broken, llm:gpt-flat, llm:local"), "{msg}");
    let empty = ResourceHub::empty().get_embedding("x").unwrap_err().to_string();
    assert!(empty.contains("no resources are defined"), "{empty}");
}

#[test]
fn wrong_fields_are_clear_errors_and_never_echo_secrets() {
    let yaml = "llm:\n  a:\n    api_type: openai\n    model: m\n    max_retries: ${KEY}\n  b:\n    api_type: openai\n    model: m\n    temprature: 0.5\n  c:\n    api_type: oppenai\n    model: m\n";
    let hub = ResourceHub::from_yaml_str(yaml, &env(&[("KEY", "sk-very-secret")])).unwrap();
    let a = hub.get_llm("a").unwrap_err().to_string();
    assert!(a.starts_with("resource 'llm:a' in <in-memory resources>: invalid type"), "{a}");
    assert!(!a.contains("sk-very-secret"), "{a}");
    let b = hub.get_llm("b").unwrap_err().to_string();
    assert!(b.contains("llm:b") && b.contains("unknown field `temprature`"), "{b}");
    let c = hub.get_llm("c").unwrap_err().to_string();
    assert!(c.contains("unknown api_type 'oppenai'"), "{c}");
}

#[test]
fn layout_errors_name_the_problem() {
    let dup = ResourceHub::from_yaml_str("llm:a: {api_type: replay}\nllm:\n  a: {api_type: replay}\n", &env(&[]))
        .unwrap_err();
    assert!(matches!(dup, ResourceError::Duplicate { ref key, .. } if key == "llm:a"), "{dup}");
    let bad = ResourceHub::from_yaml_str("llm: [1, 2\n", &env(&[])).unwrap_err();
    assert!(bad.to_string().contains("invalid YAML"), "{bad}");
    let dir = temp_dir("missing");
    let err = ResourceHub::from_yaml_file(dir.join("nope.yaml"), &env(&[])).unwrap_err();
    assert!(err.to_string().contains("nope.yaml"), "{err}");
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let hub = ResourceHub::from_yaml_str(YAML, &env(&[("OPENAI_API_KEY", "sk-live-abcdef")])).unwrap();
    let res = hub.get_llm("gpt-flat").unwrap();
    let shown = format!("{hub:?} {res:?}");
    assert!(!shown.contains("sk-live-abcdef"), "{shown}");
}

#[tokio::test]
async fn discover_reads_resources_and_dotenv_without_overriding_the_environment() {
    let dir = temp_dir("discover");
    std::fs::write(
        dir.join("resources.yaml"),
        "llm:\n  bot:\n    api_type: replay\n    model: ${OPX_TEST_ONLY_IN_DOTENV}\n    responses_file: replies.json\n",
    )
    .unwrap();
    std::fs::write(dir.join(".env"), "# test\nOPX_TEST_ONLY_IN_DOTENV=from-dotenv\nPATH=/not/the/real/path\n").unwrap();
    std::fs::write(dir.join("replies.json"), r#"["hello from replay"]"#).unwrap();
    let hub = ResourceHub::discover(&dir).unwrap();
    let res = hub.get_llm("bot").unwrap();
    assert_eq!(res.client().model(), "from-dotenv");
    let reply = res
        .client()
        .chat(ChatRequest { messages: vec![json!({"role": "user", "content": "hi"})], params: ChatParams::default() })
        .await
        .unwrap();
    assert_eq!(reply.content.as_deref(), Some("hello from replay"), "responses_file resolves next to resources.yaml");

    let vars = load_dotenv(&dir.join(".env")).unwrap();
    let lookup = env_with_dotenv(vars);
    assert_eq!(lookup("PATH"), std::env::var("PATH").ok(), "the environment wins over .env");
    assert_eq!(lookup("OPX_TEST_ONLY_IN_DOTENV").as_deref(), Some("from-dotenv"));

    let empty = temp_dir("discover-empty");
    let hub = ResourceHub::discover(&empty).unwrap();
    assert!(hub.keys().is_empty());
    assert!(hub.get_llm("x").unwrap_err().to_string().contains("no such file"));
}

#[test]
fn bad_dotenv_lines_are_reported_with_the_file() {
    let dir = temp_dir("dotenv");
    std::fs::write(dir.join(".env"), "OK=1\nthis is not a pair\n").unwrap();
    let err = ResourceHub::discover(&dir).unwrap_err().to_string();
    assert!(err.contains(".env") && err.contains("line 2"), "{err}");
}

#[test]
fn base_url_that_already_has_the_endpoint_is_rejected() {
    let yaml = "embedding:\n  e: {api_type: openai, model: m, base_url: 'https://api.example.com/v1/embeddings'}\n";
    let hub = ResourceHub::from_yaml_str(yaml, &env(&[])).unwrap();
    let err = hub.get_embedding("e").unwrap_err().to_string();
    assert!(err.contains("embedding:e") && err.contains("API root"), "{err}");
}

/// What the CLI redacts by value: API keys and header values however written, and every
/// value `${VAR}` brought in (8 bytes or more).
#[test]
fn secrets_are_the_keys_headers_and_substituted_values() {
    let yaml = "
llm:a: {api_type: openai, model: m, api_key: sk-literal-key-1234, headers: {x-token: header-secret-99}}
llm:b: {api_type: vllm, model: m, base_url: 'http://${HOST}/v1', api_key: '${KEY}'}
llm:c: {api_type: openai, model: m, api_key: short}
";
    let hub =
        ResourceHub::from_yaml_str(yaml, &env(&[("HOST", "10.1.2.3:8000"), ("KEY", "from-env-abcdefgh")])).unwrap();
    let secrets = hub.secrets();
    let text = "sk-literal-key-1234 header-secret-99 10.1.2.3:8000 from-env-abcdefgh short model m";
    assert_eq!(secrets.redact(text), "[REDACTED] [REDACTED] [REDACTED] [REDACTED] short model m");
    assert_eq!(secrets.len(), 4);
}

#[test]
fn the_tracing_section_is_kept_apart_interpolated_and_its_secrets_redacted() {
    let yaml = "
tracing:
  langfuse:
    public_key: ${LANGFUSE_PUBLIC_KEY}
    secret_key: ${LANGFUSE_SECRET_KEY}
  otlp:
    endpoint: http://127.0.0.1:4318
    headers: {x-api-key: literal-header-secret}
llm:
  local: {api_type: replay}
";
    let vars = [("LANGFUSE_PUBLIC_KEY", "pk-lf-public"), ("LANGFUSE_SECRET_KEY", "sk-lf-very-secret")];
    let hub = ResourceHub::from_yaml_str(yaml, &env(&vars)).unwrap();
    assert_eq!(hub.keys(), ["llm:local"], "tracing is not a resource category");
    assert!(hub.ignored_keys().is_empty());
    let section = hub.tracing().unwrap().unwrap();
    assert_eq!(section["langfuse"]["secret_key"], "sk-lf-very-secret");
    assert_eq!(section["otlp"]["headers"]["x-api-key"], "literal-header-secret");
    let secrets = hub.secrets();
    let text = secrets.redact("sk-lf-very-secret literal-header-secret").into_owned();
    assert!(!text.contains("very-secret") && !text.contains("literal-header"), "{text}");

    // An unset variable of the section is an error naming it.
    let hub = ResourceHub::from_yaml_str(yaml, &env(&[])).unwrap();
    let e = hub.tracing().unwrap_err().to_string();
    assert!(e.contains("'tracing'") && e.contains("LANGFUSE_SECRET_KEY"), "{e}");
    assert!(
        ResourceHub::from_yaml_str("llm:\n  a: {api_type: replay}\n", &env(&[])).unwrap().tracing().unwrap().is_none()
    );
}
