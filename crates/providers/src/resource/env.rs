//! `${VAR}` / `${VAR:default}` interpolation and `.env` parsing (with `dotenvy`).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};

use serde_json::Value;

/// An environment variable that a resource needs but that is not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVar {
    /// The variable name.
    pub var: String,
    /// Where it is used: `llm:gpt.api_key`, `llm:gpt.headers.x-token`, `x.items[2]`.
    pub path: String,
}

impl fmt::Display for MissingVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at {})", self.var, self.path)
    }
}

/// What interpolating one resource produced besides the new value.
#[derive(Debug, Default)]
pub(crate) struct Interpolation {
    /// Required variables that were unset.
    pub missing: Vec<MissingVar>,
    /// The values substituted in (scrubbed from error messages).
    pub substituted: Vec<String>,
}

/// Replace `${VAR}` and `${VAR:default}` in every string of `value` (recursively through
/// maps and lists; keys are left alone). An unset required variable is recorded and its
/// placeholder kept.
pub(crate) fn interpolate(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut Interpolation,
) {
    match value {
        Value::String(s) if s.contains("${") => {
            *s = interpolate_str(s, path, env, out);
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{path}[{i}]"), env, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                interpolate(v, &format!("{path}.{k}"), env, out);
            }
        }
        _ => {}
    }
}

fn interpolate_str(s: &str, path: &str, env: &dyn Fn(&str) -> Option<String>, out: &mut Interpolation) -> String {
    let mut result = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        result.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            result.push_str(&rest[start..]);
            return result;
        };
        let inner = &after[..end];
        if inner.is_empty() || inner.contains('{') {
            result.push_str("${");
            rest = after;
            continue;
        }
        let (name, default) = match inner.split_once(':') {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (env(name), default) {
            (Some(v), _) => {
                out.substituted.push(v.clone());
                result.push_str(&v);
            }
            (None, Some(d)) => result.push_str(d),
            (None, None) => {
                out.missing.push(MissingVar { var: name.to_string(), path: path.to_string() });
                result.push_str(&rest[start..start + 3 + end]);
            }
        }
        rest = &after[end + 1..];
    }
    result.push_str(rest);
    result
}

/// A line of a `.env` file that could not be read. The message never quotes the line: its
/// value may be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DotenvError {
    /// 1-based line number (for a quoted value over several lines, the line it starts on).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parse a `.env` file with [`dotenvy`]'s syntax: `KEY=value` lines, optional `export `
/// prefix, `#` comments, blank lines, `'single'` quotes (literal), `"double"` quotes (may span
/// lines; `\n`, `\\`, `\"`, `\'`, `\$` escapes), and `$VAR` / `${VAR}` substitution from
/// the process environment or an earlier line (not inside single quotes). An unquoted value
/// ends at whitespace, after which only a `# comment` may follow. Later lines win.
///
/// Reads the process environment for substitutions but never changes it.
pub fn parse_dotenv(text: &str) -> Result<BTreeMap<String, String>, DotenvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let consumed = Cell::new(0);
    let reader = ByteByByte { rest: text.as_bytes(), consumed: &consumed };
    let mut vars = BTreeMap::new();
    // Byte offset where the entry being parsed starts (always at the start of a line).
    let mut entry_start = 0;
    for item in dotenvy::from_read_iter(reader) {
        match item {
            Ok((key, value)) => {
                vars.insert(key, value);
                entry_start = consumed.get();
            }
            Err(err) => {
                let line = first_entry_line(text, entry_start);
                let message = match err {
                    dotenvy::Error::LineParse(entry, index)
                        if index == entry.len() && consumed.get() == text.len() && entry.contains(['"', '\'']) =>
                    {
                        "unterminated quote: the value runs to the end of the file".to_string()
                    }
                    dotenvy::Error::LineParse(..) => "not a KEY=value line (a name of letters, digits, '_' and '.', \
                                                      then '='; quote a value that has spaces)"
                        .to_string(),
                    dotenvy::Error::Io(e) => format!("cannot read: {e}"),
                    _ => "cannot be read".to_string(),
                };
                return Err(DotenvError { line, message });
            }
        }
    }
    Ok(vars)
}

/// The 1-based number of the first line at or after byte `offset` that holds an entry (not
/// blank, not a comment): where dotenvy's next entry begins.
fn first_entry_line(text: &str, offset: usize) -> usize {
    let (before, after) = text.split_at(offset.min(text.len()));
    let skipped = after.lines().take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#')).count();
    before.matches('\n').count() + 1 + skipped
}

/// Hands dotenvy one byte per read, counting them, so that after each entry `consumed` is
/// exactly where that entry ended (its `BufReader` never reads ahead of the line it is on).
struct ByteByByte<'a> {
    rest: &'a [u8],
    consumed: &'a Cell<usize>,
}

