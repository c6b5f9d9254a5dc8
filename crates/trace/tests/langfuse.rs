#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Langfuse exporter against a mock ingestion server on 127.0.0.1.

use std::collections::HashSet;
use std::time::Duration;

use operonx_runtime::EventKind;
use operonx_trace::export::{ExportError, Exporter};
use operonx_trace::langfuse::{LangfuseConfig, LangfuseError, LangfuseExporter};
use serde_json::{Value, json};
use tokio::net::TcpListener;

mod exporter_support;
use exporter_support::http::{Mock, Request};
use exporter_support::run::{Run, graph_run};

/// Langfuse-specific views of a recorded request.
trait IngestionRequest {
    fn batch(&self) -> Vec<Value>;
}

impl IngestionRequest for Request {
    fn batch(&self) -> Vec<Value> {
        self.json()["batch"].as_array().unwrap().clone()
    }
}

/// 207 with every item of the request a success.
fn all_ok(req: &Request) -> String {
    let ids: Vec<Value> = req.batch().iter().map(|i| json!({"id": i["id"], "status": 201})).collect();
    json!({"successes": ids, "errors": []}).to_string()
}

// ---------------------------------------------------------------- events

fn config(url: &str) -> LangfuseConfig {
    let mut c = LangfuseConfig::new(url, "pk-lf-test", "sk-lf-secret");
    c.retry_backoff = Duration::from_millis(5);
    c.timeout = Duration::from_secs(5);
    c
}

fn items_of(reqs: &[Request]) -> Vec<Value> {
    reqs.iter().flat_map(Request::batch).collect()
}

/// The observation items (create or update) of body id `id`.
fn obs<'a>(items: &'a [Value], id: &str) -> Vec<&'a Value> {
    items.iter().filter(|i| i["type"] != "trace-create" && i["body"]["id"] == id).collect()
}

fn one<'a>(items: &'a [Value], id: &str) -> &'a Value {
    let found = obs(items, id);
    assert_eq!(found.len(), 1, "observation {id}: {found:?}");
    found[0]
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn a_run_becomes_one_trace_with_linked_observations() {
    let mock = Mock::start(|_, r| (207, all_ok(r))).await;
    let run = graph_run("run-1");
    let exporter = LangfuseExporter::new(config(&mock.url)).unwrap();
    exporter.export(&run.events).await.unwrap();

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.path, "/api/public/ingestion");
    assert_eq!(req.header("authorization"), Some("Basic cGstbGYtdGVzdDpzay1sZi1zZWNyZXQ="));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.json()["metadata"]["batch_size"], json!(req.batch().len()));
    let items = req.batch();

    // every item is an envelope with its own id
    let ids: HashSet<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), items.len(), "envelope ids are unique");
    for i in &items {
        assert!(i["type"].is_string() && i["timestamp"].is_string() && i["body"].is_object(), "{i}");
    }

    let traces: Vec<&Value> = items.iter().filter(|i| i["type"] == "trace-create").collect();
    assert_eq!(traces.len(), 1);
    let t = &traces[0]["body"];
    assert_eq!(t["id"], "run-1");
    assert_eq!(t["name"], "g");
    assert_eq!(t["timestamp"], "2026-05-05T12:00:00.000123Z");
    assert_eq!(t["input"], json!({"q": "hi"}));
    assert_eq!(t["output"], json!({"answer": "hi"}), "last successful top-level op");

    // one observation per op call and per group, all in this trace
    assert_eq!(items.len(), 1 + 10);
    for n in 1..=10 {
        let o = one(&items, &run.span(n));
        assert_eq!(o["body"]["traceId"], "run-1");
        assert!(o["type"].as_str().unwrap().ends_with("-create"), "{o}");
    }
    let parent = |n: u64| one(&items, &run.span(n))["body"].get("parentObservationId").cloned();
    for top in [1, 2, 4, 7, 9, 10] {
        assert_eq!(parent(top), None, "s{top} is top level");
    }
    assert_eq!(parent(3), Some(json!(run.span(2))), "op of a nested graph → the graph op");
    assert_eq!(parent(5), Some(json!(run.span(4))), "loop iteration group → the loop op");
    assert_eq!(parent(6), Some(json!(run.span(5))), "op in a loop iteration → the group");
    assert_eq!(parent(8), Some(json!(run.span(7))), "generator item op → the generator");

    let fetch = one(&items, &run.span(1));
    assert_eq!(fetch["type"], "span-create");
    let b = &fetch["body"];
    assert_eq!(b["name"], "g.fetch");
    assert_eq!(b["startTime"], "2026-05-05T12:00:00.000123Z");
    assert_eq!(b["endTime"], "2026-05-05T12:00:00.001123Z");
    assert_eq!(b["input"], json!({"q": "hi"}));
    assert_eq!(b["output"], json!({"text": "x"}));
    assert!(b.get("level").is_none());

    let group = &one(&items, &run.span(5))["body"];
    assert_eq!(group["name"], "iteration 1");
    assert!(group["startTime"].is_string() && group["endTime"].is_string());

    let generator = &one(&items, &run.span(7))["body"];
    assert_eq!(generator["metadata"]["last_yielded"], json!({"item": "a"}));
}

