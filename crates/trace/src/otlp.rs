//! Export to any OpenTelemetry backend (Jaeger, Tempo, Langfuse's OTel endpoint, an OTel
//! collector, ...) over OTLP/HTTP with the JSON encoding: `POST {endpoint}/v1/traces`,
//! `Content-Type: application/json`, an `ExportTraceServiceRequest`.
//!
//! Mapping:
//!
//! | trace events | OTLP span |
//! |---|---|
//! | a run (`request_id`) | `traceId`: the request id's 32 hex digits when it is a UUID, else a 128-bit hash of it |
//! | `op_start` … `op_end` of one `span_id` | one span: `spanId` = 64-bit hash of the span id, `parentSpanId` from `parent_span_id`, `name` = op name, kind INTERNAL, `startTimeUnixNano`/`endTimeUnixNano`, attributes `operonx.op.name`, `operonx.ctx` (`main/[0]`), `operonx.request_id`, `operonx.status`, `operonx.duration_ms`, `operonx.yield_count`, `operonx.inputs`/`operonx.outputs` (JSON text, only with [`OtlpConfig::capture_content`]); `status` 1 (ok) or 2 (error, with the error text) |
//! | … plus `llm_usage` | GenAI conventions: kind CLIENT, name `chat {model}`, `gen_ai.operation.name` = `chat`, `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.usage.input_tokens`/`output_tokens`, `gen_ai.provider.name` and `gen_ai.system` when the usage names a provider, `operonx.cost_usd` |
//! | `annotation`, `op_yield`, `media_ref` | span `events` (named after the annotation key, `operonx.yield`, `operonx.media_ref`) |
//! | `group_start` … `group_end` | a span named after the group (a loop iteration) |
//! | run-level annotations (no op, no span) | nothing (OTLP has no trace-level object) |
//!
//! A span goes out when it ends; spans still open at the end of a batch are kept until their
//! end arrives, and [`Exporter::shutdown`] sends the ones that never ended (marked
//! `operonx.incomplete`). 401/403 and other 4xx are fatal, 408/429/5xx and network errors
//! retryable; an OTLP `partialSuccess` with rejected spans is reported as fatal (the
//! collector said not to retry them).

mod mapping;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::BoxFuture;
use operonx_runtime::TraceEvent;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::export::{ExportError, Exporter};
use mapping::{SpanOptions, SpanState};

/// The default OTLP/HTTP endpoint (a local collector).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318";

/// Where and how to send spans.
#[derive(Clone)]
pub struct OtlpConfig {
    /// Base URL; spans go to `{endpoint}/v1/traces`.
    pub endpoint: String,
    /// Full URL of the traces endpoint, used as is (overrides `endpoint`).
    pub traces_endpoint: Option<String>,
    /// Extra request headers (e.g. an API key). Values are never printed.
    pub headers: Vec<(String, String)>,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// More resource attributes.
    pub resource_attributes: Vec<(String, String)>,
    /// Put op inputs, outputs and yielded items in attributes (they may hold prompts and
    /// personal data; turn off to send only structure, timing and usage).
    pub capture_content: bool,
    /// Longest string attribute, in characters (longer ones are cut).
    pub max_attribute_len: usize,
    /// Most events per span; further ones are counted in `droppedEventsCount`.
    pub max_events_per_span: usize,
    /// Most spans per request.
    pub batch_size: usize,
    /// Most open spans kept between batches.
    pub max_pending_spans: usize,
}

impl fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(k, _)| (k.as_str(), "<redacted>")).collect();
        f.debug_struct("OtlpConfig")
            .field("endpoint", &self.endpoint)
            .field("traces_endpoint", &self.traces_endpoint)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("service_name", &self.service_name)
            .field("resource_attributes", &self.resource_attributes)
            .field("capture_content", &self.capture_content)
            .field("max_attribute_len", &self.max_attribute_len)
            .field("max_events_per_span", &self.max_events_per_span)
            .field("batch_size", &self.batch_size)
            .field("max_pending_spans", &self.max_pending_spans)
            .finish()
    }
}

/// Why an OTLP exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// A setting (or environment variable) is unusable.
    #[error("invalid OTLP config: {0}")]
    Invalid(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Decode `%XX` escapes (W3C baggage style, as the OTel header variables use).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse `k1=v1,k2=v2` (values percent-encoded). The error names the variable, not the value.
fn parse_pairs(var: &str, s: &str) -> Result<Vec<(String, String)>, OtlpError> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .enumerate()
        .map(|(n, p)| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((percent_decode(k.trim()), percent_decode(v.trim()))),
            _ => Err(OtlpError::Invalid(format!("{var}: entry {} is not key=value", n + 1))),
        })
        .collect()
}

