//! Middleware: hooks around every op call of a run (and of its nested runs).
//!
//! Order: `before` hooks run in registration order, `after` and `on_error` hooks in
//! reverse (the first middleware registered is the outermost layer). `before` may change
//! the inputs or fail the call; `after` may change the outputs or fail the call;
//! `on_error` may turn a failure into outputs (deliberately) or replace the error.
//! Generators get `before` only.

use crate::op::OpError;
use crate::record::{Inputs, Outputs};

/// Hooks around op calls. Every hook has a do-nothing default.
pub trait Middleware: Send + Sync + 'static {
    /// Before the op body runs, with its resolved inputs.
    fn before(&self, _op: &str, _inputs: &mut Inputs) -> Result<(), OpError> {
        Ok(())
    }

    /// After the op body succeeded, with its outputs.
    fn after(&self, _op: &str, _outputs: &mut Outputs) -> Result<(), OpError> {
        Ok(())
    }

    /// After the op body failed: return `Ok(outputs)` to recover, or an error (the same or
    /// another) to keep failing.
    fn on_error(&self, _op: &str, error: OpError) -> Result<Outputs, OpError> {
        Err(error)
    }
}
