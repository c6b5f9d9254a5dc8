//! Errors of loading and validating a graph.

use std::fmt;

/// One problem found in a graph document, located by its path (`main.sub.b.inputs.x.ref`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where: an op's full name followed by the JSON path inside it.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// A new diagnostic.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Why a graph could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The text is not JSON, or a field has the wrong shape.
    #[error("{path}: {source}")]
    Json {
        /// JSON path of the offending value (`$` for the document).
        path: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// `schema_version` is missing or not one this engine reads.
    #[error("schema_version: {0}")]
    Schema(String),
    /// The document parsed but is not a valid graph; every problem found is listed.
    #[error("invalid graph ({} problem{}):\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, DiagList(.0))]
    Invalid(Vec<Diagnostic>),
}

impl GraphError {
    /// The individual problems (one for non-validation errors).
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            GraphError::Invalid(d) => d.clone(),
            other => vec![Diagnostic::new("", other.to_string())],
        }
    }
}

/// Diagnostics one per line, indented (the body of an "invalid graph" message).
pub(crate) struct DiagList<'a>(pub(crate) &'a [Diagnostic]);

impl fmt::Display for DiagList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  {d}")?;
        }
        Ok(())
    }
}
