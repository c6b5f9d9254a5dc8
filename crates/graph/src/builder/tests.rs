use serde_json::{Value, json};

use super::{Bound, BuildError, END, Graph, OpSpec, out, parent};
use crate::compile::{Binder, compile};
use crate::document::GraphDocument;
use crate::wire::OpConfig;

/// Accepts every op, so built documents can be compiled without a registry.
struct AnyOp;

impl Binder for AnyOp {
    type Op = ();
    fn bind(&self, _op: &OpConfig) -> Result<(), String> {
        Ok(())
    }
}

fn build(g: Graph) -> Value {
    let doc = g.build().unwrap();
    if let Err(e) = compile(&doc.root, &AnyOp) {
        panic!("the built document does not compile: {e}");
    }
    doc.to_value()
}

/// The fields the builder computes for the graph at `v`.
fn compiled(v: &Value) -> Value {
    json!({
        "edges": v["edges"],
        "compiled_adj": v["compiled_adj"],
        "initial_ready_count": v["initial_ready_count"],
        "entries": v["entries"],
        "exits": v["exits"],
        "stream_initial_ready": v["stream_initial_ready"],
    })
}

fn problems(e: &BuildError) -> Vec<String> {
    e.diagnostics().iter().map(ToString::to_string).collect()
}

#[test]
fn two_op_chain_is_written_like_the_exporter() {
    let v = build(
        Graph::new("main").input("x").op(OpSpec::code("double", "double").input("x", parent("x")).output("result")).op(
            OpSpec::code("add_one", "add_one").input("n", out("double", "result")).output_to_parent("answer", "answer"),
        ),
    );
    let null_param = json!({"default": null, "required": false, "ref": null, "scratch": null, "literal": null});
    let expected = json!({
        "schema_version": "1.0",
        "type": "graph", "name": "main", "full_name": "main",
        "is_async": false, "is_generator": false, "enabled": true, "verbose": true, "stream": false, "bound": "sync",
        "inputs": {"x": {"default": null, "required": true, "ref": null, "scratch": null, "literal": null}},
        "outputs": {"answer": null_param},
        "ops": {
            "double": {
                "type": "code", "name": "double", "full_name": "main.double", "func_name": "double",
                "is_async": false, "is_generator": false, "enabled": true, "verbose": true, "stream": false,
                "bound": "sync",
                "inputs": {"x": {"default": null, "required": true, "scratch": null, "literal": null,
                    "ref": {"source": "main", "var": "x", "transforms": [], "is_output": false}}},
                "outputs": {"result": null_param},
            },
            "add_one": {
                "type": "code", "name": "add_one", "full_name": "main.add_one", "func_name": "add_one",
                "is_async": false, "is_generator": false, "enabled": true, "verbose": true, "stream": false,
                "bound": "sync",
                "inputs": {"n": {"default": null, "required": true, "scratch": null, "literal": null,
                    "ref": {"source": "main.double", "var": "result", "transforms": [], "is_output": false}}},
                "outputs": {"answer": {"default": null, "required": false, "scratch": null, "literal": null,
                    "ref": {"source": "main", "var": "answer", "transforms": [], "is_output": false}}},
            },
        },
        "edges": [{"from": "double", "to": "add_one", "soft": false}],
        "entries": ["double"],
        "exits": ["add_one"],
        "initial_ready_count": {"double": 0, "add_one": 1},
        "compiled_adj": {"double": [["add_one", false]], "add_one": []},
        "stream_initial_ready": {},
        "max_stream_concurrent": 64,
    });
    assert_eq!(v, expected);
}

