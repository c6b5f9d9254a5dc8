#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The exporters a user turns on with the usual variables ([`exporters_from_env`]), in a
//! pipeline behind real workflow runs: mock collectors on 127.0.0.1 decode the real
//! protobuf and JSON; spans go out while the run goes, and a slow collector does not slow
//! it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use operonx::{Engine, EventKind, Outputs, RunOptions, Value, json};
use operonx_trace::{TracePipeline, exporters_from_env};
use prost::Message;

mod exporter_support;
use exporter_support::http::{Mock, Reply, Request};

fn lookup(vars: Vec<(&str, String)>) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    move |k| map.get(k).cloned()
}

/// `first` (quick) → `ask` (an LLM call with usage) → `wait` (sleeps `ms`).
fn engine() -> Engine {
    let mut e = Engine::new();
    let r = e.registry_mut();
    r.register_fn("first", |_, _| Ok(Outputs::one("x", 1)));
    r.register_fn("chat", |_, ctx| {
        let usage = [
            ("model", json!("gpt-4o-mini")),
            ("provider", json!("openai")),
            ("prompt_tokens", json!(12)),
            ("completion_tokens", json!(5)),
            ("total_tokens", json!(17)),
            ("cost_usd", json!(0.0021)),
        ];
        ctx.emit(EventKind::LlmUsage, usage.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        Ok(Outputs::one("reply", "hi"))
    });
    r.register_async("wait", |i, _| async move {
        let ms = i.get("ms").and_then(Value::as_u64).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Outputs::one("done", true))
    });
    e
}

fn graph(ms: u64) -> Value {
    json!({
        "schema_version": "1.0", "type": "graph", "name": "demo", "full_name": "demo",
        "entries": ["first"],
        "initial_ready_count": {"first": 0, "ask": 1, "wait": 1},
        "compiled_adj": {"first": [["ask", false]], "ask": [["wait", false]], "wait": []},
        "ops": {
            "first": {"type": "code", "func_name": "first"},
            "ask": {"type": "code", "func_name": "chat"},
            "wait": {"type": "code", "func_name": "wait", "inputs": {"ms": {"literal": ms}}}
        }
    })
}

fn decode(r: &Request) -> ExportTraceServiceRequest {
    match r.header("content-type") {
        Some("application/x-protobuf") => ExportTraceServiceRequest::decode(r.body.as_slice()).unwrap(),
        Some("application/json") => serde_json::from_slice(&r.body).unwrap(),
        other => panic!("content type {other:?}"),
    }
}

fn spans(mock: &Mock) -> Vec<Span> {
    let reqs = mock.requests();
    reqs.iter().flat_map(|r| decode(r).resource_spans).flat_map(|rs| rs.scope_spans).flat_map(|ss| ss.spans).collect()
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

fn op_span<'a>(spans: &'a [Span], op: &str) -> &'a Span {
    spans.iter().find(|s| text(&s.attributes, "operonx.op.name") == Some(op)).unwrap_or_else(|| panic!("no {op}"))
}

