//! Langfuse and OpenTelemetry turned on the way their users do it (issue 16, item 1): the
//! `operonx` binary run with the usual variables, or a `tracing:` section in
//! resources.yaml, against mock collectors on 127.0.0.1 that decode what they receive
//! (OTLP protobuf with prost into `opentelemetry-proto`'s messages, OTLP/JSON and Langfuse
//! ingestion batches with serde).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::mock_http::{Log, Received, server};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;

fn workdir(name: &str) -> PathBuf {
    common::workdir("exporters", name)
}

/// A collector on 127.0.0.1 answering every request `status` with `answer` (JSON);
/// returns its base URL and what it received.
fn collector(status: u16, answer: &'static str) -> (String, Log) {
    server(move |_, _| (status, answer.to_string()))
}

/// The offline RAG example (replayed model with prices) in `dir`.
fn rag_example(dir: &Path) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rag");
    for f in ["graph.json", "inputs.json", "replies.json", "resources.yaml"] {
        std::fs::copy(example.join(f), dir.join(f)).unwrap();
    }
}

/// `operonx ARGS` in `dir` with `vars` set (and no exporter variable of the caller's).
fn operonx(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = common::operonx_cmd(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") || k.starts_with("LANGFUSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).envs(vars.iter().copied()).output().expect("operonx starts")
}

fn run_rag(dir: &Path, vars: &[(&str, &str)]) -> Output {
    operonx(dir, &["run", "graph.json", "--inputs", "inputs.json", "--no-trace-store"], vars)
}

fn stderr(out: &Output) -> String {
    common::stderr(out)
}

fn decode(r: &Received) -> ExportTraceServiceRequest {
    match r.header("content-type") {
        Some("application/x-protobuf") => ExportTraceServiceRequest::decode(r.body.as_slice()).unwrap(),
        Some("application/json") => serde_json::from_slice(&r.body).unwrap(),
        other => panic!("content type {other:?}"),
    }
}

fn spans(received: &[Received]) -> Vec<Span> {
    received
        .iter()
        .flat_map(|r| decode(r).resource_spans)
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect()
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Any> {
    attrs.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()).and_then(|v| v.value.as_ref())
}

