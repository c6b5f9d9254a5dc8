//! Lowering a [`Graph`] to the wire model: full names, refs by full name, and the
//! compiled fields the exporter writes (`edges`, `compiled_adj`, `initial_ready_count`,
//! `entries`, `exits`, `stream_initial_ready`).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Map, Value};

use super::refs::{Ref, RefSource};
use super::{BuildError, END, Graph, Input, OpSpec};
use crate::compile::DEFAULT_MAX_CONCURRENCY;
use crate::document::GraphDocument;
use crate::error::Diagnostic;
use crate::expr::Expr;
use crate::wire::{Bound, BranchCase, LoopConfig, OpConfig, ParamSpec, RefSpec, SCHEMA_VERSION, ScratchSpec};

/// Build the document of root graph `g`.
pub(super) fn build(g: &Graph) -> Result<GraphDocument, BuildError> {
    let mut cx = Lowering { diags: Vec::new() };
    if let Some(problem) = bad_name(&g.name) {
        cx.err("$.name", format!("the graph name {problem}"));
    }
    let lowered = cx.graph(g, &g.name);
    let mut root = lowered.cfg;
    root.bound = if lowered.io { Bound::Io } else { Bound::Sync };
    cx.check_until(g, &lowered.inputs, &lowered.outputs, &g.name);
    root.inputs = cx.params(lowered.inputs, &g.name);
    root.outputs = cx.params(lowered.outputs, &g.name);
    if cx.diags.is_empty() {
        Ok(GraphDocument { schema_version: SCHEMA_VERSION.into(), root })
    } else {
        Err(BuildError::Invalid(cx.diags))
    }
}

/// Why `name` cannot name an op or a graph, if it cannot.
fn bad_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.contains('.') {
        Some("must not contain '.' (it separates the parts of a full name)")
    } else if name.starts_with("__") && name.ends_with("__") {
        Some("is reserved (names like __END__ are sentinels)")
    } else {
        None
    }
}

struct Lowering {
    diags: Vec<Diagnostic>,
}

/// A graph lowered, with its params still open for the enclosing op to add to.
struct Lowered {
    cfg: OpConfig,
    inputs: Params,
    outputs: Params,
    /// Some op inside is not `sync`.
    io: bool,
}

/// Params by name, in declaration order.
#[derive(Default)]
struct Params(Vec<(String, ParamSpec)>);

