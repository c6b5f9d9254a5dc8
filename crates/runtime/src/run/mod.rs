//! The dataflow scheduler. A [`GraphRun`] is a [`Stream`] of [`RunEvent`]s: polling it
//! runs the graph. Sync ops run inline the moment they are ready; async ops, async
//! generators and nested graphs are futures owned by the run, so dropping the run
//! cancels every one of them.

mod context;
mod dispatch;
mod flow;
mod looping;
mod policy;
mod scope;
mod stop;
mod tracing;

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, FuturesUnordered, Stream, StreamExt};
use operonx_graph::GraphPlan;
use operonx_graph::plan::{EdgeId, NodeId};
use serde_json::{Map, Value};

use crate::cache::{CacheKey, OpCache};
use crate::middleware::Middleware;
use crate::op::{Op, OpResult};
use crate::record::{Held, Inputs, Outputs};
use crate::run_event::RunEvent;
use crate::scratch::Scratch;
use crate::trace::RunTracer;
use context::{Contexts, CtxId, NONE};
use looping::LoopState;
pub use scope::ScopeBoard;
pub use stop::Canceller;

/// A compiled graph whose ops are bound to implementations.
pub type Plan = GraphPlan<Arc<dyn Op>>;

/// Work for the inline queue.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// Run `node` in `ctx`; `via` is the edge whose concurrency slot it holds.
    Run(NodeId, CtxId, Option<EdgeId>),
}

/// A traced op call: its span id and when it started.
#[derive(Debug, Clone, Copy)]
struct Span {
    id: u64,
    started: Instant,
}

/// What a run shares with its nested runs: middleware, the op cache, and a run-wide
/// bound on concurrently running io ops (which holds however graphs nest).
#[derive(Clone, Default)]
pub struct RunEnv {
    /// Hooks around every op call, outermost first.
    pub middleware: Vec<Arc<dyn Middleware>>,
    /// Where results of ops marked `cache` are kept; `None` = not cached.
    pub cache: Option<Arc<dyn OpCache>>,
    /// Run-wide bound on io ops running at once, across nested graphs.
    pub limiter: Option<Arc<tokio::sync::Semaphore>>,
    /// Makes the run resumable: completed op results are recorded (and replayed), and
    /// ops may ask for input with `OpContext::interrupt`.
    pub journal: Option<Arc<crate::journal::Journal>>,
    /// The run's id (for op calls' idempotency keys).
    pub run_id: Option<Arc<str>>,
    /// Where op bodies' custom frames go (set by [`GraphRun::stream_frames`]).
    pub frames: Option<tokio::sync::mpsc::UnboundedSender<crate::run_event::CustomFrame>>,
    /// In-band cancellation requests (`OpContext::cancel_context`), shared with nested runs.
    pub scopes: Arc<scope::ScopeBoard>,
    /// Data of the caller's own, handed to every op call of the run, nested graphs
    /// included (see `OpContext::extension`): e.g. the host language's event loop.
    pub extension: Option<Arc<dyn std::any::Any + Send + Sync>>,
    /// The run's objects that are not JSON (see [`crate::object`]), shared with nested runs.
    pub objects: Arc<crate::object::ObjectTable>,
}

impl std::fmt::Debug for RunEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunEnv")
            .field("middleware", &self.middleware.len())
            .field("cache", &self.cache.is_some())
            .field("limiter", &self.limiter.as_ref().map(|s| s.available_permits()))
            .field("resumable", &self.journal.is_some())
            .field("streams_frames", &self.frames.is_some())
            .field("extension", &self.extension.is_some())
            .field("objects", &self.objects.len())
            .finish()
    }
}

/// Where a successful result is also recorded.
#[derive(Debug, Default)]
struct Post {
    cache: Option<CacheKey>,
    journal: Option<Arc<str>>,
    /// Token of the op's abort handle (ops in item contexts can be cancelled in-band).
    abort: Option<u64>,
}

/// What a finished future reports back.
enum Done {
    Op {
        node: NodeId,
        ctx: CtxId,
        via: Option<EdgeId>,
        result: OpResult,
        span: Option<Span>,
        post: Post,
    },
    Item {
        stream: u32,
        next: Option<OpResult>,
        rest: BoxStream<'static, OpResult>,
    },
    Child {
        stream: u32,
        next: Option<RunEvent>,
        child: Box<GraphRun>,
    },
    /// An op's `delay` is over: run it.
    Delayed {
        node: NodeId,
        ctx: CtxId,
        via: Option<EdgeId>,
    },
}

