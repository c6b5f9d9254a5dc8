//! YAML text → JSON value, via `yaml-rust2`'s event parser and PyYAML's
//! YAML 1.1 scalar typing ([`super::yaml11`]): plain scalars are typed,
//! quoted and block scalars stay strings.

use std::collections::HashMap;

use serde_json::{Map, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::yaml11::resolve_plain;

/// Nesting (as estimated by [`estimate_depth`]) above which text is
/// rejected before reaching `yaml-rust2`, whose recursive parser can
/// otherwise overflow the stack on a few kilobytes of `- - - - ...`.
const MAX_DEPTH: usize = 200;

/// Parse the first YAML document of `text` into a JSON value. An empty
/// stream yields null.
pub(crate) fn parse(text: &str) -> Result<Value, String> {
    if estimate_depth(text) > MAX_DEPTH {
        return Err(format!("document nested too deeply (more than {MAX_DEPTH} levels)"));
    }
    let mut builder = Builder::default();
    Parser::new_from_str(text).load(&mut builder, false).map_err(|e| e.to_string())?;
    Ok(builder.document.unwrap_or(Value::Null))
}

/// A cheap over-estimate of the nesting depth of a YAML text: per line,
/// twice the number of enclosing indentation levels, plus the compact
/// indicators (`- `, `? `, `: `) opening the line, plus the flow bracket
/// depth reached on the line (brackets inside quotes are counted too; the
/// estimate only needs to be an upper bound for realistic input).
fn estimate_depth(text: &str) -> usize {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut deepest = 0usize;
    for line in text.lines() {
        let content = line.trim_start_matches(' ');
        if content.trim().is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        while indents.last().is_some_and(|&top| top >= indent) {
            indents.pop();
        }
        indents.push(indent);

        let mut rest = content;
        let mut compact = 0usize;
        while let Some(after) = ["- ", "? ", ": ", "-\t"].iter().find_map(|indicator| rest.strip_prefix(indicator)) {
            compact += 1;
            rest = after.trim_start_matches([' ', '\t']);
        }

        let mut line_flow = flow;
        for c in rest.chars() {
            match c {
                '[' | '{' => {
                    flow += 1;
                    line_flow = line_flow.max(flow);
                }
                ']' | '}' => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
        deepest = deepest.max(2 * indents.len() + compact + line_flow);
    }
    deepest
}

/// A container being built: its anchor, and its items (a mapping keeps
/// its pending key).
enum Open {
    Sequence(usize, Vec<Value>),
    Mapping(usize, Map<String, Value>, Option<String>),
}

/// Builds the first document's value from parser events.
#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: HashMap<usize, Value>,
    document: Option<Value>,
}

impl Builder {
    /// Attach a finished node to its parent, or make it the document.
    fn finish(&mut self, anchor: usize, value: Value) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            Some(Open::Sequence(_, items)) => items.push(value),
            Some(Open::Mapping(_, map, key)) => match key.take() {
                Some(key) => {
                    map.insert(key, value);
                }
                None => *key = Some(key_to_string(&value)),
            },
            None => {
                if self.document.is_none() {
                    self.document = Some(value);
                }
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, _mark: Marker) {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(text, style, tag.as_ref());
                self.finish(anchor, value);
            }
            Event::Alias(anchor) => {
                let value = self.anchors.get(&anchor).cloned().unwrap_or(Value::Null);
                self.finish(0, value);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Open::Sequence(anchor, Vec::new())),
            Event::MappingStart(anchor, _) => self.stack.push(Open::Mapping(anchor, Map::new(), None)),
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Open::Sequence(anchor, items)) => self.finish(anchor, Value::Array(items)),
                Some(Open::Mapping(anchor, map, _)) => self.finish(anchor, Value::Object(map)),
                None => {}
            },
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart | Event::DocumentEnd => {}
        }
    }
}

/// The value of a scalar: plain scalars are typed (YAML 1.1), others are
/// strings; a `!!str` tag keeps the text, other standard tags type it.
fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    let standard = tag.filter(|t| t.handle == "!!" || t.handle == "tag:yaml.org,2002:");
    match standard {
        Some(tag) if tag.suffix == "str" => Value::String(text),
        Some(_) => resolve_plain(&text),
        _ if style == TScalarStyle::Plain => resolve_plain(&text),
        _ => Value::String(text),
    }
}

/// Stringify a mapping key as JSON does: strings as-is, `true`/`false`,
/// `null`, numbers as written by JSON, containers as compact JSON.
fn key_to_string(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_scalars_and_containers() {
        let doc = parse(
            "user:\n  name: Bob\n  age: 25\n  score: 2.5\n  ok: true\n  none: ~\n  inf: .inf\ntags:\n  - a\n  - 1\n",
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({
                "user": {"name": "Bob", "age": 25, "score": 2.5, "ok": true, "none": null, "inf": null},
                "tags": ["a", 1]
            })
        );
    }

    #[test]
    fn plain_scalars_use_yaml_1_1_typing_quoted_ones_stay_strings() {
        let doc =
            parse("a: yes\nb: no\nc: on\nd: 'yes'\ne: Off\nf: \"010\"\nm: 010\nt: 1_000\nz: ~\nx: 0x1F\n").unwrap();
        assert_eq!(
            doc,
            json!({"a": true, "b": false, "c": true, "d": "yes", "e": false, "f": "010", "m": 8, "t": 1000, "z": null, "x": 31})
        );
        let doc = parse("l: |\n  yes\ns: !!str 12\ni: !!int \"12\"\n").unwrap();
        assert_eq!(doc, json!({"l": "yes\n", "s": "12", "i": 12}));
    }

    #[test]
    fn resolves_aliases() {
        let doc = parse("base: &b {k: 1}\ncopy: *b\nn: &n 5\nm: *n\n").unwrap();
        assert_eq!(doc, json!({"base": {"k": 1}, "copy": {"k": 1}, "n": 5, "m": 5}));
    }

    #[test]
    fn stringifies_non_string_keys() {
        let doc = parse("1: one\ntrue: yes\n1.5: x\n").unwrap();
        assert_eq!(doc, json!({"1": "one", "true": true, "1.5": "x"}));
    }

    #[test]
    fn takes_the_first_document() {
        assert_eq!(parse("a: 1\n---\nb: 2\n").unwrap(), json!({"a": 1}));
        assert_eq!(parse("").unwrap(), Value::Null);
    }

    #[test]
    fn reports_errors() {
        assert!(parse("a: [1, 2").is_err());
    }

    #[test]
    fn rejects_pathological_nesting_without_overflowing() {
        let compact = "- ".repeat(50_000);
        assert!(parse(&compact).unwrap_err().contains("nested too deeply"));
        let indented: String = (0..5_000).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        assert!(parse(&indented).unwrap_err().contains("nested too deeply"));
        let flow = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
        assert!(parse(&flow).is_err());
        // Ordinary nesting is untouched.
        let nested: String = (0..20).map(|i| format!("{}k{i}:\n", "  ".repeat(i))).collect();
        assert!(parse(&nested).is_ok());
        assert!(estimate_depth("a:\n  - b: [1, {c: 2}]\n  - d\n") < 10);
    }
}
