//! What changed between two versions of a graph document, in words: a run started on
//! one version is not resumed on another without saying what differs.

use serde_json::{Map, Value};

/// The differences between graph documents `before` and `after`, one line each
/// (`op main.b changed: inputs, func_name`, `op main.c added`, `graph main: outputs
/// changed`), ops compared by full name through nested graphs. Empty when they are the same.
pub fn changes(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let named = |key: &str| before.get(key).and_then(Value::as_str).filter(|n| !n.is_empty());
    let name = named("full_name").or_else(|| named("name")).unwrap_or("main");
    compare_graph(name, before, after, &mut out);
    out
}

/// A node's full name: as written, else its parent's and its key (compact documents).
fn full_name(parent: &str, key: &str, node: &Value) -> String {
    match node.get("full_name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
        Some(name) => name.to_string(),
        None => format!("{parent}.{key}"),
    }
}

fn ops(graph: &Value) -> Option<&Map<String, Value>> {
    graph.get("ops").and_then(Value::as_object)
}

/// Fields of a node (other than its ops) whose values differ.
fn changed_fields(a: &Value, b: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return if a == b { Vec::new() } else { vec!["kind".to_string()] };
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))).collect();
    keys.retain(|k| k.as_str() != "ops");
    keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).map(|k| k.to_string()).collect()
}

fn compare_graph(name: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    let fields = changed_fields(a, b);
    if !fields.is_empty() {
        out.push(format!("graph {name} changed: {}", fields.join(", ")));
    }
    let empty = Map::new();
    let (ao, bo) = (ops(a).unwrap_or(&empty), ops(b).unwrap_or(&empty));
    for (key, node) in ao {
        let full = full_name(name, key, node);
        match bo.get(key) {
            None => out.push(format!("op {full} removed")),
            Some(other) if ops(node).is_some() || ops(other).is_some() => compare_graph(&full, node, other, out),
            Some(other) => {
                let fields = changed_fields(node, other);
                if !fields.is_empty() {
                    out.push(format!("op {full} changed: {}", fields.join(", ")));
                }
            }
        }
    }
    for (key, node) in bo {
        if !ao.contains_key(key) {
            out.push(format!("op {} added", full_name(name, key, node)));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::changes;

    #[test]
    fn names_added_removed_and_changed_ops_through_nested_graphs() {
        let before = json!({"name": "main", "full_name": "main", "outputs": {"y": {}}, "ops": {
            "a": {"full_name": "main.a", "func_name": "inc", "inputs": {"x": 1}},
            "b": {"full_name": "main.b", "func_name": "dbl"},
            "sub": {"ops": {"c": {"func_name": "f"}}}
        }});
        assert!(changes(&before, &before).is_empty());
        let after = json!({"name": "main", "full_name": "main", "outputs": {"z": {}}, "ops": {
            "a": {"full_name": "main.a", "func_name": "inc", "inputs": {"x": 2}},
            "sub": {"ops": {"c": {"func_name": "g"}}},
            "d": {"func_name": "dbl"}
        }});
        assert_eq!(
            changes(&before, &after),
            [
                "graph main changed: outputs",
                "op main.a changed: inputs",
                "op main.b removed",
                "op main.sub.c changed: func_name",
                "op main.d added",
            ]
        );
    }
}
