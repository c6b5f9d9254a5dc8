//! Starting nodes: input resolution, branch evaluation, op invocation.

use std::sync::Arc;

use futures_util::{FutureExt, StreamExt};
use operonx_graph::expr::truthy;
use operonx_graph::plan::{BranchPlan, EdgeId, EdgePolicy, InputPlan, InputSource, NodeId, NodeKind, RefPlan};
use operonx_graph::transform::{Transform, TransformError};
use operonx_graph::wire::Bound;
use serde_json::Value;

use super::context::CtxId;
use super::{Done, GraphRun, Post, Source, Span, StreamInst, Work};
use crate::cache::cache_key;
use crate::op::{FrameScope, Invocation, OpContext, ResumeScope};
use crate::record::{Held, Inputs, Outputs};

impl GraphRun {
    pub(super) fn run_node(&mut self, node_id: NodeId, ctx: CtxId, via: Option<EdgeId>) {
        let plan = self.plan.clone();
        let node = &plan.nodes[node_id as usize];
        if self.ctxs.is_cancelled(ctx) {
            self.release_edge(via);
            self.settle(ctx);
            return;
        }
        if !node.enabled {
            // Disabled: nothing runs and nothing is traced.
            // A disabled op produces nothing, so nothing downstream of it runs.
            self.release_edge(via);
            self.settle(ctx);
            return;
        }
        match &node.kind {
            NodeKind::Branch(b) => {
                // Traced, its inputs are recorded as the reference engine's are (the
                // conditions read the values themselves).
                let inputs = self.tracer.is_some().then(|| self.branch_inputs(node_id, ctx));
                let span = self.trace_start(node_id, ctx, inputs.as_ref());
                let (target, label, matched) = match self.branch_choice(node_id, b, ctx, span) {
                    Ok(choice) => choice,
                    Err(msg) => return self.fail_traced(node_id, ctx, via, msg, span),
                };
                let name = |t: Option<Option<NodeId>>| match t {
                    Some(Some(id)) => Value::String(plan.nodes[id as usize].name.to_string()),
                    Some(None) => Value::String("__END__".into()),
                    None => Value::Null,
                };
                let label = label.unwrap_or_else(|| name(target));
                let outputs =
                    Outputs::one("target", label.clone()).with("matched", matched).with("__branch_target__", label);
                self.release_edge(via);
                self.trace_end(node_id, ctx, span, "ok", Some(&outputs), None, 1);
                // No match and no default: no successor runs (not an error).
                self.finish_node(node_id, ctx, outputs, Some(target.flatten()));
                self.settle(ctx);
            }
            NodeKind::Task(op) => {
                if node.bound != Bound::Sync && self.io_running >= plan.max_concurrency {
                    self.io_waiting.push_back((node_id, ctx, via));
                    return;
                }
                if let Some(delay) = node.delay {
                    // Wait first (without holding up other ops), then run as usual.
                    match self.delay_done.iter().position(|&d| d == (node_id, ctx)) {
                        Some(i) => {
                            self.delay_done.swap_remove(i);
                        }
                        None => {
                            let sleep = tokio::time::sleep(delay);
                            self.pending.push(sleep.map(move |()| Done::Delayed { node: node_id, ctx, via }).boxed());
                            return;
                        }
                    }
                }
                let mut inputs = match self.resolve_inputs(node_id, ctx) {
                    Ok(i) => i,
                    Err(msg) => {
                        let span = self.trace_start(node_id, ctx, None);
                        return self.fail_traced(node_id, ctx, via, msg, span);
                    }
                };
                let env = self.env.clone();
                if let Err(e) = env.middleware.iter().try_for_each(|m| m.before(&node.full_name, &mut inputs)) {
                    let span = self.trace_start(node_id, ctx, Some(&inputs));
                    return self.fail_traced(node_id, ctx, via, e.to_string(), span);
                }
                let span = self.trace_start(node_id, ctx, Some(&inputs));
                let octx = OpContext::new(node.full_name.clone(), self.scratch.clone())
                    .traced(self.op_trace(node_id, ctx, span))
                    .scoped(self.op_scope(node_id, ctx))
                    .with_extension(env.extension.clone())
                    .with_objects(env.objects.clone());
                let mut post = Post::default();
                let mut octx = match &env.frames {
                    Some(tx) => octx.with_frames(Some(Arc::new(FrameScope {
                        sender: tx.clone(),
                        ctx: self.op_path(node_id, ctx),
                    }))),
                    None => octx,
                };
                let mut stream_journal = None;
                if let Some(journal) = &env.journal {
                    let (jkey, items_at) = self.op_ctx(node_id, ctx).journal_key(&node.full_name);
                    let jkey: Arc<str> = Arc::from(jkey);
                    // A fresh journal (a new run) has nothing to replay: no lookups.
                    let seeded = journal.is_seeded();
                    if seeded && let Some(done) = journal.outputs(&jkey) {
                        octx.annotate("operonx.replay", "journal");
                        self.release_edge(via);
                        return self.complete(node_id, ctx, Ok(done), span, Post::default());
                    }
                    let record = if seeded { journal.stream(&jkey).unwrap_or_default() } else { Default::default() };
                    if record.finished {
                        // Every item is journaled: replay them, the generator is not called.
                        octx.annotate("operonx.replay", "journal");
                        self.release_edge(via);
                        let items = record.items.into_iter().map(Ok);
                        let sid = self.open_stream(node_id, ctx, Source::Iter(Box::new(items)), node.streams, span);
                        self.pulls.push(sid);
                        return;
                    }
                    let location = items_at.map(|at| format!("@{}", &jkey[at..])).unwrap_or_default();
                    octx = octx.resumable(Some(Arc::new(ResumeScope {
                        journal: journal.clone(),
                        location,
                        count: Default::default(),
                        key: jkey.clone(),
                        run_id: env.run_id.clone(),
                    })));
                    stream_journal =
                        Some(super::StreamJournal { key: jkey.clone(), expected: record.items, produced: 0 });
                    post.journal = Some(jkey);
                }
                if let (Some(plan), Some(store)) = (&node.cache, &env.cache) {
                    let key = cache_key(plan.fingerprint, &node.full_name, &inputs);
                    if let Some(hit) = store.get(key) {
                        octx.annotate("operonx.cache", "hit");
                        self.release_edge(via);
                        return self.complete(node_id, ctx, Ok(Outputs::from_map(hit)), span, post);
                    }
                    octx.annotate("operonx.cache", "miss");
                    post.cache = Some(key);
                }
                if !env.objects.is_empty()
                    && !op.accepts_objects()
                    && let Some(msg) = object_input(&inputs)
                {
                    self.release_edge(via);
                    return self.complete(node_id, ctx, Err(crate::op::OpError::new(msg)), span, post);
                }
                let inv = if node.policy.is_plain() || node.streams {
                    op.call(inputs, &octx)
                } else {
                    Invocation::Future(super::policy::guarded(op.clone(), inputs, octx, node.policy.clone()))
                };
                match (inv, node.streams) {
                    (Invocation::Ready(result), false) => {
                        self.release_edge(via);
                        self.complete(node_id, ctx, result, span, post);
                    }
                    (Invocation::Future(fut), false) => {
                        let fut = match (&env.limiter, node.bound) {
                            (Some(sem), Bound::Io | Bound::Cpu) => {
                                let sem = sem.clone();
                                async move {
                                    // A closed semaphore only happens if the owner drops it; run anyway.
                                    let _permit = sem.acquire_owned().await.ok();
                                    fut.await
                                }
                                .boxed()
                            }
                            _ => fut,
                        };
                        let fut = if self.ctxs.get(ctx).stream != super::NONE {
                            // Ops of generator items can be cancelled in-band: keep an abort handle.
                            let (fut, handle) = futures_util::future::abortable(fut);
                            let token = match self.free_aborts.pop() {
                                Some(t) => {
                                    self.aborts[t as usize] = Some((ctx, handle));
                                    t
                                }
                                None => {
                                    self.aborts.push(Some((ctx, handle)));
                                    (self.aborts.len() - 1) as u64
                                }
                            };
                            post.abort = Some(token);
                            fut.map(|r| r.unwrap_or_else(|_| Err(crate::op::OpError::new("cancelled")))).boxed()
                        } else {
                            fut
                        };
                        if node.bound != Bound::Sync {
                            self.io_running += 1;
                        }
                        self.pending.push(
                            fut.map(move |result| Done::Op { node: node_id, ctx, via, result, span, post }).boxed(),
                        );
                    }
                    (Invocation::Items(it), _) => {
                        self.release_edge(via);
                        let sid = self.open_stream(node_id, ctx, Source::Iter(it), node.streams, span);
                        self.attach_journal(sid, stream_journal.take());
                        self.pulls.push(sid);
                    }
                    (Invocation::Stream(s), _) => {
                        self.release_edge(via);
                        let sid = self.open_stream(node_id, ctx, Source::Stream(None), node.streams, span);
                        self.attach_journal(sid, stream_journal.take());
                        self.await_item(sid, s);
                    }
                    (Invocation::Ready(result), true) => {
                        self.release_edge(via);
                        let sid =
                            self.open_stream(node_id, ctx, Source::Iter(Box::new(std::iter::once(result))), true, span);
                        self.attach_journal(sid, stream_journal.take());
                        self.pulls.push(sid);
                    }
                    (Invocation::Future(fut), true) => {
                        self.release_edge(via);
                        let sid = self.open_stream(node_id, ctx, Source::Stream(None), true, span);
                        self.attach_journal(sid, stream_journal.take());
                        self.await_item(sid, fut.into_stream().boxed());
                    }
                }
            }
            NodeKind::Graph(child_plan) => {
                let inputs = match self.nested_graph_inputs(node_id, ctx) {
                    Ok(i) => i,
                    Err(msg) => {
                        let span = self.trace_start(node_id, ctx, None);
                        return self.fail_traced(node_id, ctx, via, msg, span);
                    }
                };
                let span = self.trace_start(node_id, ctx, Some(&inputs));
                // The nested run's context paths continue this one's (trace, journal, frames).
                let prefix: Arc<[String]> = self.op_path(node_id, ctx).into();
                let child = GraphRun::child(
                    child_plan.clone(),
                    inputs,
                    self.scratch.clone(),
                    self.tracer.clone(),
                    prefix,
                    span.map(|s| s.id),
                );
                let child = child.with_env((*self.env).clone());
                let sid = self.open_stream(node_id, ctx, Source::Child(None), node.streams, span);
                if let Some(inst) = self.streams[sid as usize].as_mut() {
                    inst.via = via;
                }
                self.await_child(sid, Box::new(child));
            }
        }
    }

