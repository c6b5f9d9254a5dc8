//! operonx tracing: what happens to the trace events a run emits.
//!
//! - [`TracePipeline`]: the shared sink runs hand events to. It buffers per run (bounded,
//!   with an explicit [`WhenFull`] policy and the dropped count written into the trace),
//!   applies [`processor`]s (drop, redact, sample, truncate, group_by) and hands batches
//!   to [`Exporter`]s from a background flusher it owns, retrying failures with backoff.
//!   Nothing here can block or fail a run.
//! - Exporters: [`SqliteStore`] (the default: `.operonx/traces.db`, also the reader for
//!   `operonx trace`), [`JsonlExporter`] (the wire format, one event per line),
//!   [`MemoryExporter`], [`langfuse`] and [`otlp`]; [`exporters_from_env`] builds the
//!   remote ones a user turned on with the usual variables or `resources.yaml`.
//! - [`media`]: images, audio and files in events (data URLs, base64 content parts)
//!   stored once by content hash beside the trace ([`media::MediaStore`]); the trace keeps
//!   `{"$media": sha256, ...}` references and `media_ref` events instead of base64
//!   ([`media::MediaOffload`], the pipeline's first step when set).
//! - [`view`]: runs and events rendered as a list, a span tree, a timeline or JSON.
//! - [`RecordedEvent`]: an event as the pipeline holds it — as the scheduler recorded it
//!   (built into a `TraceEvent` only for exporters that need one), built, or one of the
//!   pipeline's own run-level events ([`RunMeta`]); read through [`EventView`] either way.
//!
//! This crate depends on `operonx-runtime` for the event model and the `TraceSink`
//! trait, and on nothing above it.

mod blocking;
mod configure;
pub mod counting;
mod error;
pub mod export;
mod glob;
mod jsonl;
pub mod langfuse;
pub mod media;
mod memory;
mod op_cache;
pub mod otlp;
mod pipeline;
pub mod private;
pub mod processor;
mod recorded;
pub mod run_meta;
pub mod sqlite;
mod store;
mod summary;
pub mod view;

pub use configure::{ConfiguredExporters, exporters_from_env};
pub use error::{ConfigError, StoreError, TraceError};
pub use export::{BoxError, ExportError, Exporter};
pub use glob::Glob;
pub use jsonl::JsonlExporter;
pub use memory::MemoryExporter;
pub use op_cache::SqliteOpCache;
pub use pipeline::{PipelineConfig, PipelineStats, RetryPolicy, TracePipeline, TracePipelineBuilder, WhenFull};
pub use recorded::{EventForm, EventView, RecordedEvent};
pub use run_meta::{RunEnd, RunMeta};
pub use store::writer::Writer as ProcessIdentity;
pub use store::{DEFAULT_STORE_PATH, SqliteStore};
pub use summary::{RunStatus, RunSummary};
pub use view::{render_json, render_list, render_timeline, render_tree};
