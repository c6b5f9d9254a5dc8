//! The half every HTTP chat client shares: a provider supplies its wire format
//! ([`Wire`]: how to build a call, read an answer, and read a stream), and [`HttpChat`]
//! makes it a [`ChatClient`].

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::{ChatClient, ChatDelta, ChatRequest, ChatResponse, DeltaStream};
use crate::error::ProviderError;
use crate::http::{Call, EventHandler, Transport};

/// A provider's wire format.
pub(crate) trait Wire: Send + Sync + std::fmt::Debug + 'static {
    /// Reads the provider's event stream into deltas.
    type Stream: EventHandler<Item = ChatDelta>;
    /// The provider family.
    fn provider(&self) -> &'static str;
    /// The model name sent.
    fn model(&self) -> &str;
    /// The HTTP transport (retries, timeouts, limits).
    fn transport(&self) -> &Transport;
    /// The HTTP call for `request` (streamed or not).
    fn call(&self, request: &ChatRequest, stream: bool) -> Result<Call, ProviderError>;
    /// Read a non-streamed answer.
    fn parse(&self, answer: &Value) -> Result<ChatResponse, ProviderError>;
    /// A reader for one streamed answer.
    fn stream_handler(&self) -> Self::Stream;
}

/// A chat client over a provider's wire format.
#[derive(Debug)]
pub(crate) struct HttpChat<W>(Arc<W>);

impl<W: Wire> HttpChat<W> {
    pub(crate) fn new(wire: W) -> Self {
        Self(Arc::new(wire))
    }
}

impl<W: Wire> ChatClient for HttpChat<W> {
    fn provider(&self) -> &'static str {
        self.0.provider()
    }

    fn model(&self) -> &str {
        self.0.model()
    }

    fn chat(&self, request: ChatRequest) -> BoxFuture<'static, Result<ChatResponse, ProviderError>> {
        let wire = Arc::clone(&self.0);
        Box::pin(async move {
            let call = wire.call(&request, false)?;
            let answer = wire.transport().post_json(&call).await?;
            wire.parse(&answer)
        })
    }

    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'static, Result<DeltaStream, ProviderError>> {
        let wire = Arc::clone(&self.0);
        Box::pin(async move {
            let call = wire.call(&request, true)?;
            wire.transport().post_stream(&call, wire.stream_handler()).await
        })
    }
}
