//! Completions: storing results, emitting outputs, waking successors, closing item
//! contexts and finishing streams (with their collect edges).

use operonx_graph::plan::{EdgeId, NodeId};
use serde_json::Value;

use super::context::{CtxId, NONE, SOFT_DONE};
use super::{Done, GraphRun, Source, Span, Work};
use crate::op::OpResult;
use crate::record::{Held, Outputs};
use crate::run_event::{OpFailure, OutputFrame, RunEvent};

impl GraphRun {
    pub(super) fn on_done(&mut self, done: Done) {
        if let Done::Item { stream, .. } | Done::Child { stream, .. } = &done
            && let Some(inst) = self.streams[*stream as usize].as_mut()
        {
            inst.awaiting = false;
        }
        match done {
            Done::Delayed { node, ctx, via } => {
                if !self.ctxs.is_cancelled(ctx) {
                    self.delay_done.push((node, ctx));
                }
                self.queue.push_back(Work::Run(node, ctx, via));
            }
            Done::Op { node, ctx, via, result, span, post } => {
                if self.plan.nodes[node as usize].bound != operonx_graph::wire::Bound::Sync {
                    self.io_running -= 1;
                    if let Some((n, c, v)) = self.io_waiting.pop_front() {
                        self.queue.push_back(Work::Run(n, c, v));
                    }
                }
                self.release_edge(via);
                self.complete(node, ctx, result, span, post);
            }
            Done::Item { stream, next, rest } => match next {
                Some(_) if self.streams[stream as usize].as_ref().is_some_and(|i| i.cancelled) => {
                    drop(rest);
                    self.maybe_finish_stream(stream);
                }
                Some(item) => {
                    self.on_item(stream, item);
                    let room = self.streams[stream as usize]
                        .as_ref()
                        .is_some_and(|i| !i.fan || (i.alive as usize) < self.plan.max_concurrency);
                    if room {
                        self.await_item(stream, rest);
                    } else if let Some(inst) = self.streams[stream as usize].as_mut() {
                        inst.source = Source::Stream(Some(rest));
                        inst.stalled = true;
                    }
                }
                None => {
                    self.source_ended(stream);
                    self.maybe_finish_stream(stream);
                }
            },
            Done::Child { stream, next: Some(_), child }
                if self.streams[stream as usize].as_ref().is_some_and(|i| i.cancelled) =>
            {
                // A cancelled nested run is dropped here (its own spans close as cancelled).
                drop(child);
                self.maybe_finish_stream(stream);
            }
            Done::Child { stream, next, child } => match next {
                Some(RunEvent::Custom(frame)) => {
                    self.events.get_mut().push_back(RunEvent::Custom(frame));
                    self.await_child(stream, child);
                }
                Some(RunEvent::Interrupted(i)) => {
                    self.interrupted = true;
                    if let Some(inst) = self.streams[stream as usize].as_mut() {
                        let node = inst.node;
                        inst.failed.push(node);
                        inst.paused = true;
                    }
                    self.events.get_mut().push_back(RunEvent::Interrupted(i));
                    self.await_child(stream, child);
                }
                Some(RunEvent::Stopped(reason)) => {
                    // A nested run only stops when its parent does; pass the reason on.
                    self.events.get_mut().push_back(RunEvent::Stopped(reason));
                }
                Some(RunEvent::Failure(f)) => {
                    self.failed = true;
                    if let Some(inst) = self.streams[stream as usize].as_mut() {
                        let node = inst.node;
                        inst.failed.push(node);
                    }
                    self.events.get_mut().push_back(RunEvent::Failure(f));
                    self.await_child(stream, child);
                }
                Some(RunEvent::Output(frame)) => {
                    let per_item = frame.per_item;
                    let outputs = frame_outputs(frame);
                    let fan = self.streams[stream as usize].as_ref().is_some_and(|i| i.fan);
                    if fan {
                        self.on_item(stream, Ok(outputs));
                        let room = self.streams[stream as usize]
                            .as_ref()
                            .is_some_and(|i| (i.alive as usize) < self.plan.max_concurrency);
                        if room {
                            self.await_child(stream, child);
                        } else if let Some(inst) = self.streams[stream as usize].as_mut() {
                            inst.source = Source::Child(Some(child));
                            inst.stalled = true;
                        }
                    } else {
                        if let Some(inst) = self.streams[stream as usize].as_mut() {
                            if per_item {
                                merge(&mut inst.merged, &mut inst.merged_counts, outputs);
                            } else {
                                overwrite(&mut inst.merged, &mut inst.merged_counts, outputs);
                            }
                        }
                        self.await_child(stream, child);
                    }
                }
                None => {
                    self.source_ended(stream);
                    self.maybe_finish_stream(stream);
                }
            },
        }
    }