    /// The location of `node`'s calls in `ctx` (shared by the calls in a context, built
    /// once per context; built per call for the rare node that runs after a collect).
    fn op_scope(&mut self, node: NodeId, ctx: CtxId) -> crate::op::OpScope {
        if !self.plan.nodes[node as usize].collect_marks.is_empty() {
            return Arc::new((self.env.scopes.clone(), self.op_ctx(node, ctx)));
        }
        if let Some(s) = &self.ctxs.get(ctx).scope {
            return s.clone();
        }
        let s: crate::op::OpScope = Arc::new((self.env.scopes.clone(), self.event_ctx(ctx)));
        self.ctxs.get_mut(ctx).scope = Some(s.clone());
        s
    }

    /// Fail a node whose `Run` is being processed (nothing of it is pending).
    fn fail_traced(&mut self, node: NodeId, ctx: CtxId, via: Option<EdgeId>, msg: String, span: Option<Span>) {
        self.release_edge(via);
        self.trace_end(node, ctx, span, "error", None, Some(&msg), 0);
        self.fail(node, ctx, msg);
        self.settle(ctx);
    }

    /// The node's `Run` work item is over: account for it and close the context if idle.
    pub(super) fn settle(&mut self, ctx: CtxId) {
        self.ctxs.get_mut(ctx).active -= 1;
        self.maybe_close(ctx);
    }

