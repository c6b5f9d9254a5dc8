//! The compiled execution plan: what the scheduler runs. Everything is resolved to
//! integer ids; nothing here is looked up by name while a graph runs.

use std::sync::Arc;

use serde_json::Value;

use crate::expr::BoundExpr;
use crate::transform::Transform;
use crate::wire::Bound;

/// Index of a node in [`GraphPlan::nodes`].
pub type NodeId = u32;
/// Index of a value slot in one graph's state.
pub type SlotId = u32;
/// Index of an edge in [`GraphPlan::edges`].
pub type EdgeId = u32;

/// One compiled graph (the root, a nested graph, or a loop body).
#[derive(Debug)]
pub struct GraphPlan<O> {
    /// Short name.
    pub name: Arc<str>,
    /// Dotted full name.
    pub full_name: Arc<str>,
    /// The ops, indexed by [`NodeId`].
    pub nodes: Vec<Node<O>>,
    /// Ops started first, in order.
    pub entries: Vec<NodeId>,
    /// Edges, indexed by [`EdgeId`].
    pub edges: Vec<Edge>,
    /// Number of value slots a context of this graph holds.
    pub slot_count: u32,
    /// Graph-input variables that refs read, and the slot each is stored in.
    pub input_slots: Vec<(Arc<str>, SlotId)>,
    /// Declared inputs' literal or default values, used when the caller supplies none.
    pub input_seeds: Vec<(Arc<str>, Value)>,
    /// Graph output names; an output id indexes this list.
    pub outputs: Vec<Arc<str>>,
    /// Present when the graph is a loop.
    pub looping: Option<LoopPlan>,
    /// Bound on concurrently running io ops and on in-flight items of one stream.
    pub max_concurrency: usize,
    /// The graph's outputs are produced once per item of an inner stream.
    pub streaming: bool,
    /// Per streaming node: the ready counts used in its item contexts.
    pub streams: Vec<StreamPlan>,
}

/// What kind of work a node does.
#[derive(Debug)]
pub enum NodeKind<O> {
    /// An op bound by the runtime (code, parser, prompt, ...).
    Task(O),
    /// A branch: evaluated by the scheduler.
    Branch(BranchPlan),
    /// A nested graph (maybe a loop).
    Graph(Arc<GraphPlan<O>>),
}

/// One op of a graph.
#[derive(Debug)]
pub struct Node<O> {
    /// Short name.
    pub name: Arc<str>,
    /// Dotted full name (`main.sub.b`).
    pub full_name: Arc<str>,
    /// The work.
    pub kind: NodeKind<O>,
    /// A disabled node never runs.
    pub enabled: bool,
    /// Inline (`sync`) or concurrent (`io`/`cpu`).
    pub bound: Bound,
    /// Frames go to per-item contexts (a generator or a streaming nested graph).
    pub streams: bool,
    /// Index into [`GraphPlan::streams`] when `streams`.
    pub stream: Option<u32>,
    /// Inputs in declaration order.
    pub inputs: Vec<InputPlan>,
    /// The input names, shared with every call.
    pub input_names: Arc<[Arc<str>]>,
    /// Output variables some ref reads, and where to store them.
    pub stores: Vec<(Arc<str>, SlotId)>,
    /// Output variables forwarded to graph outputs: `(var, output id)`.
    pub forwards: Vec<(Arc<str>, u32)>,
    /// Outgoing edges that decrement successors' ready counts.
    pub succ: Vec<EdgeId>,
    /// Outgoing collect edges.
    pub collects: Vec<EdgeId>,
    /// Where `"__collect__"` stands in the context path of this node's calls, as in the
    /// reference engine: a `.collect()` consumer runs in its context plus
    /// `"__collect__"`, and so does what runs after it. Each entry is the number of item
    /// indexes (`"[i]"`) of the path before it; ascending (empty for most nodes).
    pub collect_marks: Vec<u32>,
    /// Predecessor completions to wait for (hard edges count one each, the soft group one).
    pub ready_count: u32,
    /// Declared output names (for docs and tooling).
    pub declared_outputs: Vec<Arc<str>>,
    /// Trace every n-th generator item (`op_yield`); 0 = none. From the op's `emit_yields`.
    pub emit_yields: u32,
    /// Per-attempt timeout and retries (`timeout`, `retry`).
    pub policy: OpPolicy,
    /// Present when the op's results are cached (`cache`).
    pub cache: Option<CachePlan>,
    /// Python's `delay`: wait this long before running the op (async; other ops go on).
    pub delay: Option<std::time::Duration>,
}

/// An op whose results are cached.
#[derive(Debug, Clone, PartialEq)]
pub struct CachePlan {
    /// Digest of the op's whole configuration: any change to it misses the cache.
    pub fingerprint: u64,
    /// How long a result stays valid (`None` = until evicted).
    pub ttl: Option<std::time::Duration>,
}

/// How an op call is bounded and retried.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpPolicy {
    /// Each attempt is cancelled after this long (async ops; sync ops cannot be interrupted).
    pub timeout: Option<std::time::Duration>,
    /// Retries after a failure.
    pub retry: Option<RetryPolicy>,
}

impl OpPolicy {
    /// Neither a timeout nor retries.
    pub fn is_plain(&self) -> bool {
        self.timeout.is_none() && self.retry.is_none()
    }
}

