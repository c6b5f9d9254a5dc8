//! Format strings with Python `str.format_map` semantics.
//!
//! A string without `{` is used verbatim (the reference only formats
//! strings that contain a `{`). Otherwise it is parsed as a Python format
//! string: `{{`/`}}` are literal braces, `{key[0].attr!r:>{width}}` is a
//! replacement field (key, accessors, conversion `!r`/`!s`/`!a`, format
//! spec, which may itself contain fields), and anything else (a lone `{`
//! or `}`, a positional field such as `{}` or `{0}`) is an error raised
//! when the string is rendered, after the text before it.

use operonx_graph::expr::{repr, to_py_str, type_name};
use serde_json::Value;

use super::spec::format_value;

/// Why a format string could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RenderError {
    /// A field names a variable that has no value (Python's `KeyError`).
    Missing(String),
    /// Any other failure, with Python's message.
    Format(String),
}

/// One step after the key of a field: `.attr` or `[index]`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Access {
    Attr(String),
    Index(String),
}

/// A replacement field.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    key: String,
    path: Vec<Access>,
    conversion: Option<char>,
    /// The format spec: literal, or a nested format string to expand.
    spec: Spec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Spec {
    Literal(String),
    Nested(Box<FormatString>),
}

/// One piece of a compiled format string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Literal text, escapes already resolved.
    Text(String),
    /// A replacement field.
    Field(Field),
    /// A format error; rendering stops here.
    Fail(String),
}

/// A string compiled once into literal text and replacement fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatString {
    /// The original text.
    source: String,
    /// `None` when the string has no `{` and is used verbatim.
    pieces: Option<Vec<Piece>>,
}

/// Python allows a format spec to contain fields, but not deeper.
const MAX_DEPTH: u8 = 2;

impl FormatString {
    /// Compile `source`.
    pub(crate) fn compile(source: &str) -> Self {
        let pieces = source.contains('{').then(|| parse(source, MAX_DEPTH));
        Self { source: source.to_owned(), pieces }
    }

    /// The variable names referenced, in order (with repetitions), nested
    /// spec fields included.
    pub(crate) fn variables(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_variables(&mut out);
        out
    }

    fn collect_variables<'a>(&'a self, out: &mut Vec<&'a str>) {
        for piece in self.pieces.iter().flatten() {
            if let Piece::Field(field) = piece {
                out.push(field.key.as_str());
                if let Spec::Nested(spec) = &field.spec {
                    spec.collect_variables(out);
                }
            }
        }
    }

    /// Render with `lookup` giving each variable's value.
    pub(crate) fn render(&self, lookup: &dyn Fn(&str) -> Option<Value>) -> Result<String, RenderError> {
        let Some(pieces) = &self.pieces else { return Ok(self.source.clone()) };
        let mut out = String::with_capacity(self.source.len());
        for piece in pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Fail(message) => return Err(RenderError::Format(message.clone())),
                Piece::Field(field) => out.push_str(&render_field(field, lookup)?),
            }
        }
        Ok(out)
    }
}

fn render_field(field: &Field, lookup: &dyn Fn(&str) -> Option<Value>) -> Result<String, RenderError> {
    let mut value = lookup(&field.key).ok_or_else(|| RenderError::Missing(field.key.clone()))?;
    for access in &field.path {
        value = apply_access(value, access).map_err(RenderError::Format)?;
    }
    let value = match field.conversion {
        None => value,
        Some('s') => Value::String(to_py_str(&value)),
        Some('r') => Value::String(repr(&value)),
        Some('a') => Value::String(ascii(&repr(&value))),
        Some(other) => return Err(RenderError::Format(format!("Unknown conversion specifier {other}"))),
    };
    let spec = match &field.spec {
        Spec::Literal(spec) => spec.clone(),
        Spec::Nested(spec) => spec.render(lookup)?,
    };
    format_value(&value, &spec).map_err(RenderError::Format)
}

/// `value.attr` or `value[index]`, as far as JSON values allow: objects are
/// indexed by key, lists and strings by a non-negative integer; attributes
/// are never available.
fn apply_access(value: Value, access: &Access) -> Result<Value, String> {
    match access {
        Access::Attr(name) => Err(format!("'{}' object has no attribute '{name}'", type_name(&value))),
        Access::Index(index) => {
            let position = (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
                .then(|| index.parse::<usize>().ok())
                .flatten();
            match (value, position) {
                (Value::Object(mut map), None) => map.remove(index).ok_or_else(|| repr(&Value::String(index.clone()))),
                (Value::Object(_), Some(i)) => Err(i.to_string()),
                (Value::Array(mut items), Some(i)) if i < items.len() => Ok(items.swap_remove(i)),
                (Value::Array(_), Some(_)) => Err("list index out of range".to_owned()),
                (Value::String(s), Some(i)) => s
                    .chars()
                    .nth(i)
                    .map(|c| Value::String(c.to_string()))
                    .ok_or_else(|| "string index out of range".to_owned()),
                (other @ (Value::Array(_) | Value::String(_)), None) => {
                    Err(format!("{} indices must be integers or slices, not str", type_name(&other)))
                }
                (other, _) => Err(format!("'{}' object is not subscriptable", type_name(&other))),
            }
        }
    }
}

/// Python `ascii()` from a `repr()`: non-ASCII characters escaped.
fn ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match u32::from(c) {
            code @ 0..=0x7f => out.push(char::from(u8::try_from(code).unwrap_or(b'?'))),
            code @ 0x80..=0xff => out.push_str(&format!("\\x{code:02x}")),
            code @ 0x100..=0xffff => out.push_str(&format!("\\u{code:04x}")),
            code => out.push_str(&format!("\\U{code:08x}")),
        }
    }
    out
}