    /// A non-streaming node's result is in: run the middleware, fill the cache, record
    /// it, then settle its work item.
    pub(super) fn complete(
        &mut self,
        node: NodeId,
        ctx: CtxId,
        result: OpResult,
        span: Option<Span>,
        post: super::Post,
    ) {
        // Frames the op sent while it ran come before its result.
        self.drain_frames();
        if let Some(token) = post.abort
            && let Some(slot) = self.aborts.get_mut(token as usize)
        {
            *slot = None;
            self.free_aborts.push(token);
        }
        if self.ctxs.is_cancelled(ctx) {
            // Its context was cancelled in-band: the result is discarded.
            self.trace_end(node, ctx, span, "cancelled", None, Some("context cancelled"), 0);
            self.settle(ctx);
            return;
        }
        let env = self.env.clone();
        let result = if env.middleware.is_empty() {
            result
        } else {
            let name = &self.plan.nodes[node as usize].full_name;
            match result {
                Ok(mut outputs) => {
                    env.middleware.iter().rev().try_for_each(|m| m.after(name, &mut outputs)).map(|()| outputs)
                }
                Err(mut e) => {
                    let mut recovered = None;
                    for m in env.middleware.iter().rev() {
                        match m.on_error(name, e) {
                            Ok(o) => {
                                recovered = Some(o);
                                e = crate::op::OpError::new("");
                                break;
                            }
                            Err(next) => e = next,
                        }
                    }
                    recovered.ok_or(e)
                }
            }
        };
        match result {
            Ok(outputs) => {
                if let (Some(key), Some(store), Some(plan)) =
                    (post.cache, env.cache.as_ref(), self.plan.nodes[node as usize].cache.as_ref())
                {
                    store.put(key, crate::cache::to_map(&outputs), plan.ttl);
                }
                if let (Some(key), Some(journal)) = (post.journal, env.journal.as_ref())
                    && let Err(e) = journal.record_shared(key, &outputs)
                {
                    self.journal_failed(e);
                }
                self.trace_end(node, ctx, span, "ok", Some(&outputs), None, 1);
                self.finish_node(node, ctx, outputs, None);
            }
            Err(e) if e.as_interrupt().is_some() => {
                self.trace_end(node, ctx, span, "interrupted", None, Some(&e.to_string()), 0);
                if let Some(i) = e.into_interrupt() {
                    self.pause(node, ctx, i);
                }
            }
            Err(e) if e.is_cancelled() => {
                self.trace_end(node, ctx, span, "cancelled", None, Some(&e.to_string()), 0);
                self.taint(node, ctx);
            }
            Err(e) => {
                let msg = e.to_string();
                self.trace_end(node, ctx, span, "error", None, Some(&msg), 0);
                self.fail(node, ctx, msg);
            }
        }
        self.settle(ctx);
    }

    /// An op waits for input: report it; like a failure, nothing downstream runs.
    fn pause(&mut self, node: NodeId, ctx: CtxId, interrupt: crate::interrupt::Interrupt) {
        self.interrupted = true;
        if let Some(journal) = self.env.journal.clone()
            && let Err(e) = journal.record_interrupt(&interrupt)
        {
            self.journal_failed(e);
        }
        self.taint(node, ctx);
        self.events.get_mut().push_back(RunEvent::Interrupted(interrupt));
    }

    /// Record an op failure. Nothing downstream of the node will run.
    pub(super) fn fail(&mut self, node: NodeId, ctx: CtxId, message: String) {
        self.failed = true;
        if self.fail_fast && self.stop_reason.is_none() {
            self.stop_reason = Some(format!("fail-fast: {} failed", self.plan.nodes[node as usize].full_name));
        }
        let op = self.plan.nodes[node as usize].full_name.clone();
        let context = self.ctxs.path(ctx, "main");
        self.events.get_mut().push_back(RunEvent::Failure(OpFailure { op, context, message }));
        self.taint(node, ctx);
    }

