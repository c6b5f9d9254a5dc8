//! `${VAR}` / `${VAR:default}` interpolation and a small `.env` parser.

use std::collections::BTreeMap;
use std::fmt;

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

/// A line of a `.env` file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DotenvError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parse a `.env` file: `KEY=value` lines, optional `export ` prefix, `#` comments, blank
/// lines, `'single'` quotes (literal) and `"double"` quotes (with `\n`, `\t`, `\"`, `\\`
/// escapes). Unquoted values are trimmed and lose a trailing ` # comment`. Later lines win.
pub fn parse_dotenv(text: &str) -> Result<BTreeMap<String, String>, DotenvError> {
    let mut vars = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map(str::trim_start).unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(DotenvError { line: line_no, message: "expected KEY=value".into() });
        };
        let key = key.trim();
        let valid = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(DotenvError { line: line_no, message: format!("invalid variable name '{key}'") });
        }
        let value = parse_value(value.trim()).map_err(|message| DotenvError { line: line_no, message })?;
        vars.insert(key.to_string(), value);
    }
    Ok(vars)
}

fn parse_value(v: &str) -> Result<String, String> {
    if let Some(body) = v.strip_prefix('\'') {
        let end = body.find('\'').ok_or("unterminated single quote")?;
        check_trailing(&body[end + 1..])?;
        return Ok(body[..end].to_string());
    }
    if let Some(body) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, other)) => out.push(other),
                    None => return Err("unterminated double quote".into()),
                },
                '"' => {
                    check_trailing(&body[i + 1..])?;
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        return Err("unterminated double quote".into());
    }
    let v = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    Ok(v.trim_end().to_string())
}

fn check_trailing(rest: &str) -> Result<(), String> {
    let rest = rest.trim();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err(format!("unexpected text after quoted value: '{rest}'"))
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
        let text = "# comment\n\nexport A=1\nB = two words # trailing\nC='single # kept'\nD=\"line\\nbreak \\\"q\\\"\"\nE=\nA=override\n";
        let vars = parse_dotenv(text).unwrap();
        assert_eq!(vars["A"], "override");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "single # kept");
        assert_eq!(vars["D"], "line\nbreak \"q\"");
        assert_eq!(vars["E"], "");
    }

    #[test]
    fn dotenv_errors_name_the_line() {
        assert_eq!(parse_dotenv("A=1\nnot a pair\n").unwrap_err().line, 2);
        assert_eq!(parse_dotenv("1X=2").unwrap_err().line, 1);
        assert!(parse_dotenv("A=\"open").unwrap_err().message.contains("unterminated"));
        assert!(parse_dotenv("A='x' y").is_err());
    }
}
