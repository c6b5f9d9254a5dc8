//! Export to any OpenTelemetry backend (Jaeger, Tempo, Langfuse's OTel endpoint, an OTel
//! collector, ...) over OTLP/HTTP: `POST {endpoint}/v1/traces` with an
//! `ExportTraceServiceRequest` (the `opentelemetry-proto` crate's messages), encoded as
//! binary protobuf (`http/protobuf`, `Content-Type: application/x-protobuf`, the default)
//! or with the OTLP/JSON mapping (`http/json`: hex ids, lowerCamelCase names, 64-bit
//! integers as strings, enums as numbers: the crate's `with-serde` output, which follows it).
//! Configured in code ([`OtlpConfig`]), from the standard `OTEL_*` variables
//! ([`OtlpConfig::from_lookup`]) or from `resources.yaml` ([`OtlpConfig::from_section`]).
//!
//! Mapping:
//!
//! | trace events | OTLP span |
//! |---|---|
//! | a run (`request_id`) | `traceId`: the request id's 32 hex digits when it is a UUID, else a 128-bit hash of it |
//! | `op_start` … `op_end` of one `span_id` | one span: `spanId` = 64-bit hash of the span id, `parentSpanId` from `parent_span_id`, `name` = op name, kind INTERNAL, `startTimeUnixNano`/`endTimeUnixNano`, attributes `operonx.op.name`, `operonx.ctx` (`main/[0]`), `operonx.request_id`, `operonx.status`, `operonx.duration_ms`, `operonx.yield_count`, `operonx.inputs`/`operonx.outputs` (JSON text, only with [`OtlpConfig::capture_content`]); `status` 1 (ok) or 2 (error, with the error text) |
//! | … plus `llm_usage` | GenAI conventions: kind CLIENT, name `chat {model}` (the usage's `provider_model`, else its `model`), `gen_ai.operation.name` = `chat`, `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.usage.input_tokens`/`output_tokens`, `gen_ai.provider.name` and `gen_ai.system` when the usage names a provider, `operonx.cost_usd` |
//! | `annotation`, `op_yield`, `media_ref` | span `events` (named after the annotation key, `operonx.yield`, `operonx.media_ref`); a media reference's event has `operonx.media.handle` (the SHA-256), `.mime`, `.size_bytes`, `.field_path` and `.uri` (where the bytes are kept): OTLP carries no blobs, and inputs/outputs hold `{"$media": ...}` references, never base64 |
//! | `group_start` … `group_end` | a span named after the group (a loop iteration) |
//! | run-level annotations (no op, no span) | nothing (OTLP has no trace-level object) |
//!
//! A span goes out when it ends; spans still open at the end of a batch are kept until their
//! end arrives, and [`Exporter::shutdown`] sends the ones that never ended (marked
//! `operonx.incomplete`). 401/403 and other 4xx are fatal, 408/429/5xx and network errors
//! retryable; an OTLP `partialSuccess` with rejected spans is reported as fatal (the
//! collector said not to retry them).

mod config;
mod mapping;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::BoxFuture;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use operonx_runtime::TraceEvent;
use prost::Message;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

pub use self::config::{DEFAULT_ENDPOINT, OtlpConfig, OtlpError, Protocol};
pub(crate) use self::config::{flag, scalar_text};
use crate::export::{ExportError, Exporter};
use mapping::{SpanOptions, SpanState, kv, string};

/// An [`Exporter`] that sends runs as OTLP spans.
pub struct OtlpExporter {
    config: OtlpConfig,
    url: String,
    client: reqwest::Client,
    options: SpanOptions,
    resource: Resource,
    pending: Mutex<HashMap<String, SpanState>>,
}

impl fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExporter").field("config", &self.config).finish_non_exhaustive()
    }
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