    /// Mark every stream enclosing `ctx`, so collect edges fed by `node` do not flush.
    fn taint(&mut self, node: NodeId, ctx: CtxId) {
        let mut c = ctx;
        while c != NONE {
            let sid = self.ctxs.get(c).stream;
            if sid != NONE
                && let Some(inst) = self.streams[sid as usize].as_mut()
            {
                inst.failed.push(node);
            }
            c = self.ctxs.get(c).parent;
        }
    }

    /// Store a node's outputs in `ctx`, emit graph outputs, feed collect edges and wake
    /// successors (only `only` when the node is a branch).
    pub(super) fn finish_node(
        &mut self,
        node_id: NodeId,
        ctx: CtxId,
        mut outputs: Outputs,
        only: Option<Option<NodeId>>,
    ) {
        let plan = self.plan.clone();
        let node = &plan.nodes[node_id as usize];
        // Slots share the values; graph outputs take theirs (copied only when shared: a
        // value other ops read too, or one the journal keeps).
        let collected = !node.collects.is_empty();
        if !node.forwards.is_empty() {
            let values: Vec<_> = node
                .forwards
                .iter()
                .enumerate()
                .filter_map(|(i, (var, out))| {
                    let again = collected
                        || node.stores.iter().any(|(v, _)| v == var)
                        || node.forwards[i + 1..].iter().any(|(v, _)| v == var);
                    let v = if again { outputs.get(var).cloned() } else { outputs.take(var) };
                    v.map(|v| (plan.outputs[*out as usize].clone(), v))
                })
                .collect();
            if !values.is_empty() {
                let per_item = self.ctxs.get(ctx).stream != NONE;
                let frame = OutputFrame { op: node.full_name.clone(), values, per_item };
                match self.looping.as_mut() {
                    Some(ls) => ls.capture(&plan, frame),
                    None => self.events.get_mut().push_back(RunEvent::Output(frame)),
                }
            }
        }
        for (var, slot) in &node.stores {
            if let Some(v) = outputs.get_held(var) {
                self.ctxs.write(ctx, *slot, plan.slot_count, v.clone());
            }
        }
        if self.track_done {
            let c = self.ctxs.get_mut(ctx);
            if c.done.is_empty() {
                c.done.resize(plan.nodes.len(), false);
            }
            c.done[node_id as usize] = true;
        }
        for &eid in &node.collects {
            self.feed_collect(eid, ctx, &outputs);
        }
        for &eid in &node.succ {
            let dst = plan.edges[eid as usize].dst;
            if let Some(target) = only
                && target != Some(dst)
            {
                continue;
            }
            self.decrement(eid, ctx);
        }
        if !self.parked.is_empty() {
            self.unpark(ctx);
        }
    }

    /// One predecessor of the edge's destination completed in `ctx`.
    pub(super) fn decrement(&mut self, eid: EdgeId, ctx: CtxId) {
        let plan = self.plan.clone();
        let edge = &plan.edges[eid as usize];
        let dst = edge.dst as usize;
        let c = self.ctxs.get_mut(ctx);
        if c.ready.is_empty() {
            match c.stream {
                NONE => c.ready.extend(plan.nodes.iter().map(|n| n.ready_count)),
                sid => {
                    let table = self.streams[sid as usize]
                        .as_ref()
                        .and_then(|i| plan.nodes[i.node as usize].stream)
                        .map(|si| &plan.streams[si as usize].item_ready);
                    match table {
                        Some(t) => c.ready.extend_from_slice(t),
                        None => c.ready.extend(plan.nodes.iter().map(|n| n.ready_count)),
                    }
                }
            }
        }
        let r = &mut c.ready[dst];
        if edge.soft {
            if *r & SOFT_DONE != 0 {
                return;
            }
            *r |= SOFT_DONE;
        }
        let count = *r & !SOFT_DONE;
        if count == 0 {
            return;
        }
        *r -= 1;
        if count == 1 {
            self.schedule(edge.dst, ctx, eid);
        }
    }

    /// The journal could not keep an entry: the run stops (it never goes on unjournaled).
    pub(super) fn journal_failed(&mut self, e: crate::journal::JournalError) {
        if self.stop_reason.is_none() {
            self.stop_reason = Some(e.to_string());
        }
    }