    pub(super) fn release_edge(&mut self, via: Option<EdgeId>) {
        let Some(e) = via else { return };
        let e = e as usize;
        self.edge_active[e] -= 1;
        if let Some(ctx) = self.edge_waiting[e].pop_front() {
            self.edge_active[e] += 1;
            let dst = self.plan.edges[e].dst;
            // The waiting context already counted this work as active.
            self.queue.push_back(Work::Run(dst, ctx, Some(e as EdgeId)));
        }
    }

    /// Route a newly ready node: park it, hold it behind its edge's limit, or queue it.
    pub(super) fn schedule(&mut self, node: NodeId, ctx: CtxId, edge: EdgeId) {
        let plan = self.plan.clone();
        if self.track_done && !self.outside_ready(node, ctx) {
            self.ctxs.get_mut(ctx).active += 1;
            self.parked.push((node, ctx));
            return;
        }
        let dst = &plan.nodes[node as usize];
        let limited = dst.bound != Bound::Sync || matches!(dst.kind, NodeKind::Graph(_));
        if let (true, EdgePolicy::PerItem { limit }) = (limited, plan.edges[edge as usize].policy)
            && limit > 0
            && self.ctxs.get(ctx).stream != super::NONE
        {
            self.ctxs.get_mut(ctx).active += 1;
            if self.edge_active[edge as usize] >= limit {
                self.edge_waiting[edge as usize].push_back(ctx);
            } else {
                self.edge_active[edge as usize] += 1;
                self.queue.push_back(Work::Run(node, ctx, Some(edge)));
            }
            return;
        }
        self.enqueue(node, ctx, None);
    }

