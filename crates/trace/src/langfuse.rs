//! Export to [Langfuse](https://langfuse.com) through its public batch ingestion API
//! (`POST {host}/api/public/ingestion`).
//!
//! Mapping (one Langfuse trace per run, one observation per op call or loop iteration):
//!
//! | trace events | Langfuse item |
//! |---|---|
//! | a run (`request_id`) | `trace-create`: `id` = request id, `name` = configured name, else the graph of the pipeline's `operonx.run_start` annotation, else the prefix of the first top-level op's name; `metadata` = the run-level `operonx.*` annotations, `timestamp`, `input` = inputs of the first top-level op, `output` = outputs of the last successful top-level op |
//! | `op_start` … `op_end` of one `span_id` | `span-create` (or `span-update` when the start went out in an earlier batch): `id` = the span id, `parentObservationId` = the parent span id, `name` = op name, `startTime`/`endTime`, `input`/`output`, `metadata` (ctx, annotations, last yielded item, status), `level` `ERROR` + `statusMessage` on failure (`WARNING` when cancelled) |
//! | … plus `llm_usage` | `generation-create`/`-update` instead, with `model` (the usage's `provider_model`, else its `model`), `usage`, `usageDetails`, `costDetails` |
//! | `group_start` … `group_end` | a span named after the group, parent = the span that ran the loop |
//!
//! Observation ids are derived from span ids, so a span split over two flushes is upserted,
//! not duplicated, and envelope ids are derived from event ids, so a batch sent twice is
//! deduplicated by Langfuse. When an op's start was already exported as a span and its
//! `llm_usage` comes in a later batch, the usage is attached as a child generation (Langfuse
//! cannot change an observation's type).
//!
//! Media: `{"$media": ...}` references (see [`crate::media`]) in inputs, outputs and
//! metadata are uploaded through Langfuse's media API and replaced by its
//! `@@@langfuseMedia:...@@@` tokens (the `media` module).
//!
//! Delivery: items are sent in requests of at most [`LangfuseConfig::batch_size`] items and
//! [`LangfuseConfig::max_batch_bytes`] bytes. A 207 Multi-Status body is inspected: items that
//! failed with 429/5xx are retried alone (with backoff), others are reported as
//! [`ExportError::Fatal`]. 401/403 are fatal; 408/429/5xx and network errors are retryable.

mod mapping;
mod media;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use operonx_graph::backoff::Backoff;
use operonx_runtime::TraceEvent;
use serde_json::{Value, json};

use crate::export::{ExportError, Exporter};
use crate::media::MediaStore;
use mapping::{Item, Memo, TraceOptions};

/// The default Langfuse host.
pub const DEFAULT_HOST: &str = "https://cloud.langfuse.com";

/// Langfuse caps a batch at 3.5 MB; stay below it.
const DEFAULT_MAX_BATCH_BYTES: usize = 3_000_000;

/// Longest wait between two attempts, whatever `Retry-After` says.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Where and how to send traces to Langfuse.
#[derive(Clone)]
pub struct LangfuseConfig {
    /// Base URL, e.g. `https://cloud.langfuse.com` (no trailing `/api/...`).
    pub host: String,
    /// Project public key (`pk-lf-...`), the Basic-auth user.
    pub public_key: String,
    /// Project secret key (`sk-lf-...`), the Basic-auth password. Never printed.
    pub secret_key: String,
    /// Most ingestion items per request.
    pub batch_size: usize,
    /// Most bytes per request body (Langfuse rejects more than 3.5 MB).
    pub max_batch_bytes: usize,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// Extra attempts for a failed request or for the failed items of a 207 response.
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff: Duration,
    /// Trace name; default: the graph name taken from the first top-level op.
    pub trace_name: Option<String>,
    /// Langfuse `environment` of traces and observations.
    pub environment: Option<String>,
    /// Langfuse `release` of traces.
    pub release: Option<String>,
    /// Tags of every trace.
    pub tags: Vec<String>,
}

