//! Settings of the OTLP exporter: in code, from the standard `OTEL_*` variables, or from
//! the `tracing.otlp` section of `resources.yaml`.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;

/// The default OTLP/HTTP endpoint (a local collector).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318";

/// The OTLP transport and encoding (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf`: binary protobuf over HTTP (`application/x-protobuf`), the
    /// specification's default.
    #[default]
    HttpProtobuf,
    /// `http/json`: the OTLP/JSON mapping over HTTP (`application/json`).
    HttpJson,
}

impl Protocol {
    /// Parse a protocol name; `what` names the variable or setting in the error. `grpc` is
    /// refused with a clear message (this exporter has no gRPC transport).
    pub fn parse(what: &str, text: &str) -> Result<Self, OtlpError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "http/protobuf" => Ok(Self::HttpProtobuf),
            "http/json" => Ok(Self::HttpJson),
            "grpc" => Err(OtlpError::Invalid(format!(
                "{what}=grpc: OTLP over gRPC is not supported; use http/protobuf (the default) or http/json \
                 (collectors listen for it on port 4318)"
            ))),
            other => Err(OtlpError::Invalid(format!(
                "{what}: unknown protocol {other:?} (expected http/protobuf or http/json)"
            ))),
        }
    }

    /// The protocol's name as the variables spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpProtobuf => "http/protobuf",
            Self::HttpJson => "http/json",
        }
    }

    /// The request's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::HttpProtobuf => "application/x-protobuf",
            Self::HttpJson => "application/json",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an OTLP exporter could not be set up. Messages name the variable or setting at
/// fault and never contain header values.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// A setting (or environment variable) is unusable.
    #[error("invalid OTLP config: {0}")]
    Invalid(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Where and how to send spans.
#[derive(Clone)]
pub struct OtlpConfig {
    /// Base URL; spans go to `{endpoint}/v1/traces`.
    pub endpoint: String,
    /// Full URL of the traces endpoint, used as is (overrides `endpoint`).
    pub traces_endpoint: Option<String>,
    /// Encoding of the requests.
    pub protocol: Protocol,
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
            .field("protocol", &self.protocol)
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

/// Check that `headers` can be sent; errors name `what` and the header, never its value.
fn check_headers(what: &str, headers: &[(String, String)]) -> Result<(), OtlpError> {
    for (k, v) in headers {
        if HeaderName::from_bytes(k.as_bytes()).is_err() {
            return Err(OtlpError::Invalid(format!("{what}: {k:?} is not a valid header name")));
        }
        if HeaderValue::from_str(v).is_err() {
            return Err(OtlpError::Invalid(format!("{what}: the value of header {k:?} is not a valid header value")));
        }
    }
    Ok(())
}

/// Check that `url` is an absolute http(s) URL; the error names `what`.
fn check_url(what: &str, url: &str) -> Result<(), OtlpError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(()),
        Ok(u) => {
            Err(OtlpError::Invalid(format!("{what}: expected an http:// or https:// URL, got scheme {:?}", u.scheme())))
        }
        Err(e) => Err(OtlpError::Invalid(format!("{what}: not a URL ({e})"))),
    }
}

impl OtlpConfig {
    /// A config sending to `endpoint` (base URL) with default settings: `http/protobuf`,
    /// service `operonx`, 10 s timeout, content captured, 4096-character attributes, 128
    /// events per span, 512 spans per request.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            traces_endpoint: None,
            protocol: Protocol::HttpProtobuf,
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

