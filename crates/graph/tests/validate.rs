//! Validation reports every problem, each located by op path and JSON path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![recursion_limit = "256"]

use operonx_graph::wire::OpConfig;
use operonx_graph::{Binder, GraphDocument, GraphError, compile};
use serde_json::{Value, json};

/// Knows the functions `f` and `g`; any other code op is unregistered.
struct Known;

impl Binder for Known {
    type Op = String;
    fn bind(&self, op: &OpConfig) -> Result<String, String> {
        match (op.op_type.as_str(), op.func_name.as_deref()) {
            ("code", Some(f @ ("f" | "g"))) => Ok(f.to_string()),
            ("code", Some(f)) => Err(format!("no function registered as \"{f}\"")),
            (t, _) => Err(format!("unknown op type \"{t}\"")),
        }
    }
}

fn problems(doc: Value) -> Vec<String> {
    let doc = match GraphDocument::from_value(doc) {
        Ok(d) => d,
        Err(e) => return vec![e.to_string()],
    };
    match compile(&doc.root, &Known) {
        Ok(_) => Vec::new(),
        Err(GraphError::Invalid(d)) => d.iter().map(ToString::to_string).collect(),
        Err(e) => vec![e.to_string()],
    }
}

fn base(ops: Value, adj: Value, ready: Value, extra: Value) -> Value {
    let mut g = json!({"schema_version": "1.0", "type": "graph", "name": "main", "full_name": "main",
        "entries": ["a"], "ops": ops, "compiled_adj": adj, "initial_ready_count": ready});
    if let (Value::Object(g), Value::Object(e)) = (&mut g, extra) {
        g.extend(e);
    }
    g
}

#[test]
fn a_valid_graph_has_no_problems() {
    let g = base(
        json!({"a": {"type": "code", "func_name": "f"}, "b": {"type": "code", "func_name": "pkg.mod.g",
               "inputs": {"x": {"ref": {"source": "main.a", "var": "y", "transforms": [["getitem", [-1]], ["add", [1]]]}}}}}),
        json!({"a": [["b", false]]}),
        json!({"a": 0, "b": 1}),
        json!({}),
    );
    // Qualified names are the registry's business; this binder only knows bare names.
    assert_eq!(problems(g), vec!["main.b: no function registered as \"pkg.mod.g\""]);
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let g = base(
        json!({
            "a": {"type": "code", "func_name": "f"},
            "b": {"type": "code", "func_name": "nope",
                  "inputs": {"x": {"ref": {"source": "main.zz", "var": "y"}},
                             "t": {"ref": {"source": "main.a", "var": "y", "transforms": [["frobnicate", [1]]]}}}},
            "c": {"type": "weird"},
            "r": {"type": "branch", "cases": [{"condition": {"source": "main.a", "var": "y"}, "target": "ghost"}]},
            "sub": {"type": "graph", "entries": ["inner"], "ops": {"inner": {"type": "code", "func_name": "f",
                     "inputs": {"v": {"ref": {"source": "main.sub.missing", "var": "q"}}}}}}
        }),
        json!({"a": [["b", false], ["zz", false]], "b": [["a", false]]}),
        json!({"a": 0, "b": 1, "c": 0, "r": 0, "sub": 0}),
        json!({"inputs": {"n": {"literal": 0}}, "outputs": {"n": {}}, "loop_config": {"until": "n >= ", "max_iterations": 0}}),
    );
    let p = problems(g);
    let expect = [
        "main.b.inputs.x.ref: source \"main.zz\" does not exist",
        "main.b.inputs.t.ref.transforms[0]: unknown transform 'frobnicate'",
        "main.b: no function registered as \"nope\"",
        "main.c: unknown op type \"weird\"",
        "main.r.cases[0].target: branch target \"ghost\" does not exist",
        "main.sub.inner.inputs.v.ref: source \"main.sub.missing\" does not exist",
        "main.compiled_adj.a[1]: destination op \"zz\" does not exist",
        "main.compiled_adj: cycle outside a loop through a, b; repeat work with loop_config on a nested graph instead",
        "main.loop_config.until: bad until expression \"n >= \": unexpected end of expression at offset 5",
    ];
    for e in expect {
        assert!(p.iter().any(|x| x == e), "missing {e:?} in:\n{}", p.join("\n"));
    }
    assert_eq!(p.len(), expect.len(), "{}", p.join("\n"));
}

#[test]
fn until_names_must_be_loop_variables() {
    let g = base(
        json!({"a": {"type": "code", "func_name": "f"}}),
        json!({"a": []}),
        json!({"a": 0}),
        json!({"inputs": {"count": {"literal": 0}}, "outputs": {"count": {}}, "loop_config": {"until": "cuont >= 5"}}),
    );
    assert_eq!(
        problems(g),
        vec![
            "main.loop_config.until: bad until expression \"cuont >= 5\": unknown name 'cuont' (loop variables: count)"
        ]
    );
}