#[tokio::test]
async fn llm_usage_makes_a_generation_and_failures_are_errors() {
    let mock = Mock::start(|_, r| (207, all_ok(r))).await;
    let run = graph_run("run-2");
    LangfuseExporter::new(config(&mock.url)).unwrap().export(&run.events).await.unwrap();
    let items = items_of(&mock.requests());

    let g = one(&items, &run.span(9));
    assert_eq!(g["type"], "generation-create");
    let b = &g["body"];
    assert_eq!(b["name"], "g.llm");
    assert_eq!(b["model"], "gpt-4o-mini");
    assert_eq!(b["usage"]["input"], 12);
    assert_eq!(b["usage"]["output"], 5);
    assert_eq!(b["usage"]["total"], 17);
    assert_eq!(b["usageDetails"], json!({"input": 12, "output": 5, "total": 17}));
    assert_eq!(b["costDetails"], json!({"total": 0.0021}));
    assert_eq!(b["input"], json!({"prompt": "say hi"}));
    assert_eq!(b["output"], json!({"answer": "hi"}));
    assert_eq!(b["metadata"]["temperature"], json!(0.2), "annotation lands in metadata");
    assert_eq!(items.iter().filter(|i| i["type"] == "generation-create").count(), 1, "only the LLM op");

    let bad = &one(&items, &run.span(10))["body"];
    assert_eq!(bad["level"], "ERROR");
    assert_eq!(bad["statusMessage"], "boom");
    assert!(bad.get("output").is_none());
}

#[tokio::test]
async fn large_runs_are_split_into_batches() {
    let mock = Mock::start(|_, r| (207, all_ok(r))).await;
    let run = graph_run("run-3");
    let mut c = config(&mock.url);
    c.batch_size = 3;
    LangfuseExporter::new(c).unwrap().export(&run.events).await.unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 4, "11 items in requests of at most 3");
    for r in &reqs {
        assert!(r.batch().len() <= 3);
        assert_eq!(r.json()["metadata"]["batch_size"], json!(r.batch().len()));
    }
    let items = items_of(&reqs);
    let ids: HashSet<String> = items.iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    assert_eq!((items.len(), ids.len()), (11, 11), "every item sent once");

    // a byte cap splits too: one item per request when each is over the cap
    let mock = Mock::start(|_, r| (207, all_ok(r))).await;
    let mut c = config(&mock.url);
    c.max_batch_bytes = 10;
    LangfuseExporter::new(c).unwrap().export(&run.events).await.unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 11);
    assert!(reqs.iter().all(|r| r.batch().len() == 1));
}

#[tokio::test]
async fn only_the_failed_item_of_a_207_is_retried() {
    let mock = Mock::start(|n, r| {
        if n > 0 {
            return (207, all_ok(r));
        }
        let batch = r.batch();
        let failed = batch.iter().find(|i| i["type"] == "generation-create").unwrap()["id"].clone();
        let ok: Vec<Value> =
            batch.iter().filter(|i| i["id"] != failed).map(|i| json!({"id": i["id"], "status": 201})).collect();
        let errors = json!([{"id": failed, "status": 500, "message": "storage hiccup"}]);
        (207, json!({"successes": ok, "errors": errors}).to_string())
    })
    .await;
    let run = graph_run("run-4");
    LangfuseExporter::new(config(&mock.url)).unwrap().export(&run.events).await.unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    let first = reqs[0].batch();
    let failed = first.iter().find(|i| i["type"] == "generation-create").unwrap();
    let retried = reqs[1].batch();
    assert_eq!(retried.len(), 1, "only the failed item is sent again");
    assert_eq!(retried[0], *failed, "the same envelope, same id");
}

