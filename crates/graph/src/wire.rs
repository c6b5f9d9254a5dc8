//! The graph.json wire format, exactly as the Python exporter writes it (and the
//! compact hand-written dialect). These types only describe the document; meaning is
//! given to them by [`crate::compile()`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The sentinel that hand-written graphs use for "the enclosing graph".
pub const PARENT: &str = "__PARENT__";

/// The only `schema_version` this engine reads.
pub const SCHEMA_VERSION: &str = "1.0";

/// One op of a graph (the root graph and nested graphs are ops too).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct OpConfig {
    /// Op type: `code`, `branch`, `graph`, `parser`, `prompt`, ...
    #[serde(rename = "type")]
    pub op_type: String,
    /// Short name, unique within the enclosing graph.
    pub name: String,
    /// Dotted path from the root graph (`main.sub.b`).
    pub full_name: String,
    /// Registered function name of a code op (maybe a dotted Python path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub func_name: Option<String>,
    /// Informational: the Python function was `async`.
    pub is_async: bool,
    /// The op yields several output frames, one per item.
    pub is_generator: bool,
    /// A disabled op never runs and nothing downstream of it runs.
    #[serde(deserialize_with = "default_true")]
    pub enabled: bool,
    /// Informational (Python logging).
    pub verbose: bool,
    /// Provider ops: call the streaming API.
    pub stream: bool,
    /// `sync` (inline), `io` (concurrent) or `cpu`.
    pub bound: Bound,
    /// Input parameters by name.
    pub inputs: Map<String, Value>,
    /// Output parameters by name.
    pub outputs: Map<String, Value>,
    /// Python op cache setting (`true` or a file path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<Value>,
    /// Python delay in seconds before the op runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<f64>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Branch: ordered cases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cases: Option<Vec<BranchCase>>,
    /// Branch: target when no case matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Branch: informational list of possible targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Value>,
    /// Graph: child ops by short name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ops: Option<Map<String, Value>>,
    /// Graph: the authored edges (informational; `compiled_adj` is authoritative).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edges: Option<Vec<Value>>,
    /// Graph: ops started first, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<String>>,
    /// Graph: ops wired to END.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exits: Option<Vec<String>>,
    /// Graph: predecessor completions each op waits for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_ready_count: Option<Map<String, Value>>,
    /// Graph: successors of each op as `[dst, soft]` pairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compiled_adj: Option<Map<String, Value>>,
    /// Graph: ready counts inside the item contexts of a generator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_initial_ready: Option<Map<String, Value>>,
    /// Graph: makes the graph a loop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loop_config: Option<LoopConfig>,
    /// Graph: bound on concurrently running io ops and in-flight stream items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_stream_concurrent: Option<i64>,
    /// Provider ops and anything else this engine does not interpret yet.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for OpConfig {
    fn default() -> Self {
        Self {
            op_type: String::new(),
            name: String::new(),
            full_name: String::new(),
            func_name: None,
            is_async: false,
            is_generator: false,
            enabled: true,
            verbose: false,
            stream: false,
            bound: Bound::Sync,
            inputs: Map::new(),
            outputs: Map::new(),
            cache: None,
            delay: None,
            description: None,
            cases: None,
            default: None,
            candidates: None,
            ops: None,
            edges: None,
            entries: None,
            exits: None,
            initial_ready_count: None,
            compiled_adj: None,
            stream_initial_ready: None,
            loop_config: None,
            max_stream_concurrent: None,
            extra: Map::new(),
        }
    }
}

fn default_true<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
}

/// Where an op runs.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// Inline on the scheduler.
    #[default]
    Sync,
    /// Concurrently with other io ops.
    Io,
    /// CPU-heavy; scheduled like `io`.
    Cpu,
}

/// One branch case: the first case whose condition is truthy picks `target`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BranchCase {
    /// A ref (with transforms) evaluated in the branch's context.
    pub condition: RefSpec,
    /// Short name of the op to run.
    pub target: String,
}

/// `loop_config` of a looping graph.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LoopConfig {
    /// Expression over the loop's variables; the loop stops once it is truthy.
    pub until: Option<String>,
    /// Upper bound on iterations.
    pub max_iterations: Option<i64>,
    /// Keys older exporters wrote; accepted and ignored.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One input or output parameter.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ParamSpec {
    /// Value used when nothing else supplies one.
    pub default: Option<Value>,
    /// A missing value is an error.
    pub required: bool,
    /// Read another op's output (or the graph's input).
    #[serde(rename = "ref")]
    pub reference: Option<RefSpec>,
    /// Read the run's scratch space.
    pub scratch: Option<ScratchSpec>,
    /// A constant.
    pub literal: Option<Value>,
    /// Optional type annotation some exporters add.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_hint: Option<Value>,
    /// Optional description some exporters add.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Value>,
}

/// `{"key": "..."}`: read scratch entry `key`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScratchSpec {
    /// The scratch key.
    pub key: String,
}

/// A reference to a variable of an op (or of the enclosing graph).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RefSpec {
    /// Full name of the source op, the graph's full name, or `__PARENT__`.
    pub source: String,
    /// Variable name in the source's namespace.
    pub var: String,
    /// `[name, [args...]]` pairs applied in order.
    pub transforms: Vec<Value>,
    /// Informational.
    pub is_output: bool,
    /// How a consumer reads a streaming source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_policy: Option<StreamPolicySpec>,
}

/// `.collect()` / `.parallel()` marks of a ref.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StreamPolicySpec {
    /// Gather the whole stream into one list and run the consumer once.
    pub collect: bool,
    /// Run per-item consumers concurrently.
    pub parallel: bool,
    /// Bound on concurrent per-item runs (0 = no bound beyond the graph's).
    pub parallel_max: i64,
}
