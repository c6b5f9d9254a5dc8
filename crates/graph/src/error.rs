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
    /// One line: control characters, line separators and bidirectional overrides in op
    /// names and messages are escaped (see [`printable`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = printable(&self.message);
        if self.path.is_empty() { f.write_str(&message) } else { write!(f, "{}: {message}", printable(&self.path)) }
    }
}

/// `text` safe to print on one line of a terminal: control characters (`\n`, `\r`,
/// `\t`, ESC, C1 controls), the line and paragraph separators and the bidirectional
/// overrides are written as escapes (`\n`, `\u{1b}`); everything else is kept.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_print_on_one_line_with_control_characters_escaped() {
        let d = Diagnostic::new("main.a\nmain.b: looks fine\u{1b}[2J", "bad\u{2028}x\u{202e}y\u{85}");
        assert_eq!(d.to_string(), "main.a\\nmain.b: looks fine\\u{1b}[2J: bad\\u{2028}x\\u{202e}y\\u{85}");
        assert_eq!(printable("plain \"quotes\" and ünïcode"), "plain \"quotes\" and ünïcode");
        assert_eq!(printable("a\tb\rc"), "a\\tb\\rc");
    }
}