    /// Read the standard variables from the process environment (see
    /// [`OtlpConfig::from_lookup`]).
    pub fn from_env() -> Result<Self, OtlpError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Read the standard variables through `var`. A signal-specific variable
    /// (`OTEL_EXPORTER_OTLP_TRACES_*`) takes precedence over the general one:
    ///
    /// - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (full URL, used as is), else
    ///   `OTEL_EXPORTER_OTLP_ENDPOINT` (base URL, `/v1/traces` appended; default
    ///   [`DEFAULT_ENDPOINT`]);
    /// - `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`:
    ///   `http/protobuf` (default) or `http/json`; `grpc` is an error;
    /// - `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS`
    ///   (`k=v,k2=v2`, values URL-decoded);
    /// - `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else `OTEL_EXPORTER_OTLP_TIMEOUT` (ms);
    /// - `OTEL_RESOURCE_ATTRIBUTES` (`k=v,...`) and `OTEL_SERVICE_NAME` (which wins over
    ///   a `service.name` in the attributes).
    ///
    /// Errors name the variable; they never contain header values.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, OtlpError> {
        let get = |k: &str| var(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let first = |names: [&'static str; 2]| names.into_iter().find_map(|n| get(n).map(|v| (n, v)));
        let mut c = Self::new(DEFAULT_ENDPOINT);
        if let Some(url) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            check_url("OTEL_EXPORTER_OTLP_ENDPOINT", &url)?;
            c.endpoint = url;
        }
        if let Some(url) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            check_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &url)?;
            c.traces_endpoint = Some(url);
        }
        if let Some((name, v)) = first(["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]) {
            c.protocol = Protocol::parse(name, &v)?;
        }
        if let Some((name, v)) = first(["OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"]) {
            c.headers = parse_pairs(name, &v)?;
            check_headers(name, &c.headers)?;
        }
        if let Some((name, v)) = first(["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"]) {
            let ms: u64 = v.parse().map_err(|_| OtlpError::Invalid(format!("{name} is not milliseconds: {v:?}")))?;
            c.timeout = Duration::from_millis(ms.max(1));
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

    /// Read the `tracing.otlp` section of `resources.yaml` (already interpolated):
    /// `endpoint`, `traces_endpoint`, `protocol`, `headers` (a mapping), `timeout_ms`,
    /// `service_name`, `resource_attributes` (a mapping), `capture_content`; `enabled` is
    /// read by the caller. Errors name the setting (`tracing.otlp.protocol`).
    pub fn from_section(section: &Value) -> Result<Self, OtlpError> {
        const AT: &str = "tracing.otlp";
        let map = section.as_object().ok_or_else(|| OtlpError::Invalid(format!("{AT} must be a mapping")))?;
        let mut c = Self::new(DEFAULT_ENDPOINT);
        for (key, value) in map {
            let what = format!("{AT}.{key}");
            let text = || scalar_text(value).ok_or_else(|| OtlpError::Invalid(format!("{what} must be a string")));
            match key.as_str() {
                "enabled" => {}
                "endpoint" => {
                    c.endpoint = text()?;
                    check_url(&what, &c.endpoint)?;
                }
                "traces_endpoint" => {
                    let url = text()?;
                    check_url(&what, &url)?;
                    c.traces_endpoint = Some(url);
                }
                "protocol" => c.protocol = Protocol::parse(&what, &text()?)?,
                "headers" => {
                    c.headers = string_map(&what, value)?;
                    check_headers(&what, &c.headers)?;
                }
                "timeout_ms" => {
                    let ms =
                        value.as_u64().ok_or_else(|| OtlpError::Invalid(format!("{what} must be milliseconds")))?;
                    c.timeout = Duration::from_millis(ms.max(1));
                }
                "service_name" => c.service_name = text()?,
                "resource_attributes" => c.resource_attributes = string_map(&what, value)?,
                "capture_content" => {
                    c.capture_content =
                        flag(value).ok_or_else(|| OtlpError::Invalid(format!("{what} must be true or false")))?;
                }
                _ => {
                    return Err(OtlpError::Invalid(format!(
                        "{what}: unknown setting (known: endpoint, traces_endpoint, protocol, headers, timeout_ms, \
                         service_name, resource_attributes, capture_content, enabled)"
                    )));
                }
            }
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

/// A scalar setting as text (numbers and booleans too: `${VAR}` may make any of them).
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A boolean setting: `true`/`false`, or their text (as `${VAR}` brings them in).
pub(crate) fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A mapping of scalar settings as pairs; the error names `what` and the key, not the value.
fn string_map(what: &str, v: &Value) -> Result<Vec<(String, String)>, OtlpError> {
    let map = v.as_object().ok_or_else(|| OtlpError::Invalid(format!("{what} must be a mapping")))?;
    map.iter()
        .map(|(k, v)| {
            scalar_text(v)
                .map(|t| (k.clone(), t))
                .ok_or_else(|| OtlpError::Invalid(format!("{what}.{k} must be a string")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_and_pairs() {
        assert_eq!(percent_decode("a%20b%3D%2c"), "a b=,");
        assert_eq!(percent_decode("100%"), "100%");
        let pairs = parse_pairs("X", "a=1, b = x%3Dy ,,").unwrap_or_default();
        assert_eq!(pairs, [("a".to_string(), "1".to_string()), ("b".to_string(), "x=y".to_string())]);
        assert!(
            matches!(parse_pairs("X", "novalue"), Err(OtlpError::Invalid(m)) if m == "X: entry 1 is not key=value")
        );
    }

    #[test]
    fn protocols() {
        assert_eq!(Protocol::parse("P", " HTTP/JSON ").ok(), Some(Protocol::HttpJson));
        assert_eq!(Protocol::parse("P", "http/protobuf").ok(), Some(Protocol::HttpProtobuf));
        let grpc =
            Protocol::parse("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(grpc.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc") && grpc.contains("not supported"), "{grpc}");
        let bad = Protocol::parse("P", "thrift").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(bad.contains("P: unknown protocol \"thrift\""), "{bad}");
    }
}
