//! The graph the harness crashes, and what its journal keys mean.
//!
//! Every effectful op is an `llm` call (named `llm_*`) whose prompt is unique per call: the
//! op's role plus its item index or loop iteration. Parts, all started at once:
//! - a chain: `p_chain` (prompt) -> `llm_chain` -> `parse_chain` (parser) -> `low_chain`
//!   (code), then the interrupt `ask` (std `ask`, answered on resume) -> `p_final` ->
//!   `llm_final`;
//! - a generator fan-out: `gen` (std `range`, [`ITEMS`] items) -> per item `p_item` ->
//!   `llm_item`, collected by `collect` (std `join`); and per item the nested graph `sub`
//!   (`sub.p` -> `sub.llm_inner` -> `sub.pick`);
//! - a loop: the nested graph `lp` runs [`LOOPS`] iterations of `lp.p` -> `lp.llm_loop` ->
//!   `lp.pick` -> `lp.cat` (accumulates the answers) -> `lp.inc`;
//! - a branch: `route` sends `mode == "deep"` to `llm_deep`, anything else to
//!   `llm_shallow`;
//! - concurrent async ops: `llm_par0..3` and the std `sleep` op `nap`, independent.

use serde_json::{Map, Value, json};

/// The `topic` input, part of most prompts.
pub const TOPIC: &str = "crash";
/// Items the generator yields.
pub const ITEMS: u64 = 4;
/// Iterations of the loop.
pub const LOOPS: u64 = 3;
/// Parallel llm calls.
pub const PARALLEL: u64 = 4;
/// The interrupt's id and the answer the harness gives it.
pub const ASK_ID: &str = "main.ask";
/// The answer given to the interrupt (not JSON, so read as a string).
pub const ANSWER: &str = "approved";

fn parent(var: &str) -> Value {
    json!({"ref": {"source": "__PARENT__", "var": var}})
}

fn from(source: &str, var: &str) -> Value {
    json!({"ref": {"source": source, "var": var}})
}

fn prompt(user: &str, vars: &[(&str, Value)]) -> Value {
    let mut inputs = Map::new();
    inputs.insert("template".into(), json!({"literal": {"user": user}}));
    for (k, v) in vars {
        inputs.insert((*k).into(), v.clone());
    }
    json!({"type": "prompt", "inputs": inputs, "outputs": {"messages": {}}})
}

fn llm(messages: Value, out: Option<&str>) -> Value {
    let mut messages = messages;
    messages["required"] = json!(true);
    let content = out.map_or_else(|| json!({}), parent);
    json!({"type": "llm", "bound": "io", "resource": "mock", "inputs": {"messages": messages},
           "outputs": {"content": content}})
}

fn literal_messages(text: &str) -> Value {
    json!({"literal": [{"role": "user", "content": text}]})
}

fn parser(text: Value, out: Option<&str>) -> Value {
    let echo = out.map_or_else(|| json!({}), parent);
    let schema = json!({"literal": ["echo: str"]});
    json!({"type": "parser", "inputs": {"text": text, "mode": {"literal": "json"}, "schema": schema},
           "outputs": {"echo": echo, "error": {}}})
}

fn code(func: &str, inputs: Value, outputs: Value) -> Value {
    json!({"type": "code", "func_name": func, "inputs": inputs, "outputs": outputs})
}

/// A graph named `name` (full name `full`) of `ops`, wired by `adj` (hard edges) and
/// `soft` edges, starting at `entries`.
fn graph(full: &str, ops: Vec<(&str, Value)>, adj: &[(&str, &str)], soft: &[(&str, &str)], entries: &[&str]) -> Value {
    let mut ready = Map::new();
    let mut compiled = Map::new();
    let mut named = Map::new();
    for (name, mut op) in ops {
        ready.insert(name.into(), json!(0));
        compiled.insert(name.into(), json!([]));
        op["name"] = json!(name);
        if op.get("full_name").is_none() {
            op["full_name"] = json!(format!("{full}.{name}"));
        }
        named.insert(name.into(), op);
    }
    for (edges, is_soft) in [(adj, false), (soft, true)] {
        for (src, dst) in edges {
            if let Some(list) = compiled.get_mut(*src).and_then(Value::as_array_mut) {
                list.push(json!([dst, is_soft]));
            }
        }
    }
    // Each hard predecessor counts one; all soft ones together count one.
    for (_, dst) in adj {
        if let Some(n) = ready.get_mut(*dst) {
            *n = json!(n.as_u64().unwrap_or(0) + 1);
        }
    }
    let mut soft_targets: Vec<&str> = soft.iter().map(|(_, d)| *d).collect();
    soft_targets.dedup();
    for dst in soft_targets {
        if let Some(n) = ready.get_mut(dst) {
            *n = json!(n.as_u64().unwrap_or(0) + 1);
        }
    }
    let name = full.rsplit('.').next().unwrap_or(full);
    json!({"type": "graph", "name": name, "full_name": full, "entries": entries,
           "initial_ready_count": ready, "compiled_adj": compiled, "ops": named})
}

