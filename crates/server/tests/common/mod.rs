//! A server of the test graphs (tests/graphs) on a fresh SQLite store, in this process,
//! on a free loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use operonx::Engine;
use operonx_server::{Catalog, ExecutorConfig, ServeConfig, Tenants};
use operonx_store::{Durability, RunStore, SqliteRunStore, StoreKey};
use serde_json::Value;

/// The test graphs.
pub fn graphs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/graphs")
}

/// Tokens of two tenants.
pub const TOKENS: &str = "acme: acme-token-0123456789abcdef\nglobex: globex-token-0123456789abcdef\n";
/// Tenant acme's token.
pub const ACME: &str = "acme-token-0123456789abcdef";
/// Tenant globex's token.
pub const GLOBEX: &str = "globex-token-0123456789abcdef";

/// A running server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The store file.
    pub store_path: PathBuf,
    /// The key the store was opened with.
    pub key: StoreKey,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    dir: Arc<tempfile::TempDir>,
}

/// The engine of the tests: the standard ops.
pub fn engine() -> Engine {
    let mut engine = Engine::new();
    operonx::ops::register_std(engine.registry_mut());
    engine
}

/// Options of [`TestServer::start_with`].
#[derive(Clone, Default)]
pub struct Options {
    /// A tokens file's text.
    pub tokens: Option<&'static str>,
    /// Workers in the server (default 2).
    pub workers: Option<usize>,
    /// Start on this existing folder and key (a restart).
    pub reuse: Option<(Arc<tempfile::TempDir>, StoreKey)>,
    /// How long runs may go on once the server is stopped (default 5 s).
    pub grace: Option<Duration>,
}

impl TestServer {
    /// A server without tokens, with 2 workers.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// A server as `options` say.
    pub async fn start_with(options: Options) -> Self {
        let (dir, key) = match options.reuse {
            Some(r) => r,
            None => (Arc::new(tempfile::tempdir().unwrap()), StoreKey::generate().unwrap()),
        };
        let store_path = dir.path().join("runs.db");
        let store: Arc<dyn RunStore> = Arc::new(SqliteRunStore::open_with_key(&store_path, key.clone()).unwrap());
        let engine = Arc::new(engine());
        let catalog = Catalog::load_dir(engine.clone(), &graphs_dir()).unwrap();
        let slots = options.workers.unwrap_or(2);
        let executor = ExecutorConfig {
            engine,
            graph_engines: Default::default(),
            secrets: Default::default(),
            durability: Durability::Batched,
            trace: None,
            trace_store: None,
            slots,
        };
        let config = ServeConfig {
            bind: "127.0.0.1:0".into(),
            store,
            catalog,
            tenants: options.tokens.map(|t| Tenants::parse(t).unwrap()),
            executor: (slots > 0).then_some(executor),
            trace_store: None,
            grace: options.grace.unwrap_or(Duration::from_secs(5)),
        };
        let server = operonx_server::bind(config).await.unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        TestServer { base, store_path, key, stop: Some(stop), task: Some(task), dir }
    }

    /// Stop it (draining), keeping its folder; what restarts it on the same store.
    pub async fn stop(mut self) -> Options {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        Options { reuse: Some((self.dir.clone(), self.key.clone())), ..Options::default() }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A client.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// Status and JSON body of a response.
pub async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Submit a run of `graph` with `inputs`; its id.
pub async fn submit(s: &TestServer, token: Option<&str>, graph: &str, inputs: Value) -> String {
    let mut req = client().post(s.url("/v1/runs")).json(&serde_json::json!({"graph": graph, "inputs": inputs}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let (status, body) = json(req.send().await.unwrap()).await;
    assert_eq!(status, 202, "{body}");
    body["run_id"].as_str().unwrap().to_string()
}

/// Poll run `id` until its status is `want` (30 s at most); the run.
pub async fn wait_status(s: &TestServer, token: Option<&str>, id: &str, want: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut req = client().get(s.url(&format!("/v1/runs/{id}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let (status, body) = json(req.send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        if body["status"] == want {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "run {id} never became {want}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The SSE events of a stream body: (id, data as JSON).
pub fn sse_events(text: &str) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut id = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if let (Some(id), false) = (id, data.is_empty()) {
            out.push((id, serde_json::from_str(&data).unwrap()));
        }
    }
    out
}