#[test]
fn branch_gets_soft_edges_to_its_targets_and_a_hard_edge_from_its_condition() {
    let v = build(
        Graph::new("main")
            .input("items")
            .op(OpSpec::code("src", "each_item").generator().input("items", parent("items")).output("item"))
            .op(OpSpec::code("cb", "choose_branch").input("n", out("src", "item")).output("route"))
            .op(OpSpec::branch("router").case(out("cb", "route").eq("even"), "ev").default("od"))
            .op(OpSpec::code("ev", "double").input("x", out("src", "item")).output_to_parent("result", "evens"))
            .op(OpSpec::code("od", "add_one").input("n", out("src", "item")).output_to_parent("answer", "odds")),
    );
    assert_eq!(
        compiled(&v),
        json!({
            "edges": [
                {"from": "src", "to": "cb", "soft": false},
                {"from": "src", "to": "ev", "soft": false},
                {"from": "src", "to": "od", "soft": false},
                {"from": "cb", "to": "router", "soft": false},
                {"from": "router", "to": "ev", "soft": true},
                {"from": "router", "to": "od", "soft": true},
            ],
            "compiled_adj": {
                "src": [["cb", false], ["ev", false], ["od", false]],
                "cb": [["router", false]],
                "router": [["ev", true], ["od", true]],
                "ev": [],
                "od": [],
            },
            "initial_ready_count": {"src": 0, "cb": 1, "router": 1, "ev": 2, "od": 2},
            "entries": ["src"],
            "exits": ["ev", "od"],
            "stream_initial_ready": {},
        })
    );
    let router = &v["ops"]["router"];
    assert_eq!(router["type"], "branch");
    assert_eq!(
        router["cases"],
        json!([{"condition": {"source": "main.cb", "var": "route", "transforms": [["eq", ["even"]]], "is_output": false},
                "target": "ev"}])
    );
    assert_eq!(router["default"], "od");
    // Graph outputs fed by ops are declared, in op order.
    let outputs: Vec<&String> = v["outputs"].as_object().unwrap().keys().collect();
    assert_eq!(outputs, ["evens", "odds"]);
}

#[test]
fn a_soft_edge_wins_over_a_ref_and_end_is_a_valid_target() {
    let v = build(
        Graph::new("main")
            .op(OpSpec::code("a", "f").output("x"))
            .op(OpSpec::branch("b").case(out("a", "x").gt(1), "c").default(END))
            .op(OpSpec::code("c", "g").input("x", out("b", "x")))
            .soft_edge("a", "c")
            .edge("a", "b"),
    );
    assert_eq!(v["compiled_adj"], json!({"a": [["b", false], ["c", true]], "b": [["c", true]], "c": []}));
    assert_eq!(v["initial_ready_count"], json!({"a": 0, "b": 1, "c": 1}));
    assert_eq!(v["ops"]["b"]["default"], END);
}

#[test]
fn transforms_nest_refs_and_every_ref_read_adds_an_edge() {
    let cond = out("score", "value").get("points").ge(70).and(out("flags", "strict").not()).or(parent("force"));
    let v = build(
        Graph::new("main")
            .op(OpSpec::code("score", "s").output("value"))
            .op(OpSpec::code("flags", "f").output("strict"))
            .op(OpSpec::code("gen", "each_item").generator().output("item"))
            .op(OpSpec::code("use", "u")
                .input("ok", cond)
                .input(
                    "math",
                    out("score", "value").attr("n").add(1).sub(2).mul(3).truediv(4).floordiv(5).modulo(6).pow(2),
                )
                .input("cmp", parent("x").neg().abs().lt(1).le(2).gt(3).ne(4).contains("a"))
                .input("each", out("gen", "item").parallel(4)))
            .op(OpSpec::code("all", "a").input("items", out("gen", "item").collect())),
    );
    let inputs = &v["ops"]["use"]["inputs"];
    assert_eq!(
        inputs["ok"]["ref"],
        json!({"source": "main.score", "var": "value", "is_output": false, "transforms": [
            ["getitem", ["points"]],
            ["ge", [70]],
            ["and_", [{"__ref__": {"source": "main.flags", "var": "strict", "transforms": [["not_", []]], "is_output": false}}]],
            ["or_", [{"__ref__": {"source": "main", "var": "force", "transforms": [], "is_output": false}}]],
        ]})
    );
    assert_eq!(
        inputs["math"]["ref"]["transforms"],
        json!([
            ["getattr", ["n"]],
            ["add", [1]],
            ["sub", [2]],
            ["mul", [3]],
            ["truediv", [4]],
            ["floordiv", [5]],
            ["mod", [6]],
            ["pow", [2]]
        ])
    );
    assert_eq!(
        inputs["cmp"]["ref"]["transforms"],
        json!([["neg", []], ["abs", []], ["lt", [1]], ["le", [2]], ["gt", [3]], ["ne", [4]], ["contains", ["a"]]])
    );
    assert_eq!(inputs["each"]["ref"]["stream_policy"], json!({"collect": false, "parallel": true, "parallel_max": 4}));
    assert_eq!(
        v["ops"]["all"]["inputs"]["items"]["ref"]["stream_policy"],
        json!({"collect": true, "parallel": false, "parallel_max": 0})
    );
    assert_eq!(v["initial_ready_count"], json!({"score": 0, "flags": 0, "gen": 0, "use": 3, "all": 1}));
    assert_eq!(v["entries"], json!(["score", "flags", "gen"]));
    assert_eq!(v["exits"], json!(["use", "all"]));
}