/// Rejected spans reported in an OTLP/JSON partial success body. Read by hand:
/// `rejectedSpans` is an int64, so a string in OTLP/JSON, which `opentelemetry-proto`'s
/// serde mapping of this message does not accept (it reads numbers only); take both.
fn json_partial_success(body: &[u8]) -> Option<(u64, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let p = v.get("partialSuccess")?;
    let rejected = match p.get("rejectedSpans")? {
        Value::String(s) => s.parse().ok()?,
        n => n.as_u64()?,
    };
    let msg = p.get("errorMessage").and_then(Value::as_str).unwrap_or("").to_string();
    (rejected > 0).then_some((rejected, msg))
}

/// Rejected spans reported in a protobuf `ExportTraceServiceResponse`.
fn proto_partial_success(body: &[u8]) -> Option<(u64, String)> {
    let p = ExportTraceServiceResponse::decode(body).ok()?.partial_success?;
    let rejected = u64::try_from(p.rejected_spans).ok()?;
    (rejected > 0).then_some((rejected, p.error_message))
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
        let mut attributes = vec![
            kv("service.name", string(config.service_name.clone())),
            kv("telemetry.sdk.name", string("operonx")),
            kv("telemetry.sdk.language", string("rust")),
            kv("telemetry.sdk.version", string(env!("CARGO_PKG_VERSION"))),
        ];
        attributes.extend(config.resource_attributes.iter().map(|(k, v)| kv(k, string(v.clone()))));
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
            resource: Resource { attributes, ..Resource::default() },
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
        let spans: Vec<Span> = folded.ended.iter().map(|s| s.to_otlp(&self.options, true)).collect();
        let result = self.send(spans).await;
        // A retryable failure means the same batch comes again: keep the state it was folded with.
        if !result.as_ref().is_err_and(ExportError::is_retryable) {
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

    async fn send(&self, spans: Vec<Span>) -> Result<(), ExportError> {
        let mut retry = None;
        let mut fatal = Vec::new();
        for chunk in spans.chunks(self.config.batch_size) {
            match self.post(chunk).await {
                Ok(()) => {}
                Err(e) if e.is_retryable() => retry = Some(e),
                Err(e) => fatal.push(e),
            }
        }
        match (retry, fatal.len()) {
            (Some(r), _) => Err(r),
            (None, 0) => Ok(()),
            (None, 1) => Err(fatal.remove(0)),
            (None, _) => {
                let messages: Vec<&str> = fatal.iter().map(ExportError::message).collect();
                Err(ExportError::fatal(messages.join("; ")))
            }
        }
    }

    /// The request body of `spans` in the configured encoding.
    fn encode(&self, spans: &[Span]) -> Result<Vec<u8>, ExportError> {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "operonx".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..InstrumentationScope::default()
                    }),
                    spans: spans.to_vec(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        match self.config.protocol {
            Protocol::HttpProtobuf => Ok(request.encode_to_vec()),
            Protocol::HttpJson => serde_json::to_vec(&request)
                .map_err(|e| ExportError::fatal(format!("otlp: cannot encode spans as JSON: {e}")).with_source(e)),
        }
    }

    async fn post(&self, spans: &[Span]) -> Result<(), ExportError> {
        let bytes = self.encode(spans)?;
        let resp = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, self.config.protocol.content_type())
            .body(bytes)
            .send()
            .await
            .map_err(|e| {
                ExportError::retryable(format!("otlp: cannot reach the collector: {}", crate::export::describe(&e)))
                    .with_source(e)
            })?;
        let status = resp.status().as_u16();
        let binary = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-protobuf"));
        let body = resp.bytes().await.unwrap_or_default();
        let rejected = if binary { proto_partial_success(&body) } else { json_partial_success(&body) };
        let text = || if binary { format!("{} byte(s) of protobuf", body.len()) } else { snippet(&body) };
        match status {
            200..=299 => match rejected {
                Some((n, msg)) => Err(ExportError::fatal(format!("otlp: collector rejected {n} span(s): {msg}"))),
                None => Ok(()),
            },
            401 | 403 => Err(ExportError::fatal(format!("otlp: HTTP {status} (check the headers): {}", text()))),
            408 | 429 | 500..=599 => Err(ExportError::retryable(format!("otlp: HTTP {status}: {}", text()))),
            _ => Err(ExportError::fatal(format!("otlp: HTTP {status}: {}", text()))),
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
