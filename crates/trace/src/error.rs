//! Errors of building a trace pipeline and of the trace store.

use std::path::PathBuf;

/// Why a trace pipeline or one of its parts could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// A processor or pipeline setting is out of range.
    #[error("invalid trace configuration: {0}")]
    Config(#[from] ConfigError),
    /// The trace store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A processor or pipeline setting that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `sample.rate` outside `0..=1` (or not a number).
    #[error("sample rate must be between 0 and 1, got {0}")]
    SampleRate(f64),
    /// A redaction pattern is not a valid regular expression.
    #[error("redaction pattern {pattern:?}: {source}")]
    Pattern {
        /// The pattern as given.
        pattern: String,
        /// What the regex parser said.
        #[source]
        source: Box<regex::Error>,
    },
    /// A size or count that must be positive is 0.
    #[error("{0} must be greater than 0")]
    Zero(&'static str),
    /// The `tracing:` section of `resources.yaml` is malformed.
    #[error("{0}")]
    Tracing(String),
    /// The OTLP exporter's settings (variables or section) are unusable.
    #[error(transparent)]
    Otlp(#[from] crate::otlp::OtlpError),
    /// The Langfuse exporter's settings (variables or section) are unusable.
    #[error(transparent)]
    Langfuse(#[from] crate::langfuse::LangfuseError),
}

/// Why the trace store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The directory of the database file could not be created.
    #[error("cannot create {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database file could not be created.
    #[error("cannot create {path}: {source}")]
    CreateFile {
        /// The database file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened or set up.
    #[error("cannot open trace store {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// There is no trace store at this path.
    #[error("no trace store at {0} (nothing has been traced here yet)")]
    Missing(PathBuf),
    /// The database was written by a newer build with a different schema.
    #[error(
        "{what} {path} has schema version {found}, newer than this build's ({supported}): it was written by a \
         newer operonx; upgrade operonx or use another file"
    )]
    Version {
        /// What the file is: `trace store` or `op cache`.
        what: &'static str,
        /// The database file.
        path: PathBuf,
        /// The version in the file.
        found: i64,
        /// The version this build reads and writes.
        supported: i64,
    },
    /// A query or write failed.
    #[error("trace store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No run has this id or id prefix.
    #[error("no run matches {0:?}")]
    RunNotFound(String),
    /// More than one run starts with this prefix.
    #[error("{prefix:?} matches several runs: {}", candidates.join(", "))]
    Ambiguous {
        /// The prefix as given.
        prefix: String,
        /// Some of the matching ids (newest first).
        candidates: Vec<String>,
    },
    /// A stored row cannot be read back as a trace event.
    #[error("event {event_id} in the trace store is unreadable: {reason}")]
    Corrupt {
        /// The event's id.
        event_id: String,
        /// What is wrong with it.
        reason: String,
    },
}