/// Set `pairs` into `into`, replacing entries of the same (case-insensitive) key.
fn merge(into: &mut Vec<(String, String)>, pairs: Vec<(String, String)>) {
    for (k, v) in pairs {
        into.retain(|(old, _)| !old.eq_ignore_ascii_case(&k));
        into.push((k, v));
    }
}

impl OtlpConfig {
    /// A config sending to `endpoint` (base URL) with default settings: service `operonx`,
    /// 10 s timeout, content captured, 4096-character attributes, 128 events per span, 512
    /// spans per request.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            traces_endpoint: None,
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            service_name: "operonx".into(),
            resource_attributes: Vec::new(),
            capture_content: true,
            max_attribute_len: 4096,
            max_events_per_span: 128,
            batch_size: 512,
            max_pending_spans: 100_000,
        }
    }

    /// Read the standard variables: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (full URL) or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (base URL, default [`DEFAULT_ENDPOINT`]),
    /// `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (`k=v,...`),
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` / `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` (milliseconds),
    /// `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`. A `grpc` protocol is refused:
    /// this exporter speaks OTLP/HTTP with JSON only.
    pub fn from_env() -> Result<Self, OtlpError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`OtlpConfig::from_env`] with variables read through `var`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, OtlpError> {
        let get = |k: &str| var(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let mut c = Self::new(get("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.into()));
        c.traces_endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        for name in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"] {
            if let Some(v) = get(name) {
                merge(&mut c.headers, parse_pairs(name, &v)?);
            }
        }
        for name in ["OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] {
            if let Some(v) = get(name) {
                let ms: u64 = v.parse().map_err(|_| OtlpError::Invalid(format!("{name} is not milliseconds: {v}")))?;
                c.timeout = Duration::from_millis(ms);
            }
        }
        for name in ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] {
            if get(name).is_some_and(|p| p.eq_ignore_ascii_case("grpc")) {
                return Err(OtlpError::Invalid(format!("{name}=grpc: only OTLP/HTTP (JSON) is supported")));
            }
        }
        if let Some(v) = get("OTEL_RESOURCE_ATTRIBUTES") {
            let mut attrs = parse_pairs("OTEL_RESOURCE_ATTRIBUTES", &v)?;
            if let Some(i) = attrs.iter().position(|(k, _)| k == "service.name") {
                c.service_name = attrs.remove(i).1;
            }
            c.resource_attributes = attrs;
        }
        if let Some(name) = get("OTEL_SERVICE_NAME") {
            c.service_name = name;
        }
        Ok(c)
    }

    /// The URL spans are posted to.
    pub fn traces_url(&self) -> String {
        match &self.traces_endpoint {
            Some(url) => url.clone(),
            None => format!("{}/v1/traces", self.endpoint.trim_end_matches('/')),
        }
    }
}

/// An [`Exporter`] that sends runs as OTLP spans.
pub struct OtlpExporter {
    config: OtlpConfig,
    url: String,
    client: reqwest::Client,
    options: SpanOptions,
    resource: Value,
    pending: Mutex<HashMap<String, SpanState>>,
}

impl fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExporter").field("config", &self.config).finish_non_exhaustive()
    }
}

/// How sending went.
enum Failure {
    Retry(String),
    Fatal(String),
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

/// Rejected spans reported in an OTLP partial success body (`rejectedSpans` is an int64,
/// so a string in JSON, but accept a number too).
fn partial_success(body: &[u8]) -> Option<(u64, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let p = v.get("partialSuccess")?;
    let rejected = match p.get("rejectedSpans")? {
        Value::String(s) => s.parse().ok()?,
        n => n.as_u64()?,
    };
    let msg = p.get("errorMessage").and_then(Value::as_str).unwrap_or("").to_string();
    (rejected > 0).then_some((rejected, msg))
}

impl OtlpExporter {
    /// An exporter for `config`.
    pub fn new(config: OtlpConfig) -> Result<Self, OtlpError> {
        if config.batch_size == 0 {
            return Err(OtlpError::Invalid("batch_size must be positive".into()));
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &config.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| OtlpError::Invalid(format!("bad header name {k:?}")))?;
            let mut value =
                HeaderValue::from_str(v).map_err(|_| OtlpError::Invalid(format!("bad value for header {k:?}")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .default_headers(headers)
            .build()
            .map_err(|e| OtlpError::Client(e.to_string()))?;
        let string = |s: &str| json!({"stringValue": s});
        let mut attributes = vec![
            json!({"key": "service.name", "value": string(&config.service_name)}),
            json!({"key": "telemetry.sdk.name", "value": string("operonx")}),
            json!({"key": "telemetry.sdk.language", "value": string("rust")}),
            json!({"key": "telemetry.sdk.version", "value": string(env!("CARGO_PKG_VERSION"))}),
        ];
        attributes.extend(config.resource_attributes.iter().map(|(k, v)| json!({"key": k, "value": string(v)})));
        let options = SpanOptions {
            capture_content: config.capture_content,
            max_attribute_len: config.max_attribute_len,
            max_events_per_span: config.max_events_per_span,
        };
        Ok(Self {
            url: config.traces_url(),
            config,
            client,
            options,
            resource: json!({"attributes": attributes}),
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// [`OtlpExporter::new`] with [`OtlpConfig::from_env`].
    pub fn from_env() -> Result<Self, OtlpError> {
        Self::new(OtlpConfig::from_env()?)
    }

    /// The config in use.
    pub fn config(&self) -> &OtlpConfig {
        &self.config
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<String, SpanState>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn export_batch(&self, batch: &[TraceEvent]) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let folded = mapping::fold(batch, &self.pending(), &self.options);
        let spans: Vec<Value> = folded.ended.iter().map(|s| s.to_otlp(&self.options, true)).collect();
        let result = self.send(spans).await;
        // A retryable failure means the same batch comes again: keep the state it was folded with.
        if !matches!(result, Err(ExportError::Retryable(_))) {
            let mut pending = self.pending();
            for s in &folded.ended {
                pending.remove(s.key());
            }
            for (k, s) in folded.open {
                if pending.len() < self.config.max_pending_spans || pending.contains_key(&k) {
                    pending.insert(k, s);
                }
            }
        }
        result
    }

    async fn send(&self, spans: Vec<Value>) -> Result<(), ExportError> {
        let mut retry = None;
        let mut fatal = Vec::new();
        for chunk in spans.chunks(self.config.batch_size) {
            match self.post(chunk).await {
                Ok(()) => {}
                Err(Failure::Retry(m)) => retry = Some(m),
                Err(Failure::Fatal(m)) => fatal.push(m),
            }
        }
        match (retry, fatal.is_empty()) {
            (Some(r), _) => Err(ExportError::Retryable(r)),
            (None, false) => Err(ExportError::Fatal(fatal.join("; "))),
            (None, true) => Ok(()),
        }
    }

    async fn post(&self, spans: &[Value]) -> Result<(), Failure> {
        let body = json!({
            "resourceSpans": [{
                "resource": self.resource,
                "scopeSpans": [{
                    "scope": {"name": "operonx", "version": env!("CARGO_PKG_VERSION")},
                    "spans": spans,
                }],
            }],
        });
        let bytes = serde_json::to_vec(&body).map_err(|e| Failure::Fatal(format!("otlp: cannot encode spans: {e}")))?;
        let resp = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .body(bytes)
            .send()
            .await
            .map_err(|e| Failure::Retry(format!("otlp: request failed: {e}")))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        match status {
            200..=299 => match partial_success(&body) {
                Some((n, msg)) => Err(Failure::Fatal(format!("otlp: collector rejected {n} span(s): {msg}"))),
                None => Ok(()),
            },
            401 | 403 => Err(Failure::Fatal(format!("otlp: HTTP {status} (check the headers): {}", snippet(&body)))),
            408 | 429 | 500..=599 => Err(Failure::Retry(format!("otlp: HTTP {status}: {}", snippet(&body)))),
            _ => Err(Failure::Fatal(format!("otlp: HTTP {status}: {}", snippet(&body)))),
        }
    }

    async fn flush_open(&self) -> Result<(), ExportError> {
        let open: Vec<SpanState> = self.pending().drain().map(|(_, s)| s).collect();
        if open.is_empty() {
            return Ok(());
        }
        self.send(open.iter().map(|s| s.to_otlp(&self.options, false)).collect()).await
    }
}

impl Exporter for OtlpExporter {
    fn name(&self) -> &str {
        "otlp"
    }

    fn export<'a>(&'a self, batch: &'a [TraceEvent]) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.export_batch(batch))
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(self.flush_open())
    }
}