/// `retry: {max_attempts, initial_delay, backoff, max_delay, jitter, retry_on}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub initial_delay: std::time::Duration,
    /// Each further delay is multiplied by this.
    pub backoff: f64,
    /// Upper bound on one delay.
    pub max_delay: std::time::Duration,
    /// Randomize each delay between half and all of it.
    pub jitter: bool,
    /// Retry after an ordinary failure.
    pub on_error: bool,
    /// Retry after a timeout.
    pub on_timeout: bool,
}

impl RetryPolicy {
    /// The waits between attempts: `initial_delay`, times `backoff` per attempt, at most
    /// `max_delay`, jittered when `jitter` is on.
    pub fn schedule(&self) -> crate::backoff::Backoff {
        crate::backoff::Backoff {
            initial: self.initial_delay,
            factor: self.backoff,
            max: self.max_delay,
            jitter: self.jitter,
        }
    }

    /// The delay before attempt `attempt + 1` (attempts count from 1), before jitter.
    pub fn delay(&self, attempt: u32) -> std::time::Duration {
        self.schedule().delay(attempt.saturating_sub(1))
    }
}

/// An edge between two nodes of one graph.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Source node.
    pub src: NodeId,
    /// Destination node.
    pub dst: NodeId,
    /// Soft edges: any one soft predecessor satisfies the group.
    pub soft: bool,
    /// How the destination consumes a stream coming over this edge.
    pub policy: EdgePolicy,
    /// For collect edges: the slots (`var` of src → collect slot) to fill.
    pub collect_slots: Vec<(Arc<str>, SlotId)>,
    /// For collect edges: the streaming node whose whole stream is gathered, if any.
    pub scope: Option<NodeId>,
}

/// Consumption policy of an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgePolicy {
    /// Run the destination per item, at most `limit` at a time (0 = no limit of its own).
    PerItem {
        /// Concurrent per-item runs allowed over this edge.
        limit: u32,
    },
    /// Gather the whole stream and run the destination once.
    Collect,
}

/// How one input gets its value.
#[derive(Debug, Clone)]
pub struct InputPlan {
    /// Input name.
    pub name: Arc<str>,
    /// The source.
    pub source: InputSource,
    /// A miss is an error.
    pub required: bool,
    /// Used when the ref or scratch key has no value.
    pub fallback: Option<Value>,
}

/// Where an input's value comes from.
#[derive(Debug, Clone)]
pub enum InputSource {
    /// Another op's output, or the graph's input.
    Ref(RefPlan),
    /// A scratch entry (`null` when unset).
    Scratch(Arc<str>),
    /// A constant (literal or default).
    Value(Value),
    /// Nothing: `null` when optional, an error when required.
    Nothing,
}

/// A compiled ref.
#[derive(Debug, Clone)]
pub struct RefPlan {
    /// Slot read (walking up the contexts).
    pub slot: SlotId,
    /// Steps applied to the value.
    pub transforms: Vec<Transform>,
    /// `source.var`, for messages.
    pub label: Arc<str>,
}

/// A compiled branch.
#[derive(Debug, Clone, Default)]
pub struct BranchPlan {
    /// Ordered cases: condition → target node (`None` = a target outside the graph, e.g. END).
    pub cases: Vec<(RefPlan, Option<NodeId>)>,
    /// Each case's condition as text (`score >= 90`): the `matched` output of its match.
    pub descriptions: Vec<Arc<str>>,
    /// Target when no case matches.
    pub default: Option<Option<NodeId>>,
    /// The op's `anchor` input (an index into its inputs), when it has one: a target
    /// name that, when set, overrides every case.
    pub anchor: Option<usize>,
}

/// A compiled loop.
#[derive(Debug)]
pub struct LoopPlan {
    /// Stop once this is truthy (over [`LoopPlan::vars`]); `None` = run to the bound.
    pub until: Option<BoundExpr>,
    /// Upper bound on iterations (at least 1).
    pub max_iterations: u32,
    /// Loop variables: the graph's inputs and outputs, by name.
    pub vars: Vec<Arc<str>>,
    /// For each output id, its loop variable.
    pub output_vars: Vec<u32>,
}

/// Item-context ready counts of one streaming node.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    /// The streaming node.
    pub node: NodeId,
    /// Ready count of each node inside the item contexts.
    pub item_ready: Vec<u32>,
    /// Nodes in the stream (reachable through per-item edges), by id.
    pub members: Vec<bool>,
    /// For members that also wait for ops outside the stream: those ops.
    pub outside_preds: Vec<(NodeId, Vec<NodeId>)>,
}

impl<O> GraphPlan<O> {
    /// Number of nodes, nested graphs counted recursively.
    pub fn op_count(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| match &n.kind {
                NodeKind::Graph(g) => 1 + g.op_count(),
                _ => 1,
            })
            .sum()
    }
}

/// The nodes in an order where every edge (data and collect) goes forward (Kahn's
/// algorithm), and the in-degrees left: the nodes on a cycle, or behind one, are left
/// out of the order and keep a positive in-degree.
pub(crate) fn forward_order<O>(nodes: &[Node<O>], edges: &[Edge]) -> (Vec<usize>, Vec<u32>) {
    let mut indegree = vec![0u32; nodes.len()];
    for e in edges {
        indegree[e.dst as usize] += 1;
    }
    let mut order: Vec<usize> = (0..nodes.len()).filter(|&x| indegree[x] == 0).collect();
    let mut i = 0;
    while i < order.len() {
        let x = order[i];
        i += 1;
        for &eid in nodes[x].succ.iter().chain(&nodes[x].collects) {
            let d = edges[eid as usize].dst as usize;
            indegree[d] -= 1;
            if indegree[d] == 0 {
                order.push(d);
            }
        }
    }
    (order, indegree)
}