#[test]
fn input_kinds_are_written_as_params() {
    let v = build(
        Graph::new("main").op(OpSpec::new("parser", "p")
            .input("text", parent("text"))
            .input_literal("mode", "json")
            .input_scratch("phase", "phase")
            .input_default("sep", "-")
            .bound(Bound::Io)
            .disabled()
            .description("parses")
            .output_to_parent("name", "name")),
    );
    let p = &v["ops"]["p"];
    assert_eq!(p["type"], "parser");
    assert!(p.get("func_name").is_none());
    assert_eq!(p["bound"], "io");
    assert_eq!(p["enabled"], false);
    assert_eq!(p["description"], "parses");
    assert_eq!(
        p["inputs"]["mode"],
        json!({"default": null, "required": true, "ref": null, "scratch": null, "literal": "json"})
    );
    assert_eq!(
        p["inputs"]["phase"],
        json!({"default": null, "required": true, "ref": null, "scratch": {"key": "phase"}, "literal": null})
    );
    assert_eq!(
        p["inputs"]["sep"],
        json!({"default": "-", "required": false, "ref": null, "scratch": null, "literal": null})
    );
    // A graph holding a non-sync op is io, as the exporter writes it.
    assert_eq!(v["bound"], "io");
}

#[test]
fn nested_graphs_get_full_names_and_merge_params() {
    let sub = Graph::new("sub")
        .input("x")
        .input_with("k", 3)
        .op(OpSpec::code("a", "double").input("x", parent("x")).output("result"))
        .op(OpSpec::code("b", "slow").bound(Bound::Io).input("n", out("a", "result")).output_to_parent("answer", "y"));
    let v = build(
        Graph::new("main")
            .input("x")
            .op(OpSpec::graph(sub).input("x", parent("x")).output_to_parent("y", "inner_y"))
            .op(OpSpec::code("c", "double").input("x", out("sub", "y")).output_to_parent("result", "result")),
    );
    let sub = &v["ops"]["sub"];
    assert_eq!(sub["full_name"], "main.sub");
    assert_eq!(sub["bound"], "io");
    assert_eq!(v["bound"], "io");
    assert_eq!(
        sub["inputs"],
        json!({
            "x": {"default": null, "required": true, "scratch": null, "literal": null,
                  "ref": {"source": "main", "var": "x", "transforms": [], "is_output": false}},
            "k": {"default": null, "required": true, "ref": null, "scratch": null, "literal": 3},
        })
    );
    assert_eq!(
        sub["outputs"],
        json!({"y": {"default": null, "required": false, "scratch": null, "literal": null,
                     "ref": {"source": "main", "var": "inner_y", "transforms": [], "is_output": false}}})
    );
    assert_eq!(sub["ops"]["a"]["full_name"], "main.sub.a");
    assert_eq!(sub["ops"]["a"]["inputs"]["x"]["ref"]["source"], "main.sub");
    assert_eq!(sub["ops"]["b"]["inputs"]["n"]["ref"]["source"], "main.sub.a");
    assert_eq!(sub["ops"]["b"]["outputs"]["answer"]["ref"]["source"], "main.sub");
    assert_eq!(sub["compiled_adj"], json!({"a": [["b", false]], "b": []}));
    assert_eq!(v["compiled_adj"], json!({"sub": [["c", false]], "c": []}));
    assert_eq!(v["ops"]["c"]["inputs"]["x"]["ref"]["source"], "main.sub");
    let outputs: Vec<&String> = v["outputs"].as_object().unwrap().keys().collect();
    assert_eq!(outputs, ["inner_y", "result"]);
}

