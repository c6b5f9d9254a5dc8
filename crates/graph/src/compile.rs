//! Compilation: a parsed [`OpConfig`] tree → a validated [`GraphPlan`].
//!
//! Validation reports every problem it finds, each located by op path and JSON path.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::document::{kind_of, parse_op};
use crate::error::{Diagnostic, GraphError};
use crate::expr::Expr;
use crate::plan::*;
use crate::streams::analyse_streams;
use crate::transform::Transform;
use crate::wire::{BranchCase, OpConfig, PARENT, ParamSpec, RefSpec};

mod policy;

/// Turns the ops the graph crate does not interpret itself (code, parser, prompt, ...)
/// into runnable values. Implemented by the runtime's registry.
pub trait Binder {
    /// The runnable form of an op.
    type Op;
    /// Bind one op; `Err` is a message that validation reports at the op's path.
    fn bind(&self, op: &OpConfig) -> Result<Self::Op, String>;
}

/// Default iteration bound of a loop without `max_iterations`.
pub const DEFAULT_MAX_ITERATIONS: u32 = 1000;
/// Default `max_stream_concurrent`.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;

/// Compile the root op of a document.
pub fn compile<B: Binder>(root: &OpConfig, binder: &B) -> Result<GraphPlan<B::Op>, GraphError> {
    let mut diags = Vec::new();
    if root.op_type != "graph" {
        diags.push(Diagnostic::new("$.type", format!("the root op must be a graph, got \"{}\"", root.op_type)));
        return Err(GraphError::Invalid(diags));
    }
    let mut root = root.clone();
    if root.full_name.is_empty() {
        root.full_name = if root.name.is_empty() { "main".into() } else { root.name.clone() };
    }
    if root.name.is_empty() {
        root.name = root.full_name.clone();
    }
    let plan = GraphCompiler { binder, diags: &mut diags }.graph(&root);
    if diags.is_empty() { Ok(plan) } else { Err(GraphError::Invalid(diags)) }
}

struct GraphCompiler<'a, B: Binder> {
    binder: &'a B,
    diags: &'a mut Vec<Diagnostic>,
}

/// Per-graph naming and slot tables while compiling.
struct Scope {
    self_names: [String; 2],
    by_full: HashMap<String, NodeId>,
    by_short: HashMap<String, NodeId>,
    slots: HashMap<(Option<NodeId>, String), SlotId>,
    collect_slots: HashMap<(NodeId, String), SlotId>,
    slot_count: u32,
    outputs: Vec<Arc<str>>,
    /// Push refs: an op output mapped to another op's input (Python `a["x"] >> b["y"]`),
    /// by (target op, input name): read as that input's ref to the pushing op's output.
    pushes: HashMap<(NodeId, String), RefSpec>,
}

enum Source {
    Graph,
    Node(NodeId),
}

impl Scope {
    fn source(&self, name: &str) -> Option<Source> {
        if name == PARENT || self.self_names.iter().any(|n| n == name) {
            return Some(Source::Graph);
        }
        self.by_full.get(name).or_else(|| self.by_short.get(name)).map(|&id| Source::Node(id))
    }

    fn slot(&mut self, owner: Option<NodeId>, var: &str) -> SlotId {
        let next = self.slot_count;
        let id = *self.slots.entry((owner, var.to_string())).or_insert(next);
        if id == next {
            self.slot_count += 1;
        }
        id
    }

    fn collect_slot(&mut self, node: NodeId, var: &str) -> SlotId {
        let next = self.slot_count;
        let id = *self.collect_slots.entry((node, var.to_string())).or_insert(next);
        if id == next {
            self.slot_count += 1;
        }
        id
    }

    fn output(&mut self, var: &str) -> u32 {
        if let Some(i) = self.outputs.iter().position(|o| &**o == var) {
            return i as u32;
        }
        self.outputs.push(var.into());
        (self.outputs.len() - 1) as u32
    }
}

/// A node before its edges are known.
struct Draft<O> {
    node: Node<O>,
    policies: HashMap<NodeId, (EdgePolicy, Vec<String>)>,
}