enum Source {
    Iter(Box<dyn Iterator<Item = OpResult> + Send>),
    /// An async generator; `None` while its next item is being awaited.
    Stream(Option<BoxStream<'static, OpResult>>),
    /// A nested graph run; `None` while its next event is being awaited.
    Child(Option<Box<GraphRun>>),
}

/// One value gathered for a collect edge: the item path (for ordering) and the value of
/// each collected variable.
type Gathered = (Vec<u32>, Vec<Option<Value>>);

/// One running stream: a generator call or a nested graph call.
struct StreamInst {
    node: NodeId,
    ctx: CtxId,
    /// Items fan out to child contexts (`true`) or merge into one result (`false`).
    fan: bool,
    source: Source,
    next_index: u32,
    alive: u32,
    exhausted: bool,
    /// The next pull is waiting for an item to finish.
    stalled: bool,
    /// Nodes that failed inside this stream's items.
    failed: Vec<NodeId>,
    /// A nested graph's outputs so far; for a traced stream whose items fan out, the last
    /// item (what its op_end records).
    merged: Outputs,
    merged_counts: Vec<u32>,
    /// The stream's own failure (the generator or nested graph op itself).
    own_error: Option<String>,
    /// A nested run waits for input.
    paused: bool,
    /// Its context was cancelled in-band: items are ignored and the node does not complete.
    cancelled: bool,
    /// A future for the next item or nested-run event is pending (the stream cannot be
    /// finished and its id reused before it reports back).
    awaiting: bool,
    span: Option<Span>,
    yields: u64,
    /// Collect buffers, one per collect edge scoped to this stream.
    buffers: Vec<(EdgeId, Vec<Gathered>)>,
    /// The edge slot a nested graph run holds until it finishes (an item's nested
    /// graph counts against its edge's per-item limit for its whole run).
    via: Option<EdgeId>,
    /// The generator call's journal, in a resumable run.
    journal: Option<StreamJournal>,
}

/// A generator call in a resumable run: its journal key, the items journaled before the
/// run was resumed (what it yields again is checked against them), and how many items it
/// has yielded.
struct StreamJournal {
    key: Arc<str>,
    expected: Vec<Outputs>,
    produced: u32,
}

/// A running graph. Poll it as a [`Stream`] to drive it; drop it to cancel it.
pub struct GraphRun {
    plan: Arc<Plan>,
    scratch: Scratch,
    ctxs: Contexts,
    root: CtxId,
    queue: VecDeque<Work>,
    /// Synchronous generators to pull their next item from, newest last. A pull waits
    /// until no other work is queued, so an item's synchronous ops (its nested
    /// generators' items included) all run before the next item is made, as in the
    /// reference engine; ops within an item still run breadth-first.
    pulls: Vec<u32>,
    pending: FuturesUnordered<BoxFuture<'static, Done>>,
    io_running: usize,
    io_waiting: VecDeque<(NodeId, CtxId, Option<EdgeId>)>,
    /// Ops whose `delay` is over, about to run (rare: only ops with a delay).
    delay_done: Vec<(NodeId, CtxId)>,
    edge_active: Vec<u32>,
    edge_waiting: Vec<VecDeque<CtxId>>,
    streams: Vec<Option<StreamInst>>,
    free_streams: Vec<u32>,
    parked: Vec<(NodeId, CtxId)>,
    track_done: bool,
    /// Events ready for the caller (a cell, so span bookkeeping through `&self` can add
    /// lifecycle frames in order).
    events: std::cell::RefCell<VecDeque<RunEvent>>,
    looping: Option<LoopState>,
    /// A failure happened in this run (loops stop on it).
    failed: bool,
    /// An op of this run waits for input (loops stop on it).
    interrupted: bool,
    finished: bool,
    tracer: Option<RunTracer>,
    /// Event context path of this run's root (`["main"]`, or the dispatching context of a nested run).
    prefix: Arc<[String]>,
    /// Span of the op that started this run (a nested graph op), if any.
    parent_span: Option<u64>,
    /// Span of the current loop iteration's group.
    group_span: Option<Span>,
    /// Stop the whole run at the first failure.
    fail_fast: bool,
    /// Set when the run must stop; handled at the next step.
    stop_reason: Option<String>,
    cancel: stop::Canceller,
    /// Spans opened and not yet closed (only tracked when traced), closed as `cancelled`
    /// if the run stops or is dropped first.
    open_spans: std::cell::RefCell<Vec<(u64, NodeId, CtxId, Span)>>,
    env: Arc<RunEnv>,
    /// Board generation and requests already applied.
    scope_generation: u64,
    scope_requests_seen: usize,
    /// Abort handles of running ops in item contexts; a token indexes this slab.
    aborts: Vec<Option<(CtxId, futures_util::future::AbortHandle)>>,
    free_aborts: Vec<u64>,
    /// The root run's end of the custom frame channel.
    frames_rx: Option<std::cell::RefCell<tokio::sync::mpsc::UnboundedReceiver<crate::run_event::CustomFrame>>>,
    /// Inline work done since the run last let its task go ([`STEP_BUDGET`]).
    steps: u32,
}

/// Most inline work (ops run, items pulled, results taken in) a run does before it lets
/// its task go once, even when it could go on: a synchronous generator of endless items
/// or a long synchronous chain would otherwise hold the thread, and the run's timeout, a
/// cancellation or Ctrl-C would never be seen.
const STEP_BUDGET: u32 = 2048;

impl GraphRun {
    /// Start a run of `plan` with the caller's `inputs` (undeclared keys are readable too).
    pub fn new(plan: Arc<Plan>, inputs: &Map<String, Value>, scratch: Scratch) -> Self {
        Self::traced(plan, inputs, scratch, None)
    }

