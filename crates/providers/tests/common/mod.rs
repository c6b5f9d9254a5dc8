//! Test helpers: a raw HTTP/1.1 mock server on 127.0.0.1 whose answers are scripted byte
//! by byte, and a runner for graphs that use provider ops.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use operonx_graph::GraphDocument;
use operonx_providers::{ProviderOptions, ResourceHub, register_provider_types_with};
use operonx_runtime::{GraphRun, MemorySink, Registry, RunOutcome, RunTracer, Scratch, TraceEvent};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// One piece of a scripted answer.
#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes and flush.
    Write(Vec<u8>),
    /// Wait.
    Sleep(Duration),
}

/// A complete scripted answer.
pub type Reply = Vec<Step>;

/// `status` with a JSON body and extra headers.
pub fn json_reply(status: u16, body: &Value, headers: &[(&str, &str)]) -> Reply {
    let body = body.to_string();
    let mut head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(&body);
    vec![Step::Write(head.into_bytes())]
}

/// `200 OK` with a JSON body.
pub fn ok(body: Value) -> Reply {
    json_reply(200, &body, &[])
}

/// A raw text body with a status.
pub fn text_reply(status: u16, body: &str) -> Reply {
    vec![Step::Write(
        format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
            .into_bytes(),
    )]
}