#[tokio::test]
async fn items_rejected_for_good_are_reported_not_retried() {
    let mock = Mock::start(|_, r| {
        let batch = r.batch();
        let bad = batch.iter().find(|i| i["type"] == "trace-create").unwrap()["id"].clone();
        let errors = json!([{"id": bad, "status": 400, "message": "invalid body"}]);
        (207, json!({"successes": [], "errors": errors}).to_string())
    })
    .await;
    let run = graph_run("run-5");
    let err = LangfuseExporter::new(config(&mock.url)).unwrap().export(&run.events).await.unwrap_err();
    assert_eq!(mock.requests().len(), 1);
    match err {
        ExportError::Fatal { message: m, .. } => {
            assert!(m.contains("invalid body") && m.contains("trace-create"), "{m}")
        }
        other => panic!("expected Fatal, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_credentials_are_fatal_and_not_retried() {
    for status in [401, 403] {
        let mock = Mock::start(move |_, _| (status, r#"{"message":"Invalid credentials"}"#.into())).await;
        let run = graph_run("run-6");
        let err = LangfuseExporter::new(config(&mock.url)).unwrap().export(&run.events).await.unwrap_err();
        assert!(matches!(&err, ExportError::Fatal { message: m, .. } if m.contains(&status.to_string())), "{err:?}");
        assert_eq!(mock.requests().len(), 1);
    }
}

#[tokio::test]
async fn server_errors_and_network_failures_are_retryable() {
    let mock = Mock::start(|_, _| (503, "unavailable".into())).await;
    let mut c = config(&mock.url);
    c.max_retries = 2;
    let run = graph_run("run-7");
    let err = LangfuseExporter::new(c).unwrap().export(&run.events).await.unwrap_err();
    assert!(matches!(&err, ExportError::Retryable { message: m, .. } if m.contains("503")), "{err:?}");
    assert_eq!(mock.requests().len(), 3, "first attempt and two retries");

    let mock = Mock::start(|_, _| (429, "slow down".into())).await;
    let mut c = config(&mock.url);
    c.max_retries = 0;
    let err = LangfuseExporter::new(c).unwrap().export(&run.events).await.unwrap_err();
    assert!(matches!(err, ExportError::Retryable { .. }));

    // nothing listens on this port any more
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let mut c = config(&format!("http://127.0.0.1:{port}"));
    c.max_retries = 0;
    let err = LangfuseExporter::new(c).unwrap().export(&run.events).await.unwrap_err();
    assert!(matches!(err, ExportError::Retryable { .. }), "{err:?}");
}

#[tokio::test]
async fn a_run_split_over_two_flushes_upserts_the_same_observations() {
    let mock = Mock::start(|_, r| (207, all_ok(r))).await;
    let run = graph_run("run-8");
    // cut right after g.llm's op_start: the LLM op, opened as a span, gets its usage later
    let cut = run.events.iter().position(|e| e.kind == EventKind::OpStart && e.op_name.as_deref() == Some("g.llm"));
    let (first, second) = run.events.split_at(cut.unwrap() + 1);
    let exporter = LangfuseExporter::new(config(&mock.url)).unwrap();
    exporter.export(first).await.unwrap();
    exporter.export(second).await.unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    let (a, b) = (reqs[0].batch(), reqs[1].batch());

    let trace = |items: &[Value]| items.iter().find(|i| i["type"] == "trace-create").unwrap()["body"].clone();
    let (ta, tb) = (trace(&a), trace(&b));
    assert_eq!((&ta["id"], &ta["name"], &ta["timestamp"]), (&tb["id"], &tb["name"], &tb["timestamp"]));
    assert!(tb.get("input").is_none(), "the trace input is sent once");

    let llm = run.span(9);
    assert_eq!(one(&a, &llm)["type"], "span-create");
    let upd = one(&b, &llm);
    assert_eq!(upd["type"], "span-update", "same type as created");
    assert_eq!(upd["body"]["output"], json!({"answer": "hi"}));
    assert!(upd["body"]["endTime"].is_string());
    let child: Vec<&Value> = b.iter().filter(|i| i["body"]["parentObservationId"] == llm.as_str()).collect();
    assert_eq!(child.len(), 1, "the usage becomes a child generation");
    assert_eq!(child[0]["type"], "generation-create");
    assert_eq!(child[0]["body"]["model"], "gpt-4o-mini");
    assert_eq!(child[0]["body"]["usageDetails"]["total"], 17);
    assert_eq!(child[0]["body"]["costDetails"]["total"], 0.0021);
    let all_ids: Vec<&Value> = a.iter().chain(&b).map(|i| &i["id"]).collect();
    assert_eq!(all_ids.iter().collect::<HashSet<_>>().len(), all_ids.len(), "envelope ids unique across flushes");
}

#[tokio::test]
async fn updates_keep_the_type_the_observation_was_created_with() {
    let mock = Mock::start(|n, r| if n == 1 { (503, "busy".into()) } else { (207, all_ok(r)) }).await;
    let run = graph_run("run-9");
    // cut right after g.llm's llm_usage: created as a generation, ended in the next flush
    let cut = run.events.iter().position(|e| e.kind == EventKind::LlmUsage);
    let (first, second) = run.events.split_at(cut.unwrap() + 1);
    let mut c = config(&mock.url);
    c.max_retries = 0;
    let exporter = LangfuseExporter::new(c).unwrap();
    exporter.export(first).await.unwrap();
    assert!(matches!(exporter.export(second).await, Err(ExportError::Retryable { .. })));
    exporter.export(second).await.unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    let llm = run.span(9);
    assert_eq!(one(&reqs[0].batch(), &llm)["type"], "generation-create");
    for r in &reqs[1..] {
        let batch = r.batch();
        let upd = one(&batch, &llm);
        assert_eq!(upd["type"], "generation-update", "an update never changes the type, even when sent again");
        assert_eq!(upd["body"]["output"], json!({"answer": "hi"}));
    }
}

#[test]
fn config_from_env_and_debug_hides_the_secret() {
    let vars = |k: &str| match k {
        "LANGFUSE_HOST" => Some("http://127.0.0.1:3000/".to_string()),
        "LANGFUSE_PUBLIC_KEY" => Some("pk-lf-1".to_string()),
        "LANGFUSE_SECRET_KEY" => Some("sk-lf-very-secret".to_string()),
        _ => None,
    };
    let c = LangfuseConfig::from_lookup(vars).unwrap();
    assert_eq!(c.public_key, "pk-lf-1");
    assert_eq!(c.ingestion_url(), "http://127.0.0.1:3000/api/public/ingestion");
    let printed = format!("{c:?} {:?}", LangfuseExporter::new(c.clone()).unwrap());
    assert!(!printed.contains("sk-lf-very-secret"), "{printed}");
    assert!(printed.contains("pk-lf-1"));

    let missing = LangfuseConfig::from_lookup(|k| (k == "LANGFUSE_PUBLIC_KEY").then(|| "pk".to_string()));
    assert!(matches!(missing, Err(LangfuseError::MissingEnv("LANGFUSE_SECRET_KEY"))));
    let host = LangfuseConfig::from_lookup(|k| k.starts_with("LANGFUSE_").then(|| "https://x".to_string()));
    assert_eq!(host.unwrap().host, "https://x", "LANGFUSE_HOST read");
    let base_url = LangfuseConfig::from_lookup(|k| match k {
        "LANGFUSE_BASE_URL" => Some("http://eu.example:3000".to_string()),
        "LANGFUSE_HOST" => None,
        _ => Some("k".to_string()),
    });
    assert_eq!(base_url.unwrap().host, "http://eu.example:3000", "LANGFUSE_BASE_URL when LANGFUSE_HOST is unset");
    let bad = LangfuseConfig::from_lookup(|k| match k {
        "LANGFUSE_BASE_URL" => Some("eu.example".to_string()),
        _ => k.ends_with("_KEY").then(|| "sk-lf-shh".to_string()),
    });
    let bad = bad.unwrap_err().to_string();
    assert!(bad.contains("LANGFUSE_BASE_URL: not a URL") && !bad.contains("sk-lf-shh"), "{bad}");
    let no_host = LangfuseConfig::from_lookup(|k| k.ends_with("_KEY").then(|| "x".to_string())).unwrap();
    assert_eq!(no_host.host, "https://cloud.langfuse.com");
}

#[tokio::test]
async fn run_level_annotations_go_to_the_trace() {
    let mock = Mock::start(|_, r| (207, all_ok(r))).await;
    let mut run = Run::new("run-10");
    run.run_meta("operonx.run_start", json!({"graph": "support_bot"}));
    run.events.extend(graph_run("run-10").events.into_iter().map(|mut e| {
        e.seq += 1;
        e.event_id = format!("run-10-{}", e.seq);
        e
    }));
    run.seq = run.events.len() as u64;
    run.run_meta("operonx.run_end", json!({"status": "finished", "recorded_events": 30}));
    LangfuseExporter::new(config(&mock.url)).unwrap().export(&run.events).await.unwrap();
    let items = items_of(&mock.requests());
    assert_eq!(items.len(), 11, "no observation for run-level events");
    let trace = &items.iter().find(|i| i["type"] == "trace-create").unwrap()["body"];
    assert_eq!(trace["name"], "support_bot", "the graph name the pipeline recorded");
    assert_eq!(trace["metadata"]["operonx.run_end"]["status"], "finished");
}

// ---------------------------------------------------------------- media

/// A PNG of `n` bytes and its data URL.
fn png(n: usize) -> (Vec<u8>, String) {
    use base64::Engine as _;
    let bytes = [b"\x89PNG\r\n\x1a\n".as_slice(), &vec![9u8; n - 8]].concat();
    let url = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&bytes));
    (bytes, url)
}

/// Langfuse with its media endpoints: `POST /api/public/media` answers an upload URL on
/// this mock the first time a hash is seen and none afterwards (Langfuse has the bytes),
/// or `media_status` when that is not 200; the upload (`PUT /upload/...`) and the report
/// (`PATCH /api/public/media/{id}`) succeed.
async fn langfuse_with_media(media_status: u16) -> Mock {
    let base = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(HashSet::<String>::new()));
    let url = base.clone();
    let mock = Mock::start(move |_, r| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/api/public/ingestion") => (207, all_ok(r)),
        ("POST", "/api/public/media") if media_status != 200 => (media_status, "{\"message\":\"down\"}".into()),
        ("POST", "/api/public/media") => {
            let sha = r.json()["sha256Hash"].as_str().unwrap().to_string();
            let id: String = sha.chars().filter(char::is_ascii_alphanumeric).take(10).collect();
            let first = seen.lock().unwrap().insert(sha);
            let upload = first.then(|| format!("{}/upload/{id}", url.get().unwrap()));
            (200, json!({"mediaId": id, "uploadUrl": upload}).to_string())
        }
        ("PUT", p) if p.starts_with("/upload/") => (200, String::new()),
        ("PATCH", p) if p.starts_with("/api/public/media/") => (200, "{}".into()),
        other => (404, format!("{other:?}")),
    })
    .await;
    base.set(mock.url.clone()).unwrap();
    mock
}

