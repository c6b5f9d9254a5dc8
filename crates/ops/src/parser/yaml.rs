//! YAML text → JSON value, via `yaml-rust2`.

use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

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
    let documents = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    Ok(documents.first().map_or(Value::Null, to_json))
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

/// Convert one YAML node.
fn to_json(node: &Yaml) -> Value {
    match node {
        Yaml::Null | Yaml::BadValue | Yaml::Alias(_) => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(_) => node.as_f64().and_then(Number::from_f64).map_or(Value::Null, Value::Number),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Hash(hash) => {
            let mut map = Map::with_capacity(hash.len());
            for (key, value) in hash {
                map.insert(key_to_string(key), to_json(value));
            }
            Value::Object(map)
        }
    }
}

/// Stringify a mapping key: strings as-is, scalars by their YAML spelling,
/// containers as compact JSON.
fn key_to_string(key: &Yaml) -> String {
    match key {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Null | Yaml::BadValue | Yaml::Alias(_) => "null".to_owned(),
        Yaml::Array(_) | Yaml::Hash(_) => to_json(key).to_string(),
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
    fn stringifies_non_string_keys() {
        let doc = parse("1: one\ntrue: yes\n1.5: x\n").unwrap();
        assert_eq!(doc, json!({"1": "one", "true": "yes", "1.5": "x"}));
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