impl Read for ByteByByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (self.rest.split_first(), buf.first_mut()) {
            (Some((byte, rest)), Some(slot)) => {
                *slot = *byte;
                self.rest = rest;
                self.consumed.set(self.consumed.get() + 1);
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn interpolates_required_default_and_collects_missing() {
        let mut v = json!({
            "a": "${KEY}",
            "b": "http://${HOST:localhost:8001}/v1",
            "c": ["x", "${NOPE}", "${KEY}-${ALSO_NOPE}"],
            "d": "${EMPTY:fallback}",
            "e": "literal ${} and ${a{b} and $KEY",
            "f": 3
        });
        let mut out = Interpolation::default();
        interpolate(&mut v, "llm:x", &env, &mut out);
        assert_eq!(v["a"], "sk-1");
        assert_eq!(v["b"], "http://localhost:8001/v1");
        assert_eq!(v["c"][1], "${NOPE}");
        assert_eq!(v["c"][2], "sk-1-${ALSO_NOPE}");
        assert_eq!(v["d"], "", "a variable set to the empty string counts as set");
        assert_eq!(v["e"], "literal ${} and ${a{b} and $KEY");
        assert_eq!(
            out.missing,
            vec![
                MissingVar { var: "NOPE".into(), path: "llm:x.c[1]".into() },
                MissingVar { var: "ALSO_NOPE".into(), path: "llm:x.c[2]".into() },
            ]
        );
        assert_eq!(out.substituted, vec!["sk-1", "sk-1", ""]);
    }

    #[test]
    fn dotenv_parses_quotes_comments_and_export() {
        let text = "# comment\n\nexport A=1\nB = word # trailing\nC='single # kept $A'\nD=\"line\\nbreak \\\"q\\\"\"\nE=\n\
                    F=\"two\nlines\"\nG=${A}-x\nA=override\n  # indented comment\nH=x#not-a-comment\n";
        let vars = parse_dotenv(text).unwrap();
        assert_eq!(vars["A"], "override", "later lines win");
        assert_eq!(vars["B"], "word");
        assert_eq!(vars["C"], "single # kept $A", "single quotes are literal");
        assert_eq!(vars["D"], "line\nbreak \"q\"");
        assert_eq!(vars["E"], "");
        assert_eq!(vars["F"], "two\nlines", "double quotes may span lines");
        assert_eq!(vars["G"], "1-x", "substitutes an earlier line");
        assert_eq!(vars["H"], "x#not-a-comment");
        assert_eq!(vars.len(), 8);
        assert_eq!(parse_dotenv("\u{feff}A=1").unwrap()["A"], "1", "a byte-order mark is skipped");
    }

    #[test]
    fn dotenv_never_sets_the_process_environment() {
        let vars = parse_dotenv("OPX_DOTENV_UNIT_TEST_ONLY=1\n").unwrap();
        assert_eq!(vars["OPX_DOTENV_UNIT_TEST_ONLY"], "1");
        assert!(std::env::var_os("OPX_DOTENV_UNIT_TEST_ONLY").is_none());
    }

    #[test]
    fn dotenv_errors_name_the_line() {
        assert_eq!(parse_dotenv("A=1\nnot a pair\n").unwrap_err().line, 2);
        assert_eq!(parse_dotenv("1X=2").unwrap_err().line, 1);
        // Blank lines, comments and a value over several lines still count.
        assert_eq!(parse_dotenv("\n# c\nA=\"x\ny\"\n\n  # c\nB=1\nC D=2\n").unwrap_err().line, 8);
        assert_eq!(parse_dotenv("A=1\n\nB=2\r\nbad\r\n").unwrap_err().line, 4);
        let open = parse_dotenv("A=1\nB=\"open\nC=2\n").unwrap_err();
        assert_eq!(open.line, 2, "an unclosed quote is reported where it opens");
        assert!(open.message.contains("unterminated"), "{open}");
        assert!(parse_dotenv("A='x' y").is_err());
        assert!(!parse_dotenv("A=1\nB=\"x\"\nexport\n").unwrap_err().message.contains("unterminated"));
        // Shell syntax (dotenvy's): an unquoted value ends at whitespace, so `B = two words`
        // (accepted by the earlier hand-written parser) must now be quoted.
        assert_eq!(parse_dotenv("A=1\nB = two words\n").unwrap_err().line, 2);
    }

    #[test]
    fn dotenv_errors_do_not_show_the_value() {
        for text in ["A=sk-secret-123 tail\n", "A=\"sk-secret-123\n", "A=\"sk-secret-123\\q\"\n", "sk-secret-123\n"] {
            let err = parse_dotenv(text).unwrap_err().to_string();
            assert!(!err.contains("secret"), "{err}");
            assert!(err.starts_with("line 1: "), "{err}");
        }
    }
}
