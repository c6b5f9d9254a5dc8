//! The exporter interface: where batches of finished trace events go.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use operonx_runtime::TraceEvent;

use crate::media::MediaStore;
use crate::recorded::RecordedEvent;

/// The cause of an export failure, of whatever type the exporter met (SQLite, I/O,
/// JSON encoding, HTTP).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an export failed. The message says what happened (and is what the pipeline logs);
/// [`std::error::Error::source`] gives the underlying error when there is one.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Worth retrying (network error, 429, 5xx, timeout).
    #[error("{message}")]
    Retryable {
        /// What went wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// Retrying will not help (bad credentials, 4xx, malformed data).
    #[error("{message}")]
    Fatal {
        /// What went wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
}

impl ExportError {
    /// A retryable failure with no underlying error.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable { message: message.into(), source: None }
    }

    /// A fatal failure with no underlying error.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self::Fatal { message: message.into(), source: None }
    }

    /// The same failure, caused by `source`.
    #[must_use]
    pub fn with_source(self, source: impl Into<BoxError>) -> Self {
        match self {
            Self::Retryable { message, .. } => Self::Retryable { message, source: Some(source.into()) },
            Self::Fatal { message, .. } => Self::Fatal { message, source: Some(source.into()) },
        }
    }

    /// Whether retrying may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// What went wrong (the display text).
    pub fn message(&self) -> &str {
        match self {
            Self::Retryable { message, .. } | Self::Fatal { message, .. } => message,
        }
    }
}

/// A destination for trace events. Exporters are called off the run's hot path, with
/// batches of events of one or more runs, in `(timestamp, seq)` order per run.
pub trait Exporter: Send + Sync + 'static {
    /// A short name for messages (`jsonl`, `sqlite`, `langfuse`, `otlp`).
    fn name(&self) -> &str;

    /// Send one batch. Must not panic; report failures as [`ExportError`].
    fn export<'a>(&'a self, batch: &'a [TraceEvent]) -> BoxFuture<'a, Result<(), ExportError>>;

    /// Send one batch the caller shares (the pipeline hands every exporter the same
    /// batch this way). Exporters that finish the work on another thread can keep the
    /// batch instead of copying it; the default borrows it for [`Exporter::export`].
    fn export_shared(&self, batch: Arc<Vec<TraceEvent>>) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async move { self.export(&batch).await })
    }

    /// Whether this exporter takes batches as recorded ([`Exporter::export_recorded`]):
    /// events the scheduler recorded are then never built into [`TraceEvent`]s for it.
    fn takes_recorded(&self) -> bool {
        false
    }

    /// Send one batch of events as the pipeline holds them (called instead of
    /// [`Exporter::export_shared`] when [`Exporter::takes_recorded`] says so). The default
    /// builds the wire events and sends them with [`Exporter::export_shared`].
    fn export_recorded(&self, batch: Arc<Vec<RecordedEvent>>) -> BoxFuture<'_, Result<(), ExportError>> {
        let events: Vec<TraceEvent> = batch.iter().map(RecordedEvent::to_event).collect();
        self.export_shared(Arc::new(events))
    }

    /// The pipeline offloads media into `store` (see [`crate::media`]): events reach this
    /// exporter with `{"$media": sha256, ...}` references where base64 was, and the bytes
    /// are read from `store` by their hash. Called once, when the pipeline is built; the
    /// default ignores it (exporters that keep the references as they are).
    fn use_media_store(&self, _store: Arc<dyn MediaStore>) {}

    /// Flush and release resources (called once when the pipeline shuts down).
    fn shutdown(&self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A request error with its causes (`connection refused`, not only "error sending
/// request for url ..."), for the HTTP exporters' messages.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let msg = s.to_string();
        if !text.contains(&msg) {
            text.push_str(": ");
            text.push_str(&msg);
        }
        source = s.source();
    }
    text
}
