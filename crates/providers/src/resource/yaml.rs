//! Reading `resources.yaml`: YAML to JSON values, and the nested/flat key layout.

use std::collections::BTreeMap;

use operonx_graph::type_names::kind_of;
use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// Why a resources document could not be laid out.
#[derive(Debug)]
pub(crate) enum LayoutError {
    /// Not YAML.
    Scan(yaml_rust2::ScanError),
    /// YAML, but not a resources document.
    Shape(String),
    /// The same `category:name` twice.
    Duplicate(String),
}

/// The top-level key of the trace exporters' settings (read by `operonx-trace`).
pub(crate) const TRACING: &str = "tracing";

/// A resources document laid out.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    /// `category:name → config`.
    pub(crate) resources: BTreeMap<String, Value>,
    /// Top-level keys that are not resources (never resolved).
    pub(crate) ignored: Vec<String>,
    /// The `tracing:` section, as written.
    pub(crate) tracing: Option<Value>,
}

/// Parse a resources document into `category:name → config`. Top-level keys are either
/// `category:name` (flat) or a category whose value maps names to configs (nested). An
/// empty document has no resources. The `tracing` key is the exporters' section, kept
/// apart. Other top-level keys without a colon whose value is not a block of mappings
/// are returned separately and never resolved.
pub(crate) fn parse_resources(text: &str) -> Result<Layout, LayoutError> {
    let docs = YamlLoader::load_from_str(text).map_err(LayoutError::Scan)?;
    let mut layout = Layout::default();
    let Some(doc) = docs.into_iter().next() else {
        return Ok(layout);
    };
    let Layout { resources: out, ignored, tracing } = &mut layout;
    let root = match to_json(&doc).map_err(LayoutError::Shape)? {
        Value::Null => return Ok(layout),
        Value::Object(m) => m,
        other => {
            return Err(LayoutError::Shape(format!(
                "the top level must be a mapping of resources, found {}",
                kind_of(&other)
            )));
        }
    };
    for (key, value) in root {
        if key == TRACING {
            *tracing = Some(value);
            continue;
        }
        if key.contains(':') {
            insert(out, key, value)?;
            continue;
        }
        let Value::Object(block) = value else {
            ignored.push(key);
            continue;
        };
        let maps = block.values().filter(|v| v.is_object()).count();
        if maps == 0 || block.is_empty() {
            ignored.push(key);
            continue;
        }
        if maps != block.len() {
            let bad: Vec<String> =
                block.iter().filter(|(_, v)| !v.is_object()).map(|(n, _)| format!("{key}:{n}")).collect();
            return Err(LayoutError::Shape(format!(
                "every entry of the '{key}' block must be a mapping of settings; not a mapping: {}",
                bad.join(", ")
            )));
        }
        for (name, cfg) in block {
            insert(out, format!("{key}:{name}"), cfg)?;
        }
    }
    Ok(layout)
}

fn insert(out: &mut BTreeMap<String, Value>, key: String, value: Value) -> Result<(), LayoutError> {
    if out.contains_key(&key) {
        return Err(LayoutError::Duplicate(key));
    }
    out.insert(key, value);
    Ok(())
}

/// A YAML node as JSON. Mapping keys must be scalars.
pub(crate) fn to_json(y: &Yaml) -> Result<Value, String> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::Number((*i).into()),
        Yaml::Real(s) => match s.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Value::Number(n),
            None => Value::String(s.clone()),
        },
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) | Yaml::Real(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    Yaml::Null => "null".to_string(),
                    _ => return Err("mapping keys must be scalars".into()),
                };
                m.insert(key, to_json(v)?);
            }
            Value::Object(m)
        }
        Yaml::Alias(_) => return Err("YAML aliases are not supported".into()),
        Yaml::BadValue => return Err("invalid YAML value".into()),
    })
}

/// Parse a YAML (or JSON, which is YAML) document into a JSON value.
pub(crate) fn yaml_to_value(text: &str) -> Result<Value, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    match docs.first() {
        Some(d) => to_json(d),
        None => Ok(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_flat_layouts_flatten() {
        let text = "llm:a: {api_type: openai, model: m}\nllm:\n  b:\n    api_type: replay\n    n: 1.5\nembedding:\n  e: {api_type: tei}\nlangfuse:\n  public_key: x\ntracing:\n  otlp: {endpoint: 'http://h:4318'}\n";
        let layout = parse_resources(text).unwrap();
        let res = &layout.resources;
        assert_eq!(res.keys().collect::<Vec<_>>(), vec!["embedding:e", "llm:a", "llm:b"]);
        assert_eq!(res["llm:b"]["n"], 1.5);
        assert_eq!(layout.ignored, vec!["langfuse"]);
        assert_eq!(layout.tracing, Some(serde_json::json!({"otlp": {"endpoint": "http://h:4318"}})));
    }

    #[test]
    fn duplicates_and_mixed_blocks_are_errors() {
        assert!(matches!(
            parse_resources("llm:a: {model: x}\nllm:\n  a: {model: y}\n"),
            Err(LayoutError::Duplicate(k)) if k == "llm:a"
        ));
        match parse_resources("llm:\n  a: {model: x}\n  b:\n") {
            Err(LayoutError::Shape(m)) => assert!(m.contains("llm:b"), "{m}"),
            other => panic!("{other:?}"),
        }
        match parse_resources("- 1\n") {
            Err(LayoutError::Shape(m)) => assert_eq!(m, "the top level must be a mapping of resources, found an array"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_resources("a: [\n"), Err(LayoutError::Scan(_))));
        assert!(parse_resources("  \n").unwrap().resources.is_empty());
    }
}
