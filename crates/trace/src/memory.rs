//! An exporter that keeps batches in memory (tests, tools that render a trace at once).

use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;
use operonx_runtime::TraceEvent;

use crate::export::{ExportError, Exporter};

/// Keeps every batch it is given. Clones share the batches.
#[derive(Debug, Clone, Default)]
pub struct MemoryExporter {
    batches: Arc<Mutex<Vec<Vec<TraceEvent>>>>,
}

impl MemoryExporter {
    /// An empty exporter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The batches received so far, in order.
    pub fn batches(&self) -> Vec<Vec<TraceEvent>> {
        self.batches.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Every event received so far, in order.
    pub fn events(&self) -> Vec<TraceEvent> {
        self.batches().into_iter().flatten().collect()
    }
}

impl Exporter for MemoryExporter {
    fn name(&self) -> &str {
        "memory"
    }

    fn export<'a>(&'a self, batch: &'a [TraceEvent]) -> BoxFuture<'a, Result<(), ExportError>> {
        self.batches.lock().unwrap_or_else(PoisonError::into_inner).push(batch.to_vec());
        Box::pin(async { Ok(()) })
    }
}