impl fmt::Debug for LangfuseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LangfuseConfig")
            .field("host", &self.host)
            .field("public_key", &self.public_key)
            .field("secret_key", &"<redacted>")
            .field("batch_size", &self.batch_size)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("trace_name", &self.trace_name)
            .field("environment", &self.environment)
            .field("release", &self.release)
            .field("tags", &self.tags)
            .finish()
    }
}

/// Why a Langfuse exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LangfuseError {
    /// A required environment variable is missing or empty.
    #[error("environment variable {0} is not set")]
    MissingEnv(&'static str),
    /// A setting is unusable.
    #[error("invalid Langfuse config: {0}")]
    Invalid(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl LangfuseConfig {
    /// A config for `host` with these keys and default settings (100 items per request,
    /// 3 MB, 30 s timeout, 3 retries from 500 ms).
    pub fn new(host: impl Into<String>, public_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            public_key: public_key.into(),
            secret_key: secret_key.into(),
            batch_size: 100,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            timeout: Duration::from_secs(30),
            max_retries: 3,
            retry_backoff: Duration::from_millis(500),
            trace_name: None,
            environment: None,
            release: None,
            tags: Vec::new(),
        }
    }

    /// Read `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY` (both required), `LANGFUSE_HOST`
    /// (or `LANGFUSE_BASE_URL`; default [`DEFAULT_HOST`]), and the optional
    /// `LANGFUSE_TRACING_ENVIRONMENT` and `LANGFUSE_RELEASE`.
    pub fn from_env() -> Result<Self, LangfuseError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`LangfuseConfig::from_env`] with variables read through `var`. Errors name the
    /// variable, never a key.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, LangfuseError> {
        let get = |k: &str| var(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let pk = get("LANGFUSE_PUBLIC_KEY").ok_or(LangfuseError::MissingEnv("LANGFUSE_PUBLIC_KEY"))?;
        let sk = get("LANGFUSE_SECRET_KEY").ok_or(LangfuseError::MissingEnv("LANGFUSE_SECRET_KEY"))?;
        let (host, what) = match (get("LANGFUSE_HOST"), get("LANGFUSE_BASE_URL")) {
            (Some(h), _) => (h, "LANGFUSE_HOST"),
            (None, Some(h)) => (h, "LANGFUSE_BASE_URL"),
            (None, None) => (DEFAULT_HOST.to_string(), "LANGFUSE_HOST"),
        };
        check_host(what, &host)?;
        let mut config = Self::new(host, pk, sk);
        config.environment = get("LANGFUSE_TRACING_ENVIRONMENT");
        config.release = get("LANGFUSE_RELEASE");
        Ok(config)
    }

    /// Read the `tracing.langfuse` section of `resources.yaml` (already interpolated):
    /// `public_key`, `secret_key` (both required), `host` (or `base_url`; default
    /// [`DEFAULT_HOST`]), `environment`, `release`, `trace_name`, `tags` (a list),
    /// `timeout_ms`; `enabled` is read by the caller. Errors name the setting, never a key.
    pub fn from_section(section: &Value) -> Result<Self, LangfuseError> {
        const AT: &str = "tracing.langfuse";
        let map = section.as_object().ok_or_else(|| LangfuseError::Invalid(format!("{AT} must be a mapping")))?;
        let text = |key: &str| -> Result<Option<String>, LangfuseError> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => crate::otlp::scalar_text(v)
                    .map(|t| Some(t).filter(|t| !t.is_empty()))
                    .ok_or_else(|| LangfuseError::Invalid(format!("{AT}.{key} must be a string"))),
            }
        };
        let required = |key: &str| {
            text(key)?.ok_or_else(|| LangfuseError::Invalid(format!("{AT}.{key} is required (and empty or unset)")))
        };
        for key in map.keys() {
            if !matches!(
                key.as_str(),
                "enabled"
                    | "public_key"
                    | "secret_key"
                    | "host"
                    | "base_url"
                    | "environment"
                    | "release"
                    | "trace_name"
                    | "tags"
                    | "timeout_ms"
            ) {
                return Err(LangfuseError::Invalid(format!(
                    "{AT}.{key}: unknown setting (known: public_key, secret_key, host, base_url, environment, \
                     release, trace_name, tags, timeout_ms, enabled)"
                )));
            }
        }
        let (pk, sk) = (required("public_key")?, required("secret_key")?);
        let (host, what) = match (text("host")?, text("base_url")?) {
            (Some(h), _) => (h, "tracing.langfuse.host"),
            (None, Some(h)) => (h, "tracing.langfuse.base_url"),
            (None, None) => (DEFAULT_HOST.to_string(), "tracing.langfuse.host"),
        };
        check_host(what, &host)?;
        let mut config = Self::new(host, pk, sk);
        config.environment = text("environment")?;
        config.release = text("release")?;
        config.trace_name = text("trace_name")?;
        if let Some(tags) = map.get("tags") {
            let list = tags.as_array().ok_or_else(|| LangfuseError::Invalid(format!("{AT}.tags must be a list")))?;
            config.tags = list
                .iter()
                .map(|t| {
                    crate::otlp::scalar_text(t)
                        .ok_or_else(|| LangfuseError::Invalid(format!("{AT}.tags: not a string")))
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(ms) = map.get("timeout_ms") {
            let ms =
                ms.as_u64().ok_or_else(|| LangfuseError::Invalid(format!("{AT}.timeout_ms must be milliseconds")))?;
            config.timeout = Duration::from_millis(ms.max(1));
        }
        Ok(config)
    }

    /// The ingestion endpoint.
    pub fn ingestion_url(&self) -> String {
        format!("{}/api/public/ingestion", self.host.trim_end_matches('/'))
    }
}

/// Check that `host` is an absolute http(s) URL; the error names `what`.
fn check_host(what: &str, host: &str) -> Result<(), LangfuseError> {
    match reqwest::Url::parse(host) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(()),
        Ok(u) => Err(LangfuseError::Invalid(format!(
            "{what}: expected an http:// or https:// URL, got scheme {:?}",
            u.scheme()
        ))),
        Err(e) => Err(LangfuseError::Invalid(format!("{what}: not a URL ({e})"))),
    }
}