async fn run_traced(pipeline: &TracePipeline, rid: &str, ms: u64) -> Duration {
    let wf = engine().load_value(graph(ms)).unwrap();
    pipeline.begin_run(rid, "demo");
    let options = RunOptions::default().trace(pipeline.sink()).request_id(rid);
    let started = Instant::now();
    wf.run_with(json!({}), options).await.unwrap();
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_from_the_variables_exports_while_the_run_goes() {
    let collector = Mock::start(|_, _| (200, "{}".into())).await;
    let env = lookup(vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.clone()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20otlp-token,x-team=ml".into()),
        ("OTEL_SERVICE_NAME", "support-bot".into()),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging,service.version=1.2".into()),
    ]);
    let configured = exporters_from_env(&env, None).unwrap();
    assert_eq!(configured.secrets, ["Bearer otlp-token", "ml"]);
    let mut builder = TracePipeline::builder().flush_interval(Duration::from_millis(50));
    for e in configured.exporters {
        builder = builder.shared_exporter(e);
    }
    let pipeline = builder.build().unwrap();

    let wf = engine().load_value(graph(1500)).unwrap();
    pipeline.begin_run("run-live", "demo");
    let options = RunOptions::default().trace(pipeline.sink()).request_id("run-live");
    let run = tokio::spawn(async move { wf.run_with(json!({}), options).await });
    // `first` and `ask` ended while `wait` still sleeps: their spans are already there.
    let deadline = Instant::now() + Duration::from_secs(1);
    while spans(&collector).len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!run.is_finished(), "the run is still going");
    let early = spans(&collector);
    let names: Vec<&str> = early.iter().filter_map(|s| text(&s.attributes, "operonx.op.name")).collect();
    assert_eq!(names, ["demo.first", "demo.ask"], "spans go out as ops end");
    run.await.unwrap().unwrap();
    pipeline.shutdown().await;

    let req = &collector.requests()[0];
    assert_eq!(req.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(req.header("authorization"), Some("Bearer otlp-token"));
    assert_eq!(req.header("x-team"), Some("ml"));
    let resource = decode(req).resource_spans[0].resource.clone().unwrap();
    assert_eq!(text(&resource.attributes, "service.name"), Some("support-bot"));
    assert_eq!(text(&resource.attributes, "deployment.environment"), Some("staging"));
    assert_eq!(text(&resource.attributes, "service.version"), Some("1.2"));

    let all = spans(&collector);
    assert_eq!(all.len(), 3);
    let ask = op_span(&all, "demo.ask");
    assert_eq!(ask.name, "chat gpt-4o-mini");
    assert_eq!(text(&ask.attributes, "gen_ai.request.model"), Some("gpt-4o-mini"));
    assert_eq!(attr(&ask.attributes, "gen_ai.usage.input_tokens"), Some(&Any::IntValue(12)));
    assert_eq!(attr(&ask.attributes, "gen_ai.usage.output_tokens"), Some(&Any::IntValue(5)));
    assert_eq!(attr(&ask.attributes, "operonx.cost_usd"), Some(&Any::DoubleValue(0.0021)));
    assert!(all.iter().all(|s| s.trace_id == ask.trace_id && s.trace_id.len() == 16 && s.span_id.len() == 8));
    assert!(all.iter().all(|s| s.parent_span_id.is_empty()), "top-level ops are root spans");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_collector_does_not_slow_the_run() {
    let slow = |_: usize, _: &Request| Reply { delay: Duration::from_millis(1500), ..Reply::json(200, "{}") };
    let collector = Mock::start_with(slow).await;
    let langfuse = Mock::start_with(|_, _| Reply {
        delay: Duration::from_millis(1500),
        ..Reply::json(207, r#"{"successes":[],"errors":[]}"#)
    })
    .await;
    let env = lookup(vec![
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", format!("{}/v1/traces", collector.url)),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".into()),
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-test".into()),
        ("LANGFUSE_SECRET_KEY", "sk-lf-test".into()),
        ("LANGFUSE_HOST", langfuse.url.clone()),
    ]);
    let configured = exporters_from_env(&env, None).unwrap();
    let mut builder = TracePipeline::builder().flush_interval(Duration::from_millis(20));
    for e in configured.exporters {
        builder = builder.shared_exporter(e);
    }
    let pipeline = builder.build().unwrap();
    // Several flushes happen during the run (every 20 ms, each waiting 1.5 s on both
    // collectors); the run itself takes its 300 ms.
    let took = run_traced(&pipeline, "run-slow", 300).await;
    assert!(took < Duration::from_millis(1000), "the run took {took:?}");
    assert!(!collector.requests().is_empty(), "export had started during the run");
    pipeline.shutdown().await;
    let all = spans(&collector);
    assert_eq!(all.len(), 3, "every span delivered in the end");
    assert_eq!(collector.requests()[0].header("content-type"), Some("application/json"));
    let items: Vec<Value> =
        langfuse.requests().iter().flat_map(|r| r.json()["batch"].as_array().unwrap().clone()).collect();
    assert!(items.iter().any(|i| i["type"] == "generation-create"), "{items:?}");
}