    /// A generator in a resumable run yielded `item`: check it against the item journaled
    /// before the run was resumed, or journal it. A different item is the generator's
    /// failure (what ran on the journaled one cannot be matched to it).
    fn journal_item(&mut self, sid: u32, item: OpResult) -> OpResult {
        let Some(inst) = self.streams[sid as usize].as_mut() else { return item };
        let (Some(sj), Ok(outputs)) = (inst.journal.as_mut(), &item) else { return item };
        let index = sj.produced;
        sj.produced += 1;
        match sj.expected.get(index as usize) {
            Some(expected) if crate::journal::same_item(expected, outputs) => item,
            Some(expected) => Err(crate::op::OpError::new(format!(
                "resumed generator yielded item {index} different from the one journaled before \
                 (journaled {}, now {}): a generator must yield the same items in the same order when a run is resumed",
                brief(expected),
                brief(outputs)
            ))),
            None => {
                let key = sj.key.clone();
                if let Some(journal) = self.env.journal.clone()
                    && let Err(e) = journal.record_item(&key, index, outputs)
                {
                    self.journal_failed(e);
                }
                item
            }
        }
    }

    /// The generator of stream `sid` has no more items: journal its end (or, resumed,
    /// fail it when it yielded fewer items than were journaled).
    pub(super) fn source_ended(&mut self, sid: u32) {
        let Some(inst) = self.streams[sid as usize].as_mut() else { return };
        inst.exhausted = true;
        let Some(sj) = inst.journal.take() else { return };
        if (sj.produced as usize) < sj.expected.len() {
            let (node, parent) = (inst.node, inst.ctx);
            inst.failed.push(node);
            let msg = format!(
                "resumed generator ended after {} items, but {} were journaled before: a generator must yield the same \
                 items in the same order when a run is resumed",
                sj.produced,
                sj.expected.len()
            );
            inst.own_error = Some(msg.clone());
            self.fail(node, parent, msg);
            return;
        }
        if let Some(journal) = self.env.journal.clone()
            && let Err(e) = journal.record_end(&sj.key, sj.produced)
        {
            self.journal_failed(e);
        }
    }

    /// A streaming node produced an item (or failed to).
    pub(super) fn on_item(&mut self, sid: u32, item: OpResult) {
        let Some(inst) = self.streams[sid as usize].as_ref() else { return };
        if inst.cancelled {
            return;
        }
        let item = if inst.journal.is_some() { self.journal_item(sid, item) } else { item };
        let Some(inst) = self.streams[sid as usize].as_mut() else { return };
        let (node, parent) = (inst.node, inst.ctx);
        match item {
            Err(e) => {
                inst.exhausted = true;
                inst.source = Source::Iter(Box::new(std::iter::empty()));
                inst.failed.push(node);
                let msg = e.to_string();
                inst.own_error = Some(msg.clone());
                self.fail(node, parent, msg);
                self.maybe_finish_stream(sid);
            }
            Ok(outputs) if !inst.fan => {
                merge(&mut inst.merged, &mut inst.merged_counts, outputs);
            }
            Ok(outputs) => {
                let index = inst.next_index;
                inst.next_index += 1;
                inst.alive += 1;
                inst.yields += 1;
                let span = inst.span;
                self.ctxs.get_mut(parent).active += 1;
                let item_ctx = self.ctxs.alloc(parent, index, sid);
                if span.is_some() {
                    self.trace_yield(node, item_ctx, span, &outputs, index);
                    // Its op_end records the last item, as the reference engine's does
                    // (`merged` is unused when items fan out; sharing the values is cheap).
                    if let Some(inst) = self.streams[sid as usize].as_mut() {
                        inst.merged = outputs.clone();
                    }
                }
                self.finish_node(node, item_ctx, outputs, None);
                self.maybe_close(item_ctx);
            }
        }
    }