/// The events of `run` through a pipeline that offloads media into memory, to `exporter`.
async fn through_pipeline(run: &Run, exporter: LangfuseExporter) -> operonx_trace::PipelineStats {
    use operonx_trace::media::{MediaOffload, MemoryMediaStore};
    let pipeline = operonx_trace::TracePipeline::builder()
        .media(MediaOffload::new(std::sync::Arc::new(MemoryMediaStore::default())))
        .exporter(exporter)
        .build()
        .unwrap();
    for e in &run.events {
        operonx_runtime::TraceSink::record(&pipeline, e.clone());
    }
    pipeline.shutdown().await;
    pipeline.stats()
}

/// Op `g.see` (span 1) given an image in a chat message, answering with the same image.
fn image_run(rid: &str, url: &str) -> Run {
    let mut run = Run::new(rid);
    let m = &["main"];
    let messages = json!([{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": url}}
    ]}]);
    run.start("g.see", m, 1, None, json!({"messages": messages}));
    run.end("g.see", m, 1, None, json!({"image": url, "caption": "a cat"}));
    run
}

#[tokio::test]
async fn media_is_uploaded_through_the_media_api_and_observations_carry_its_token() {
    let mock = langfuse_with_media(200).await;
    let (bytes, url) = png(3000);
    let stats = through_pipeline(&image_run("run-m1", &url), LangfuseExporter::new(config(&mock.url)).unwrap()).await;
    assert_eq!(stats.export_failures, 0);
    let reqs = mock.requests();
    let base64_part = &url[30..230];
    for r in reqs.iter().filter(|r| r.method != "PUT") {
        assert!(!String::from_utf8_lossy(&r.body).contains(base64_part), "no base64 in {} {}", r.method, r.path);
    }
    // One media record per trace/observation field using it, the bytes sent once.
    let posts: Vec<Value> =
        reqs.iter().filter(|r| r.method == "POST" && r.path == "/api/public/media").map(Request::json).collect();
    let fields: Vec<(Value, Value)> = posts.iter().map(|p| (p["field"].clone(), p["observationId"].clone())).collect();
    assert_eq!(fields.len(), 4, "the trace's input and output, the span's: {fields:?}");
    for f in [
        (json!("input"), Value::Null),
        (json!("output"), Value::Null),
        (json!("input"), json!("run-m1-s1")),
        (json!("output"), json!("run-m1-s1")),
    ] {
        assert!(fields.contains(&f), "{f:?} in {fields:?}");
    }
    let post = &posts[0];
    assert_eq!(post["traceId"], "run-m1");
    assert_eq!(post["contentType"], "image/png");
    assert_eq!(post["contentLength"], 3000);
    use base64::Engine as _;
    use sha2::Digest as _;
    let sha = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&bytes));
    assert_eq!(post["sha256Hash"], sha.as_str());
    let puts: Vec<&Request> = reqs.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 1, "Langfuse had the bytes after the first upload");
    assert_eq!(puts[0].body, bytes);
    assert_eq!(puts[0].header("content-type"), Some("image/png"));
    assert_eq!(puts[0].header("x-amz-checksum-sha256"), Some(sha.as_str()));
    assert!(puts[0].header("authorization").is_none(), "a presigned URL takes no credentials");
    let patches: Vec<&Request> = reqs.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 1);
    let media_id = patches[0].path.rsplit('/').next().unwrap();
    assert_eq!(patches[0].json()["uploadHttpStatus"], 200);
    assert!(patches[0].json()["uploadedAt"].as_str().unwrap().ends_with('Z'));

    let token = format!("@@@langfuseMedia:type=image/png|id={media_id}|source=bytes@@@");
    let items = items_of(&reqs.into_iter().filter(|r| r.path == "/api/public/ingestion").collect::<Vec<_>>());
    let span = one(&items, "run-m1-s1");
    assert_eq!(span["body"]["input"]["messages"][0]["content"][1]["image_url"]["url"], token.as_str());
    assert_eq!(span["body"]["output"]["image"], token.as_str());
    assert_eq!(span["body"]["output"]["caption"], "a cat");
    let refs = span["body"]["metadata"]["media_refs"].as_array().unwrap();
    assert_eq!(refs.len(), 2, "the media_ref events of the input and the output: {refs:?}");
    assert_eq!(refs[0]["mime"], "image/png");
    let trace = items.iter().find(|i| i["type"] == "trace-create").unwrap();
    assert_eq!(trace["body"]["input"]["messages"][0]["content"][1]["image_url"]["url"], token.as_str());
    assert_eq!(trace["body"]["output"]["image"], token.as_str());
}

