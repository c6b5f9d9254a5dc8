//! operonx: a fast dataflow engine for Operon workflows.
//!
//! Load a `graph.json` exported by the Python `operonx` package (or build one in Rust),
//! register the functions its code ops call, and run it:
//!
//! ```
//! use operonx::{Engine, Outputs, json};
//!
//! let mut engine = Engine::new();
//! engine.registry_mut().register_fn("double", |mut inputs, _ctx| {
//!     let x: i64 = inputs.parse("x")?;
//!     Ok(Outputs::one("result", x * 2))
//! });
//! let graph = r#"{"schema_version": "1.0", "type": "graph", "name": "main",
//!   "entries": ["d"], "initial_ready_count": {"d": 0}, "compiled_adj": {"d": []},
//!   "ops": {"d": {"type": "code", "func_name": "double",
//!     "inputs": {"x": {"required": true, "ref": {"source": "__PARENT__", "var": "x"}}},
//!     "outputs": {"result": {"ref": {"source": "__PARENT__", "var": "y"}}}}}}"#;
//! let workflow = engine.load_str(graph).unwrap();
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let outcome = rt.block_on(workflow.run(json!({"x": 21}))).unwrap();
//! assert_eq!(outcome.to_json(), json!({"y": 42}));
//! ```

mod engine;
mod handle;
mod inputs;

pub use engine::{
    Engine, Error, RunOptions, StopHandle, Workflow, is_request_id, is_request_id_prefix, new_request_id,
};
pub use handle::RunHandle;
pub use inputs::MissingInput;
pub use operonx_graph::{self as graph, Diagnostic, GraphDocument, GraphError};
pub use operonx_macros::op;
pub use operonx_ops as ops;
#[cfg(feature = "providers")]
pub use operonx_providers as providers;
pub use operonx_runtime::trace::{self, EventKind, MemorySink, RunTracer, TraceEvent, TraceSink};
pub use operonx_runtime::{
    Canceller, CustomFrame, GraphRun, HostObject, Inputs, Interrupt, Invocation, Journal, JournalEntry, JournalError,
    JournalSink, MemoryCache, Middleware, NamedOp, ObjectTable, Op, OpCache, OpContext, OpError, OpFailure, OpKind,
    OpResult, OutputFrame, Outputs, Registry, RunEnv, RunEvent, RunInputs, RunOutcome, RunState, Scratch,
};
pub use serde_json::{Map, Value, json};

/// Items used by code that `#[op]` generates. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use serde_json;
}