fn text<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attr(attrs, key) {
        Some(Any::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn check_rag_spans(received: &[Received]) {
    let all = spans(received);
    let names: Vec<&str> = all.iter().filter_map(|s| text(&s.attributes, "operonx.op.name")).collect();
    for op in ["rag.embed", "rag.rerank", "rag.prompt", "rag.llm", "rag.parse"] {
        assert!(names.contains(&op), "{op} in {names:?}");
    }
    let llm = all.iter().find(|s| text(&s.attributes, "operonx.op.name") == Some("rag.llm")).unwrap();
    assert_eq!(llm.name, "chat replay-assistant");
    assert_eq!(text(&llm.attributes, "gen_ai.request.model"), Some("replay-assistant"));
    assert_eq!(attr(&llm.attributes, "gen_ai.usage.input_tokens"), Some(&Any::IntValue(412)));
    assert_eq!(attr(&llm.attributes, "gen_ai.usage.output_tokens"), Some(&Any::IntValue(58)));
    match attr(&llm.attributes, "operonx.cost_usd") {
        Some(Any::DoubleValue(c)) => assert!(*c > 0.0, "priced: {c}"),
        other => panic!("cost {other:?}"),
    }
    let trace = &all[0].trace_id;
    assert!(all.iter().all(|s| &s.trace_id == trace), "one trace per run");
}

#[test]
fn otlp_from_the_standard_variables_receives_the_run_as_protobuf() {
    let dir = workdir("otlp-protobuf");
    rag_example(&dir);
    let (url, received) = collector(200, "{}");
    let out = run_rag(
        &dir,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &url),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20otlp-secret-token"),
            ("OTEL_SERVICE_NAME", "rag-service"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci,team=search"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("exporting traces: otlp http/protobuf to {url}/v1/traces")), "{err}");
    let received = received.lock().unwrap().clone();
    assert!(!received.is_empty(), "spans arrived");
    let first = &received[0];
    assert_eq!(first.path, "/v1/traces");
    assert_eq!(first.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(first.header("authorization"), Some("Bearer otlp-secret-token"));
    let resource = decode(first).resource_spans[0].resource.clone().unwrap();
    assert_eq!(text(&resource.attributes, "service.name"), Some("rag-service"));
    assert_eq!(text(&resource.attributes, "deployment.environment"), Some("ci"));
    assert_eq!(text(&resource.attributes, "team"), Some("search"));
    check_rag_spans(&received);
    for shown in [String::from_utf8_lossy(&out.stdout).into_owned(), err] {
        assert!(!shown.contains("otlp-secret-token"), "{shown}");
    }
}

#[test]
fn otlp_http_json_to_a_traces_endpoint_used_as_is() {
    let dir = workdir("otlp-json");
    rag_example(&dir);
    let (url, received) = collector(200, "{}");
    let endpoint = format!("{url}/custom/path");
    let vars =
        [("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str()), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")];
    let out = run_rag(&dir, &vars);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let received = received.lock().unwrap().clone();
    assert_eq!(received[0].path, "/custom/path");
    assert_eq!(received[0].header("content-type"), Some("application/json"));
    let raw: Value = serde_json::from_slice(&received[0].body).unwrap();
    let span = &raw["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert!(span["traceId"].as_str().is_some_and(|t| t.len() == 32), "{span}");
    assert!(span["startTimeUnixNano"].is_string(), "{span}");
    check_rag_spans(&received);
}

fn langfuse_items(received: &[Received]) -> Vec<Value> {
    received
        .iter()
        .filter(|r| r.path == "/api/public/ingestion")
        .flat_map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["batch"].as_array().unwrap().clone())
        .collect()
}

fn check_generation(items: &[Value]) {
    let trace = items.iter().find(|i| i["type"] == "trace-create").unwrap();
    assert_eq!(trace["body"]["name"], "rag");
    let generation = items.iter().find(|i| i["type"] == "generation-create").unwrap_or_else(|| panic!("{items:?}"));
    let body = &generation["body"];
    assert_eq!(body["name"], "rag.llm");
    assert_eq!(body["model"], "replay-assistant");
    assert_eq!(body["usage"]["input"], 412);
    assert_eq!(body["usage"]["output"], 58);
    assert!(body["costDetails"]["total"].as_f64().is_some_and(|c| c > 0.0), "{body}");
    assert_eq!(body["traceId"], trace["body"]["id"]);
}

#[test]
fn langfuse_from_the_standard_variables_receives_generations_with_usage_and_cost() {
    let dir = workdir("langfuse-env");
    rag_example(&dir);
    let (url, received) = collector(207, r#"{"successes":[],"errors":[]}"#);
    let vars = [
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-cli-test"),
        ("LANGFUSE_SECRET_KEY", "sk-lf-cli-very-secret"),
        ("LANGFUSE_BASE_URL", url.as_str()),
        ("RUST_LOG", "debug"),
    ];
    let out = run_rag(&dir, &vars);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("exporting traces: langfuse to {url}")), "{err}");
    assert!(!err.contains("sk-lf-cli-very-secret") && !String::from_utf8_lossy(&out.stdout).contains("sk-lf-cli"));
    let received = received.lock().unwrap().clone();
    let auth = received[0].header("authorization").unwrap();
    assert!(auth.starts_with("Basic "), "{auth}");
    check_generation(&langfuse_items(&received));
}

#[test]
fn a_tracing_section_in_resources_yaml_turns_both_on() {
    let dir = workdir("section");
    rag_example(&dir);
    let (lf_url, lf_received) = collector(207, r#"{"successes":[],"errors":[]}"#);
    let (otel_url, otel_received) = collector(200, "{}");
    let mut yaml = std::fs::read_to_string(dir.join("resources.yaml")).unwrap();
    yaml.push_str(&format!(
        "\ntracing:\n  langfuse:\n    public_key: pk-lf-yaml\n    secret_key: ${{MY_LANGFUSE_SECRET}}\n    host: {lf_url}\n  \
         otlp:\n    endpoint: {otel_url}\n    protocol: http/json\n    headers:\n      x-api-key: ${{MY_OTLP_KEY}}\n    \
         service_name: from-yaml\n"
    ));
    std::fs::write(dir.join("resources.yaml"), yaml).unwrap();
    // The section is the configuration: variables of the same exporters are not read.
    let vars = [
        ("MY_LANGFUSE_SECRET", "sk-lf-from-yaml-secret"),
        ("MY_OTLP_KEY", "otlp-key-from-yaml"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        ("RUST_LOG", "debug"),
    ];
    let out = run_rag(&dir, &vars);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    for secret in ["sk-lf-from-yaml-secret", "otlp-key-from-yaml"] {
        assert!(!err.contains(secret) && !String::from_utf8_lossy(&out.stdout).contains(secret), "{err}");
    }
    check_generation(&langfuse_items(&lf_received.lock().unwrap()));
    let otel = otel_received.lock().unwrap().clone();
    assert_eq!(otel[0].header("x-api-key"), Some("otlp-key-from-yaml"));
    let resource = decode(&otel[0]).resource_spans[0].resource.clone().unwrap();
    assert_eq!(text(&resource.attributes, "service.name"), Some("from-yaml"));
    check_rag_spans(&otel);
}

#[test]
fn bad_values_are_errors_naming_the_variable_without_the_secret() {
    let dir = workdir("bad");
    rag_example(&dir);
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
        ),
        (&[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")], "OTEL_EXPORTER_OTLP_ENDPOINT"),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=hdr-secret-value,oops"),
            ],
            "OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not key=value",
        ),
        (&[("LANGFUSE_PUBLIC_KEY", "pk-lf-x")], "LANGFUSE_SECRET_KEY is not set"),
        (
            &[
                ("LANGFUSE_PUBLIC_KEY", "pk-lf-x"),
                ("LANGFUSE_SECRET_KEY", "sk-lf-hidden-key"),
                ("LANGFUSE_HOST", "cloud"),
            ],
            "LANGFUSE_HOST: not a URL",
        ),
    ];
    for (vars, expected) in cases {
        let out = run_rag(&dir, vars);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{vars:?}: {err}");
        assert!(err.contains(expected), "{vars:?}: {err}");
        assert!(!err.contains("hdr-secret-value") && !err.contains("sk-lf-hidden-key"), "{err}");
    }
}

#[test]
fn an_unreachable_collector_is_said_once_and_the_run_succeeds() {
    let dir = workdir("unreachable");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Long enough for a periodic flush (every 2 s) and the flush at the end: two lost batches.
    let graph = r#"{"schema_version": "1.0", "type": "graph", "name": "main",
        "entries": ["quick"], "initial_ready_count": {"quick": 0, "long": 1},
        "compiled_adj": {"quick": [["long", false]], "long": []},
        "ops": {
          "quick": {"type": "code", "func_name": "upper", "inputs": {"text": {"literal": "done"}},
                    "outputs": {"text": {"ref": {"source": "__PARENT__", "var": "quick"}}}},
          "long": {"type": "code", "func_name": "sleep", "bound": "io",
                   "inputs": {"ms": {"literal": 2600}, "value": {"literal": 1}},
                   "outputs": {"value": {"ref": {"source": "__PARENT__", "var": "long"}}}}}}"#;
    std::fs::write(dir.join("g.json"), graph).unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    // Debug logs of the pipeline show the losses that are not reported as warnings.
    let vars = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("RUST_LOG", "warn,operonx_trace::pipeline=debug")];
    let out = operonx(&dir, &["run", "g.json", "--no-trace-store"], &vars);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["quick"], "DONE");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("WARN") && l.contains("trace export failed")).collect();
    assert_eq!(warnings.len(), 1, "said once: {err}");
    assert!(warnings[0].contains("cannot reach the collector"), "{err}");
    assert!(err.contains("trace export failed again"), "a later batch was lost too, quietly: {err}");
}

