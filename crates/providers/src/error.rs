//! [`ProviderError`]: the typed failure of a model-provider call.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// What kind of failure a provider call hit. Retry and fallback decisions read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The credentials were rejected (401/403).
    Auth,
    /// Too many requests (429); see [`ProviderError::retry_after`].
    RateLimit,
    /// The request was rejected as invalid (400, 404, 413, 422, ...).
    BadRequest,
    /// The provider refused the content (moderation / safety filter).
    ContentFilter,
    /// The provider failed or is overloaded (5xx, 529, 408/409).
    Server,
    /// No answer (or no next stream chunk) within the configured timeout.
    Timeout,
    /// The connection failed or broke.
    Network,
    /// The provider answered something this client cannot read (malformed JSON, a
    /// broken event stream, an error event in the middle of a stream).
    Protocol,
    /// The local configuration or the replay script cannot serve the request.
    Config,
}

impl ErrorKind {
    /// The snake_case name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Auth => "auth",
            ErrorKind::RateLimit => "rate_limit",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::ContentFilter => "content_filter",
            ErrorKind::Server => "server",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Network => "network",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Config => "config",
        }
    }

    /// Parse a snake_case kind name (used by replay scripts).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "auth" => ErrorKind::Auth,
            "rate_limit" => ErrorKind::RateLimit,
            "bad_request" => ErrorKind::BadRequest,
            "content_filter" => ErrorKind::ContentFilter,
            "server" => ErrorKind::Server,
            "timeout" => ErrorKind::Timeout,
            "network" => ErrorKind::Network,
            "protocol" => ErrorKind::Protocol,
            "config" => ErrorKind::Config,
            _ => return None,
        })
    }

    /// The kind an HTTP error status maps to.
    pub fn from_status(status: u16) -> Self {
        match status {
            401 | 403 => ErrorKind::Auth,
            429 => ErrorKind::RateLimit,
            408 => ErrorKind::Timeout,
            409 | 500..=599 => ErrorKind::Server,
            _ => ErrorKind::BadRequest,
        }
    }
}

/// A failed provider call. Keeps the provider's own message, the HTTP status and the
/// underlying error; never contains an API key.
#[derive(Debug)]
pub struct ProviderError {
    kind: ErrorKind,
    provider: &'static str,
    status: Option<u16>,
    message: String,
    retry_after: Option<Duration>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl ProviderError {
    /// A failure of `kind` reported by (or about) `provider`.
    pub fn new(kind: ErrorKind, provider: &'static str, message: impl Into<String>) -> Self {
        Self { kind, provider, status: None, message: message.into(), retry_after: None, source: None }
    }

    /// An HTTP error answer: the kind follows from the status.
    pub fn http(provider: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::from_status(status), provider, message).with_status(status)
    }

    /// Set the HTTP status.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Set the server-requested wait before a retry.
    #[must_use]
    pub fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// Keep `source` as the cause.
    #[must_use]
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Change the kind (e.g. a 400 that is really a content-filter refusal).
    #[must_use]
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// The failure kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The provider family (`openai`, `azure`, `anthropic`, `gemini`, `tei`, ...).
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The HTTP status, when the provider answered with one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The provider's message (or a description of the transport failure).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// How long the provider asked us to wait (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Whether retrying the same request may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::RateLimit | ErrorKind::Server | ErrorKind::Timeout | ErrorKind::Network)
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.status {
            write!(f, "[HTTP {s}] ")?;
        }
        write!(f, "{} {}: {}", self.provider, self.kind.as_str(), self.message)
    }
}

impl StdError for ProviderError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn StdError + 'static))
    }
}

/// The readable message of an error body: `error.message`, `message`, `detail`, or the
/// (shortened) text itself.
pub(crate) fn body_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(m) = error_message(&v)
    {
        return m;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_string();
    }
    shorten(text, 2000)
}

/// The message inside a JSON error document, if it has one.
pub(crate) fn error_message(v: &serde_json::Value) -> Option<String> {
    let e = v.get("error").unwrap_or(v);
    if let Some(s) = e.as_str() {
        return Some(s.to_string());
    }
    for key in ["message", "detail", "error"] {
        if let Some(s) = e.get(key).and_then(|m| m.as_str()) {
            let kind = e.get("type").or_else(|| e.get("code")).or_else(|| e.get("status")).and_then(|t| t.as_str());
            return Some(match kind {
                Some(k) if !k.is_empty() => format!("{s} ({k})"),
                _ => s.to_string(),
            });
        }
    }
    None
}

/// `text` cut to at most `max` characters.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_maps_to_kind_and_display_keeps_it() {
        let e = ProviderError::http("openai", 429, "slow down");
        assert_eq!(e.kind(), ErrorKind::RateLimit);
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "[HTTP 429] openai rate_limit: slow down");
        assert_eq!(ErrorKind::from_status(401), ErrorKind::Auth);
        assert_eq!(ErrorKind::from_status(529), ErrorKind::Server);
        assert_eq!(ErrorKind::from_status(404), ErrorKind::BadRequest);
        assert!(!ProviderError::http("x", 400, "no").is_retryable());
    }

    #[test]
    fn body_message_reads_provider_shapes() {
        assert_eq!(
            body_message(br#"{"error":{"message":"bad key","type":"invalid_request_error"}}"#),
            "bad key (invalid_request_error)"
        );
        assert_eq!(body_message(br#"{"detail":"nope"}"#), "nope");
        assert_eq!(body_message(b"plain text"), "plain text");
        assert_eq!(shorten("ééé", 2), "éé…");
    }
}
