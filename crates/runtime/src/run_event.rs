//! What a run reports to its observer as it goes ([`RunEvent`]: output frames, custom
//! frames and op failures). Not to be confused with the trace events ([`crate::trace`]),
//! the flat record that tracing sinks and the `operonx-trace` crate consume.

use std::sync::Arc;

use serde_json::Value;

/// A failed op.
#[derive(Debug, Clone, PartialEq)]
pub struct OpFailure {
    /// Full name of the op (`main.sub.b`).
    pub op: Arc<str>,
    /// The context it ran in (`main`, `main/2`, `main/loop_3`...).
    pub context: String,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for OpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]: {}", self.op, self.context, self.message)
    }
}

/// Values an op wrote to graph outputs in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputFrame {
    /// Full name of the op that produced the values (or of the loop graph for its final state).
    pub op: Arc<str>,
    /// `(graph output name, value)` pairs.
    pub values: Vec<(Arc<str>, Value)>,
    /// Written from a generator item's context. A nested graph hands its parent a list
    /// of what its items wrote, but only the last of what its own context wrote (as the
    /// reference engine does).
    pub per_item: bool,
}

/// A frame an op body sent while running (`OpContext::send_frame`), e.g. LLM token
/// deltas (`kind` = `"token"`) or progress reports. Namespaced by the op's full name and
/// context path, from any nesting depth.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomFrame {
    /// Full name of the op that sent it.
    pub op: Arc<str>,
    /// The op call's context path (`["main", "[2]"]`).
    pub ctx: Vec<String>,
    /// What kind of frame (`token`, `progress`, ...).
    pub kind: String,
    /// The frame's data.
    pub data: Value,
}

/// One event of a run's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// Graph outputs were produced.
    Output(OutputFrame),
    /// An op failed; nothing downstream of it runs.
    Failure(OpFailure),
    /// A frame an op body sent while running (only when the run streams frames).
    Custom(CustomFrame),
    /// An op paused for input; nothing downstream of it runs until the run is resumed.
    Interrupted(crate::interrupt::Interrupt),
    /// The run was stopped before it finished (cancelled, timed out, fail-fast); the
    /// reason says why. Always the last event.
    Stopped(String),
}

impl RunEvent {
    /// The event as one line of `operonx run --stream` (and of the Python package's
    /// `Engine.stream`): `{"seq": n, "type": "output" | "failure" | "frame" | "interrupt" |
    /// "stopped", ...}`.
    pub fn to_stream_json(&self, seq: u64) -> Value {
        use serde_json::json;
        match self {
            RunEvent::Output(f) => {
                let values: serde_json::Map<String, Value> =
                    f.values.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
                json!({"seq": seq, "type": "output", "op": &*f.op, "values": values})
            }
            RunEvent::Failure(f) => {
                json!({"seq": seq, "type": "failure", "op": &*f.op, "context": f.context, "message": f.message})
            }
            RunEvent::Custom(f) => {
                json!({"seq": seq, "type": "frame", "op": &*f.op, "ctx": f.ctx, "kind": f.kind, "data": f.data})
            }
            RunEvent::Interrupted(i) => {
                json!({"seq": seq, "type": "interrupt", "id": i.id, "op": i.op, "payload": i.payload})
            }
            RunEvent::Stopped(reason) => json!({"seq": seq, "type": "stopped", "reason": reason}),
        }
    }
}