#[test]
fn the_exporters_secrets_are_redacted_from_the_exported_traces() {
    let dir = workdir("redacted");
    let graph = r#"{"schema_version": "1.0", "type": "graph", "name": "main",
        "entries": ["echo"], "initial_ready_count": {"echo": 0}, "compiled_adj": {"echo": []},
        "ops": {"echo": {"type": "code", "func_name": "identity",
                         "inputs": {"value": {"literal": "leaked sk-lf-cli-leaky-secret and hdr-leaky-secret"}},
                         "outputs": {"value": {"ref": {"source": "__PARENT__", "var": "echo"}}}}}}"#;
    std::fs::write(dir.join("g.json"), graph).unwrap();
    let (lf_url, lf_received) = collector(207, r#"{"successes":[],"errors":[]}"#);
    let (otel_url, otel_received) = collector(200, "{}");
    let vars = [
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-cli"),
        ("LANGFUSE_SECRET_KEY", "sk-lf-cli-leaky-secret"),
        ("LANGFUSE_HOST", lf_url.as_str()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otel_url.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=hdr-leaky-secret"),
    ];
    let out = operonx(&dir, &["run", "g.json", "--no-trace-store"], &vars);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("leaked [REDACTED] and [REDACTED]"), "{stdout}");
    let lf: Vec<Received> = lf_received.lock().unwrap().clone();
    let otel: Vec<Received> = otel_received.lock().unwrap().clone();
    assert!(!lf.is_empty() && !otel.is_empty());
    for r in lf.iter().chain(&otel) {
        let body = String::from_utf8_lossy(&r.body);
        assert!(body.contains("leaked <redacted> and <redacted>"), "the op's output, redacted: {body}");
        assert!(!body.contains("leaky-secret"), "{body}");
    }
}