/// Parse a format string into pieces (a parse error becomes a final
/// [`Piece::Fail`]). `depth` is how many levels of fields may still nest.
fn parse(source: &str, depth: u8) -> Vec<Piece> {
    let bytes = source.as_bytes();
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    let fail = |pieces: &mut Vec<Piece>, literal: &mut String, message: &str| {
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(literal)));
        }
        pieces.push(Piece::Fail(message.to_owned()));
    };
    while i < bytes.len() {
        match bytes[i] {
            b'}' => {
                if bytes.get(i + 1) == Some(&b'}') {
                    literal.push('}');
                    i += 2;
                } else {
                    fail(&mut pieces, &mut literal, "Single '}' encountered in format string");
                    return pieces;
                }
            }
            b'{' => {
                if bytes.get(i + 1) == Some(&b'{') {
                    literal.push('{');
                    i += 2;
                    continue;
                }
                if i + 1 >= bytes.len() {
                    fail(&mut pieces, &mut literal, "Single '{' encountered in format string");
                    return pieces;
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                match parse_field(source, i + 1, depth) {
                    Ok((field, next)) => {
                        pieces.push(Piece::Field(field));
                        i = next;
                    }
                    Err(message) => {
                        pieces.push(Piece::Fail(message));
                        return pieces;
                    }
                }
            }
            _ => {
                // Braces are ASCII, so `next` is always a char boundary.
                let next = source[i..].find(['{', '}']).map_or(source.len(), |offset| i + offset);
                literal.push_str(&source[i..next]);
                i = next;
            }
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    pieces
}

/// Parse the field starting at byte `start` (just after its `{`); returns
/// the field and the byte offset after its closing `}`.
fn parse_field(source: &str, start: usize, depth: u8) -> Result<(Field, usize), String> {
    let bytes = source.as_bytes();
    let mut i = start;
    let mut end_char = None;
    while i < bytes.len() {
        let c = bytes[i];
        i += 1;
        match c {
            b'{' => return Err("unexpected '{' in field name".to_owned()),
            b'[' => {
                while i < bytes.len() && bytes[i] != b']' {
                    i += 1;
                }
            }
            b'}' | b':' | b'!' => {
                end_char = Some(c);
                break;
            }
            _ => {}
        }
    }
    let Some(mut c) = end_char else { return Err("expected '}' before end of string".to_owned()) };
    let name = &source[start..i - 1];
    let (key, path) = parse_name(name)?;
    let mut conversion = None;
    if c == b'!' {
        let Some(conv) = source[i..].chars().next() else {
            return Err("end of string while looking for conversion specifier".to_owned());
        };
        conversion = Some(conv);
        i += conv.len_utf8();
        match bytes.get(i) {
            Some(b'}') => c = b'}',
            Some(b':') => c = b':',
            _ => return Err("expected ':' after conversion specifier".to_owned()),
        }
        i += 1;
    }
    let mut spec = Spec::Literal(String::new());
    if c == b':' {
        let spec_start = i;
        let mut count = 1usize;
        let mut nested = false;
        loop {
            let Some(&b) = bytes.get(i) else { return Err("unmatched '{' in format spec".to_owned()) };
            i += 1;
            match b {
                b'{' => {
                    nested = true;
                    count += 1;
                }
                b'}' => {
                    count -= 1;
                    if count == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
        let text = &source[spec_start..i - 1];
        spec = if !nested {
            Spec::Literal(text.to_owned())
        } else if depth <= 1 {
            Spec::Nested(Box::new(FormatString {
                source: text.to_owned(),
                pieces: Some(vec![Piece::Fail("Max string recursion exceeded".to_owned())]),
            }))
        } else {
            Spec::Nested(Box::new(FormatString { source: text.to_owned(), pieces: Some(parse(text, depth - 1)) }))
        };
    }
    Ok((Field { key, path, conversion, spec }, i))
}

/// Split a field name into its key and accessors. Empty and integer keys
/// are positional fields, which `format_map` cannot fill.
fn parse_name(name: &str) -> Result<(String, Vec<Access>), String> {
    let first_end = name.find(['.', '[']).unwrap_or(name.len());
    let key = &name[..first_end];
    if key.is_empty() || key.bytes().all(|b| b.is_ascii_digit()) {
        return Err("Format string contains positional fields".to_owned());
    }
    let mut path = Vec::new();
    let mut rest = &name[first_end..];
    while let Some(&kind) = rest.as_bytes().first() {
        rest = &rest[1..];
        if kind == b'.' {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if end == 0 {
                return Err("Empty attribute in format string".to_owned());
            }
            path.push(Access::Attr(rest[..end].to_owned()));
            rest = &rest[end..];
        } else {
            let Some(end) = rest.find(']') else { return Err("Missing ']' in format string".to_owned()) };
            if end == 0 {
                return Err("Empty attribute in format string".to_owned());
            }
            path.push(Access::Index(rest[..end].to_owned()));
            rest = &rest[end + 1..];
            if !rest.is_empty() && !rest.starts_with(['.', '[']) {
                return Err("Only '.' or '[' may follow ']' in format field specifier".to_owned());
            }
        }
    }
    Ok((key.to_owned(), path))
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
