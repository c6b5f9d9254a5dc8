//! Authoring graphs in Rust: [`Graph`] and [`OpSpec`] describe a graph the way the Python
//! `GraphOp` does, and [`Graph::build`] turns it into the same [`GraphDocument`] the
//! Python exporter writes: full names, refs by full name, edges, `compiled_adj`,
//! `initial_ready_count`, `entries`, `exits` and `stream_initial_ready`.
//!
//! ```
//! use operonx_graph::builder::{Graph, OpSpec, out, parent};
//!
//! let doc = Graph::new("main")
//!     .input("x")
//!     .op(OpSpec::code("double", "double").input("x", parent("x")).output("result"))
//!     .op(OpSpec::code("add_one", "add_one")
//!         .input("n", out("double", "result"))
//!         .output_to_parent("answer", "answer"))
//!     .build()?;
//! assert_eq!(doc.root.entries, Some(vec!["double".to_string()]));
//! # Ok::<(), operonx_graph::builder::BuildError>(())
//! ```
//!
//! Edges come from three places: every ref an input (or a branch condition) makes to a
//! sibling op adds a hard edge from that op; a branch gets a soft edge to each of its
//! targets; [`Graph::edge`] and [`Graph::soft_edge`] add edges by hand (for ordering
//! without a data dependency). When a pair is linked both ways, soft wins.

use serde_json::Value;

use crate::document::GraphDocument;
use crate::error::{Diagnostic, GraphError};

mod lower;
mod refs;
#[cfg(test)]
mod tests;

pub use refs::{Operand, Ref, out, parent};

pub use crate::wire::Bound;

/// The branch target that routes to nothing (the path ends).
pub const END: &str = "__END__";

/// A graph under construction: its inputs and outputs, ops, extra edges, and loop and
/// concurrency settings. The root graph and nested graphs ([`OpSpec::graph`]) are both
/// `Graph`s.
#[derive(Debug, Clone)]
#[must_use = "a graph does nothing until it is built"]
pub struct Graph {
    name: String,
    description: Option<String>,
    inputs: Vec<(String, Option<Value>)>,
    outputs: Vec<String>,
    ops: Vec<OpSpec>,
    edges: Vec<EdgeSpec>,
    looping: Option<(Option<String>, Option<u32>)>,
    max_concurrency: Option<usize>,
}

/// An edge added by hand.
#[derive(Debug, Clone)]
struct EdgeSpec {
    from: String,
    to: String,
    soft: bool,
}

impl Graph {
    /// An empty graph named `name` (the root is usually `"main"`).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            ops: Vec::new(),
            edges: Vec::new(),
            looping: None,
            max_concurrency: None,
        }
    }

    /// Declare a required input.
    pub fn input(mut self, name: impl Into<String>) -> Self {
        upsert(&mut self.inputs, name.into(), None);
        self
    }

    /// Declare an input that starts as `value` unless the caller supplies one (how a
    /// loop's state is seeded).
    pub fn input_with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        upsert(&mut self.inputs, name.into(), Some(value.into()));
        self
    }

    /// Declare an output. Outputs that an op feeds with [`OpSpec::output_to_parent`] are
    /// declared automatically; declaring them here fixes their order.
    pub fn output(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !self.outputs.contains(&name) {
            self.outputs.push(name);
        }
        self
    }

    /// Add an op. Ops keep the order they are added in (it orders `entries` and the
    /// successor lists).
    pub fn op(mut self, op: OpSpec) -> Self {
        self.ops.push(op);
        self
    }

    /// Add a hard edge: `to` waits for `from` to finish.
    pub fn edge(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.edges.push(EdgeSpec { from: from.into(), to: to.into(), soft: false });
        self
    }

    /// Add a soft edge: `to` runs once any one of its soft predecessors has finished (a
    /// merge after a branch).
    pub fn soft_edge(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.edges.push(EdgeSpec { from: from.into(), to: to.into(), soft: true });
        self
    }

    /// Make the graph a loop: the body runs again, its outputs becoming the next
    /// iteration's inputs, until the expression `until` over the loop variables is
    /// truthy (an empty `until` never stops early), at most `max_iterations` times
    /// (1000 when `None`).
    pub fn looping(mut self, until: impl Into<String>, max_iterations: Option<u32>) -> Self {
        let until = until.into();
        let until = if until.trim().is_empty() { None } else { Some(until) };
        self.looping = Some((until, max_iterations));
        self
    }

    /// Bound on concurrently running io ops and in-flight stream items (default 64).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// Free text, kept in the document.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// The graph's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Validate the graph and write it as a document. Every problem found is reported,
    /// each located by a path such as `main.b.inputs.x`.
    pub fn build(&self) -> Result<GraphDocument, BuildError> {
        lower::build(self)
    }
}

/// One op of a graph: its type, where each input reads from, its outputs, and flags.
#[derive(Debug, Clone)]
#[must_use = "an op does nothing until it is added to a graph with `Graph::op`"]
pub struct OpSpec {
    name: String,
    op_type: String,
    func_name: Option<String>,
    graph: Option<Box<Graph>>,
    inputs: Vec<(String, Input)>,
    outputs: Vec<(String, Option<String>)>,
    cases: Vec<(Ref, String)>,
    default: Option<String>,
    generator: bool,
    bound: Option<Bound>,
    enabled: bool,
    description: Option<String>,
    /// Further op fields written as is (`timeout`, `retry`, provider settings).
    extra: serde_json::Map<String, Value>,
}