impl<B: Binder> GraphCompiler<'_, B> {
    fn err(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.diags.push(Diagnostic::new(path, msg));
    }

    fn graph(&mut self, g: &OpConfig) -> GraphPlan<B::Op> {
        let gpath = g.full_name.clone();
        let empty = Map::new();
        let ops_map = g.ops.as_ref().unwrap_or(&empty);

        // Parse every child op first, so names are known before refs are resolved.
        let mut configs: Vec<OpConfig> = Vec::with_capacity(ops_map.len());
        let mut scope = Scope {
            self_names: [g.full_name.clone(), g.name.clone()],
            by_full: HashMap::new(),
            by_short: HashMap::new(),
            slots: HashMap::new(),
            collect_slots: HashMap::new(),
            slot_count: 0,
            outputs: g.outputs.keys().map(|k| Arc::from(k.as_str())).collect(),
            pushes: HashMap::new(),
        };
        for (key, value) in ops_map {
            let path = format!("{gpath}.{key}");
            let mut cfg = match parse_op(value.clone(), &path) {
                Ok(c) => c,
                Err(e) => {
                    match e {
                        GraphError::Json { path, source } => self.err(path, source.to_string()),
                        other => self.err(path.clone(), other.to_string()),
                    }
                    OpConfig { op_type: "invalid".into(), name: key.clone(), ..OpConfig::default() }
                }
            };
            if cfg.name.is_empty() {
                cfg.name = key.clone();
            } else if &cfg.name != key {
                self.err(format!("{path}.name"), format!("op is keyed \"{key}\" but named \"{}\"", cfg.name));
            }
            if cfg.full_name.is_empty() {
                cfg.full_name = path.clone();
            }
            let id = configs.len() as NodeId;
            scope.by_full.insert(cfg.full_name.clone(), id);
            scope.by_short.insert(key.clone(), id);
            configs.push(cfg);
        }

        for cfg in &configs {
            self.collect_pushes(cfg, &configs, &mut scope);
        }
        let mut drafts: Vec<Draft<B::Op>> = Vec::with_capacity(configs.len());
        for cfg in &configs {
            drafts.push(self.node(cfg, &mut scope));
        }
        let mut stores: Vec<(NodeId, SlotId, Arc<str>)> = scope
            .slots
            .iter()
            .filter_map(|((owner, var), &slot)| owner.map(|o| (o, slot, Arc::from(var.as_str()))))
            .collect();
        stores.sort_by_key(|(_, slot, _)| *slot);
        for (owner, slot, var) in stores {
            drafts[owner as usize].node.stores.push((var, slot));
        }

        // Edges from compiled_adj.
        let mut edges: Vec<Edge> = Vec::new();
        let mut soft_pred: Vec<u32> = vec![0; configs.len()];
        let mut hard_pred: Vec<u32> = vec![0; configs.len()];
        if let Some(adj) = &g.compiled_adj {
            for (src_name, list) in adj {
                let path = format!("{gpath}.compiled_adj.{src_name}");
                let Some(&src) = scope.by_short.get(src_name) else {
                    self.err(path, format!("source op \"{src_name}\" does not exist"));
                    continue;
                };
                let Some(list) = list.as_array() else {
                    self.err(path, format!("must be a list of [dst, soft] pairs, got {}", kind_of(list)));
                    continue;
                };
                for (i, link) in list.iter().enumerate() {
                    let (dst_name, soft) = match link.as_array().map(|a| a.as_slice()) {
                        Some([Value::String(d), Value::Bool(s)]) => (d.as_str(), *s),
                        Some([Value::String(d)]) => (d.as_str(), false),
                        _ => {
                            self.err(format!("{path}[{i}]"), format!("must be [dst, soft], got {link}"));
                            continue;
                        }
                    };
                    let Some(&dst) = scope.by_short.get(dst_name) else {
                        self.err(format!("{path}[{i}]"), format!("destination op \"{dst_name}\" does not exist"));
                        continue;
                    };
                    let (policy, vars) = drafts[dst as usize]
                        .policies
                        .remove(&src)
                        .unwrap_or((EdgePolicy::PerItem { limit: 1 }, Vec::new()));
                    let mut collect_slots = Vec::new();
                    if policy == EdgePolicy::Collect {
                        for v in vars {
                            let slot = scope.collect_slot(src, &v);
                            collect_slots.push((Arc::from(v.as_str()), slot));
                        }
                    }
                    if soft {
                        soft_pred[dst as usize] += 1
                    } else {
                        hard_pred[dst as usize] += 1
                    }
                    let eid = edges.len() as EdgeId;
                    edges.push(Edge { src, dst, soft, policy, collect_slots, scope: None });
                    let n = &mut drafts[src as usize].node;
                    if policy == EdgePolicy::Collect { n.collects.push(eid) } else { n.succ.push(eid) }
                }
            }
        }
        for (dst, d) in drafts.iter().enumerate() {
            for (src, (policy, _)) in &d.policies {
                if *policy == EdgePolicy::Collect {
                    self.err(
                        format!("{}.inputs", configs[dst].full_name),
                        format!(
                            "a collect ref reads \"{}\" but compiled_adj has no edge {} -> {}",
                            configs[*src as usize].name, configs[*src as usize].name, configs[dst].name
                        ),
                    );
                }
            }
        }

        // Ready counts.
        for (id, d) in drafts.iter_mut().enumerate() {
            let computed = hard_pred[id] + u32::from(soft_pred[id] > 0);
            d.node.ready_count = match g.initial_ready_count.as_ref().and_then(|m| m.get(&configs[id].name)) {
                None => computed,
                Some(v) => match v.as_u64() {
                    Some(n) => n as u32,
                    None => {
                        self.err(
                            format!("{gpath}.initial_ready_count.{}", configs[id].name),
                            format!("must be a non-negative integer, got {v}"),
                        );
                        computed
                    }
                },
            };
        }
        if let Some(m) = &g.initial_ready_count {
            for k in m.keys() {
                if !scope.by_short.contains_key(k) {
                    self.err(format!("{gpath}.initial_ready_count.{k}"), format!("op \"{k}\" does not exist"));
                }
            }
        }

        // Entries.
        let mut entries = Vec::new();
        match &g.entries {
            Some(list) => {
                for (i, e) in list.iter().enumerate() {
                    match scope.by_short.get(e) {
                        Some(&id) => entries.push(id),
                        None => self.err(format!("{gpath}.entries[{i}]"), format!("entry op \"{e}\" does not exist")),
                    }
                }
            }
            None => entries
                .extend(drafts.iter().enumerate().filter(|(_, d)| d.node.ready_count == 0).map(|(i, _)| i as NodeId)),
        }
        if entries.is_empty() && !configs.is_empty() {
            self.err(format!("{gpath}.entries"), "the graph has ops but no entry op");
        }
        if let Some(exits) = &g.exits {
            for (i, e) in exits.iter().enumerate() {
                if !scope.by_short.contains_key(e) {
                    self.err(format!("{gpath}.exits[{i}]"), format!("exit op \"{e}\" does not exist"));
                }
            }
        }

        let mut nodes: Vec<Node<B::Op>> = drafts.into_iter().map(|d| d.node).collect();
        self.check_cycles(&gpath, &nodes, &edges);

        // Graph inputs and their seeds.
        let mut input_seeds = Vec::new();
        for (var, spec) in &g.inputs {
            let path = format!("{gpath}.inputs.{var}");
            if let Some(v) = self
                .param(spec, &path)
                .and_then(|p| p.literal.filter(|v| !v.is_null()).or(p.default.filter(|v| !v.is_null())))
            {
                input_seeds.push((Arc::from(var.as_str()), v));
            }
        }

        let looping = g.loop_config.as_ref().map(|lc| self.loop_plan(g, lc, &scope));
        let streams = analyse_streams(g, &mut nodes, &mut edges, &configs, self.diags);
        let streaming = looping.is_none()
            && nodes.iter().enumerate().any(|(id, n)| {
                !n.forwards.is_empty() && streams.iter().any(|s| s.members[id] || s.node == id as NodeId)
            });
        let mut input_slots: Vec<(Arc<str>, SlotId)> = scope
            .slots
            .iter()
            .filter(|((owner, _), _)| owner.is_none())
            .map(|((_, var), &slot)| (Arc::from(var.as_str()), slot))
            .collect();
        input_slots.sort_by_key(|(_, s)| *s);

        let max_concurrency = match g.max_stream_concurrent {
            None => DEFAULT_MAX_CONCURRENCY,
            Some(n) if n >= 1 => n as usize,
            Some(n) => {
                self.err(format!("{gpath}.max_stream_concurrent"), format!("must be at least 1, got {n}"));
                DEFAULT_MAX_CONCURRENCY
            }
        };
        GraphPlan {
            name: g.name.as_str().into(),
            full_name: g.full_name.as_str().into(),
            nodes,
            entries,
            edges,
            slot_count: scope.slot_count,
            input_slots,
            input_seeds,
            outputs: scope.outputs,
            looping,
            max_concurrency,
            streaming,
            streams,
        }
    }

    fn param(&mut self, spec: &Value, path: &str) -> Option<ParamSpec> {
        if spec.is_null() {
            return Some(ParamSpec::default());
        }
        match serde_path_to_error::deserialize::<_, ParamSpec>(spec.clone()) {
            Ok(p) => Some(p),
            Err(e) => {
                let inner = e.path().to_string();
                let p = if inner == "." { path.to_string() } else { format!("{path}.{inner}") };
                self.err(p, e.into_inner().to_string());
                None
            }
        }
    }

    fn node(&mut self, cfg: &OpConfig, scope: &mut Scope) -> Draft<B::Op> {
        let path = cfg.full_name.clone();
        let mut policies: HashMap<NodeId, (EdgePolicy, Vec<String>)> = HashMap::new();
        let mut inputs = Vec::new();
        let this = scope.by_full.get(&cfg.full_name).copied();
        for (name, spec) in &cfg.inputs {
            let ipath = format!("{path}.inputs.{name}");
            let Some(mut p) = self.param(spec, &ipath) else { continue };
            if p.reference.is_none()
                && p.scratch.is_none()
                && p.literal.is_none()
                && let Some(pushed) = this.and_then(|id| scope.pushes.get(&(id, name.clone())))
            {
                p.reference = Some(pushed.clone());
            }
            let fallback = p.default.clone().filter(|v| !v.is_null());
            let source = if let Some(r) = &p.reference {
                let rpath = format!("{ipath}.ref");
                if let (Some(policy), Some(Source::Node(src))) = (&r.stream_policy, scope.source(&r.source)) {
                    let pol = if policy.collect {
                        EdgePolicy::Collect
                    } else if policy.parallel {
                        EdgePolicy::PerItem { limit: policy.parallel_max.max(0) as u32 }
                    } else {
                        EdgePolicy::PerItem { limit: 1 }
                    };
                    let entry = policies.entry(src).or_insert((pol, Vec::new()));
                    if entry.0 != pol {
                        self.err(&rpath, "inputs reading the same op disagree on stream_policy");
                    }
                    entry.1.push(r.var.clone());
                }
                let collect = r.stream_policy.as_ref().is_some_and(|p| p.collect);
                match self.reference(r, &rpath, scope, collect) {
                    Some(plan) => InputSource::Ref(plan),
                    None => InputSource::Nothing,
                }
            } else if let Some(s) = &p.scratch {
                InputSource::Scratch(s.key.as_str().into())
            } else if let Some(v) = p.literal.clone().filter(|v| !v.is_null()) {
                InputSource::Value(v)
            } else if let Some(v) = fallback.clone() {
                InputSource::Value(v)
            } else {
                InputSource::Nothing
            };
            inputs.push(InputPlan { name: name.as_str().into(), source, required: p.required, fallback });
        }
        let input_names: Arc<[Arc<str>]> = inputs.iter().map(|i| i.name.clone()).collect();

        let mut forwards = Vec::new();
        for (var, spec) in &cfg.outputs {
            let opath = format!("{path}.outputs.{var}");
            let Some(p) = self.param(spec, &opath) else { continue };
            if let Some(r) = &p.reference {
                match scope.source(&r.source) {
                    Some(Source::Graph) => {
                        let out = scope.output(&r.var);
                        forwards.push((Arc::from(var.as_str()), out));
                    }
                    // A push to another op's input: compiled as that input's ref
                    // (see `collect_pushes`).
                    Some(Source::Node(_)) => {}
                    None => self.err(format!("{opath}.ref"), format!("target \"{}\" does not exist", r.source)),
                }
            }
        }

        let kind = match cfg.op_type.as_str() {
            "graph" => NodeKind::Graph(Arc::new(self.graph(cfg))),
            "branch" => {
                let mut b = self.branch(cfg, scope);
                b.anchor =
                    inputs.iter().position(|i| &*i.name == "anchor" && !matches!(i.source, InputSource::Nothing));
                NodeKind::Branch(b)
            }
            "invalid" => NodeKind::Branch(BranchPlan::default()),
            _ => match self.binder.bind(cfg) {
                Ok(op) => NodeKind::Task(op),
                Err(msg) => {
                    self.err(&path, msg);
                    NodeKind::Branch(BranchPlan::default())
                }
            },
        };
        Draft {
            node: Node {
                name: cfg.name.as_str().into(),
                full_name: cfg.full_name.as_str().into(),
                kind,
                enabled: cfg.enabled,
                bound: cfg.bound,
                streams: false,
                stream: None,
                inputs,
                input_names,
                stores: Vec::new(),
                forwards,
                succ: Vec::new(),
                collects: Vec::new(),
                collect_marks: Vec::new(),
                ready_count: 0,
                declared_outputs: cfg.outputs.keys().map(|k| Arc::from(k.as_str())).collect(),
                policy: self.policy(cfg, &path),
                cache: self.cache(cfg, &path),
                delay: self.delay(cfg, &path),
                emit_yields: match cfg.extra.get("emit_yields") {
                    None | Some(Value::Null) => 1,
                    Some(v) => match v.as_u64() {
                        Some(n) => n.min(u32::MAX as u64) as u32,
                        None => {
                            self.err(format!("{path}.emit_yields"), format!("must be a non-negative integer, got {v}"));
                            1
                        }
                    },
                },
            },
            policies,
        }
    }

    fn reference(&mut self, r: &RefSpec, path: &str, scope: &mut Scope, collect: bool) -> Option<RefPlan> {
        if r.var.is_empty() {
            self.err(path, "ref has an empty var");
            return None;
        }
        let slot = match scope.source(&r.source) {
            Some(Source::Graph) => scope.slot(None, &r.var),
            Some(Source::Node(id)) if collect => scope.collect_slot(id, &r.var),
            Some(Source::Node(id)) => scope.slot(Some(id), &r.var),
            None => {
                self.err(path, format!("source \"{}\" does not exist", r.source));
                return None;
            }
        };
        let mut transforms = Vec::new();
        let mut ok = true;
        for (i, t) in r.transforms.iter().enumerate() {
            let tpath = format!("{path}.transforms[{i}]");
            let parsed = match t.as_array().map(|a| a.as_slice()) {
                Some([Value::String(name), Value::Array(args)]) => Some((name.clone(), args.clone())),
                Some([Value::String(name)]) => Some((name.clone(), Vec::new())),
                _ => None,
            };
            let Some((name, args)) = parsed else {
                self.err(tpath, format!("a transform must be [name, [args]], got {t}"));
                ok = false;
                continue;
            };
            let mut nested_errs = Vec::new();
            let compiled = {
                let mut compile_ref = |v: &Value| -> Result<RefPlan, String> {
                    let spec: RefSpec = serde_json::from_value(v.clone()).map_err(|e| format!("nested ref: {e}"))?;
                    let before = self.diags.len();
                    let plan = self.reference(&spec, &format!("{tpath}.__ref__"), scope, false);
                    nested_errs.extend(self.diags.drain(before..));
                    plan.ok_or_else(|| "nested ref is invalid".to_string())
                };
                Transform::compile(&name, &args, &mut compile_ref)
            };
            self.diags.extend(nested_errs);
            match compiled {
                Ok(t) => transforms.push(t),
                Err(msg) => {
                    self.err(tpath, msg);
                    ok = false;
                }
            }
        }
        ok.then(|| RefPlan { slot, transforms, label: format!("{}.{}", r.source, r.var).into() })
    }

    /// Record `cfg`'s outputs that push into another op's input (Python
    /// `a["x"] >> b["y"]`): the target reads them as if its input referred to them.
    fn collect_pushes(&mut self, cfg: &OpConfig, configs: &[OpConfig], scope: &mut Scope) {
        for (var, spec) in &cfg.outputs {
            let Ok(p) = serde_json::from_value::<ParamSpec>(spec.clone()) else { continue };
            let Some(r) = p.reference else { continue };
            let Some(Source::Node(dst)) = scope.source(&r.source) else { continue };
            let target = &configs[dst as usize];
            if !target.inputs.contains_key(&r.var) {
                self.err(
                    format!("{}.outputs.{var}.ref", cfg.full_name),
                    format!("pushes to input '{}' of \"{}\", which has no such input", r.var, r.source),
                );
                continue;
            }
            let pushed = RefSpec { source: cfg.full_name.clone(), var: var.clone(), ..RefSpec::default() };
            scope.pushes.insert((dst, r.var), pushed);
        }
    }

    fn branch(&mut self, cfg: &OpConfig, scope: &mut Scope) -> BranchPlan {
        let path = &cfg.full_name;
        let target = |this: &mut Self, scope: &Scope, t: &str, p: String| -> Option<Option<NodeId>> {
            if t == "__END__" {
                return Some(None);
            }
            match scope.by_short.get(t) {
                Some(&id) => Some(Some(id)),
                None => {
                    this.err(p, format!("branch target \"{t}\" does not exist"));
                    None
                }
            }
        };
        let mut cases = Vec::new();
        let mut descriptions = Vec::new();
        for (i, BranchCase { condition, target: t }) in cfg.cases.iter().flatten().enumerate() {
            let p = format!("{path}.cases[{i}]");
            let tgt = target(self, scope, t, format!("{p}.target"));
            let cond = self.reference(condition, &format!("{p}.condition"), scope, false);
            if let (Some(c), Some(t)) = (cond, tgt) {
                cases.push((c, t));
                descriptions.push(crate::transform::describe(&condition.var, &condition.transforms).into());
            }
        }
        let default = match &cfg.default {
            Some(t) => target(self, scope, t, format!("{path}.default")),
            None => None,
        };
        BranchPlan { cases, descriptions, default, anchor: None }
    }

    fn loop_plan(&mut self, g: &OpConfig, lc: &crate::wire::LoopConfig, scope: &Scope) -> LoopPlan {
        let path = format!("{}.loop_config", g.full_name);
        let mut vars: Vec<Arc<str>> = g.inputs.keys().map(|k| Arc::from(k.as_str())).collect();
        for o in &scope.outputs {
            if !vars.contains(o) {
                vars.push(o.clone());
            }
        }
        let output_vars = scope.outputs.iter().map(|o| vars.iter().position(|v| v == o).unwrap_or(0) as u32).collect();
        let until = lc.until.as_deref().and_then(|src| match Expr::parse(src) {
            Err(e) => {
                self.err(format!("{path}.until"), format!("bad until expression \"{src}\": {e}"));
                None
            }
            Ok(expr) => {
                let mut resolve = |n: &str| vars.iter().position(|v| &**v == n).map(|i| i as u32);
                match expr.bind(&mut resolve) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        self.err(
                            format!("{path}.until"),
                            format!(
                                "bad until expression \"{src}\": {e} (loop variables: {})",
                                vars.iter().map(|v| &**v).collect::<Vec<_>>().join(", ")
                            ),
                        );
                        None
                    }
                }
            }
        });
        // The body always runs once: the bound is checked after each iteration, so 0 (or
        // less) means one iteration, as in the reference engine.
        let max_iterations = match lc.max_iterations {
            None => DEFAULT_MAX_ITERATIONS,
            Some(n) => n.clamp(1, i64::from(u32::MAX)) as u32,
        };
        LoopPlan { until, max_iterations, vars, output_vars }
    }

    fn check_cycles(&mut self, gpath: &str, nodes: &[Node<B::Op>], edges: &[Edge]) {
        // Kahn's algorithm; whatever is left is on or behind a cycle.
        let (order, indeg) = crate::plan::forward_order(nodes, edges);
        if order.len() < nodes.len() {
            // Whatever is left is on a cycle or behind one; name only the ops on a cycle.
            let left: Vec<bool> = indeg.iter().map(|&d| d > 0).collect();
            let succs =
                |i: usize| nodes[i].succ.iter().chain(&nodes[i].collects).map(|&e| edges[e as usize].dst as usize);
            let on_cycle = |start: usize| {
                let mut seen = vec![false; nodes.len()];
                let mut stack: Vec<usize> = succs(start).filter(|&d| left[d]).collect();
                while let Some(n) = stack.pop() {
                    if n == start {
                        return true;
                    }
                    if !std::mem::replace(&mut seen[n], true) {
                        stack.extend(succs(n).filter(|&d| left[d]));
                    }
                }
                false
            };
            let names: Vec<&str> =
                (0..nodes.len()).filter(|&i| left[i] && on_cycle(i)).map(|i| &*nodes[i].name).collect();
            self.err(
                format!("{gpath}.compiled_adj"),
                format!(
                    "cycle outside a loop through {}; repeat work with loop_config on a nested graph instead",
                    names.join(", ")
                ),
            );
        }
    }
}