impl Params {
    fn entry(&mut self, name: &str) -> &mut ParamSpec {
        let i = match self.0.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.0.push((name.to_string(), ParamSpec::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }
}

/// The ops of the graph being lowered, by short name.
struct Scope<'a> {
    full: &'a str,
    index: HashMap<&'a str, usize>,
}

impl Scope<'_> {
    fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

/// How one ordered pair of ops is linked.
#[derive(Debug, Clone, Copy, Default)]
struct Link {
    soft: bool,
    /// A ref of the destination reads the source's whole stream.
    collect: bool,
}

/// Links by `(src, dst)` op index; iteration order is the wiring order we write.
type Links = BTreeMap<(usize, usize), Link>;

fn link(links: &mut Links, src: usize, dst: usize, soft: bool, collect: bool) {
    let l = links.entry((src, dst)).or_default();
    l.soft |= soft;
    l.collect |= collect;
}

impl Lowering {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(path, message));
    }

    fn value<T: Serialize>(&mut self, x: &T, path: &str) -> Value {
        serde_json::to_value(x).unwrap_or_else(|e| {
            self.err(path, format!("cannot be written as JSON: {e}"));
            Value::Null
        })
    }

    fn params(&mut self, params: Params, path: &str) -> Map<String, Value> {
        params.0.into_iter().map(|(name, p)| (name, self.value(&p, path))).collect()
    }

    /// Lower graph `g` whose full name is `full`.
    fn graph(&mut self, g: &Graph, full: &str) -> Lowered {
        let mut inputs = Params::default();
        for (name, literal) in &g.inputs {
            let p = inputs.entry(name);
            p.required = true;
            p.literal = literal.clone();
        }
        let mut outputs = Params::default();
        for name in &g.outputs {
            outputs.entry(name);
        }

        let mut index = HashMap::new();
        for (i, op) in g.ops.iter().enumerate() {
            if let Some(problem) = bad_name(&op.name) {
                self.err(format!("{full}.ops[{i}]"), format!("op name \"{}\" {problem}", op.name));
            } else if index.contains_key(op.name.as_str()) {
                self.err(format!("{full}.{}", op.name), format!("duplicate op name \"{}\"", op.name));
            } else {
                index.insert(op.name.as_str(), i);
            }
        }
        let scope = Scope { full, index };

        let mut links = Links::new();
        let mut ops = Map::new();
        let mut io = false;
        for (i, op) in g.ops.iter().enumerate() {
            let cfg = self.op(op, i, &scope, &mut links, &mut outputs);
            io |= cfg.bound != Bound::Sync;
            let value = self.value(&cfg, &cfg.full_name);
            ops.entry(op.name.clone()).or_insert(value);
        }
        for (k, e) in g.edges.iter().enumerate() {
            let (from, to) = (scope.find(&e.from), scope.find(&e.to));
            for (name, found) in [(&e.from, from), (&e.to, to)] {
                if found.is_none() {
                    self.err(
                        format!("{full}.edges[{k}]"),
                        format!("edge {} -> {}: op \"{name}\" does not exist in graph \"{full}\"", e.from, e.to),
                    );
                }
            }
            if let (Some(from), Some(to)) = (from, to) {
                link(&mut links, from, to, e.soft, false);
            }
        }

        let names: Vec<&str> = g.ops.iter().map(|o| o.name.as_str()).collect();
        let mut cfg = OpConfig {
            op_type: "graph".into(),
            name: g.name.clone(),
            full_name: full.to_string(),
            verbose: true,
            description: g.description.clone(),
            ops: Some(ops),
            ..OpConfig::default()
        };
        self.compiled(&mut cfg, g, &names, &links);

        if let Some((until, max_iterations)) = &g.looping {
            if *max_iterations == Some(0) {
                self.err(format!("{full}.loop_config.max_iterations"), "must be at least 1");
            }
            cfg.loop_config = Some(LoopConfig {
                until: until.clone(),
                max_iterations: max_iterations.map(i64::from),
                extra: Map::new(),
            });
        }
        let max = g.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY);
        if max == 0 {
            self.err(format!("{full}.max_stream_concurrent"), "max_concurrency must be at least 1");
        }
        cfg.max_stream_concurrent = Some(i64::try_from(max).unwrap_or(i64::MAX));
        Lowered { cfg, inputs, outputs, io }
    }

    /// A loop's `until` must parse and name only loop variables: the graph's inputs and
    /// outputs, including those the enclosing op adds (so this runs once they are known).
    fn check_until(&mut self, g: &Graph, inputs: &Params, outputs: &Params, full: &str) {
        let Some((Some(src), _)) = &g.looping else { return };
        let path = format!("{full}.loop_config.until");
        let vars: Vec<&str> = inputs.names().chain(outputs.names()).collect();
        match Expr::parse(src) {
            Err(e) => self.err(path, format!("bad until expression \"{src}\": {e}")),
            Ok(expr) => {
                let mut resolve = |n: &str| vars.iter().position(|v| *v == n).map(|i| i as u32);
                if let Err(e) = expr.bind(&mut resolve) {
                    self.err(
                        path,
                        format!("bad until expression \"{src}\": {e} (loop variables: {})", vars.join(", ")),
                    );
                }
            }
        }
    }

    /// Lower op `spec`, the `i`th op of the graph in `scope`; record the links its refs
    /// and branch targets make, and the graph outputs it feeds.
    fn op(
        &mut self,
        spec: &OpSpec,
        i: usize,
        scope: &Scope<'_>,
        links: &mut Links,
        graph_outputs: &mut Params,
    ) -> OpConfig {
        let full = format!("{}.{}", scope.full, spec.name);
        let (mut cfg, mut inputs, mut outputs, inner_io) = match &spec.graph {
            Some(inner) => {
                let l = self.graph(inner, &full);
                (l.cfg, l.inputs, l.outputs, l.io)
            }
            None => (OpConfig::default(), Params::default(), Params::default(), false),
        };
        cfg.op_type = spec.op_type.clone();
        cfg.name = spec.name.clone();
        cfg.full_name = full.clone();
        cfg.func_name = spec.func_name.clone();
        cfg.is_generator = spec.generator;
        cfg.enabled = spec.enabled;
        cfg.verbose = true;
        cfg.bound = match spec.bound.unwrap_or(Bound::Sync) {
            Bound::Sync if inner_io => Bound::Io,
            b => b,
        };
        if spec.description.is_some() {
            cfg.description = spec.description.clone();
        }
        cfg.extra.extend(spec.extra.iter().map(|(k, v)| (k.clone(), v.clone())));

        for (name, input) in &spec.inputs {
            let path = format!("{full}.inputs.{name}");
            let reference = match input {
                Input::Ref(r) => Some(self.reference(r, i, scope, links, &path)),
                _ => None,
            };
            let p = inputs.entry(name);
            match input {
                Input::Ref(_) => {
                    p.required = true;
                    p.reference = reference;
                }
                Input::Literal(v) => {
                    p.required = true;
                    p.literal = Some(v.clone());
                }
                Input::Scratch(key) => {
                    p.required = true;
                    p.scratch = Some(ScratchSpec { key: key.clone() });
                }
                Input::Default(v) => {
                    p.required = false;
                    p.default = Some(v.clone());
                }
            }
        }
        for (name, forward) in &spec.outputs {
            let p = outputs.entry(name);
            if let Some(graph_output) = forward {
                p.reference = Some(RefSpec {
                    source: scope.full.to_string(),
                    var: graph_output.clone(),
                    transforms: Vec::new(),
                    is_output: false,
                    stream_policy: None,
                });
                graph_outputs.entry(graph_output);
            }
        }
        if let Some(inner) = &spec.graph {
            self.check_until(inner, &inputs, &outputs, &full);
        }
        cfg.inputs = self.params(inputs, &full);
        cfg.outputs = self.params(outputs, &full);

        if spec.op_type == "branch" {
            let mut cases = Vec::with_capacity(spec.cases.len());
            for (k, (condition, target)) in spec.cases.iter().enumerate() {
                let path = format!("{full}.cases[{k}]");
                let condition = self.reference(condition, i, scope, links, &format!("{path}.condition"));
                self.target(target, i, scope, links, &format!("{path}.target"));
                cases.push(BranchCase { condition, target: target.clone() });
            }
            if let Some(default) = &spec.default {
                self.target(default, i, scope, links, &format!("{full}.default"));
            }
            cfg.cases = Some(cases);
            cfg.default = spec.default.clone();
        } else if !spec.cases.is_empty() || spec.default.is_some() {
            self.err(
                format!("{full}.cases"),
                format!("only a branch has cases, but \"{}\" is a {} op", spec.name, spec.op_type),
            );
        }
        cfg
    }

    /// The wire form of ref `r` read by op `reader`; links every sibling it reads to
    /// the reader.
    fn reference(&mut self, r: &Ref, reader: usize, scope: &Scope<'_>, links: &mut Links, path: &str) -> RefSpec {
        let mut problems = Vec::new();
        r.visit(false, &mut |x, nested| {
            let place = if nested { "a ref in a transform argument" } else { "the ref" };
            if x.var.is_empty() {
                problems.push(format!("{place} has an empty var"));
            }
            let RefSource::Op(name) = &x.source else { return };
            match scope.find(name) {
                Some(src) if src == reader => problems.push(format!("{place} reads the op's own output \"{}\"", x.var)),
                Some(src) => link(links, src, reader, false, !nested && x.is_collect()),
                None => problems
                    .push(format!("{place} reads op \"{name}\", which does not exist in graph \"{}\"", scope.full)),
            }
        });
        for p in problems {
            self.err(path, p);
        }
        r.to_spec(scope.full)
    }

    /// Branch `branch` routes to `target`: a soft link.
    fn target(&mut self, target: &str, branch: usize, scope: &Scope<'_>, links: &mut Links, path: &str) {
        if target == END {
            return;
        }
        match scope.find(target) {
            Some(dst) if dst == branch => self.err(path, "a branch cannot route to itself"),
            Some(dst) => link(links, branch, dst, true, false),
            None => self.err(path, format!("branch target \"{target}\" does not exist in graph \"{}\"", scope.full)),
        }
    }

    /// Write `edges`, `compiled_adj`, `initial_ready_count`, `entries`, `exits` and
    /// `stream_initial_ready`; report cycles.
    fn compiled(&mut self, cfg: &mut OpConfig, g: &Graph, names: &[&str], links: &Links) {
        let n = names.len();
        let mut succ: Vec<Vec<(usize, Link)>> = vec![Vec::new(); n];
        let mut pred: Vec<Vec<(usize, Link)>> = vec![Vec::new(); n];
        for (&(s, d), &l) in links {
            succ[s].push((d, l));
            pred[d].push((s, l));
        }
        let ready: Vec<u64> = pred
            .iter()
            .map(|p| {
                let hard = p.iter().filter(|(_, l)| !l.soft).count() as u64;
                hard + u64::from(p.iter().any(|(_, l)| l.soft))
            })
            .collect();

        let edges = links
            .iter()
            .map(|(&(s, d), l)| {
                let mut m = Map::new();
                m.insert("from".into(), names[s].into());
                m.insert("to".into(), names[d].into());
                m.insert("soft".into(), l.soft.into());
                Value::Object(m)
            })
            .collect();
        let adj = (0..n)
            .map(|i| {
                let list = succ[i].iter().map(|(d, l)| Value::Array(vec![names[*d].into(), l.soft.into()])).collect();
                (names[i].to_string(), Value::Array(list))
            })
            .collect();
        let counts =
            |c: &[u64]| -> Map<String, Value> { (0..n).map(|i| (names[i].to_string(), c[i].into())).collect() };

        let mut stream_ready = Map::new();
        for source in (0..n).filter(|&i| g.ops[i].generator) {
            let members = downstream(source, &succ);
            let mut item = ready.clone();
            let mut reduced = false;
            for x in (0..n).filter(|&x| members[x]) {
                let outside = pred[x].iter().filter(|(p, l)| !l.soft && *p != source && !members[*p]).count() as u64;
                if outside > 0 {
                    item[x] = item[x].saturating_sub(outside);
                    reduced = true;
                }
            }
            if reduced {
                stream_ready.insert(names[source].to_string(), Value::Object(counts(&item)));
            }
        }

        let cyclic = on_cycles(&succ, &pred);
        if !cyclic.is_empty() {
            let ops: Vec<&str> = cyclic.iter().map(|&i| names[i]).collect();
            self.err(
                format!("{}.edges", cfg.full_name),
                format!("cycle through ops {}; repeat work with a looping nested graph instead", ops.join(", ")),
            );
        }

        cfg.edges = Some(edges);
        cfg.entries = Some((0..n).filter(|&i| pred[i].is_empty()).map(|i| names[i].to_string()).collect());
        cfg.exits = Some((0..n).filter(|&i| succ[i].is_empty()).map(|i| names[i].to_string()).collect());
        cfg.initial_ready_count = Some(counts(&ready));
        cfg.compiled_adj = Some(adj);
        cfg.stream_initial_ready = Some(stream_ready);
    }
}