#[test]
fn stream_initial_ready_pre_subtracts_batch_predecessors() {
    // cfg (batch) and s (generator) both feed p: inside s's items p waits for s only.
    let v = build(
        Graph::new("main")
            .op(OpSpec::code("cfg", "double").input("x", parent("x")).output("result"))
            .op(OpSpec::code("s", "each_item").generator().input("items", parent("items")).output("value"))
            .op(OpSpec::code("p", "process").input("value", out("s", "value")).input("config", out("cfg", "result")))
            .op(OpSpec::code("q", "after").input("r", out("p", "result")).input("c", out("cfg", "result")))
            .op(OpSpec::code("all", "accumulate")
                .input("v", out("s", "value").collect())
                .input("c", out("cfg", "result"))),
    );
    assert_eq!(v["initial_ready_count"], json!({"cfg": 0, "s": 0, "p": 2, "q": 2, "all": 2}));
    assert_eq!(v["stream_initial_ready"], json!({"s": {"cfg": 0, "s": 0, "p": 1, "q": 1, "all": 2}}));

    // A chain of generators with no batch predecessors: nothing to pre-subtract.
    let v = build(
        Graph::new("main")
            .op(OpSpec::code("g1", "each_item").generator().input("items", parent("items")).output("item"))
            .op(OpSpec::code("g2", "each_item").generator().input("items", out("g1", "item")).output("item"))
            .op(OpSpec::code("p", "double").input("x", out("g2", "item"))),
    );
    assert_eq!(v["stream_initial_ready"], json!({}));
}

#[test]
fn loops_write_loop_config_and_concurrency() {
    let v = build(
        Graph::new("main")
            .input_with("count", 0)
            .output("count")
            .op(OpSpec::code("inc", "increment").input("counter", parent("count")).output_to_parent("counter", "count"))
            .looping("count >= 5", Some(100))
            .max_concurrency(8)
            .description("counts"),
    );
    assert_eq!(v["loop_config"], json!({"until": "count >= 5", "max_iterations": 100}));
    assert_eq!(v["max_stream_concurrent"], 8);
    assert_eq!(v["description"], "counts");
    assert_eq!(
        v["inputs"]["count"],
        json!({"default": null, "required": true, "ref": null, "scratch": null, "literal": 0})
    );
    assert_eq!(v["outputs"].as_object().unwrap().len(), 1);

    let v = build(Graph::new("main").input_with("n", 1).output("n").looping("", None));
    assert_eq!(v["loop_config"], json!({"until": null, "max_iterations": null}));

    // A nested loop may stop on an input that only the enclosing op supplies.
    let body = Graph::new("body")
        .op(OpSpec::code("inc", "increment").input("counter", parent("count")).output_to_parent("counter", "count"))
        .looping("count >= limit", Some(10));
    let v = build(Graph::new("main").op(OpSpec::graph(body).input("limit", parent("limit")).input_literal("count", 0)));
    assert_eq!(v["ops"]["body"]["loop_config"], json!({"until": "count >= limit", "max_iterations": 10}));
    let outputs: Vec<&String> = v["ops"]["body"]["outputs"].as_object().unwrap().keys().collect();
    assert_eq!(outputs, ["count"]);
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let err = Graph::new("main")
        .op(OpSpec::code("a", "f").output("x"))
        .op(OpSpec::code("a", "f"))
        .op(OpSpec::code("b", "f").input("x", out("nope", "x")).input("y", out("a", "x").and(out("ghost", "z"))))
        .op(OpSpec::branch("r").case(out("a", "x"), "missing").default("gone"))
        .op(OpSpec::code("c", "f").case(parent("x"), "a"))
        .op(OpSpec::code("", "f"))
        .op(OpSpec::code("d.e", "f"))
        .op(OpSpec::graph(Graph::new("")))
        .op(OpSpec::code("self", "f").input("x", out("self", "y")))
        .edge("a", "zz")
        .looping("count >", Some(0))
        .max_concurrency(0)
        .build()
        .unwrap_err();
    let mut found = problems(&err);
    // The parser's own wording is not this module's business: check the prefix only.
    let until = found.remove(found.iter().position(|p| p.starts_with("main.loop_config.until")).unwrap());
    assert!(until.starts_with("main.loop_config.until: bad until expression \"count >\": "), "{until}");
    assert_eq!(
        found,
        [
            "main.a: duplicate op name \"a\"",
            "main.ops[5]: op name \"\" is empty",
            "main.ops[6]: op name \"d.e\" must not contain '.' (it separates the parts of a full name)",
            "main.ops[7]: op name \"\" is empty",
            "main.b.inputs.x: the ref reads op \"nope\", which does not exist in graph \"main\"",
            "main.b.inputs.y: a ref in a transform argument reads op \"ghost\", which does not exist in graph \"main\"",
            "main.r.cases[0].target: branch target \"missing\" does not exist in graph \"main\"",
            "main.r.default: branch target \"gone\" does not exist in graph \"main\"",
            "main.c.cases: only a branch has cases, but \"c\" is a code op",
            "main.self.inputs.x: the ref reads the op's own output \"y\"",
            "main.edges[0]: edge a -> zz: op \"zz\" does not exist in graph \"main\"",
            "main.loop_config.max_iterations: must be at least 1",
            "main.max_stream_concurrent: max_concurrency must be at least 1",
        ]
    );
    let text = err.to_string();
    assert!(text.starts_with("invalid graph (14 problems):\n  main.a: duplicate op name"), "{text}");
}

