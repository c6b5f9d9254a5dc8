//! The op abstraction: what the scheduler calls.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use crate::record::{Inputs, Outputs};
use crate::scratch::Scratch;
use crate::trace::{EventKind, OpTrace};
use std::collections::BTreeMap;

/// The result of one op call (or of one generator item).
pub type OpResult = Result<Outputs, OpError>;

/// What calling an op produced.
pub enum Invocation {
    /// A synchronous op's result.
    Ready(OpResult),
    /// An asynchronous op's pending result.
    Future(BoxFuture<'static, OpResult>),
    /// A synchronous generator: items are pulled as downstream capacity allows.
    Items(Box<dyn Iterator<Item = OpResult> + Send>),
    /// An asynchronous generator.
    Stream(BoxStream<'static, OpResult>),
}

impl fmt::Debug for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invocation::Ready(_) => "Invocation::Ready",
            Invocation::Future(_) => "Invocation::Future",
            Invocation::Items(_) => "Invocation::Items",
            Invocation::Stream(_) => "Invocation::Stream",
        })
    }
}

/// Whether an op yields one frame or many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// One output frame per call.
    Plain,
    /// Any number of output frames (items) per call.
    Generator,
}

/// An op implementation: code ops, parser and prompt ops, and user-defined op types.
pub trait Op: Send + Sync + 'static {
    /// Run the op once.
    fn call(&self, inputs: Inputs, ctx: &OpContext) -> Invocation;

    /// Plain or generator.
    fn kind(&self) -> OpKind {
        OpKind::Plain
    }

    /// Whether the op may be given objects that are not JSON (their stand-ins, see
    /// [`crate::object`]). Ops that need JSON values (the built-in op types) say `false`:
    /// the run then fails such a call with an error naming the input and the type.
    fn accepts_objects(&self) -> bool {
        true
    }
}

/// An op that knows the name it is registered under (what `#[op]` generates).
pub trait NamedOp: Op {
    /// The registry name.
    fn name(&self) -> &'static str;
}

/// What an op body may use while it runs.
#[derive(Debug, Clone)]
pub struct OpContext {
    op: Arc<str>,
    scratch: Scratch,
    trace: Option<OpTrace>,
    resume: Option<Arc<ResumeScope>>,
    frames: Option<Arc<FrameScope>>,
    scope: Option<OpScope>,
    extension: Option<Arc<dyn std::any::Any + Send + Sync>>,
    objects: Option<Arc<crate::object::ObjectTable>>,
}

/// Where an op call runs, and the run's board for in-band cancellation.
pub(crate) type OpScope = Arc<(Arc<crate::run::ScopeBoard>, crate::trace::EventCtx)>;

/// Where an op call's custom frames go.
#[derive(Debug)]
pub(crate) struct FrameScope {
    pub sender: tokio::sync::mpsc::UnboundedSender<crate::run_event::CustomFrame>,
    pub ctx: Vec<String>,
}

/// Where an op call sits, for interrupt ids, and the run's journal.
#[derive(Debug)]
pub(crate) struct ResumeScope {
    pub journal: Arc<crate::journal::Journal>,
    /// Item indexes from the run's root down to this call's context.
    pub location: String,
    pub count: std::sync::atomic::AtomicU32,
    /// The call's journal key (`op@context`).
    pub key: Arc<str>,
    /// The run's id, when it has one.
    pub run_id: Option<Arc<str>>,
}

impl OpContext {
    /// A context for op `op` (full name) sharing `scratch`.
    pub fn new(op: Arc<str>, scratch: Scratch) -> Self {
        Self { op, scratch, trace: None, resume: None, frames: None, scope: None, extension: None, objects: None }
    }

    pub(crate) fn traced(mut self, trace: Option<OpTrace>) -> Self {
        self.trace = trace;
        self
    }

    pub(crate) fn scoped(mut self, scope: OpScope) -> Self {
        self.scope = Some(scope);
        self
    }

    pub(crate) fn with_extension(mut self, extension: Option<Arc<dyn std::any::Any + Send + Sync>>) -> Self {
        self.extension = extension;
        self
    }

    pub(crate) fn with_objects(mut self, objects: Arc<crate::object::ObjectTable>) -> Self {
        self.objects = Some(objects);
        self
    }

    /// The run's table of objects that are not JSON (`None` for a context made outside a run).
    pub fn objects(&self) -> Option<&Arc<crate::object::ObjectTable>> {
        self.objects.as_ref()
    }