/// An [`Exporter`] that sends runs to Langfuse.
pub struct LangfuseExporter {
    config: LangfuseConfig,
    url: String,
    client: reqwest::Client,
    options: TraceOptions,
    memo: Mutex<Memo>,
    /// Where the bytes of media references are read (given by the pipeline).
    media: OnceLock<Arc<dyn MediaStore>>,
    /// Media tokens of uploads done: (trace, observation, field, hash) → token.
    uploads: Mutex<HashMap<String, String>>,
}

impl fmt::Debug for LangfuseExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LangfuseExporter").field("config", &self.config).finish_non_exhaustive()
    }
}

/// One item, serialized.
struct Encoded {
    id: String,
    bytes: Vec<u8>,
}

/// A per-item failure from a 207 body.
struct ItemError {
    id: String,
    status: u16,
    message: String,
}

impl ItemError {
    fn retryable(&self) -> bool {
        self.status == 429 || self.status >= 500
    }
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.id, self.status, self.message)
    }
}

/// The answer to one request.
enum Reply {
    /// Accepted; these items failed.
    Delivered(Vec<ItemError>),
    /// Failed as a whole, worth retrying (after at least this long, if said).
    Retry(String, Option<Duration>),
    /// Failed as a whole for good; `true` for bad credentials.
    Fatal(String, bool),
}

