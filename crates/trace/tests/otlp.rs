#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The OTLP/HTTP exporter against a mock collector on 127.0.0.1 that decodes what it
//! receives with `opentelemetry-proto`'s messages: protobuf with prost, JSON with serde.

use std::collections::HashSet;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use operonx_runtime::{EventKind, TraceEvent};
use operonx_trace::export::{ExportError, Exporter};
use operonx_trace::otlp::{OtlpConfig, OtlpError, OtlpExporter, Protocol};
use prost::Message;
use serde_json::{Value, json};
use tokio::net::TcpListener;

mod exporter_support;
use exporter_support::http::{Mock, Reply, Request};
use exporter_support::run::{Run, graph_run};

/// OTLP-specific views of a recorded request.
trait TracesRequest {
    /// The request decoded by its content type: protobuf with prost, JSON with serde.
    fn otlp(&self) -> ExportTraceServiceRequest;
    /// The request in the OTLP/JSON mapping (as `opentelemetry-proto` writes it).
    fn otlp_json(&self) -> Value;
    fn spans(&self) -> Vec<Value>;
}

impl TracesRequest for Request {
    fn otlp(&self) -> ExportTraceServiceRequest {
        match self.header("content-type") {
            Some("application/x-protobuf") => ExportTraceServiceRequest::decode(self.body.as_slice()).unwrap(),
            Some("application/json") => serde_json::from_slice(&self.body).unwrap(),
            other => panic!("unexpected content type {other:?}"),
        }
    }
    fn otlp_json(&self) -> Value {
        serde_json::to_value(self.otlp()).unwrap()
    }
    fn spans(&self) -> Vec<Value> {
        let v = self.otlp_json();
        assert_eq!(v["resourceSpans"].as_array().unwrap().len(), 1);
        v["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().unwrap().clone()
    }
}

// ---------------------------------------------------------------- events

fn config(url: &str) -> OtlpConfig {
    let mut c = OtlpConfig::new(url);
    c.service_name = "operonx-test".into();
    c.headers = vec![("x-api-key".into(), "otlp-secret".into())];
    c.timeout = Duration::from_secs(5);
    c
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"].as_array().unwrap().iter().find(|a| a["key"] == key).map(|a| &a["value"])
}

fn str_attr<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    attr(span, key).and_then(|v| v["stringValue"].as_str())
}

/// The span of op (or group) `name`.
fn span<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = spans
        .iter()
        .filter(|s| str_attr(s, "operonx.op.name") == Some(name) || str_attr(s, "operonx.group.name") == Some(name))
        .collect();
    assert_eq!(found.len(), 1, "span {name}");
    found[0]
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) && s.chars().any(|c| c != '0')
}

fn nanos_of(run: &Run, kind: EventKind, span_n: u64) -> String {
    let sid = run.span(span_n);
    let e = run.events.iter().find(|e| e.kind == kind && e.payload["span_id"] == sid.as_str()).unwrap();
    e.timestamp.timestamp_nanos_opt().unwrap().to_string()
}

const OK: (u16, &str) = (200, "{}");