/// The graph.json document; without `ask` (and what follows it) when `with_ask` is false;
/// `paced`: at most two spawned ops of the root graph at a time, so the generator yields
/// its items one by one as they are consumed (a kill then often finds it unfinished).
pub fn document(with_ask: bool, paced: bool) -> Value {
    let mut sub = graph(
        "main.sub",
        vec![
            (
                "p",
                prompt(
                    "nested item {i} about {topic}",
                    &[("i", from("main.sub", "i")), ("topic", from("main.sub", "topic"))],
                ),
            ),
            ("llm_inner", llm(from("main.sub.p", "messages"), None)),
            ("pick", parser(from("main.sub.llm_inner", "content"), Some("y"))),
        ],
        &[("p", "llm_inner"), ("llm_inner", "pick")],
        &[],
        &["p"],
    );
    sub["bound"] = json!("io");
    sub["inputs"] = json!({"i": {"required": true, "ref": {"source": "main.gen", "var": "i"}},
                           "topic": {"required": true, "ref": {"source": "__PARENT__", "var": "topic"}}});
    sub["outputs"] = json!({"y": parent("nested")});

    let mut lp = graph(
        "main.lp",
        vec![
            (
                "p",
                prompt(
                    "loop iteration {k} on {topic}",
                    &[("k", from("main.lp", "k")), ("topic", from("main.lp", "topic"))],
                ),
            ),
            ("llm_loop", llm(from("main.lp.p", "messages"), None)),
            ("pick", parser(from("main.lp.llm_loop", "content"), None)),
            (
                "cat",
                code(
                    "add",
                    json!({"a": from("main.lp", "acc"), "b": from("main.lp.pick", "echo")}),
                    json!({"sum": from("main.lp", "acc")}),
                ),
            ),
            (
                "inc",
                code(
                    "add",
                    json!({"a": from("main.lp", "k"), "b": {"literal": 1}}),
                    json!({"sum": from("main.lp", "k")}),
                ),
            ),
        ],
        &[("p", "llm_loop"), ("llm_loop", "pick"), ("pick", "cat"), ("cat", "inc")],
        &[],
        &["p"],
    );
    lp["bound"] = json!("io");
    lp["loop_config"] = json!({"until": format!("k >= {LOOPS}"), "max_iterations": 10});
    lp["inputs"] = json!({"k": {"literal": 0}, "acc": {"literal": ""},
                          "topic": {"required": true, "ref": {"source": "__PARENT__", "var": "topic"}}});
    lp["outputs"] = json!({"k": parent("loops"), "acc": parent("loop_acc")});

    let collect_parts = json!({"ref": {"source": "main.llm_item", "var": "content",
                                       "stream_policy": {"collect": true, "parallel": false, "parallel_max": 0}}});
    let mut ops = vec![
        ("p_chain", prompt("chain step for {topic}", &[("topic", parent("topic"))])),
        ("llm_chain", llm(from("main.p_chain", "messages"), None)),
        ("parse_chain", parser(from("main.llm_chain", "content"), None)),
        (
            "low_chain",
            code("lower", json!({"text": from("main.parse_chain", "echo")}), json!({"text": parent("chain")})),
        ),
        ("gen", {
            let mut g = code("range", json!({"n": parent("n")}), json!({"i": {}}));
            g["is_generator"] = json!(true);
            g
        }),
        ("p_item", prompt("item {i} of {topic}", &[("i", from("main.gen", "i")), ("topic", parent("topic"))])),
        ("llm_item", llm(from("main.p_item", "messages"), None)),
        (
            "collect",
            code("join", json!({"parts": collect_parts, "sep": {"literal": "|"}}), json!({"text": parent("items")})),
        ),
        ("sub", sub),
        ("lp", lp),
        (
            "route",
            json!({"type": "branch", "inputs": {"mode": parent("mode")}, "outputs": {},
            "cases": [{"condition": {"source": "main", "var": "mode", "transforms": [["eq", ["deep"]]]},
                       "target": "llm_deep"}],
            "default": "llm_shallow"}),
        ),
        ("llm_deep", llm(literal_messages("branch deep"), Some("branch"))),
        ("llm_shallow", llm(literal_messages("branch shallow"), Some("branch"))),
        ("nap", {
            let mut n = code(
                "sleep",
                json!({"ms": {"literal": 30}, "value": {"literal": "rested"}}),
                json!({"value": parent("nap")}),
            );
            n["bound"] = json!("io");
            n
        }),
    ];
    let par_names: Vec<(String, String, String)> =
        (0..PARALLEL).map(|j| (format!("llm_par{j}"), format!("parallel call {j}"), format!("par{j}"))).collect();
    for (name, text, out) in &par_names {
        ops.push((name.as_str(), llm(literal_messages(text), Some(out))));
    }
    let mut adj = vec![
        ("p_chain", "llm_chain"),
        ("llm_chain", "parse_chain"),
        ("parse_chain", "low_chain"),
        ("gen", "p_item"),
        ("gen", "sub"),
        ("p_item", "llm_item"),
        ("llm_item", "collect"),
    ];
    if with_ask {
        ops.push(("ask", code("ask", json!({"question": {"literal": "approve the chain?"}}), json!({"answer": {}}))));
        ops.push((
            "p_final",
            prompt(
                "final with answer {answer} after {chain}",
                &[("answer", from("main.ask", "answer")), ("chain", from("main.low_chain", "text"))],
            ),
        ));
        ops.push(("llm_final", llm(from("main.p_final", "messages"), Some("final"))));
        adj.extend([("low_chain", "ask"), ("ask", "p_final"), ("p_final", "llm_final")]);
    }
    let mut entries = vec!["p_chain", "gen", "lp", "route", "nap"];
    entries.extend(par_names.iter().map(|(n, _, _)| n.as_str()));
    let mut g = graph("main", ops, &adj, &[("route", "llm_deep"), ("route", "llm_shallow")], &entries);
    g["schema_version"] = json!("1.0");
    if paced {
        g["max_stream_concurrent"] = json!(2);
    }
    g["inputs"] = json!({"topic": {"required": true}, "n": {"required": true}, "mode": {"required": true}});
    let mut outputs: Vec<String> =
        ["chain", "items", "nested", "loops", "loop_acc", "branch", "nap"].iter().map(|s| s.to_string()).collect();
    outputs.extend((0..PARALLEL).map(|j| format!("par{j}")));
    if with_ask {
        outputs.push("final".into());
    }
    g["outputs"] = Value::Object(outputs.into_iter().map(|o| (o, json!({}))).collect());
    g
}