    /// Close an idle item context: free it, let its stream pull more, and maybe finish the stream.
    pub(super) fn maybe_close(&mut self, ctx: CtxId) {
        let c = self.ctxs.get(ctx);
        if c.active != 0 || c.stream == NONE {
            return;
        }
        let (sid, parent) = (c.stream, c.parent);
        self.ctxs.release(ctx);
        self.ctxs.get_mut(parent).active -= 1;
        let Some(inst) = self.streams[sid as usize].as_mut() else { return };
        inst.alive -= 1;
        if inst.stalled && !inst.exhausted {
            inst.stalled = false;
            match std::mem::replace(&mut inst.source, Source::Stream(None)) {
                Source::Iter(it) => {
                    inst.source = Source::Iter(it);
                    self.pulls.push(sid);
                }
                Source::Stream(Some(s)) => self.await_item(sid, s),
                Source::Child(Some(c)) => {
                    inst.source = Source::Child(None);
                    self.await_child(sid, c);
                }
                other => inst.source = other,
            }
        }
        self.maybe_finish_stream(sid);
        self.maybe_close(parent);
    }

    /// A stream whose source is exhausted and whose items are all done completes its node.
    pub(super) fn maybe_finish_stream(&mut self, sid: u32) {
        let done = self.streams[sid as usize].as_ref().is_some_and(|i| i.exhausted && i.alive == 0 && !i.awaiting);
        if !done {
            return;
        }
        let Some(inst) = self.streams[sid as usize].take() else { return };
        self.free_streams.push(sid);
        self.release_edge(inst.via);
        let (node, ctx) = (inst.node, inst.ctx);
        if inst.cancelled {
            self.trace_end(node, ctx, inst.span, "cancelled", None, Some("context cancelled"), inst.yields);
            self.settle(ctx);
            return;
        }
        let failed_self = inst.failed.contains(&node) && !inst.fan;
        {
            let error = inst.own_error.clone().or_else(|| {
                (!inst.fan && !inst.paused && !inst.failed.is_empty())
                    .then(|| "an op of the nested graph failed".to_string())
            });
            let status = match (&error, inst.paused) {
                (Some(_), _) => "error",
                (None, true) => "interrupted",
                (None, false) => "ok",
            };
            // A generator's op_end has its last item when it ended well (`{}` otherwise).
            let outputs = (!inst.fan || status == "ok").then_some(&inst.merged);
            let yields = if inst.fan { inst.yields } else { 1 };
            self.trace_end(node, ctx, inst.span, status, outputs, error.as_deref(), yields);
        }
        if inst.fan {
            if self.track_done {
                let n = self.plan.nodes.len();
                let c = self.ctxs.get_mut(ctx);
                if c.done.is_empty() {
                    c.done.resize(n, false);
                }
                c.done[node as usize] = true;
            }
            let plan = self.plan.clone();
            for (eid, mut buf) in inst.buffers {
                let edge = &plan.edges[eid as usize];
                // A failed source, or a stream that gave no values (an empty generator):
                // the consumer does not run, and what depends on it neither (as in 0.8.2,
                // which runs a collect consumer once per item).
                if buf.is_empty() || inst.failed.iter().any(|&f| f == edge.src || self.reaches(f, edge.src)) {
                    continue;
                }
                buf.sort_by(|a, b| a.0.cmp(&b.0));
                for (i, (_, slot)) in edge.collect_slots.iter().enumerate() {
                    let list: Vec<Value> = buf.iter_mut().filter_map(|(_, vals)| vals[i].take()).collect();
                    self.ctxs.write(ctx, *slot, plan.slot_count, Held::new(Value::Array(list)));
                }
                self.decrement(eid, ctx);
            }
            if !self.parked.is_empty() {
                self.unpark(ctx);
            }
        } else if inst.paused {
            // A nested graph waits for input: its graph op does not complete (and is no failure).
        } else if failed_self || !inst.failed.is_empty() {
            // A nested graph with a failed op: its outputs reach the graph outputs, but
            // nothing downstream of the graph op runs.
            let plan = self.plan.clone();
            let n = &plan.nodes[node as usize];
            let values: Vec<_> = n
                .forwards
                .iter()
                .filter_map(|(var, out)| inst.merged.get(var).map(|v| (plan.outputs[*out as usize].clone(), v.clone())))
                .collect();
            if !values.is_empty() {
                let frame = OutputFrame { op: n.full_name.clone(), values, per_item: false };
                match self.looping.as_mut() {
                    Some(ls) => ls.capture(&plan, frame),
                    None => self.events.get_mut().push_back(RunEvent::Output(frame)),
                }
            }
        } else {
            self.finish_node(node, ctx, inst.merged, None);
        }
        self.settle(ctx);
    }