#[test]
fn an_empty_graph_name_and_unknown_loop_variables_are_reported() {
    let err = Graph::new("").build().unwrap_err();
    assert_eq!(problems(&err), ["$.name: the graph name is empty"]);
    assert_eq!(err.to_string(), "invalid graph (1 problem):\n  $.name: the graph name is empty");

    let err = Graph::new("main").input_with("n", 0).looping("count >= 5", None).build().unwrap_err();
    assert_eq!(problems(&err).len(), 1);
    assert!(problems(&err)[0].starts_with("main.loop_config.until: bad until expression \"count >= 5\""));
    assert!(problems(&err)[0].ends_with("(loop variables: n)"), "{:?}", problems(&err));
}

#[test]
fn cycles_name_their_ops() {
    let err = Graph::new("main")
        .op(OpSpec::code("start", "f").output("x"))
        .op(OpSpec::code("a", "f").input("x", out("start", "x")).input("y", out("c", "z")))
        .op(OpSpec::code("b", "f").input("x", out("a", "x")))
        .op(OpSpec::code("c", "f").input("x", out("b", "x")))
        .op(OpSpec::code("tail", "f").input("x", out("c", "x")))
        .build()
        .unwrap_err();
    assert_eq!(
        problems(&err),
        ["main.edges: cycle through ops a, b, c; repeat work with a looping nested graph instead"]
    );

    // Inside a nested graph the path names that graph.
    let err = Graph::new("main")
        .op(OpSpec::graph(
            Graph::new("sub").op(OpSpec::code("a", "f")).op(OpSpec::code("b", "f")).edge("a", "b").edge("b", "a"),
        ))
        .build()
        .unwrap_err();
    assert_eq!(
        problems(&err),
        ["main.sub.edges: cycle through ops a, b; repeat work with a looping nested graph instead"]
    );
}

#[test]
fn a_graph_can_be_built_twice_and_converts_to_a_graph_error() {
    let g = Graph::new("main").op(OpSpec::code("a", "f"));
    let first = g.build().unwrap();
    let second = g.build().unwrap();
    assert_eq!(first, second);
    assert_eq!(first, GraphDocument::from_value(first.to_value()).unwrap());

    let err = Graph::new("main").edge("x", "y").build().unwrap_err();
    let graph_err: crate::GraphError = err.clone().into();
    assert_eq!(graph_err.diagnostics(), err.diagnostics());
}