/// Where one input of an op gets its value.
#[derive(Debug, Clone)]
enum Input {
    Ref(Ref),
    Literal(Value),
    Scratch(String),
    Default(Value),
}

impl OpSpec {
    /// An op of any type (`parser`, `prompt`, `llm`, ...) named `name`.
    pub fn new(op_type: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op_type: op_type.into(),
            func_name: None,
            graph: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            cases: Vec::new(),
            default: None,
            generator: false,
            bound: None,
            enabled: true,
            description: None,
            extra: serde_json::Map::new(),
        }
    }

    /// Set any further op field (e.g. a provider op's `resource`), written as is.
    pub fn field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// A code op named `name` that calls the registered function `func_name`.
    pub fn code(name: impl Into<String>, func_name: impl Into<String>) -> Self {
        let mut op = Self::new("code", name);
        op.func_name = Some(func_name.into());
        op
    }

    /// A branch named `name`: add its [`case`](Self::case)s and its
    /// [`default`](Self::default) target.
    pub fn branch(name: impl Into<String>) -> Self {
        Self::new("branch", name)
    }

    /// A nested graph, named after `graph`. Its inputs ([`input`](Self::input) & co.)
    /// read from the enclosing graph; its outputs are the outputs the nested graph
    /// declares, and [`output_to_parent`](Self::output_to_parent) forwards one on.
    pub fn graph(graph: Graph) -> Self {
        let mut op = Self::new("graph", graph.name.clone());
        op.graph = Some(Box::new(graph));
        op
    }

    /// Input `name` reads `source` (a [`parent`] or [`out`] ref). Required.
    pub fn input(mut self, name: impl Into<String>, source: Ref) -> Self {
        upsert(&mut self.inputs, name.into(), Input::Ref(source));
        self
    }

    /// Input `name` is the constant `value`.
    pub fn input_literal(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        upsert(&mut self.inputs, name.into(), Input::Literal(value.into()));
        self
    }

    /// Input `name` reads the run's scratch entry `key`.
    pub fn input_scratch(mut self, name: impl Into<String>, key: impl Into<String>) -> Self {
        upsert(&mut self.inputs, name.into(), Input::Scratch(key.into()));
        self
    }

    /// Optional input `name`, `value` unless something supplies it.
    pub fn input_default(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        upsert(&mut self.inputs, name.into(), Input::Default(value.into()));
        self
    }

    /// Declare output `name` (so other ops can read it).
    pub fn output(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !self.outputs.iter().any(|(n, _)| *n == name) {
            self.outputs.push((name, None));
        }
        self
    }

    /// Declare output `name` and forward it to the enclosing graph's output
    /// `graph_output` (which is declared too).
    pub fn output_to_parent(mut self, name: impl Into<String>, graph_output: impl Into<String>) -> Self {
        upsert(&mut self.outputs, name.into(), Some(graph_output.into()));
        self
    }

    /// The op yields several frames; ops reading it run once per item.
    pub fn generator(mut self) -> Self {
        self.generator = true;
        self
    }

    /// Where the op runs: [`Bound::Sync`] (inline, the default) or [`Bound::Io`] /
    /// [`Bound::Cpu`] (concurrently). A nested graph holding a non-sync op is `io`.
    pub fn bound(mut self, bound: Bound) -> Self {
        self.bound = Some(bound);
        self
    }

    /// Cancel each attempt after `seconds` (async ops).
    pub fn timeout(mut self, seconds: f64) -> Self {
        self.extra.insert("timeout".to_string(), serde_json::json!(seconds));
        self
    }

    /// Retry a failed call: `max_attempts` in all, waiting `initial_delay` seconds (doubling)
    /// between attempts. Other settings (`backoff`, `max_delay`, `jitter`, `retry_on`) can be
    /// given with [`OpSpec::retry_policy`].
    pub fn retry(self, max_attempts: u32, initial_delay: f64) -> Self {
        self.retry_policy(serde_json::json!({"max_attempts": max_attempts, "initial_delay": initial_delay}))
    }

    /// Set the op's `retry` object as written in graph.json.
    pub fn retry_policy(mut self, retry: serde_json::Value) -> Self {
        self.extra.insert("retry".to_string(), retry);
        self
    }

    /// The op never runs, and nothing downstream of it does.
    pub fn disabled(mut self) -> Self {
        self.enabled = false;
        self
    }

    /// Free text, kept in the document.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Branch: when `condition` is truthy (and no earlier case was), run `target` (a
    /// sibling's short name, or [`END`]).
    pub fn case(mut self, condition: Ref, target: impl Into<String>) -> Self {
        self.cases.push((condition, target.into()));
        self
    }

    /// Branch: the target when no case matches.
    pub fn default(mut self, target: impl Into<String>) -> Self {
        self.default = Some(target.into());
        self
    }

    /// The op's short name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Replace the value of `key`, keeping its position, or append it.
fn upsert<V>(list: &mut Vec<(String, V)>, key: String, value: V) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => list.push((key, value)),
    }
}

/// Why [`Graph::build`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The graph is not valid; every problem found is listed, each with its path.
    #[error("invalid graph ({} problem{}):\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, crate::error::DiagList(.0))]
    Invalid(Vec<Diagnostic>),
}

impl BuildError {
    /// The individual problems.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            BuildError::Invalid(d) => d,
        }
    }
}

impl From<BuildError> for GraphError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::Invalid(d) => GraphError::Invalid(d),
        }
    }
}