    /// Whether `to` is downstream of `from`.
    fn reaches(&self, from: NodeId, to: NodeId) -> bool {
        let plan = &self.plan;
        let mut seen = vec![false; plan.nodes.len()];
        let mut stack = vec![from];
        while let Some(n) = stack.pop() {
            for &e in plan.nodes[n as usize].succ.iter().chain(&plan.nodes[n as usize].collects) {
                let d = plan.edges[e as usize].dst;
                if d == to {
                    return true;
                }
                if !seen[d as usize] {
                    seen[d as usize] = true;
                    stack.push(d);
                }
            }
        }
        false
    }

    fn feed_collect(&mut self, eid: EdgeId, ctx: CtxId, outputs: &Outputs) {
        let plan = self.plan.clone();
        let edge = &plan.edges[eid as usize];
        let values: Vec<Option<Value>> = edge.collect_slots.iter().map(|(var, _)| outputs.get(var).cloned()).collect();
        let Some(scope) = edge.scope else {
            // Not inside a stream: the consumer gets a one-element list.
            for ((_, slot), v) in edge.collect_slots.iter().zip(values) {
                self.ctxs.write(ctx, *slot, plan.slot_count, Held::new(Value::Array(v.into_iter().collect())));
            }
            self.decrement(eid, ctx);
            return;
        };
        // Find the item context of the scope's stream instance, recording the item path.
        let mut path = Vec::new();
        let mut c = ctx;
        while c != NONE {
            let cx = self.ctxs.get(c);
            path.push(cx.index);
            if cx.stream != NONE
                && let Some(inst) = self.streams[cx.stream as usize].as_mut()
                && inst.node == scope
            {
                path.reverse();
                if let Some((_, buf)) = inst.buffers.iter_mut().find(|(e, _)| *e == eid) {
                    buf.push((path, values));
                }
                return;
            }
            c = cx.parent;
        }
    }

    /// Re-check parked nodes after `node` completed in `ctx`.
    fn unpark(&mut self, ctx: CtxId) {
        let parked = std::mem::take(&mut self.parked);
        let mut keep = Vec::with_capacity(parked.len());
        for (n, c) in parked {
            if self.ctxs.descends(c, ctx) && self.outside_ready(n, c) {
                self.ctxs.get_mut(c).active -= 1;
                self.enqueue(n, c, None);
            } else {
                keep.push((n, c));
            }
        }
        self.parked.extend(keep);
    }

    /// Nothing can run any more: whatever still waits on ops outside its stream never will.
    pub(super) fn abandon_parked(&mut self) {
        for (_, c) in std::mem::take(&mut self.parked) {
            self.ctxs.get_mut(c).active -= 1;
            self.maybe_close(c);
        }
    }
}

/// Write a frame over accumulated outputs: a name seen again keeps the newer value.
fn overwrite(acc: &mut Outputs, counts: &mut Vec<u32>, frame: Outputs) {
    for (name, v) in frame.into_map() {
        match acc.iter().position(|(n, _)| n == name) {
            Some(i) => counts[i] = 1,
            None => counts.push(1),
        }
        acc.insert(name, v);
    }
}

/// Merge a frame into accumulated outputs: a name seen again becomes a list.
fn merge(acc: &mut Outputs, counts: &mut Vec<u32>, frame: Outputs) {
    for (name, v) in frame.into_map() {
        let idx = acc.iter().position(|(n, _)| n == name);
        match idx {
            None => {
                acc.insert(name, v);
                counts.push(1);
            }
            Some(i) => {
                counts[i] += 1;
                let prev = acc.get(&name).cloned().unwrap_or(Value::Null);
                let next = if counts[i] == 2 {
                    Value::Array(vec![prev, v])
                } else {
                    let mut p = prev;
                    if let Value::Array(a) = &mut p {
                        a.push(v);
                    }
                    p
                };
                acc.insert(name, next);
            }
        }
    }
}

fn frame_outputs(frame: OutputFrame) -> Outputs {
    let mut o = Outputs::new();
    for (k, v) in frame.values {
        o.insert(k.to_string(), v);
    }
    o
}

/// A short form of an item for messages.
fn brief(o: &Outputs) -> String {
    let text = serde_json::to_string(&o.clone().into_map()).unwrap_or_default();
    match text.char_indices().nth(120) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}