/// Which arm the branch takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `llm_deep`.
    Deep,
    /// `llm_shallow` (the default arm).
    Shallow,
}

impl Mode {
    /// The `mode` input.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Deep => "deep",
            Mode::Shallow => "shallow",
        }
    }
}

/// A graph and its inputs, as a kill point runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// The branch taken.
    pub mode: Mode,
    /// Whether the generator is paced (see [`document`]).
    pub paced: bool,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 4] = [
        Variant { mode: Mode::Deep, paced: false },
        Variant { mode: Mode::Shallow, paced: false },
        Variant { mode: Mode::Deep, paced: true },
        Variant { mode: Mode::Shallow, paced: true },
    ];

    /// A short name.
    pub fn name(self) -> String {
        format!("{}{}", self.mode.as_str(), if self.paced { "-paced" } else { "" })
    }
}

/// The run's inputs.
pub fn inputs(mode: Mode) -> Value {
    json!({"topic": TOPIC, "n": ITEMS, "mode": mode.as_str()})
}

/// The op full name and context of a journal key (`op@context`).
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('@').unwrap_or((key, ""))
}

/// Whether the journal key is a call of an llm op (an effect the mock counts).
pub fn is_llm_key(key: &str) -> bool {
    let (op, _) = split_key(key);
    op.rsplit('.').next().is_some_and(|short| short.starts_with("llm_"))
}

/// The prompt the llm call `key` must have sent (`None`: not a call this graph makes).
pub fn expected_prompt(key: &str) -> Option<String> {
    let (op, ctx) = split_key(key);
    let item = || ctx.strip_prefix("main/[")?.strip_suffix(']')?.parse::<u64>().ok();
    let iteration = || match ctx {
        "main" => Some(0),
        _ => ctx.strip_prefix("main/loop_")?.parse::<u64>().ok(),
    };
    let chain = format!("chain step for {TOPIC}");
    Some(match op {
        "main.llm_chain" if ctx == "main" => chain,
        "main.llm_item" => format!("item {} of {TOPIC}", item()?),
        "main.sub.llm_inner" => format!("nested item {} about {TOPIC}", item()?),
        "main.lp.llm_loop" => format!("loop iteration {} on {TOPIC}", iteration()?),
        "main.llm_deep" if ctx == "main" => "branch deep".into(),
        "main.llm_shallow" if ctx == "main" => "branch shallow".into(),
        "main.llm_final" if ctx == "main" => format!("final with answer {ANSWER} after {chain}"),
        _ => {
            let j: u64 = op.strip_prefix("main.llm_par")?.parse().ok()?;
            if ctx != "main" || j >= PARALLEL {
                return None;
            }
            format!("parallel call {j}")
        }
    })
}

/// The journal key of the prompt op whose messages the llm call `key` sends (`None` for
/// calls with literal messages).
pub fn prompt_key_of(key: &str) -> Option<String> {
    let (op, ctx) = split_key(key);
    let prompt_op = match op {
        "main.llm_chain" => "main.p_chain",
        "main.llm_item" => "main.p_item",
        "main.sub.llm_inner" => "main.sub.p",
        "main.lp.llm_loop" => "main.lp.p",
        "main.llm_final" => "main.p_final",
        _ => return None,
    };
    Some(format!("{prompt_op}@{ctx}"))
}