#[tokio::test]
async fn a_failed_upload_leaves_a_readable_placeholder_and_the_export_goes_on() {
    let mock = langfuse_with_media(500).await;
    let (_, url) = png(3000);
    let stats = through_pipeline(&image_run("run-m2", &url), LangfuseExporter::new(config(&mock.url)).unwrap()).await;
    assert_eq!((stats.export_failures, stats.events_lost), (0, 0), "the trace itself went out");
    let items =
        items_of(&mock.requests().into_iter().filter(|r| r.path == "/api/public/ingestion").collect::<Vec<_>>());
    let span = one(&items, "run-m2-s1");
    let shown = span["body"]["output"]["image"].as_str().unwrap();
    assert!(shown.starts_with("[media upload failed: image/png 2.9 KiB sha256:"), "{shown}");
    assert!(!items.iter().any(|i| i.to_string().contains(&url[30..230])), "no base64");
}

#[tokio::test]
async fn without_a_media_store_references_become_placeholders() {
    let mock = Mock::start(|_, r| (207, all_ok(r))).await;
    let reference = json!({"$media": "ab".repeat(32), "mime": "audio/wav", "size": 48000});
    let mut run = Run::new("run-m3");
    run.start("g.hear", &["main"], 1, None, json!({"audio": reference}));
    LangfuseExporter::new(config(&mock.url)).unwrap().export(&run.events).await.unwrap();
    let items = items_of(&mock.requests());
    let shown = one(&items, "run-m3-s1")["body"]["input"]["audio"].as_str().unwrap().to_string();
    assert_eq!(shown, "[media upload failed: audio/wav 46.9 KiB sha256:abababababab…]");
    assert_eq!(mock.requests().len(), 1, "no media request without the bytes");
}