#[test]
fn shape_errors_name_the_json_path() {
    let g = base(
        json!({"a": {"type": "code", "func_name": "f", "bound": "fast"}}),
        json!({"a": []}),
        json!({"a": 0}),
        json!({}),
    );
    let p = problems(g);
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("main.a.bound: unknown variant `fast`"), "{}", p[0]);

    let g = base(
        json!({"a": {"type": "code", "func_name": "f", "inputs": {"x": {"ref": {"source": "main", "var": "x", "colour": 1}}}}}),
        json!({"a": []}),
        json!({"a": 0}),
        json!({}),
    );
    let p = problems(g);
    assert!(p[0].starts_with("main.a.inputs.x.ref.colour: unknown field `colour`"), "{p:?}");
}

#[test]
fn the_envelope_is_checked_first() {
    assert_eq!(problems(json!({"type": "graph"})), vec!["schema_version: missing (expected \"1.0\")"]);
    assert_eq!(
        problems(json!({"schema_version": 1, "type": "graph"})),
        vec!["schema_version: must be the string \"1.0\", got a number"]
    );
    assert_eq!(problems(json!([1])), vec!["schema_version: a graph document must be a JSON object, got an array"]);
    let root_not_graph = json!({"schema_version": "1.0", "type": "code", "name": "main"});
    assert_eq!(problems(root_not_graph), vec!["$.type: the root op must be a graph, got \"code\""]);
}

#[test]
fn compact_and_exporter_dialects_compile_to_the_same_plan_shape() {
    let compact = json!({"schema_version": "1.0", "type": "graph", "name": "main", "full_name": "main",
        "entries": ["a"], "initial_ready_count": {"a": 0}, "compiled_adj": {"a": []},
        "inputs": {"x": {"required": true}}, "outputs": {"y": {}},
        "ops": {"a": {"type": "code", "name": "a", "full_name": "main.a", "func_name": "f", "bound": "sync",
            "inputs": {"x": {"required": true, "ref": {"source": "__PARENT__", "var": "x"}}},
            "outputs": {"r": {"ref": {"source": "__PARENT__", "var": "y", "is_output": true}}}}}});
    let exported = json!({"schema_version": "1.0", "type": "graph", "name": "main", "full_name": "main", "func_name": null,
        "is_async": false, "is_generator": false, "enabled": true, "verbose": true, "stream": false, "bound": "sync",
        "entries": ["a"], "exits": ["a"], "edges": [], "stream_initial_ready": {}, "loop_config": null, "max_stream_concurrent": 64,
        "initial_ready_count": {"a": 0}, "compiled_adj": {"a": []},
        "inputs": {"x": {"default": null, "required": true, "ref": null, "scratch": null, "literal": null}},
        "outputs": {"y": {"default": null, "required": false, "ref": null, "scratch": null, "literal": null}},
        "ops": {"a": {"type": "code", "name": "a", "full_name": "main.a", "func_name": "f", "is_async": false,
            "is_generator": false, "enabled": true, "verbose": true, "stream": false, "bound": "sync",
            "inputs": {"x": {"default": null, "required": true, "ref": {"source": "main", "var": "x", "transforms": [], "is_output": false}, "scratch": null, "literal": null}},
            "outputs": {"r": {"default": null, "required": false, "ref": {"source": "main", "var": "y", "transforms": [], "is_output": false}, "scratch": null, "literal": null}}}}});
    for g in [compact, exported] {
        let doc = GraphDocument::from_value(g).unwrap();
        let plan = compile(&doc.root, &Known).unwrap();
        assert_eq!(plan.nodes.len(), 1);
        assert_eq!(&*plan.nodes[0].full_name, "main.a");
        assert_eq!(plan.nodes[0].forwards.len(), 1);
        assert_eq!(&*plan.outputs[plan.nodes[0].forwards[0].1 as usize], "y");
        assert_eq!(plan.input_slots.len(), 1);
        assert_eq!(&*plan.input_slots[0].0, "x");
    }
}

/// An output mapped to another op's input (a Python push, `a["x"] >> b["y"]`) is read as
/// that input's ref; one mapped to an input the target does not have is refused by name.
#[test]
fn push_refs_need_an_input_to_push_into() {
    let ops = |target_input: &str| {
        json!({
            "a": {"type": "code", "func_name": "f", "outputs": {"y": {"ref": {"source": "main.b", "var": target_input}}}},
            "b": {"type": "code", "func_name": "f", "inputs": {"n": {"required": true}}}
        })
    };
    let adj = json!({"a": [["b", false]], "b": []});
    let ready = json!({"a": 0, "b": 1});
    assert_eq!(problems(base(ops("n"), adj.clone(), ready.clone(), json!({}))), Vec::<String>::new());
    assert_eq!(
        problems(base(ops("m"), adj, ready, json!({}))),
        vec!["main.a.outputs.y.ref: pushes to input 'm' of \"main.b\", which has no such input".to_string()]
    );
}