    /// Start a run whose events go to `tracer` (when given). The inputs it reads are
    /// copied; [`GraphRun::traced_shared`] shares them instead.
    pub fn traced(plan: Arc<Plan>, inputs: &Map<String, Value>, scratch: Scratch, tracer: Option<RunTracer>) -> Self {
        let lookup = |name: &str| inputs.get(name).map(|v| Held::new(v.clone()));
        Self::start(plan, &lookup, scratch, tracer, Arc::from(vec!["main".to_string()]), None)
    }

    /// Start a run of `plan` on inputs shared with the caller: nothing is copied, however
    /// large they are.
    pub fn traced_shared(
        plan: Arc<Plan>,
        inputs: &crate::record::RunInputs,
        scratch: Scratch,
        tracer: Option<RunTracer>,
    ) -> Self {
        let lookup = |name: &str| inputs.get(name).map(|v| Held::Shared(v.clone()));
        Self::start(plan, &lookup, scratch, tracer, Arc::from(vec!["main".to_string()]), None)
    }

    /// Start a nested run with inputs resolved by the parent.
    pub(crate) fn child(
        plan: Arc<Plan>,
        inputs: Inputs,
        scratch: Scratch,
        tracer: Option<RunTracer>,
        prefix: Arc<[String]>,
        parent_span: Option<u64>,
    ) -> Self {
        let lookup = |name: &str| inputs.shared_entries().find(|(n, _)| &***n == name).map(|(_, v)| v.clone());
        Self::start(plan, &lookup, scratch, tracer, prefix, parent_span)
    }

    fn start(
        plan: Arc<Plan>,
        lookup: &dyn Fn(&str) -> Option<Held>,
        scratch: Scratch,
        tracer: Option<RunTracer>,
        prefix: Arc<[String]>,
        parent_span: Option<u64>,
    ) -> Self {
        let edges = plan.edges.len();
        let track_done = plan.streams.iter().any(|s| !s.outside_preds.is_empty());
        let mut run = GraphRun {
            looping: plan.looping.as_ref().map(|lp| LoopState::new(&plan, lp, lookup)),
            plan,
            scratch,
            ctxs: Contexts::default(),
            root: NONE,
            queue: VecDeque::new(),
            pulls: Vec::new(),
            pending: FuturesUnordered::new(),
            io_running: 0,
            io_waiting: VecDeque::new(),
            delay_done: Vec::new(),
            edge_active: vec![0; edges],
            edge_waiting: (0..edges).map(|_| VecDeque::new()).collect(),
            streams: Vec::new(),
            free_streams: Vec::new(),
            parked: Vec::new(),
            track_done,
            events: std::cell::RefCell::new(VecDeque::new()),
            failed: false,
            interrupted: false,
            finished: false,
            tracer,
            prefix,
            parent_span,
            group_span: None,
            fail_fast: false,
            stop_reason: None,
            cancel: stop::Canceller::default(),
            open_spans: std::cell::RefCell::new(Vec::new()),
            env: Arc::new(RunEnv::default()),
            scope_generation: 0,
            scope_requests_seen: 0,
            aborts: Vec::new(),
            free_aborts: Vec::new(),
            frames_rx: None,
            steps: 0,
        };
        let seed: Vec<(u32, Held)> = {
            let plan = &run.plan;
            plan.input_slots
                .iter()
                .filter_map(|(var, slot)| {
                    let v = match &run.looping {
                        Some(ls) => ls.initial(plan, var),
                        None => lookup(var).or_else(|| {
                            plan.input_seeds.iter().find(|(n, _)| n == var).map(|(_, v)| Held::new(v.clone()))
                        }),
                    };
                    v.map(|v| (*slot, v))
                })
                .collect()
        };
        run.begin(seed);
        run
    }