    /// Pass `value` (any Rust value) to the ops that read this op's output: returns the
    /// stand-in to output; [`OpContext::object_value`] gives the value back. `None`
    /// outside a run.
    pub fn put_object<T: std::any::Any + Send + Sync + fmt::Debug>(&self, value: T) -> Option<serde_json::Value> {
        self.objects.as_ref().map(|t| t.put_value(value))
    }

    /// The Rust value of type `T` that input value `stand_in` stands for.
    pub fn object_value<T: std::any::Any + Clone>(&self, stand_in: &serde_json::Value) -> Option<T> {
        self.objects.as_ref()?.get_value(stand_in)
    }

    /// The data the run's caller attached to the run (`RunOptions::extension`), when it
    /// is a `T`: e.g. a language binding's per-run state.
    pub fn extension<T: std::any::Any>(&self) -> Option<&T> {
        self.extension.as_deref().and_then(|e| e.downcast_ref::<T>())
    }

    /// This call's context path (`["main"]`, `["main", "[3]"]` for generator item 3,
    /// `["main", "__collect__"]` for a `.collect()` consumer and what runs after it, ...),
    /// as its trace events and its journal key have it.
    pub fn context_path(&self) -> Vec<String> {
        self.scope.as_ref().map(|s| s.1.to_path()).unwrap_or_default()
    }

    /// Cancel the work of the context at `path` and everything below it, anywhere in the
    /// run (e.g. the item of an earlier turn, from [`OpContext::context_path`] saved in
    /// scratch): queued ops there are dropped, running ones aborted, their results
    /// discarded, and the rest of the run goes on. `["main"]` stops the whole run. A
    /// `"__collect__"` in `path` names the context the collect consumer runs in (cancelling
    /// `["main", "__collect__"]` cancels `["main"]`).
    pub fn cancel_context(&self, path: Vec<String>, reason: impl Into<String>) {
        if let Some(s) = &self.scope {
            s.0.cancel(path, reason.into());
        }
    }

    /// Cancel the context this call runs in (its generator item; at the top level, the run).
    pub fn cancel_own_context(&self, reason: impl Into<String>) {
        self.cancel_context(self.context_path(), reason);
    }

    pub(crate) fn with_frames(mut self, scope: Option<Arc<FrameScope>>) -> Self {
        self.frames = scope;
        self
    }

    /// Whether the run streams frames (so producing them is worth it).
    pub fn streams_frames(&self) -> bool {
        self.frames.is_some()
    }

    /// Send a frame to whoever watches the run (`kind` e.g. `"progress"`). A no-op when
    /// the run does not stream frames.
    pub fn send_frame(&self, kind: &str, data: impl Into<serde_json::Value>) {
        if let Some(f) = &self.frames {
            // The receiver lives as long as the run; a send after it ended is dropped.
            let _ = f.sender.send(crate::run_event::CustomFrame {
                op: self.op.clone(),
                ctx: f.ctx.clone(),
                kind: kind.to_string(),
                data: data.into(),
            });
        }
    }

    /// Stream one model token delta (a `"token"` frame).
    pub fn send_token(&self, delta: &str) {
        self.send_frame("token", serde_json::Value::String(delta.to_string()));
    }

    pub(crate) fn resumable(mut self, scope: Option<Arc<ResumeScope>>) -> Self {
        self.resume = scope;
        self
    }

    /// Ask a human (or any outside party) for a value. In a resumable run, the first call
    /// pauses this op: return the error with `?`, the run ends reporting the interrupt,
    /// and resuming with a value for its id makes this call return that value. Each call
    /// in one op body gets its own id (`#1`, `#2`, ...). In a run that is not resumable
    /// this fails with a clear error.
    pub fn interrupt(&self, payload: impl Into<serde_json::Value>) -> Result<serde_json::Value, OpError> {
        let Some(scope) = &self.resume else {
            return Err(OpError::new(
                "this op asks for input (interrupt), but the run is not resumable; start it with RunOptions::resumable",
            ));
        };
        let n = scope.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut id = format!("{}{}", self.op, scope.location);
        if n > 0 {
            id.push_str(&format!("#{n}"));
        }
        match scope.journal.answer(&id) {
            Some(v) => Ok(v.clone()),
            None => Err(OpError::interrupted(crate::interrupt::Interrupt {
                id,
                op: self.op.to_string(),
                payload: payload.into(),
            })),
        }
    }

