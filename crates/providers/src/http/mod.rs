//! The HTTP layer every remote provider uses: one reqwest client per resource with its
//! timeouts, retries with backoff, admission (concurrency cap, request pace), and the
//! server-sent-events pump for streaming answers.

mod limit;
pub(crate) mod retry;
pub mod sse;

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::stream::{self, BoxStream};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::error::{ErrorKind, ProviderError, body_message};
use crate::rng::SplitMix;
use crate::secret::Secret;
use limit::{Admission, Limiter};
pub use retry::RetryPolicy;
use sse::{SseDecoder, SseEvent};

/// Transport settings shared by every remote resource (the fields of a resource entry
/// that are not provider-specific).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOptions {
    /// `timeout_s` (default 60): the whole request for plain calls; the wait for the
    /// response headers and then for each next chunk for streamed calls.
    pub timeout: Duration,
    /// `connect_timeout_s` (default 10).
    pub connect_timeout: Duration,
    /// `max_retries`, `retry_initial_backoff_s`, `retry_max_backoff_s`.
    pub retry: RetryPolicy,
    /// `max_concurrency`: requests of this resource in flight at once (default: no cap).
    pub max_concurrency: Option<usize>,
    /// `requests_per_second`: request starts per second (default: no pace).
    pub requests_per_second: Option<f64>,
    /// `headers`: extra request headers (values are treated as secrets).
    pub headers: Vec<(String, Secret)>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            max_concurrency: None,
            requests_per_second: None,
            headers: Vec::new(),
        }
    }
}

/// One POST to make (possibly several times).
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub url: reqwest::Url,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Call {
    /// A JSON POST to `url`.
    pub(crate) fn json(provider: &'static str, url: &str, body: &Value) -> Result<Self, ProviderError> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| ProviderError::new(ErrorKind::Config, provider, format!("invalid URL '{url}': {e}")))?;
        let body = serde_json::to_vec(body).map_err(|e| {
            ProviderError::new(ErrorKind::Config, provider, "could not serialize the request").with_source(e)
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Self { url, headers, body })
    }

    /// Add a header whose value is secret (marked sensitive, never logged).
    pub(crate) fn secret_header(
        mut self,
        provider: &'static str,
        name: &str,
        value: &str,
    ) -> Result<Self, ProviderError> {
        let (n, mut v) = header(provider, name, value)?;
        v.set_sensitive(true);
        self.headers.insert(n, v);
        Ok(self)
    }

    /// Add a plain header.
    pub(crate) fn header(mut self, provider: &'static str, name: &str, value: &str) -> Result<Self, ProviderError> {
        let (n, v) = header(provider, name, value)?;
        self.headers.insert(n, v);
        Ok(self)
    }
}

fn header(provider: &'static str, name: &str, value: &str) -> Result<(HeaderName, HeaderValue), ProviderError> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ProviderError::new(ErrorKind::Config, provider, format!("invalid header name '{name}'")))?;
    let v = HeaderValue::from_str(value)
        .map_err(|_| ProviderError::new(ErrorKind::Config, provider, format!("invalid value for header '{name}'")))?;
    Ok((n, v))
}

/// The HTTP client of one resource.
#[derive(Debug)]
pub(crate) struct Transport {
    client: reqwest::Client,
    provider: &'static str,
    timeout: Duration,
    retry: RetryPolicy,
    limiter: Limiter,
    rng: SplitMix,
    extra: HeaderMap,
}

impl Transport {
    /// A client for `provider` talking to `base_url` with `opts`.
    pub(crate) fn new(provider: &'static str, base_url: &str, opts: &HttpOptions) -> Result<Self, ProviderError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .user_agent(concat!("operonx/", env!("CARGO_PKG_VERSION")));
        if is_loopback(base_url) {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| {
            ProviderError::new(ErrorKind::Config, provider, "could not build the HTTP client").with_source(e)
        })?;
        let mut extra = HeaderMap::new();
        for (name, value) in &opts.headers {
            let (n, mut v) = header(provider, name, value.expose())?;
            v.set_sensitive(true);
            extra.insert(n, v);
        }
        Ok(Self {
            client,
            provider,
            timeout: opts.timeout,
            retry: opts.retry.clone(),
            limiter: Limiter::new(opts.max_concurrency, opts.requests_per_second),
            rng: SplitMix::from_entropy(),
            extra,
        })
    }

    /// POST and parse a JSON answer, retrying per the policy.
    pub(crate) async fn post_json(&self, call: &Call) -> Result<Value, ProviderError> {
        let mut retry = 0;
        loop {
            let admission = self.limiter.admit().await;
            let result = match tokio::time::timeout(self.timeout, self.json_once(call)).await {
                Ok(r) => r,
                Err(_) => Err(self.timeout_error("no complete answer")),
            };
            drop(admission);
            match result {
                Ok(v) => return Ok(v),
                Err(e) => match self.retry.delay(retry, &e, &self.rng) {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        retry += 1;
                    }
                    None => return Err(e),
                },
            }
        }
    }

    /// POST expecting an event stream; retries until the answer's status is a success.
    /// Output arrives through the returned stream; nothing is retried after that.
    pub(crate) async fn post_stream<H: EventHandler>(
        &self,
        call: &Call,
        handler: H,
    ) -> Result<BoxStream<'static, Result<H::Item, ProviderError>>, ProviderError> {
        let mut retry = 0;
        loop {
            let admission = self.limiter.admit().await;
            let result = match tokio::time::timeout(self.timeout, self.send(call)).await {
                Ok(r) => r,
                Err(_) => Err(self.timeout_error("no response headers")),
            };
            match result {
                Ok(resp) => return Ok(pump(resp, admission, self.timeout, self.provider, handler)),
                Err(e) => {
                    drop(admission);
                    match self.retry.delay(retry, &e, &self.rng) {
                        Some(wait) => {
                            tokio::time::sleep(wait).await;
                            retry += 1;
                        }
                        None => return Err(e),
                    }
                }
            }
        }
    }

    fn timeout_error(&self, what: &str) -> ProviderError {
        ProviderError::new(ErrorKind::Timeout, self.provider, format!("{what} within {:?}", self.timeout))
    }

    async fn json_once(&self, call: &Call) -> Result<Value, ProviderError> {
        let resp = self.send(call).await?;
        let bytes = resp.bytes().await.map_err(|e| transport_error(self.provider, e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ProviderError::new(ErrorKind::Protocol, self.provider, format!("malformed JSON answer: {e}")).with_source(e)
        })
    }

    /// Send once; a non-success status becomes an error carrying the provider's message.
    async fn send(&self, call: &Call) -> Result<reqwest::Response, ProviderError> {
        let mut headers = call.headers.clone();
        for (k, v) in &self.extra {
            headers.insert(k.clone(), v.clone());
        }
        let resp = self
            .client
            .post(call.url.clone())
            .headers(headers)
            .body(call.body.clone())
            .send()
            .await
            .map_err(|e| transport_error(self.provider, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let wait = retry::retry_after(resp.headers());
        let body = resp.bytes().await.unwrap_or_default();
        let mut err = ProviderError::http(self.provider, status.as_u16(), body_message(&body)).with_retry_after(wait);
        let text = String::from_utf8_lossy(&body);
        if status.is_client_error() && (text.contains("content_filter") || text.contains("content_policy")) {
            err = err.with_kind(ErrorKind::ContentFilter);
        }
        Err(err)
    }
}

fn is_loopback(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| h == "localhost" || h.starts_with("127.") || h == "[::1]" || h == "::1")
}