    /// Whether every op outside the stream that `node` waits for has completed above `ctx`.
    pub(super) fn outside_ready(&self, node: NodeId, ctx: CtxId) -> bool {
        let sid = self.ctxs.get(ctx).stream;
        if sid == super::NONE {
            return true;
        }
        let Some(inst) = self.streams[sid as usize].as_ref() else { return true };
        let Some(si) = self.plan.nodes[inst.node as usize].stream else { return true };
        let sp = &self.plan.streams[si as usize];
        match sp.outside_preds.iter().find(|(n, _)| *n == node) {
            None => true,
            Some((_, preds)) => preds.iter().all(|&p| self.ctxs.done_above(ctx, p)),
        }
    }

    pub(super) fn resolve_inputs(&self, node_id: NodeId, ctx: CtxId) -> Result<Inputs, String> {
        let node = &self.plan.nodes[node_id as usize];
        let values = node.inputs.iter().map(|inp| self.input_value(inp, ctx)).collect::<Result<Vec<_>, _>>()?;
        Ok(Inputs::held(node.input_names.clone(), values))
    }

    /// The value of one input of an op about to run in `ctx`.
    fn input_value(&self, inp: &InputPlan, ctx: CtxId) -> Result<Held, String> {
        self.input_or_missing(inp, ctx)?.ok_or_else(|| match &inp.source {
            InputSource::Ref(r) => format!("input '{}': {} has no value", inp.name, r.label),
            _ => format!("required input '{}' not provided", inp.name),
        })
    }

    /// One input's value (shared with the run where it comes from a slot); `None` when it
    /// is required and nothing supplies it.
    fn input_or_missing(&self, inp: &InputPlan, ctx: CtxId) -> Result<Option<Held>, String> {
        Ok(Some(match &inp.source {
            InputSource::Ref(r) => match self.read_ref_shared(r, ctx) {
                Ok(Some(v)) => v,
                Ok(None) => match (&inp.fallback, inp.required) {
                    (Some(d), _) => Held::new(d.clone()),
                    (None, false) => Held::Inline(Value::Null),
                    (None, true) => return Ok(None),
                },
                Err(e) => return Err(format!("input '{}': {e}", inp.name)),
            },
            // An unset scratch key reads as null, required or not: the scratch space
            // is a dictionary read with `get` in the reference engine (and the pool's
            // `scratch_read` agrees).
            InputSource::Scratch(key) => Held::new(match (self.scratch.get(key), &inp.fallback) {
                (Some(v), _) => v,
                (None, Some(d)) => d.clone(),
                (None, None) => Value::Null,
            }),
            InputSource::Value(v) => Held::new(v.clone()),
            InputSource::Nothing if inp.required => return Ok(None),
            InputSource::Nothing => Held::Inline(Value::Null),
        }))
    }

    /// A branch's declared inputs that have a value (for its trace: what cannot be read
    /// is left out, the conditions report it).
    fn branch_inputs(&self, node_id: NodeId, ctx: CtxId) -> Inputs {
        let node = &self.plan.nodes[node_id as usize];
        let (names, values): (Vec<Arc<str>>, Vec<Held>) = node
            .inputs
            .iter()
            .filter_map(|inp| Some((inp.name.clone(), self.input_or_missing(inp, ctx).ok()??)))
            .unzip();
        Inputs::held(names.into(), values)
    }

    /// A nested graph's inputs. A required one that nothing supplies is left out rather
    /// than failing the graph op: the nested run starts, and only the ops inside that read
    /// it fail (with their own names), as in the reference engine.
    fn nested_graph_inputs(&self, node_id: NodeId, ctx: CtxId) -> Result<Inputs, String> {
        let node = &self.plan.nodes[node_id as usize];
        let mut names = Vec::with_capacity(node.inputs.len());
        let mut values = Vec::with_capacity(node.inputs.len());
        for inp in &node.inputs {
            if let Some(v) = self.input_or_missing(inp, ctx)? {
                names.push(inp.name.clone());
                values.push(v);
            }
        }
        let names: Arc<[Arc<str>]> =
            if names.len() == node.inputs.len() { node.input_names.clone() } else { names.into() };
        Ok(Inputs::held(names, values))
    }

