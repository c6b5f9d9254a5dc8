//! The operonx runtime: the op abstraction, the registry, and the dataflow scheduler
//! that runs a compiled graph plan.

pub mod cache;
pub mod interrupt;
pub mod journal;
pub mod middleware;
pub mod object;
pub mod op;
pub mod outcome;
pub mod record;
pub mod registry;
mod run;
pub mod run_event;
pub mod scratch;
pub mod trace;

pub use cache::{MemoryCache, OpCache};
pub use interrupt::{Interrupt, RunState};
pub use journal::{Journal, JournalEntry, JournalError, JournalSink, StreamRecord};
pub use middleware::Middleware;
pub use object::{HostObject, ObjectTable};
pub use op::{Invocation, NamedOp, Op, OpContext, OpError, OpKind, OpResult};
pub use outcome::RunOutcome;
pub use record::{Inputs, Outputs, RunInputs};
pub use registry::{OpFactory, Registry};
pub use run::{Canceller, GraphRun, Plan, RunEnv};
pub use run_event::{CustomFrame, OpFailure, OutputFrame, RunEvent};
pub use scratch::Scratch;
pub use trace::{EventKind, MemorySink, RunRecorder, RunTracer, TraceEvent, TraceSink};