fn transport_error(provider: &'static str, e: reqwest::Error) -> ProviderError {
    let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Network };
    let what = if e.is_connect() {
        "could not connect"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    ProviderError::new(kind, provider, what).with_source(e)
}

/// Turns the events of one streamed answer into items.
pub(crate) trait EventHandler: Send + 'static {
    /// What the stream yields.
    type Item: Send + 'static;
    /// Handle one event; return `true` when the answer is complete.
    fn event(&mut self, event: SseEvent, out: &mut VecDeque<Self::Item>) -> Result<bool, ProviderError>;
    /// The connection ended without a completion event.
    fn end(&mut self, out: &mut VecDeque<Self::Item>) -> Result<(), ProviderError>;
}

struct Pump<H: EventHandler> {
    resp: Option<reqwest::Response>,
    decoder: SseDecoder,
    handler: H,
    queue: VecDeque<H::Item>,
    error: Option<ProviderError>,
    idle: Duration,
    provider: &'static str,
    _admission: Admission,
}

fn pump<H: EventHandler>(
    resp: reqwest::Response,
    admission: Admission,
    idle: Duration,
    provider: &'static str,
    handler: H,
) -> BoxStream<'static, Result<H::Item, ProviderError>> {
    let state = Pump {
        resp: Some(resp),
        decoder: SseDecoder::new(),
        handler,
        queue: VecDeque::new(),
        error: None,
        idle,
        provider,
        _admission: admission,
    };
    Box::pin(stream::unfold(state, |mut s| async move {
        loop {
            if let Some(item) = s.queue.pop_front() {
                return Some((Ok(item), s));
            }
            if let Some(e) = s.error.take() {
                s.resp = None;
                return Some((Err(e), s));
            }
            let idle = s.idle;
            let read = {
                let resp = s.resp.as_mut()?;
                tokio::time::timeout(idle, resp.chunk()).await
            };
            if let Err(e) = s.on_read(read) {
                s.error = Some(e);
            }
        }
    }))
}

impl<H: EventHandler> Pump<H> {
    fn on_read(
        &mut self,
        read: Result<Result<Option<impl AsRef<[u8]>>, reqwest::Error>, tokio::time::error::Elapsed>,
    ) -> Result<(), ProviderError> {
        let chunk = match read {
            Err(_) => {
                return Err(ProviderError::new(
                    ErrorKind::Timeout,
                    self.provider,
                    format!("the stream stalled: no data for {:?}", self.idle),
                ));
            }
            Ok(Err(e)) => return Err(transport_error(self.provider, e)),
            Ok(Ok(c)) => c,
        };
        let protocol = |e: sse::SseError| ProviderError::new(ErrorKind::Protocol, self.provider, e.to_string());
        match chunk {
            Some(bytes) => {
                for ev in self.decoder.push(bytes.as_ref()).map_err(protocol)? {
                    if self.handler.event(ev, &mut self.queue)? {
                        self.resp = None;
                        return Ok(());
                    }
                }
            }
            None => {
                self.resp = None;
                if let Some(ev) = self.decoder.finish().map_err(protocol)?
                    && self.handler.event(ev, &mut self.queue)?
                {
                    return Ok(());
                }
                self.handler.end(&mut self.queue)?;
            }
        }
        Ok(())
    }
}
