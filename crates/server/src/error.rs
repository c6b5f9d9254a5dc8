//! What can stop the server or a worker from starting or running.

use std::path::PathBuf;

/// A server or worker error (bad input in a request is a [`crate::problem::Problem`]
/// instead, never one of these).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A graph of the graphs folder could not be read or compiled.
    #[error("graph {path}: {message}")]
    Graph {
        /// The graph file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The graphs folder could not be read.
    #[error("graphs folder {path}: {source}")]
    GraphsDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The tokens file is unusable.
    #[error("tokens file {path}: {message}")]
    Tokens {
        /// The file.
        path: PathBuf,
        /// What is wrong (never a token).
        message: String,
    },
    /// The server was asked to listen beyond loopback without tokens.
    #[error(
        "refusing to serve on {bind} without --tokens: anyone who reaches it could run graphs; bind to \
         127.0.0.1 (or ::1), or give a tokens file"
    )]
    Unprotected {
        /// The address asked for.
        bind: String,
    },
    /// The address could not be bound.
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        /// The address.
        bind: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The run store failed.
    #[error(transparent)]
    Store(#[from] operonx_store::StoreError),
}