    /// A key naming this op call, the same every time the run is resumed: pass it to an
    /// outside API that de-duplicates requests (an `Idempotency-Key` header, say), so a
    /// call that runs again after a crash (ops in flight when a run stops run again on
    /// resume) is not done twice there. It is the run id, `-`, and 32 hex digits of a
    /// 128-bit hash of the op's full name and context path (loop iteration and item
    /// indexes included). `None` when the run keeps no journal or has no id.
    pub fn idempotency_key(&self) -> Option<String> {
        let scope = self.resume.as_ref()?;
        let run = scope.run_id.as_deref().filter(|r| !r.is_empty())?;
        Some(format!("{run}-{:032x}", operonx_graph::digest::hash128(scope.key.as_bytes())))
    }

    /// Whether this run is traced (so building trace payloads is worth it).
    pub fn is_traced(&self) -> bool {
        self.trace.is_some()
    }

    /// Attach `key = value` to this op call in the trace (an `annotation` event).
    pub fn annotate(&self, key: &str, value: impl Into<serde_json::Value>) {
        if let Some(t) = &self.trace {
            let mut p = BTreeMap::new();
            p.insert("key".to_string(), serde_json::Value::String(key.to_string()));
            p.insert("value".to_string(), value.into());
            t.emit(EventKind::Annotation, p);
        }
    }

    /// Record a trace event of `kind` bound to this op call (e.g. `llm_usage` with
    /// `model`, `prompt_tokens`, `completion_tokens`, `total_tokens`, `cost_usd`).
    pub fn emit(&self, kind: EventKind, payload: BTreeMap<String, serde_json::Value>) {
        if let Some(t) = &self.trace {
            t.emit(kind, payload);
        }
    }

    /// The op's full name (`main.sub.b`).
    pub fn op_name(&self) -> &str {
        &self.op
    }

    /// The run's scratch space (shared with nested graphs).
    pub fn scratch(&self) -> &Scratch {
        &self.scratch
    }
}

/// An op failure. The message is what users see, next to the op's path.
#[derive(Debug)]
pub struct OpError {
    message: String,
    timed_out: bool,
    cancelled: bool,
    interrupt: Option<Box<crate::interrupt::Interrupt>>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl OpError {
    /// A failure with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), timed_out: false, cancelled: false, interrupt: None, source: None }
    }

    /// A failure caused by another error (kept as the source).
    pub fn with_source(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: message.into(),
            timed_out: false,
            cancelled: false,
            interrupt: None,
            source: Some(Box::new(source)),
        }
    }

    /// An attempt that ran out of time (it was cancelled).
    pub fn timed_out(after: std::time::Duration) -> Self {
        Self {
            message: format!("timed out after {:.3}s", after.as_secs_f64()),
            timed_out: true,
            cancelled: false,
            interrupt: None,
            source: None,
        }
    }

    /// The op paused for input (see [`OpContext::interrupt`]); not a failure.
    pub fn interrupted(interrupt: crate::interrupt::Interrupt) -> Self {
        Self {
            message: format!("waiting for input ({})", interrupt.id),
            timed_out: false,
            cancelled: false,
            interrupt: Some(Box::new(interrupt)),
            source: None,
        }
    }

    /// The call was cancelled, not failed (e.g. Ctrl-C landed in its body while the run
    /// is being stopped): its span closes as cancelled, it is not reported under
    /// `$errors`, and nothing downstream of it runs.
    pub fn cancelled(reason: impl Into<String>) -> Self {
        Self { message: reason.into(), timed_out: false, cancelled: true, interrupt: None, source: None }
    }

    /// Whether the call was cancelled rather than failed.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }

    /// The interrupt this "error" stands for, if the op paused for input.
    pub fn as_interrupt(&self) -> Option<&crate::interrupt::Interrupt> {
        self.interrupt.as_deref()
    }

    pub(crate) fn into_interrupt(self) -> Option<crate::interrupt::Interrupt> {
        self.interrupt.map(|b| *b)
    }

    /// Whether this failure is a timeout.
    pub fn is_timeout(&self) -> bool {
        self.timed_out
    }

    /// Prefix the message with context (`"after 3 attempts: ..."`).
    pub fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// A problem with input `name`.
    pub fn input(name: &str, message: impl fmt::Display) -> Self {
        Self::new(format!("input '{name}': {message}"))
    }

    /// The message without the source chain.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for OpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<String> for OpError {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<&str> for OpError {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<serde_json::Error> for OpError {
    fn from(e: serde_json::Error) -> Self {
        Self::with_source("JSON error", e)
    }
}
