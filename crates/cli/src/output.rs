//! What the CLI prints: stdout through [`out`] (a closed pipe ends the program quietly),
//! and every channel — the result, stderr diagnostics, `tracing` logs — with the
//! configured secret values replaced by `[REDACTED]`
//! ([`operonx::graph::secrets::REDACTED`], through [`Redactor`]).

use std::io::Write;
use std::sync::{Arc, PoisonError, RwLock};

use operonx::Value;
use operonx::graph::SecretSet;

/// The secret values the CLI redacts from all it prints and saves: the resources' keys
/// and tokens, known once `resources.yaml` is loaded ([`Redactor::merge`]). Clones share
/// the set (the log writer holds one from the start).
#[derive(Clone, Default)]
pub(crate) struct Redactor(Arc<RwLock<SecretSet>>);

impl Redactor {
    /// Redact the values of `secrets` too from now on.
    pub(crate) fn merge(&self, secrets: &SecretSet) {
        self.0.write().unwrap_or_else(PoisonError::into_inner).merge(secrets);
    }

    /// Redact these values too from now on.
    pub(crate) fn add(&self, values: &[String]) {
        let mut set = self.0.write().unwrap_or_else(PoisonError::into_inner);
        for v in values {
            set.insert(v);
        }
    }

    /// The values redacted.
    pub(crate) fn secrets(&self) -> SecretSet {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// `text` with the secrets replaced.
    pub(crate) fn text(&self, text: &str) -> String {
        self.0.read().unwrap_or_else(PoisonError::into_inner).redact(text).into_owned()
    }

    /// `value` with the secrets replaced in every string (and key).
    pub(crate) fn value(&self, value: &mut Value) {
        self.0.read().unwrap_or_else(PoisonError::into_inner).redact_value(value);
    }
}

/// A line on stderr, secrets redacted.
macro_rules! errln {
    ($redactor:expr, $($arg:tt)*) => {
        eprintln!("{}", $redactor.text(&format!($($arg)*)))
    };
}
pub(crate) use errln;

/// Print to stdout. A closed pipe comes back as an error, which `main` takes as the end.
pub(crate) fn out(text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    std::io::stdout().lock().write_fmt(text)
}

/// [`out`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::out(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// Whether `e` is a write to a pipe whose reader has gone.
pub(crate) fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// The writer of `tracing` logs: stderr, each record redacted as a whole before it is
/// written (a secret cannot be split across writes).
#[derive(Clone)]
pub(crate) struct LogWriter(pub(crate) Redactor);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogRecord;

    fn make_writer(&'a self) -> LogRecord {
        LogRecord { text: Vec::new(), redactor: self.0.clone() }
    }
}

/// One log record, written to stderr (redacted) when dropped.
pub(crate) struct LogRecord {
    text: Vec<u8>,
    redactor: Redactor,
}

impl Write for LogRecord {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogRecord {
    fn drop(&mut self) {
        let text = self.redactor.text(&String::from_utf8_lossy(&self.text));
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}