/// An event stream written as the given byte pieces, with a pause and flush between them.
pub fn sse_pieces(pieces: Vec<Vec<u8>>, pause: Duration) -> Reply {
    let mut steps =
        vec![Step::Write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n".to_vec())];
    for p in pieces {
        steps.push(Step::Write(p));
        steps.push(Step::Sleep(pause));
    }
    steps
}

/// An event stream of `data:` events, each split in two pieces at byte `split` of the
/// whole text (so a multi-byte character can be cut).
pub fn sse_split(text: &str, cuts: &[usize]) -> Reply {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    for &c in cuts {
        pieces.push(bytes[start..c].to_vec());
        start = c;
    }
    pieces.push(bytes[start..].to_vec());
    sse_pieces(pieces, Duration::from_millis(5))
}

/// An answer that never comes.
pub fn stall(d: Duration) -> Reply {
    vec![Step::Sleep(d)]
}

type Handler = Arc<dyn Fn(&Recorded, usize) -> Reply + Send + Sync>;

/// A mock HTTP server on 127.0.0.1. Stops when dropped.
pub struct MockServer {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    max_active: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockServer {
    /// Answer the n-th request with `replies[n]` (the last reply repeats).
    pub async fn sequence(replies: Vec<Reply>) -> Self {
        Self::with(move |_, n| replies.get(n).or(replies.last()).cloned().unwrap_or_default()).await
    }

    /// Answer with a function of the request and its number.
    pub async fn with(f: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let active = Arc::new(AtomicUsize::new(0));
        let max_active = Arc::new(AtomicUsize::new(0));
        let counter = Arc::new(AtomicUsize::new(0));
        let handler: Handler = Arc::new(f);
        let (reqs, act, maxa) = (Arc::clone(&requests), Arc::clone(&active), Arc::clone(&max_active));
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((sock, _)) = listener.accept().await else { return };
                let (reqs, act, maxa, counter, handler) = (
                    Arc::clone(&reqs),
                    Arc::clone(&act),
                    Arc::clone(&maxa),
                    Arc::clone(&counter),
                    Arc::clone(&handler),
                );
                conns.spawn(async move {
                    serve(sock, reqs, act, maxa, counter, handler).await;
                });
            }
        });
        Self { url, requests, max_active, task }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The most requests in flight at once.
    pub fn max_active(&self) -> usize {
        self.max_active.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut sock: TcpStream,
    reqs: Arc<Mutex<Vec<Recorded>>>,
    active: Arc<AtomicUsize>,
    max_active: Arc<AtomicUsize>,
    counter: Arc<AtomicUsize>,
    handler: Handler,
) {
    let Some(req) = read_request(&mut sock).await else { return };
    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
    max_active.fetch_max(now, Ordering::SeqCst);
    let n = counter.fetch_add(1, Ordering::SeqCst);
    reqs.lock().unwrap().push(req.clone());
    let reply = handler(&req, n);
    for step in reply {
        match step {
            Step::Write(b) => {
                if sock.write_all(&b).await.is_err() || sock.flush().await.is_err() {
                    break;
                }
            }
            Step::Sleep(d) => tokio::time::sleep(d).await,
        }
    }
    active.fetch_sub(1, Ordering::SeqCst);
    let _ = sock.shutdown().await;
}

async fn read_request(sock: &mut TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let first = lines.next()?;
    let mut parts = first.split(' ');
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    let len: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some(Recorded { method, path, headers, body })
}

/// A hub from YAML text with no environment.
pub fn hub(yaml: &str) -> Arc<ResourceHub> {
    Arc::new(ResourceHub::from_yaml_str(yaml, &|_| None).unwrap())
}

/// A one-op graph: the op (named `op`) reads graph inputs `inputs` and forwards every
/// name in `outputs` to the graph outputs.
pub fn one_op_graph(mut op: Value, inputs: &[&str], outputs: &[&str]) -> Value {
    let mut op_inputs = serde_json::Map::new();
    if let Some(existing) = op.get("inputs").and_then(Value::as_object) {
        op_inputs = existing.clone();
    }
    for name in inputs {
        op_inputs.insert((*name).into(), json!({"required": false, "ref": {"source": "__PARENT__", "var": name}}));
    }
    let mut op_outputs = serde_json::Map::new();
    for name in outputs {
        op_outputs.insert((*name).into(), json!({"ref": {"source": "__PARENT__", "var": name, "is_output": true}}));
    }
    op["inputs"] = Value::Object(op_inputs);
    op["outputs"] = Value::Object(op_outputs);
    op["name"] = json!("op");
    op["bound"] = json!("io");
    let graph_inputs: serde_json::Map<String, Value> =
        inputs.iter().map(|n| ((*n).to_string(), json!({"required": false}))).collect();
    let graph_outputs: serde_json::Map<String, Value> = outputs.iter().map(|n| ((*n).to_string(), json!({}))).collect();
    json!({
        "schema_version": "1.0", "type": "graph", "name": "main", "full_name": "main",
        "inputs": graph_inputs, "outputs": graph_outputs,
        "entries": ["op"], "initial_ready_count": {"op": 0}, "compiled_adj": {"op": []},
        "ops": {"op": op}
    })
}

/// A registry with the built-in op types and the provider ops bound to `hub`.
pub fn registry(hub: Arc<ResourceHub>, options: ProviderOptions) -> Registry {
    let mut r = Registry::new();
    operonx_ops::register_builtin_types(&mut r);
    register_provider_types_with(&mut r, hub, options);
    r
}

/// Compile `graph` against `registry`; the error text on failure.
pub fn compile(graph: Value, registry: &Registry) -> Result<Arc<operonx_runtime::Plan>, String> {
    let doc = GraphDocument::from_value(graph).map_err(|e| e.to_string())?;
    operonx_graph::compile(&doc.root, registry).map(Arc::new).map_err(|e| e.to_string())
}

/// Run a compiled graph with tracing; the outcome and the trace.
pub async fn run(plan: Arc<operonx_runtime::Plan>, inputs: Value) -> (RunOutcome, Vec<TraceEvent>) {
    let sink = MemorySink::new();
    let tracer = RunTracer::new(Arc::new(sink.clone()), "req-1");
    let map = inputs.as_object().cloned().unwrap_or_default();
    let outcome = GraphRun::traced(plan, &map, Scratch::default(), Some(tracer)).collect_outcome().await;
    (outcome, sink.events())
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "operonx-providers-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The compile error text of a graph that must not compile.
pub fn compile_err(graph: Value, registry: &Registry) -> String {
    match compile(graph, registry) {
        Ok(_) => panic!("the graph compiled"),
        Err(e) => e,
    }
}