/// How one chunk went after its retries.
#[derive(Default)]
struct ChunkOutcome {
    rejected: Vec<String>,
    retry: Option<String>,
    fatal: Option<(String, bool)>,
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

fn parse_errors(body: &[u8]) -> Vec<ItemError> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return Vec::new() };
    let Some(errors) = v.get("errors").and_then(Value::as_array) else { return Vec::new() };
    errors
        .iter()
        .filter_map(|e| {
            let id = e.get("id").and_then(Value::as_str)?.to_string();
            let status = e.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()).unwrap_or(0);
            let message = match (e.get("message"), e.get("error")) {
                (Some(Value::String(m)), _) => m.clone(),
                (_, Some(err)) if !err.is_null() => err.to_string(),
                _ => "rejected".to_string(),
            };
            Some(ItemError { id, status, message })
        })
        .collect()
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Split items into requests of at most `max_items` items and about `max_bytes` bytes (an
/// item larger than `max_bytes` goes alone).
fn chunk(items: Vec<Encoded>, max_items: usize, max_bytes: usize) -> Vec<Vec<Encoded>> {
    let mut chunks = Vec::new();
    let mut current: Vec<Encoded> = Vec::new();
    let mut size = 0;
    for item in items {
        let len = item.bytes.len() + 1;
        if !current.is_empty() && (current.len() >= max_items || size + len > max_bytes) {
            chunks.push(std::mem::take(&mut current));
            size = 0;
        }
        size += len;
        current.push(item);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

impl LangfuseExporter {
    /// A request to Langfuse's API at `url`: the project's keys, a JSON body.
    fn api(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .basic_auth(&self.config.public_key, Some(&self.config.secret_key))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
    }

    /// An exporter for `config`.
    pub fn new(config: LangfuseConfig) -> Result<Self, LangfuseError> {
        if config.host.trim().is_empty() {
            return Err(LangfuseError::Invalid("host is empty".into()));
        }
        if config.batch_size == 0 || config.max_batch_bytes == 0 {
            return Err(LangfuseError::Invalid("batch_size and max_batch_bytes must be positive".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| LangfuseError::Client(e.to_string()))?;
        let options = TraceOptions {
            trace_name: config.trace_name.clone(),
            environment: config.environment.clone(),
            release: config.release.clone(),
            tags: config.tags.clone(),
        };
        Ok(Self {
            url: config.ingestion_url(),
            config,
            client,
            options,
            memo: Mutex::new(Memo::default()),
            media: OnceLock::new(),
            uploads: Mutex::new(HashMap::new()),
        })
    }

    /// [`LangfuseExporter::new`] with [`LangfuseConfig::from_env`].
    pub fn from_env() -> Result<Self, LangfuseError> {
        Self::new(LangfuseConfig::from_env()?)
    }

    /// The config in use.
    pub fn config(&self) -> &LangfuseConfig {
        &self.config
    }

    fn memo(&self) -> MutexGuard<'_, Memo> {
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn uploads(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn export_batch(&self, batch: &[TraceEvent]) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (mut items, delta) = mapping::map_batch(batch, &self.memo(), &self.options);
        self.resolve_media(&mut items).await;
        let result = self.send_all(items).await;
        // A retryable failure means the same batch comes again: keep the state it was mapped with.
        if !result.as_ref().is_err_and(ExportError::is_retryable) {
            delta.apply(&mut self.memo());
        }
        result
    }

    async fn send_all(&self, items: Vec<Item>) -> Result<(), ExportError> {
        let mut encoded = Vec::with_capacity(items.len());
        for item in items {
            let bytes = serde_json::to_vec(&item.envelope).map_err(|e| {
                ExportError::fatal(format!("langfuse: cannot encode item {}: {e}", item.id)).with_source(e)
            })?;
            encoded.push(Encoded { id: item.id, bytes });
        }
        let mut rejected = Vec::new();
        let mut retry = None;
        let mut fatal = None;
        for part in chunk(encoded, self.config.batch_size, self.config.max_batch_bytes) {
            let outcome = self.send_chunk(part).await;
            rejected.extend(outcome.rejected);
            match outcome.fatal {
                Some((msg, true)) => return Err(ExportError::fatal(msg)),
                Some((msg, false)) => fatal = Some(msg),
                None => {}
            }
            if outcome.retry.is_some() {
                retry = outcome.retry;
            }
        }
        let rejected = (!rejected.is_empty())
            .then(|| format!("langfuse rejected {} item(s): {}", rejected.len(), rejected.join("; ")));
        match (retry, fatal, rejected) {
            (Some(r), _, rej) => Err(ExportError::retryable(rej.map_or(r.clone(), |rej| format!("{r}; {rej}")))),
            (None, Some(f), rej) => Err(ExportError::fatal(rej.map_or(f.clone(), |rej| format!("{f}; {rej}")))),
            (None, None, Some(rej)) => Err(ExportError::fatal(rej)),
            (None, None, None) => Ok(()),
        }
    }

    /// Send one chunk; retry it while it fails retryably, and only its failed items after a 207.
    async fn send_chunk(&self, mut items: Vec<Encoded>) -> ChunkOutcome {
        let mut outcome = ChunkOutcome::default();
        let mut attempt = 0;
        loop {
            let (last, wait) = match self.post(&items).await {
                Reply::Delivered(errors) => {
                    let (retry, reject): (Vec<_>, Vec<_>) = errors.into_iter().partition(ItemError::retryable);
                    outcome.rejected.extend(reject.iter().map(ToString::to_string));
                    items.retain(|i| retry.iter().any(|e| e.id == i.id));
                    if items.is_empty() {
                        return outcome;
                    }
                    let list: Vec<String> = retry.iter().map(ToString::to_string).collect();
                    (format!("langfuse: {} item(s) failed: {}", list.len(), list.join("; ")), None)
                }
                Reply::Retry(msg, wait) => (msg, wait),
                Reply::Fatal(msg, auth) => {
                    outcome.fatal = Some((msg, auth));
                    return outcome;
                }
            };
            if attempt >= self.config.max_retries {
                outcome.retry = Some(last);
                return outcome;
            }
            // At least what the server asked for, at most MAX_WAIT.
            let backoff = Backoff::doubling(self.config.retry_backoff, MAX_WAIT).delay(attempt);
            tokio::time::sleep(backoff.max(wait.unwrap_or_default()).min(MAX_WAIT)).await;
            attempt += 1;
        }
    }

    async fn post(&self, items: &[Encoded]) -> Reply {
        let meta = json!({
            "batch_size": items.len(),
            "sdk_name": "operonx",
            "sdk_version": env!("CARGO_PKG_VERSION"),
            "sdk_integration": "operonx-trace",
            "public_key": self.config.public_key,
        });
        let mut body = Vec::with_capacity(items.iter().map(|i| i.bytes.len() + 1).sum::<usize>() + 256);
        body.extend_from_slice(b"{\"batch\":[");
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&item.bytes);
        }
        body.extend_from_slice(b"],\"metadata\":");
        body.extend_from_slice(meta.to_string().as_bytes());
        body.push(b'}');
        let request = self
            .api(reqwest::Method::POST, &self.url)
            .header("X-Langfuse-Sdk-Name", "operonx")
            .header("X-Langfuse-Sdk-Version", env!("CARGO_PKG_VERSION"))
            .header("X-Langfuse-Public-Key", &self.config.public_key)
            .body(body);
        let resp = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Reply::Retry(
                    format!("langfuse: cannot reach {}: {}", self.url, crate::export::describe(&e)),
                    None,
                );
            }
        };
        let status = resp.status().as_u16();
        let wait = retry_after(&resp);
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) if (200..300).contains(&status) => {
                return Reply::Retry(format!("langfuse: reading the response failed: {e}"), None);
            }
            Err(_) => Default::default(),
        };
        match status {
            200..=299 => Reply::Delivered(parse_errors(&bytes)),
            401 | 403 => Reply::Fatal(format!("langfuse: HTTP {status} (check the keys): {}", snippet(&bytes)), true),
            408 | 429 | 500..=599 => Reply::Retry(format!("langfuse: HTTP {status}: {}", snippet(&bytes)), wait),
            _ => Reply::Fatal(format!("langfuse: HTTP {status}: {}", snippet(&bytes)), false),
        }
    }
}

impl Exporter for LangfuseExporter {
    fn name(&self) -> &str {
        "langfuse"
    }

    fn export<'a>(&'a self, batch: &'a [TraceEvent]) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.export_batch(batch))
    }

    /// Media references are uploaded from `store` (the first store given is kept).
    fn use_media_store(&self, store: Arc<dyn MediaStore>) {
        let _ = self.media.set(store);
    }
}