    /// Where a branch goes: its target (`None`: nowhere), the target's name when the
    /// `anchor` input gave it, and the `matched` output (the matching case's condition as
    /// text, `"default"`, `"anchor"`, or null). A case whose condition cannot be evaluated
    /// (a comparison of a string with a number, say) does not match, as in the reference
    /// engine; the failure is recorded on the op's span as an annotation.
    #[allow(clippy::type_complexity)]
    fn branch_choice(
        &self,
        node_id: NodeId,
        b: &BranchPlan,
        ctx: CtxId,
        span: Option<Span>,
    ) -> Result<(Option<Option<NodeId>>, Option<Value>, Value), String> {
        let plan = &self.plan;
        if let Some(ix) = b.anchor {
            let anchor = Held::into_value(self.input_value(&plan.nodes[node_id as usize].inputs[ix], ctx)?);
            if truthy(&anchor) {
                // The anchor names one of the branch's successors (or `__END__`).
                let target = match anchor.as_str() {
                    Some("__END__") => Some(None),
                    Some(a) => plan.nodes[node_id as usize]
                        .succ
                        .iter()
                        .map(|&e| plan.edges[e as usize].dst)
                        .find(|&d| &*plan.nodes[d as usize].name == a)
                        .map(Some),
                    None => None,
                };
                return Ok((target, Some(anchor), Value::from("anchor")));
            }
        }
        for (i, (cond, target)) in b.cases.iter().enumerate() {
            match self.read_condition(cond, ctx) {
                Ok(v) if truthy(&v) => {
                    let text = b.descriptions.get(i).map_or(Value::Bool(true), |d| Value::from(&**d));
                    return Ok((Some(*target), None, text));
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(t) = self.op_trace(node_id, ctx, span) {
                        let mut payload = std::collections::BTreeMap::new();
                        payload.insert("key".to_string(), Value::from("condition_failed"));
                        payload.insert("value".to_string(), Value::from(format!("case {i} skipped: {e}")));
                        t.emit(crate::trace::EventKind::Annotation, payload);
                    }
                }
            }
        }
        Ok(match b.default {
            Some(t) => (Some(t), None, Value::from("default")),
            None => (None, None, Value::Null),
        })
    }

    /// A branch condition's value, as the reference engine reads it: a source that
    /// produced nothing reads as null, and the transforms then apply to null.
    fn read_condition(&self, r: &RefPlan, ctx: CtxId) -> Result<Value, String> {
        if let Some(v) = self.read_ref(r, ctx)? {
            return Ok(v);
        }
        let mut nested = |inner: &RefPlan| -> Result<Value, String> {
            self.read_ref(inner, ctx)?.ok_or_else(|| format!("{} has no value", inner.label))
        };
        r.transforms
            .iter()
            .try_fold(Value::Null, |v, t| self.transform_step(t, v, &mut nested))
            .map_err(|e| format!("{}: {e}", r.label))
    }

    /// The value of a ref seen from `ctx`, transforms applied; `Ok(None)` when the source
    /// has not produced it.
    pub(super) fn read_ref(&self, r: &RefPlan, ctx: CtxId) -> Result<Option<Value>, String> {
        Ok(self.read_ref_shared(r, ctx)?.map(Held::into_value))
    }

    /// [`GraphRun::read_ref`], sharing the stored value when the ref reads it whole (no
    /// copy), else copying only the part it selects.
    pub(super) fn read_ref_shared(&self, r: &RefPlan, ctx: CtxId) -> Result<Option<Held>, String> {
        let Some(stored) = self.ctxs.read(ctx, r.slot) else { return Ok(None) };
        if r.transforms.is_empty() {
            return Ok(Some(stored.clone()));
        }
        let mut borrowed: &Value = stored;
        // Navigate by reference first, so selecting a field does not copy the whole value.
        let mut rest = r.transforms.as_slice();
        while let Some((t, tail)) = rest.split_first() {
            if crate::object::object_id(borrowed).is_some() {
                break;
            }
            match t.navigate(borrowed) {
                Some(Ok(next)) => {
                    borrowed = next;
                    rest = tail;
                }
                Some(Err(e)) => return Err(format!("{}: {e}", r.label)),
                None => break,
            }
        }
        let mut v = borrowed.clone();
        let mut nested = |inner: &RefPlan| -> Result<Value, String> {
            self.read_ref(inner, ctx)?.ok_or_else(|| format!("{} has no value", inner.label))
        };
        for t in rest {
            v = self.transform_step(t, v, &mut nested).map_err(|e| format!("{}: {e}", r.label))?;
        }
        Ok(Some(Held::new(v)))
    }