#[tokio::test]
async fn spans_carry_ids_parents_and_nanosecond_times() {
    let mock = Mock::start(|_, _| (OK.0, OK.1.into())).await;
    let run = graph_run("run-1");
    let exporter = OtlpExporter::new(config(&mock.url)).unwrap();
    exporter.export(&run.events).await.unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.path, "/v1/traces");
    assert_eq!(req.header("content-type"), Some("application/x-protobuf"), "http/protobuf is the default");
    assert_eq!(req.header("x-api-key"), Some("otlp-secret"));
    let body = req.otlp_json();
    let rs = &body["resourceSpans"][0];
    let service = rs["resource"]["attributes"].as_array().unwrap().iter().find(|a| a["key"] == "service.name");
    assert_eq!(service.unwrap()["value"]["stringValue"], "operonx-test");
    assert_eq!(rs["scopeSpans"][0]["scope"]["name"], "operonx");

    let spans = req.spans();
    assert_eq!(spans.len(), 10, "one span per op call and per loop iteration");
    let trace_id = spans[0]["traceId"].as_str().unwrap().to_string();
    assert!(is_hex(&trace_id, 32), "{trace_id}");
    let ids: HashSet<&str> = spans.iter().map(|s| s["spanId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 10);
    for s in &spans {
        assert_eq!(s["traceId"], trace_id.as_str(), "one trace per run");
        assert!(is_hex(s["spanId"].as_str().unwrap(), 16), "{s}");
        let (st, en) = (s["startTimeUnixNano"].as_str().unwrap(), s["endTimeUnixNano"].as_str().unwrap());
        assert!(st.parse::<u64>().unwrap() <= en.parse::<u64>().unwrap());
    }

    let id = |name: &str| span(&spans, name)["spanId"].clone();
    // A root span's parent id is empty (`""` in OTLP/JSON).
    let parent = |name: &str| span(&spans, name).get("parentSpanId").cloned().filter(|p| p != "");
    for top in ["g.fetch", "g.sub", "g.loop", "g.gen", "g.llm", "g.bad"] {
        assert_eq!(parent(top), None, "{top} is a root span");
    }
    assert_eq!(parent("g.sub.inner"), Some(id("g.sub")), "nested graph op");
    assert_eq!(parent("iteration 1"), Some(id("g.loop")), "loop iteration group");
    assert_eq!(parent("g.loop.step"), Some(id("iteration 1")), "op inside the iteration");
    assert_eq!(parent("g.each"), Some(id("g.gen")), "generator item op");

    let fetch = span(&spans, "g.fetch");
    assert_eq!(fetch["name"], "g.fetch");
    assert_eq!(fetch["kind"], 1);
    assert_eq!(fetch["startTimeUnixNano"], nanos_of(&run, EventKind::OpStart, 1));
    assert_eq!(fetch["endTimeUnixNano"], nanos_of(&run, EventKind::OpEnd, 1));
    assert_eq!(fetch["startTimeUnixNano"], "1777982400000123000");
    assert_eq!(fetch["status"]["code"], 1);
    assert_eq!(str_attr(fetch, "operonx.ctx"), Some("main"));
    assert_eq!(str_attr(fetch, "operonx.inputs"), Some(r#"{"q":"hi"}"#));
    assert_eq!(attr(fetch, "operonx.yield_count"), Some(&json!({"intValue": "1"})));
    assert_eq!(str_attr(span(&spans, "g.each"), "operonx.ctx"), Some("main/[0]"));

    let generator = span(&spans, "g.gen");
    let ev = &generator["events"][0];
    assert_eq!(ev["name"], "operonx.yield");
    assert!(ev["timeUnixNano"].as_str().unwrap().parse::<u64>().is_ok());

    // deterministic: the same run exported again gets the same ids
    let mock2 = Mock::start(|_, _| (OK.0, OK.1.into())).await;
    OtlpExporter::new(config(&mock2.url)).unwrap().export(&run.events).await.unwrap();
    let again = mock2.requests()[0].spans();
    assert_eq!(span(&again, "g.each")["spanId"], id("g.each"));
    assert_eq!(again[0]["traceId"], trace_id.as_str());
}

#[tokio::test]
async fn uuid_request_ids_are_the_trace_id() {
    let mock = Mock::start(|_, _| (OK.0, OK.1.into())).await;
    let mut run = Run::new("3F2504E0-4F89-11D3-9A0C-0305E82C3301");
    run.start("g.a", &["main"], 1, None, json!({})).end("g.a", &["main"], 1, None, json!({}));
    OtlpExporter::new(config(&mock.url)).unwrap().export(&run.events).await.unwrap();
    assert_eq!(mock.requests()[0].spans()[0]["traceId"], "3f2504e04f8911d39a0c0305e82c3301");
}

#[tokio::test]
async fn llm_spans_follow_the_genai_conventions() {
    let mock = Mock::start(|_, _| (OK.0, OK.1.into())).await;
    let run = graph_run("run-2");
    OtlpExporter::new(config(&mock.url)).unwrap().export(&run.events).await.unwrap();
    let spans = mock.requests()[0].spans();
    let llm = span(&spans, "g.llm");
    assert_eq!(llm["name"], "chat gpt-4o-mini");
    assert_eq!(llm["kind"], 3, "CLIENT");
    assert_eq!(str_attr(llm, "gen_ai.operation.name"), Some("chat"));
    assert_eq!(str_attr(llm, "gen_ai.request.model"), Some("gpt-4o-mini"));
    assert_eq!(str_attr(llm, "gen_ai.response.model"), Some("gpt-4o-mini"));
    assert_eq!(str_attr(llm, "gen_ai.provider.name"), Some("openai"));
    assert_eq!(str_attr(llm, "gen_ai.system"), Some("openai"));
    assert_eq!(attr(llm, "gen_ai.usage.input_tokens"), Some(&json!({"intValue": "12"})));
    assert_eq!(attr(llm, "gen_ai.usage.output_tokens"), Some(&json!({"intValue": "5"})));
    assert_eq!(attr(llm, "operonx.cost_usd"), Some(&json!({"doubleValue": 0.0021})));
    assert_eq!(str_attr(llm, "operonx.op.name"), Some("g.llm"));
    let ann = llm["events"].as_array().unwrap().iter().find(|e| e["name"] == "temperature").unwrap();
    let value = ann["attributes"].as_array().unwrap().iter().find(|a| a["key"] == "operonx.annotation.value");
    assert_eq!(value.unwrap()["value"], json!({"doubleValue": 0.2}));
    assert!(attr(span(&spans, "g.fetch"), "gen_ai.operation.name").is_none(), "only LLM spans");
}

#[tokio::test]
async fn a_failed_op_has_error_status() {
    let mock = Mock::start(|_, _| (OK.0, OK.1.into())).await;
    let run = graph_run("run-3");
    OtlpExporter::new(config(&mock.url)).unwrap().export(&run.events).await.unwrap();
    let spans = mock.requests()[0].spans();
    let bad = span(&spans, "g.bad");
    assert_eq!(bad["status"], json!({"code": 2, "message": "boom"}));
    assert_eq!(str_attr(bad, "operonx.status"), Some("error"));
    assert_eq!(span(&spans, "g.sub")["status"]["code"], 1);
}

#[tokio::test]
async fn spans_wait_for_their_end_and_survive_a_retryable_failure() {
    let mock = Mock::start(|n, _| if n == 1 { (503, "busy".into()) } else { (OK.0, OK.1.into()) }).await;
    let run = graph_run("run-4");
    let cut = run.events.iter().position(|e| e.kind == EventKind::OpStart && e.op_name.as_deref() == Some("g.llm"));
    let (first, second) = run.events.split_at(cut.unwrap() + 1);
    let first_without_fetch_end: Vec<TraceEvent> = first.iter().filter(|e| e.seq != 1).cloned().collect();
    let exporter = OtlpExporter::new(config(&mock.url)).unwrap();

    // g.fetch's end is held back: its span is not sent until the end arrives
    exporter.export(&first_without_fetch_end).await.unwrap();
    let sent = mock.requests()[0].spans();
    assert_eq!(sent.len(), 7, "spans that ended: {sent:?}");
    assert!(sent.iter().all(|s| str_attr(s, "operonx.op.name") != Some("g.fetch")));

    // the batch with the ends fails once; sent again, it still finds the starts of the first batch
    let mut rest = vec![run.events[1].clone()];
    rest.extend_from_slice(second);
    let err = exporter.export(&rest).await.unwrap_err();
    assert!(matches!(&err, ExportError::Retryable { message: m, .. } if m.contains("503")), "{err:?}");
    exporter.export(&rest).await.unwrap();
    let spans = mock.requests()[2].spans();
    assert_eq!(spans.len(), 3, "g.fetch, g.llm, g.bad");
    let fetch = span(&spans, "g.fetch");
    assert_eq!(fetch["startTimeUnixNano"], nanos_of(&run, EventKind::OpStart, 1), "start from the earlier batch");
    assert_eq!(str_attr(fetch, "operonx.inputs"), Some(r#"{"q":"hi"}"#));
    let llm = span(&spans, "g.llm");
    assert_eq!(llm["startTimeUnixNano"], nanos_of(&run, EventKind::OpStart, 9));
    assert!(attr(llm, "gen_ai.usage.input_tokens").is_some());
}

#[tokio::test]
async fn shutdown_sends_spans_that_never_ended() {
    let mock = Mock::start(|_, _| (OK.0, OK.1.into())).await;
    let mut run = Run::new("run-5");
    run.start("g.slow", &["main"], 1, None, json!({"x": 1}));
    let exporter = OtlpExporter::new(config(&mock.url)).unwrap();
    exporter.export(&run.events).await.unwrap();
    assert!(mock.requests().is_empty());
    exporter.shutdown().await.unwrap();
    let spans = mock.requests()[0].spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(attr(&spans[0], "operonx.incomplete"), Some(&json!({"boolValue": true})));
    assert_eq!(spans[0]["status"]["code"], 0);
    exporter.shutdown().await.unwrap();
    assert_eq!(mock.requests().len(), 1, "sent once");
}

#[tokio::test]
async fn status_codes_map_to_export_errors() {
    let run = graph_run("run-6");
    for (status, retryable) in [(500, true), (503, true), (429, true), (401, false), (403, false), (400, false)] {
        let mock = Mock::start(move |_, _| (status, "{}".into())).await;
        let err = OtlpExporter::new(config(&mock.url)).unwrap().export(&run.events).await.unwrap_err();
        assert_eq!(matches!(err, ExportError::Retryable { .. }), retryable, "{status}: {err:?}");
        assert!(err.to_string().contains(&status.to_string()));
    }
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let err = OtlpExporter::new(config(&format!("http://127.0.0.1:{port}"))).unwrap().export(&run.events).await;
    assert!(matches!(err, Err(ExportError::Retryable { .. })), "{err:?}");
    let err = err.unwrap_err();
    let source = std::error::Error::source(&err).expect("the request error");
    assert!(source.downcast_ref::<reqwest::Error>().is_some_and(reqwest::Error::is_connect), "{source:?}");
}

#[tokio::test]
async fn partial_success_is_reported() {
    let body = r#"{"partialSuccess":{"rejectedSpans":"2","errorMessage":"spans too old"}}"#;
    let mock = Mock::start(move |_, _| (200, body.into())).await;
    let run = graph_run("run-7");
    let err = OtlpExporter::new(config(&mock.url)).unwrap().export(&run.events).await.unwrap_err();
    match err {
        ExportError::Fatal { message: m, .. } => assert!(m.contains('2') && m.contains("spans too old"), "{m}"),
        other => panic!("expected Fatal, got {other:?}"),
    }
    let fine = Mock::start(|_, _| (200, r#"{"partialSuccess":{}}"#.into())).await;
    OtlpExporter::new(config(&fine.url)).unwrap().export(&run.events).await.unwrap();
}

#[tokio::test]
async fn batches_are_split_by_span_count() {
    let mock = Mock::start(|_, _| (OK.0, OK.1.into())).await;
    let mut c = config(&mock.url);
    c.batch_size = 4;
    let run = graph_run("run-8");
    OtlpExporter::new(c).unwrap().export(&run.events).await.unwrap();
    let sizes: Vec<usize> = mock.requests().iter().map(|r| r.spans().len()).collect();
    assert_eq!(sizes, vec![4, 4, 2]);
}

#[test]
fn config_from_env_and_debug_hides_headers() {
    let vars = |k: &str| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:4318/".to_string()),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some("x-api-key=s3cr%3Dt, x-team = core".to_string()),
        "OTEL_EXPORTER_OTLP_TIMEOUT" => Some("2500".to_string()),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/json".to_string()),
        "OTEL_SERVICE_NAME" => Some("my-agent".to_string()),
        "OTEL_RESOURCE_ATTRIBUTES" => Some("service.name=ignored,deployment.environment=prod%20eu".to_string()),
        _ => None,
    };
    let c = OtlpConfig::from_lookup(vars).unwrap();
    assert_eq!(c.traces_url(), "http://127.0.0.1:4318/v1/traces");
    assert_eq!(c.headers, vec![("x-api-key".to_string(), "s3cr=t".to_string()), ("x-team".into(), "core".into())]);
    assert_eq!(c.timeout, Duration::from_millis(2500));
    assert_eq!(c.protocol, Protocol::HttpJson);
    assert_eq!(c.service_name, "my-agent", "OTEL_SERVICE_NAME wins over service.name in the attributes");
    assert_eq!(c.resource_attributes, vec![("deployment.environment".to_string(), "prod eu".to_string())]);
    let printed = format!("{c:?} {:?}", OtlpExporter::new(c.clone()).unwrap());
    assert!(!printed.contains("s3cr"), "{printed}");
    assert!(printed.contains("x-api-key"));

    // The signal-specific variables take precedence over the general ones (not merged).
    let specific = |k: &str| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:1".to_string()),
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => Some("http://127.0.0.1:4318/custom/traces".to_string()),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some("x-api-key=general".to_string()),
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS" => Some("X-Team=tracing".to_string()),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/json".to_string()),
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" => Some("http/protobuf".to_string()),
        "OTEL_EXPORTER_OTLP_TIMEOUT" => Some("100".to_string()),
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" => Some("200".to_string()),
        _ => None,
    };
    let c = OtlpConfig::from_lookup(specific).unwrap();
    assert_eq!(c.traces_url(), "http://127.0.0.1:4318/custom/traces", "used as is");
    assert_eq!(c.headers, vec![("X-Team".to_string(), "tracing".to_string())]);
    assert_eq!(c.protocol, Protocol::HttpProtobuf);
    assert_eq!(c.timeout, Duration::from_millis(200));
    let defaults = OtlpConfig::from_lookup(|_| None).unwrap();
    assert_eq!(
        (defaults.traces_url().as_str(), defaults.service_name.as_str(), defaults.protocol),
        ("http://localhost:4318/v1/traces", "operonx", Protocol::HttpProtobuf)
    );
    let grpc = OtlpConfig::from_lookup(|k| (k == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "grpc".to_string()));
    assert!(matches!(grpc, Err(OtlpError::Invalid(m)) if m.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc")));
    let bad = OtlpConfig::from_lookup(|k| (k == "OTEL_EXPORTER_OTLP_HEADERS").then(|| "novalue".to_string()));
    assert!(matches!(bad, Err(OtlpError::Invalid(m)) if m.contains("OTEL_EXPORTER_OTLP_HEADERS")));
}

#[tokio::test]
async fn run_level_annotations_make_no_spans() {
    let mock = Mock::start(|_, _| (OK.0, OK.1.into())).await;
    let mut run = Run::new("run-9");
    run.run_meta("operonx.run_start", json!({"graph": "g"}));
    run.start("g.a", &["main"], 1, None, json!({})).end("g.a", &["main"], 1, None, json!({}));
    run.run_meta("operonx.run_end", json!({"status": "finished"}));
    let exporter = OtlpExporter::new(config(&mock.url)).unwrap();
    exporter.export(&run.events).await.unwrap();
    exporter.shutdown().await.unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1, "nothing left open for shutdown");
    assert_eq!(reqs[0].spans().len(), 1);
}

fn json_config(url: &str) -> OtlpConfig {
    let mut c = config(url);
    c.protocol = Protocol::HttpJson;
    c
}

#[tokio::test]
async fn http_json_carries_the_same_request_in_the_otlp_json_mapping() {
    let (pb, js) = (Mock::start(|_, _| (200, "{}".into())).await, Mock::start(|_, _| (200, "{}".into())).await);
    let run = graph_run("run-json");
    OtlpExporter::new(config(&pb.url)).unwrap().export(&run.events).await.unwrap();
    OtlpExporter::new(json_config(&js.url)).unwrap().export(&run.events).await.unwrap();
    let (pb, js) = (&pb.requests()[0], &js.requests()[0]);
    assert_eq!(js.header("content-type"), Some("application/json"));
    assert_eq!(pb.otlp(), js.otlp(), "both encodings carry the same ExportTraceServiceRequest");

    // The raw JSON body follows the OTLP/JSON mapping: lowerCamelCase names, ids in hex,
    // enums as numbers, 64-bit integers as decimal strings.
    let raw = js.json();
    let spans = raw["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().unwrap();
    let child = spans.iter().find(|s| s["name"] == "g.sub.inner").unwrap();
    assert!(is_hex(child["traceId"].as_str().unwrap(), 32), "{child}");
    assert!(is_hex(child["spanId"].as_str().unwrap(), 16), "{child}");
    assert!(is_hex(child["parentSpanId"].as_str().unwrap(), 16), "{child}");
    assert_eq!(child["kind"], 1);
    assert!(child["startTimeUnixNano"].as_str().unwrap().parse::<u64>().is_ok(), "{child}");
    assert_eq!(child["status"]["code"], 1);
    let llm = spans.iter().find(|s| s["name"] == "chat gpt-4o-mini").unwrap();
    let tokens = llm["attributes"].as_array().unwrap().iter().find(|a| a["key"] == "gen_ai.usage.input_tokens");
    assert_eq!(tokens.unwrap()["value"], json!({"intValue": "12"}));
    let service = raw["resourceSpans"][0]["resource"]["attributes"][0].clone();
    assert_eq!(service, json!({"key": "service.name", "value": {"stringValue": "operonx-test"}}));
}

#[tokio::test]
async fn protobuf_partial_success_is_reported() {
    let answer = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess { rejected_spans: 3, error_message: "too big".into() }),
    }
    .encode_to_vec();
    let mock = Mock::start_with(move |_, _| Reply {
        status: 200,
        content_type: "application/x-protobuf",
        body: answer.clone(),
        delay: Duration::ZERO,
    })
    .await;
    let err = OtlpExporter::new(config(&mock.url)).unwrap().export(&graph_run("run-ps").events).await.unwrap_err();
    assert!(
        matches!(&err, ExportError::Fatal { message: m, .. } if m.contains("rejected 3 span(s): too big")),
        "{err:?}"
    );
    let empty = ExportTraceServiceResponse::default().encode_to_vec();
    let fine = Mock::start_with(move |_, _| Reply {
        status: 200,
        content_type: "application/x-protobuf",
        body: empty.clone(),
        delay: Duration::ZERO,
    })
    .await;
    OtlpExporter::new(config(&fine.url)).unwrap().export(&graph_run("run-ok").events).await.unwrap();
}

/// Why the exporter reads a JSON partial success by hand: `rejectedSpans` is an int64,
/// a string in OTLP/JSON, and `opentelemetry-proto`'s serde mapping of the response reads
/// numbers only. (Its request mapping, which the exporter uses, writes strings.)
#[test]
fn opentelemetry_proto_reads_no_string_int64_in_a_partial_success() {
    let spec = r#"{"partialSuccess":{"rejectedSpans":"2","errorMessage":"x"}}"#;
    assert!(serde_json::from_str::<ExportTraceServiceResponse>(spec).is_err());
    let number = r#"{"partialSuccess":{"rejectedSpans":2,"errorMessage":"x"}}"#;
    assert!(serde_json::from_str::<ExportTraceServiceResponse>(number).is_ok());
}

/// Op `g.hear` (span 1) given a wav in an OpenAI `input_audio` part, answering with an image
/// data URL: the wav's bytes and the image's data URL.
fn media_run(rid: &str) -> (Run, Vec<u8>, String) {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let wav = [b"RIFF\0\0\0\0WAVEfmt ".as_slice(), &[3u8; 4000]].concat();
    let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &[5u8; 2000]].concat();
    let url = format!("data:image/png;base64,{}", b64(&png));
    let mut run = Run::new(rid);
    let m = &["main"];
    let part = json!({"type": "input_audio", "input_audio": {"data": b64(&wav), "format": "wav"}});
    run.start("g.hear", m, 1, None, json!({"messages": [{"role": "user", "content": [part]}]}));
    run.end("g.hear", m, 1, None, json!({"image": url}));
    (run, wav, url)
}

#[tokio::test]
async fn media_references_travel_as_span_events_and_the_bytes_never_do() {
    use operonx_trace::media::{LocalMediaStore, MediaOffload};
    for per_batch in [1000, 1] {
        let mock = Mock::start(|_, _| (OK.0, OK.1.into())).await;
        let dir = tempfile::tempdir().unwrap();
        let (run, wav, url) = media_run("run-media");
        let pipeline = operonx_trace::TracePipeline::builder()
            .media(MediaOffload::new(std::sync::Arc::new(LocalMediaStore::new(dir.path().join("media")))))
            .max_batch_events(per_batch)
            .exporter(OtlpExporter::new(config(&mock.url)).unwrap())
            .build()
            .unwrap();
        for e in &run.events {
            operonx_runtime::TraceSink::record(&pipeline, e.clone());
        }
        pipeline.shutdown().await;
        let reqs = mock.requests();
        let spans: Vec<Value> = reqs.iter().flat_map(TracesRequest::spans).collect();
        assert_eq!(spans.len(), 1, "one span, whatever the batches ({per_batch} per batch)");
        let hear = &spans[0];
        let events: Vec<&Value> =
            hear["events"].as_array().unwrap().iter().filter(|e| e["name"] == "operonx.media_ref").collect();
        assert_eq!(events.len(), 2, "{hear}");
        let ev_attr = |e: &Value, k: &str| {
            e["attributes"].as_array().unwrap().iter().find(|a| a["key"] == k).map(|a| a["value"].clone())
        };
        let audio =
            events.iter().find(|e| ev_attr(e, "operonx.media.mime") == Some(json!({"stringValue": "audio/wav"})));
        let audio = audio.expect("the audio's reference");
        use sha2::Digest as _;
        let sha: String = sha2::Sha256::digest(&wav).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(ev_attr(audio, "operonx.media.handle"), Some(json!({"stringValue": sha})));
        assert_eq!(ev_attr(audio, "operonx.media.size_bytes"), Some(json!({"intValue": wav.len().to_string()})));
        assert_eq!(
            ev_attr(audio, "operonx.media.field_path"),
            Some(json!({"stringValue": "inputs.messages[0].content[0].input_audio.data"}))
        );
        let uri = ev_attr(audio, "operonx.media.uri").unwrap()["stringValue"].as_str().unwrap().to_string();
        assert!(uri.starts_with("file:///") && uri.ends_with(&format!("{sha}.wav")), "{uri}");
        assert!(ev_attr(audio, "operonx.media.span_id").is_none());
        let inputs = str_attr(hear, "operonx.inputs").unwrap();
        assert!(inputs.contains(&format!(r#""data":{{"$media":"{sha}","mime":"audio/wav""#)), "{inputs}");
        for r in &reqs {
            let text = serde_json::to_string(&r.otlp_json()).unwrap();
            assert!(!text.contains(&url[30..230]), "no base64 of the image");
        }
    }
}
