//! Format strings: `{name}` placeholders, `{{`/`}}` escapes, and the
//! rendering of JSON values into text.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value;

/// One piece of a compiled format string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Literal text, escapes already resolved.
    Text(String),
    /// A placeholder: the (trimmed) variable name and its source text
    /// (`{ name }`), kept to render a placeholder whose value is missing.
    Var { name: String, source: String },
}

/// A string compiled once into literal text and placeholders.
///
/// Rules: `{name}` (name trimmed, an identifier `[A-Za-z_][A-Za-z0-9_]*`)
/// is a placeholder; `{{` and `}}` are literal braces; any other `{`
/// (JSON text such as `{"a": 1}`, `{}`, an unterminated `{`) is kept
/// verbatim together with the `}` that closes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatString {
    /// The original text.
    source: String,
    /// The compiled pieces.
    pieces: Vec<Piece>,
}

impl FormatString {
    /// Compile `source`.
    pub(crate) fn compile(source: &str) -> Self {
        let bytes = source.as_bytes();
        let mut pieces = Vec::new();
        let mut literal = String::new();
        // Number of verbatim `{` still open: their `}` is kept verbatim too,
        // so that `{"a": {"b": 1}}` is not read as ending in a `}}` escape.
        let mut open_verbatim = 0usize;
        let mut i = 0;

        while i < bytes.len() {
            match bytes[i] {
                b'{' => {
                    if bytes.get(i + 1) == Some(&b'{') {
                        literal.push('{');
                        i += 2;
                    } else if let Some((name, end)) = placeholder_at(source, i) {
                        if !literal.is_empty() {
                            pieces.push(Piece::Text(std::mem::take(&mut literal)));
                        }
                        pieces.push(Piece::Var { name: name.to_owned(), source: source[i..=end].to_owned() });
                        i = end + 1;
                    } else {
                        literal.push('{');
                        open_verbatim += 1;
                        i += 1;
                    }
                }
                b'}' => {
                    if open_verbatim > 0 {
                        open_verbatim -= 1;
                        i += 1;
                    } else if bytes.get(i + 1) == Some(&b'}') {
                        i += 2;
                    } else {
                        i += 1;
                    }
                    literal.push('}');
                }
                _ => {
                    // Copy the run of text up to the next brace. Braces are
                    // ASCII, so `next` is always a char boundary.
                    let next = source[i..].find(['{', '}']).map_or(source.len(), |offset| i + offset);
                    literal.push_str(&source[i..next]);
                    i = next;
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Self { source: source.to_owned(), pieces }
    }

    /// The original, uncompiled text.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// The variable names referenced, in order (with repetitions).
    pub(crate) fn variables(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Var { name, .. } => Some(name.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// Render with `values`. A placeholder without a value is rendered as
    /// its source text (callers report missing variables beforehand).
    pub(crate) fn render(&self, values: &HashMap<String, Value>) -> String {
        let mut out = String::with_capacity(self.source.len());
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Var { name, source } => match values.get(name) {
                    Some(value) => out.push_str(&value_to_text(value)),
                    None => out.push_str(source),
                },
            }
        }
        out
    }
}

/// If a placeholder `{name}` starts at byte `open`, return its trimmed name
/// and the byte offset of its closing `}`.
fn placeholder_at(source: &str, open: usize) -> Option<(&str, usize)> {
    let inner_start = open + 1;
    let rest = source.get(inner_start..)?;
    let close = rest.find(['{', '}'])?;
    if rest.as_bytes().get(close) != Some(&b'}') {
        return None;
    }
    let name = rest[..close].trim();
    is_identifier(name).then_some((name, inner_start + close))
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Render a variable's value as text: strings raw, null as `None`,
/// booleans as `True`/`False`, numbers as JSON, arrays and objects as
/// compact JSON.
pub(crate) fn value_to_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        Value::Null => Cow::Borrowed("None"),
        Value::Bool(true) => Cow::Borrowed("True"),
        Value::Bool(false) => Cow::Borrowed("False"),
        Value::Number(n) => Cow::Owned(n.to_string()),
        Value::Array(_) | Value::Object(_) => Cow::Owned(value.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, vars: &[(&str, Value)]) -> String {
        let values: HashMap<String, Value> = vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        FormatString::compile(template).render(&values)
    }

    fn vars(template: &str) -> Vec<String> {
        FormatString::compile(template).variables().map(str::to_owned).collect()
    }

    #[test]
    fn substitutes_placeholders() {
        assert_eq!(render("Hello {name}!", &[("name", json!("Operon"))]), "Hello Operon!");
        assert_eq!(render("{ name }{name}", &[("name", json!("x"))]), "xx");
        assert_eq!(vars("{a} {b} {a} {_c1}"), ["a", "b", "a", "_c1"]);
    }

    #[test]
    fn resolves_escapes() {
        assert_eq!(render("{{x}}", &[]), "{x}");
        assert_eq!(render("{{{x}}}", &[("x", json!(1))]), "{1}");
        assert_eq!(render("a }} b", &[]), "a } b");
        assert!(vars("{{x}}").is_empty());
    }

    #[test]
    fn keeps_non_placeholder_braces() {
        let json_text = r#"Reply as {"answer": {"value": 1}} please"#;
        assert_eq!(render(json_text, &[]), json_text);
        assert!(vars(json_text).is_empty());
        assert_eq!(render("{ \"a\": 1 }", &[]), "{ \"a\": 1 }");
        assert_eq!(render("{} and {1} and {a.b} and {a b}", &[]), "{} and {1} and {a.b} and {a b}");
        assert_eq!(render("open { {x}", &[("x", json!("X"))]), "open { X");
        assert_eq!(render("tail {", &[]), "tail {");
        assert_eq!(render("lone } here", &[]), "lone } here");
        assert_eq!(render(r#"{"answer": "{answer}"}"#, &[("answer", json!("yes"))]), r#"{"answer": "yes"}"#);
    }

    #[test]
    fn handles_non_ascii_text() {
        assert_eq!(render("héllo {név} — ✓", &[("név", json!(1))]), "héllo {név} — ✓");
        assert_eq!(render("héllo {n} — ✓", &[("n", json!("ü"))]), "héllo ü — ✓");
    }

    #[test]
    fn renders_values_python_style() {
        assert_eq!(value_to_text(&json!(null)), "None");
        assert_eq!(value_to_text(&json!(true)), "True");
        assert_eq!(value_to_text(&json!(false)), "False");
        assert_eq!(value_to_text(&json!(3)), "3");
        assert_eq!(value_to_text(&json!(2.5)), "2.5");
        assert_eq!(value_to_text(&json!("raw \"s\"")), "raw \"s\"");
        assert_eq!(value_to_text(&json!([1, "a"])), "[1,\"a\"]");
        assert_eq!(value_to_text(&json!({"k": [true]})), "{\"k\":[true]}");
    }

    #[test]
    fn missing_values_render_their_source() {
        assert_eq!(render("x {missing } y", &[]), "x {missing } y");
    }
}