    /// One transform step; `getattr` / `getitem` on an object's stand-in ask the object.
    fn transform_step(
        &self,
        t: &Transform,
        v: Value,
        nested: &mut dyn FnMut(&RefPlan) -> Result<Value, String>,
    ) -> Result<Value, TransformError> {
        let table = &self.env.objects;
        let object = if table.is_empty() { None } else { table.get(&v) };
        match (object, t) {
            (Some(o), Transform::GetAttr(name)) => {
                o.getattr(name, table).map_err(|e| TransformError::Missing(format!("getattr: {e}")))
            }
            (Some(o), Transform::GetItem(key)) => {
                o.getitem(key, table).map_err(|e| TransformError::Missing(format!("getitem: {e}")))
            }
            _ => t.apply(v, nested),
        }
    }

    pub(super) fn open_stream(
        &mut self,
        node: NodeId,
        ctx: CtxId,
        source: Source,
        fan: bool,
        span: Option<Span>,
    ) -> u32 {
        let buffers = if fan {
            self.plan
                .edges
                .iter()
                .enumerate()
                .filter(|(_, e)| e.scope == Some(node))
                .map(|(i, _)| (i as EdgeId, Vec::new()))
                .collect()
        } else {
            Vec::new()
        };
        let inst = StreamInst {
            node,
            ctx,
            fan,
            source,
            next_index: 0,
            alive: 0,
            exhausted: false,
            stalled: false,
            failed: Vec::new(),
            merged: Outputs::new(),
            merged_counts: Vec::new(),
            own_error: None,
            paused: false,
            cancelled: false,
            awaiting: false,
            span,
            yields: 0,
            buffers,
            via: None,
            journal: None,
        };
        // The Run work item's active count now belongs to the open stream.
        match self.free_streams.pop() {
            Some(id) => {
                self.streams[id as usize] = Some(inst);
                id
            }
            None => {
                self.streams.push(Some(inst));
                (self.streams.len() - 1) as u32
            }
        }
    }

    /// Give the stream `sid` its journal (a generator call in a resumable run).
    fn attach_journal(&mut self, sid: u32, journal: Option<super::StreamJournal>) {
        if let Some(inst) = self.streams[sid as usize].as_mut() {
            inst.journal = journal;
        }
    }

    pub(super) fn await_item(&mut self, sid: u32, s: futures_util::stream::BoxStream<'static, crate::op::OpResult>) {
        if let Some(inst) = self.streams[sid as usize].as_mut() {
            inst.awaiting = true;
        }
        self.pending.push(s.into_future().map(move |(next, rest)| Done::Item { stream: sid, next, rest }).boxed());
    }

    pub(super) fn await_child(&mut self, sid: u32, child: Box<GraphRun>) {
        if let Some(inst) = self.streams[sid as usize].as_mut() {
            inst.awaiting = true;
        }
        self.pending
            .push(child.into_future().map(move |(next, child)| Done::Child { stream: sid, next, child }).boxed());
    }

    pub(super) fn pull(&mut self, sid: u32) {
        let Some(inst) = self.streams[sid as usize].as_mut() else { return };
        if inst.exhausted {
            return;
        }
        if inst.fan && (inst.alive as usize) >= self.plan.max_concurrency {
            inst.stalled = true;
            return;
        }
        let Source::Iter(it) = &mut inst.source else { return };
        match it.next() {
            Some(item) => {
                self.pulls.push(sid);
                self.on_item(sid, item);
            }
            None => {
                self.source_ended(sid);
                self.maybe_finish_stream(sid);
            }
        }
    }
}

/// The error for an op that needs JSON given an object's stand-in, naming the input.
fn object_input(inputs: &Inputs) -> Option<String> {
    inputs.iter().find_map(|(name, value)| {
        crate::object::find_object(value).map(|o| {
            format!(
                "input '{name}' holds a {} object, but this op takes JSON values (None, bool, int, float, str, list, dict)",
                crate::object::object_type(o)
            )
        })
    })
}