/// Ops reachable from `start` through edges that are not collect edges.
fn downstream(start: usize, succ: &[Vec<(usize, Link)>]) -> Vec<bool> {
    let mut seen = vec![false; succ.len()];
    let mut stack = vec![start];
    while let Some(i) = stack.pop() {
        for &(d, l) in &succ[i] {
            if !l.collect && !seen[d] {
                seen[d] = true;
                stack.push(d);
            }
        }
    }
    seen
}

/// Ops on a cycle, or on a path between two cycles, in index order (empty when acyclic).
fn on_cycles(succ: &[Vec<(usize, Link)>], pred: &[Vec<(usize, Link)>]) -> Vec<usize> {
    let n = succ.len();
    let mut gone = vec![false; n];
    // Peel off ops with no remaining predecessors, then ops with no remaining successors.
    for (forward, other) in [(succ, pred), (pred, succ)] {
        let mut deg: Vec<usize> = other.iter().map(|l| l.iter().filter(|(j, _)| !gone[*j]).count()).collect();
        let mut stack: Vec<usize> = (0..n).filter(|&i| !gone[i] && deg[i] == 0).collect();
        while let Some(i) = stack.pop() {
            gone[i] = true;
            for &(j, _) in &forward[i] {
                if !gone[j] {
                    deg[j] -= 1;
                    if deg[j] == 0 {
                        stack.push(j);
                    }
                }
            }
        }
    }
    (0..n).filter(|&i| !gone[i]).collect()
}