    /// Share middleware, an op cache and a run-wide io limit with this run (and its
    /// nested runs). Call before the first poll.
    pub fn with_env(mut self, env: RunEnv) -> Self {
        self.env = Arc::new(env);
        self
    }

    /// Deliver frames that op bodies send (`OpContext::send_frame`, token deltas) as
    /// [`RunEvent::Custom`] events, from nested runs too. Call after
    /// [`GraphRun::with_env`] and before the first poll.
    pub fn stream_frames(mut self) -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut env = (*self.env).clone();
        env.frames = Some(tx);
        self.env = Arc::new(env);
        self.frames_rx = Some(std::cell::RefCell::new(rx));
        self
    }

    /// Reset the context tree and enqueue the entry ops with the graph inputs in `seed`.
    fn begin(&mut self, seed: Vec<(u32, Held)>) {
        self.ctxs.clear();
        self.root = self.ctxs.alloc(NONE, 0, NONE);
        let slot_count = self.plan.slot_count;
        for (slot, v) in seed {
            self.ctxs.write(self.root, slot, slot_count, v);
        }
        self.open_group();
        let plan = self.plan.clone();
        for &entry in &plan.entries {
            self.enqueue(entry, self.root, None);
        }
    }

    /// Drive the run to the end and fold its events into an outcome.
    pub async fn collect_outcome(self) -> crate::outcome::RunOutcome {
        let mut g = crate::outcome::Grouper::default();
        let mut s = self;
        while let Some(ev) = s.next().await {
            g.push(ev);
        }
        g.finish()
    }

    fn enqueue(&mut self, node: NodeId, ctx: CtxId, via: Option<EdgeId>) {
        self.ctxs.get_mut(ctx).active += 1;
        self.queue.push_back(Work::Run(node, ctx, via));
    }

    /// All inline work, then whatever finished futures report, until something must wait.
    fn step(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if !self.events.get_mut().is_empty() || self.finished {
                return Poll::Ready(());
            }
            self.steps += 1;
            if self.steps > STEP_BUDGET {
                // Let the task go (and come straight back): whoever drives the run gets
                // to look at its timers and cancellations.
                self.steps = 0;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if let Some(reason) = self.cancel.requested().or_else(|| self.stop_reason.take()) {
                self.stop(reason);
                continue;
            }
            if self.env.scopes.generation() != self.scope_generation {
                self.apply_scope_cancels();
                continue;
            }
            if let Some(rx) = self.frames_rx.as_mut()
                && let Ok(frame) = rx.get_mut().try_recv()
            {
                self.events.get_mut().push_back(RunEvent::Custom(frame));
                continue;
            }
            if let Some(Work::Run(node, ctx, via)) = self.queue.pop_front() {
                self.run_node(node, ctx, via);
                continue;
            }
            if let Some(sid) = self.pulls.pop() {
                self.pull(sid);
                continue;
            }
            if self.pending.is_empty() {
                if !self.parked.is_empty() {
                    self.abandon_parked();
                    continue;
                }
                self.close_group();
                if self.next_iteration() {
                    continue;
                }
                // Frames sent by the last ops come before the end of the stream.
                self.drain_frames();
                self.finished = true;
                if self.parent_span.is_none()
                    && let Some(t) = &self.tracer
                {
                    t.finish();
                }
                continue;
            }
            match self.pending.poll_next_unpin(cx) {
                Poll::Ready(Some(done)) => self.on_done(done),
                Poll::Ready(None) => {}
                Poll::Pending => {
                    if let Some(rx) = self.frames_rx.as_mut()
                        && let Poll::Ready(Some(frame)) = rx.get_mut().poll_recv(cx)
                    {
                        self.events.get_mut().push_back(RunEvent::Custom(frame));
                        continue;
                    }
                    self.env.scopes.register(cx.waker());
                    if self.env.scopes.generation() != self.scope_generation {
                        continue;
                    }
                    self.steps = 0;
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Stream for GraphRun {
    type Item = RunEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RunEvent>> {
        let this = &mut *self;
        this.cancel.register(cx.waker());
        loop {
            if let Some(ev) = this.events.get_mut().pop_front() {
                return Poll::Ready(Some(ev));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            if this.step(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl std::fmt::Debug for GraphRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphRun")
            .field("graph", &self.plan.full_name)
            .field("queued", &self.queue.len())
            .field("pending", &self.pending.len())
            .field("finished", &self.finished)
            .finish()
    }
}
