//! Checking a run's inputs against what the graph requires, before the run starts.

use std::collections::HashMap;

use operonx_graph::plan::InputSource;
use serde_json::{Map, Value};

use crate::engine::Workflow;

/// A graph input that an op of the root graph requires and the caller did not give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingInput {
    /// The graph input's name (a key of the run's inputs).
    pub input: String,
    /// The full name of the first op that reads it as a required input.
    pub op: String,
}

impl Workflow {
    /// The graph inputs an enabled op of the root graph reads as a required input (no
    /// fallback) that are neither in `inputs` nor given a default by the graph, in the
    /// order the ops are declared. A run without them fails at those ops; callers that
    /// take inputs from users (the CLI) refuse the inputs up front instead.
    pub fn missing_inputs(&self, inputs: &Map<String, Value>) -> Vec<MissingInput> {
        let plan = self.plan();
        let graph_inputs: HashMap<u32, &str> = plan.input_slots.iter().map(|(name, slot)| (*slot, &**name)).collect();
        let given = |name: &str| inputs.contains_key(name) || plan.input_seeds.iter().any(|(n, _)| &**n == name);
        let mut missing: Vec<MissingInput> = Vec::new();
        for node in plan.nodes.iter().filter(|n| n.enabled) {
            for input in node.inputs.iter().filter(|i| i.required && i.fallback.is_none()) {
                let InputSource::Ref(r) = &input.source else { continue };
                let Some(&name) = graph_inputs.get(&r.slot) else { continue };
                if !given(name) && !missing.iter().any(|m| m.input == name) {
                    missing.push(MissingInput { input: name.to_string(), op: node.full_name.to_string() });
                }
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::{Engine, json};

    #[test]
    fn required_graph_inputs_without_a_value_are_listed() {
        let engine = Engine::new();
        let graph = json!({"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["a", "b"],
            "initial_ready_count": {"a": 0, "b": 0}, "compiled_adj": {"a": [], "b": []},
            "ops": {
              "a": {"type": "graph", "name": "a", "entries": [], "initial_ready_count": {}, "compiled_adj": {}, "ops": {},
                    "inputs": {"text": {"required": true, "ref": {"source": "__PARENT__", "var": "text"}},
                               "soft": {"required": true, "default": 1, "ref": {"source": "__PARENT__", "var": "soft"}},
                               "opt": {"ref": {"source": "__PARENT__", "var": "opt"}}}},
              "b": {"type": "graph", "name": "b", "entries": [], "initial_ready_count": {}, "compiled_adj": {}, "ops": {},
                    "inputs": {"x": {"required": true, "ref": {"source": "__PARENT__", "var": "text"}},
                               "n": {"required": true, "ref": {"source": "__PARENT__", "var": "n"}}}}}});
        let wf = engine.load_value(graph).unwrap();
        let names = |inputs: serde_json::Value| {
            let m = inputs.as_object().cloned().unwrap();
            wf.missing_inputs(&m).into_iter().map(|m| format!("{}@{}", m.input, m.op)).collect::<Vec<_>>()
        };
        assert_eq!(names(json!({})), ["text@main.a", "n@main.b"]);
        assert_eq!(names(json!({"text": null})), ["n@main.b"]);
        assert!(names(json!({"text": "t", "n": 1})).is_empty());
    }
}
