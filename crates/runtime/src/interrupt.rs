//! Human-in-the-loop interrupts and resumable runs.
//!
//! An op body asks for input with [`crate::OpContext::interrupt`]. The first time, the
//! call fails with an interrupt: the op does not complete, nothing downstream of it runs,
//! independent work finishes, and the run ends reporting what it awaits under a stable
//! id derived from the op's path and context (not from the order ops ran in). Resuming
//! replays the run: ops that completed before are answered from the run's journal (their
//! bodies do not run again), and the interrupted calls receive the values supplied for
//! their ids. A [`RunState`] is plain data (serde), so it can be stored and resumed later
//! by another process.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What an interrupted op asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interrupt {
    /// Stable id: the op's full name, `@` and its item context when inside a stream
    /// (`main.review@[2]`), and `#n` for the n-th interrupt of one call (n > 0).
    pub id: String,
    /// Full name of the op.
    pub op: String,
    /// What the op sent (a question, a draft to approve, ...).
    pub payload: Value,
}

/// Everything needed to resume an interrupted run: plain data, no closures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The run's id.
    pub request_id: String,
    /// Digest of the compiled graph's document; resuming against another graph is refused.
    pub graph_fingerprint: String,
    /// The run's inputs.
    pub inputs: Map<String, Value>,
    /// The scratch space when the run stopped.
    pub scratch: Map<String, Value>,
    /// Completed op results (`op@context` → outputs).
    pub journal: Map<String, Value>,
    /// Answers given so far (`interrupt id` → value).
    pub answers: Map<String, Value>,
    /// What the run awaits.
    pub pending: Vec<Interrupt>,
}
