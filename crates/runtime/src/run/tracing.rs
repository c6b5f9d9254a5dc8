//! Recording trace events for a run: op spans, generator items and loop iterations.
//! Everything here is skipped when the run has no tracer, and nothing is formatted here:
//! the sink materializes events when it flushes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use operonx_graph::plan::{InputSource, NodeId};
use serde_json::Value;

use super::context::{CtxId, NONE};
use super::{GraphRun, Span};
use crate::record::{Held, Inputs, Outputs};
use crate::run_event::RunEvent;
use crate::trace::{EventCtx, EventKind, MediaRefs, Named, OpTrace, RawPayload};

impl GraphRun {
    /// The event context of `ctx`: the run's prefix, the loop iteration, the item indexes.
    pub(super) fn event_ctx(&self, ctx: CtxId) -> EventCtx {
        let mut items = Vec::new();
        let mut c = ctx;
        while c != NONE {
            let cx = self.ctxs.get(c);
            if cx.parent == NONE {
                break;
            }
            items.push(cx.index);
            c = cx.parent;
        }
        items.reverse();
        EventCtx { prefix: self.prefix.clone(), iteration: self.looping.as_ref().map_or(0, |l| l.iteration()), items }
    }

    /// The context of `node`'s call in `ctx`: [`GraphRun::event_ctx`], with `__collect__`
    /// where the node runs after a `.collect()` (see `Node::collect_marks`). The one path of
    /// the call: in its trace events, its journal key, its frames, its nested runs.
    pub(super) fn op_ctx(&self, node: NodeId, ctx: CtxId) -> EventCtx {
        let e = self.event_ctx(ctx);
        match &self.plan.nodes[node as usize].collect_marks {
            marks if marks.is_empty() => e,
            marks => e.with_collect_marks(marks),
        }
    }

    /// The span an op running in `ctx` belongs to: the generator of its item, else the
    /// loop iteration, else the op that started this run.
    pub(super) fn parent_span_of(&self, ctx: CtxId) -> Option<u64> {
        let sid = self.ctxs.get(ctx).stream;
        if sid != NONE
            && let Some(Some(inst)) = self.streams.get(sid as usize)
        {
            return inst.span.map(|s| s.id);
        }
        self.group_span.map(|s| s.id).or(self.parent_span)
    }

    /// `op_start`; returns the new span (`None` when not traced). Inputs the graph gives
    /// no value at all (no ref, scratch key, literal or default: the op gets `null`) are
    /// left out of its `inputs`, as the reference engine leaves them out.
    pub(super) fn trace_start(&self, node: NodeId, ctx: CtxId, inputs: Option<&Inputs>) -> Option<Span> {
        self.lifecycle(node, ctx, "op_start", Value::Null);
        let t = self.tracer.as_ref()?;
        let span = Span { id: t.next_span(), started: Instant::now() };
        let plan = &self.plan.nodes[node as usize].inputs;
        let unset = |name: &str| plan.iter().any(|i| matches!(i.source, InputSource::Nothing) && &*i.name == name);
        let given;
        let inputs = match inputs {
            Some(i) if plan.iter().any(|i| matches!(i.source, InputSource::Nothing)) => {
                let (names, values): (Vec<Arc<str>>, Vec<Held>) = i
                    .shared_entries()
                    .filter(|(n, v)| !(v.is_null() && unset(n)))
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .unzip();
                given = Inputs::held(names.into(), values);
                Some(&given)
            }
            other => other,
        };
        let payload = RawPayload::Start {
            inputs: Named::inputs(inputs, t.max_list_items()),
            span: span.id,
            parent: self.parent_span_of(ctx),
            media_refs: MediaRefs::new(),
        };
        let op = self.plan.nodes[node as usize].full_name.clone();
        t.record_at(span.started, EventKind::OpStart, Some(op), Some(self.op_ctx(node, ctx)), payload);
        self.open_spans.borrow_mut().push((span.id, node, ctx, span));
        Some(span)
    }

    /// `op_end` for a span opened by [`GraphRun::trace_start`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn trace_end(
        &self,
        node: NodeId,
        ctx: CtxId,
        span: Option<Span>,
        status: &'static str,
        outputs: Option<&Outputs>,
        error: Option<&str>,
        yields: u64,
    ) {
        if self.env.frames.is_some() {
            self.lifecycle(node, ctx, "op_end", serde_json::json!({"status": status, "error": error}));
        }
        let (Some(t), Some(s)) = (self.tracer.as_ref(), span) else { return };
        {
            let mut open = self.open_spans.borrow_mut();
            if let Some(i) = open.iter().rposition(|(id, ..)| *id == s.id) {
                open.swap_remove(i);
            }
        }
        let now = Instant::now();
        let payload = RawPayload::End {
            outputs: Named::outputs(outputs, t.max_list_items()),
            status,
            duration_ms: now.saturating_duration_since(s.started).as_secs_f64() * 1000.0,
            yields,
            error: error.map(|e| Box::new(Value::String(e.to_string()))),
            span: s.id,
            parent: self.parent_span_of(ctx),
            media_refs: MediaRefs::new(),
        };
        let op = self.plan.nodes[node as usize].full_name.clone();
        t.record_at(now, EventKind::OpEnd, Some(op), Some(self.op_ctx(node, ctx)), payload);
    }

    /// `op_yield` for item `idx` of a streaming node (subject to its `emit_yields` setting).
    pub(super) fn trace_yield(&self, node: NodeId, item_ctx: CtxId, span: Option<Span>, outputs: &Outputs, idx: u32) {
        let (Some(t), Some(s)) = (self.tracer.as_ref(), span) else { return };
        let n = &self.plan.nodes[node as usize];
        let every = n.emit_yields;
        if every == 0 || !idx.is_multiple_of(every) {
            return;
        }
        let payload = RawPayload::Yield {
            yielded: Named::outputs(Some(outputs), t.max_list_items()),
            idx,
            span: s.id,
            media_refs: MediaRefs::new(),
        };
        t.record(EventKind::OpYield, Some(n.full_name.clone()), Some(self.op_ctx(node, item_ctx)), payload);
    }

    /// An op lifecycle frame (`op_start` / `op_end`) for runs that stream frames, in
    /// order with the run's other events (frames op bodies sent come first).
    fn lifecycle(&self, node: NodeId, ctx: CtxId, kind: &str, data: Value) {
        if self.env.frames.is_some() {
            self.drain_frames();
            self.events.borrow_mut().push_back(RunEvent::Custom(crate::run_event::CustomFrame {
                op: self.plan.nodes[node as usize].full_name.clone(),
                ctx: self.op_path(node, ctx),
                kind: kind.to_string(),
                data,
            }));
        }
    }

    /// Move frames op bodies have sent so far into the event queue.
    pub(super) fn drain_frames(&self) {
        if let Some(rx) = &self.frames_rx {
            let mut rx = rx.borrow_mut();
            let mut events = self.events.borrow_mut();
            while let Ok(frame) = rx.try_recv() {
                events.push_back(RunEvent::Custom(frame));
            }
        }
    }

    /// The trace scope handed to an op body.
    pub(super) fn op_trace(&self, node: NodeId, ctx: CtxId, span: Option<Span>) -> Option<OpTrace> {
        let (t, s) = (self.tracer.as_ref()?, span?);
        Some(OpTrace {
            tracer: t.clone(),
            op: self.plan.nodes[node as usize].full_name.clone(),
            ctx: self.op_ctx(node, ctx),
            span: s.id,
        })
    }

    /// The context path of `ctx` as strings.
    pub(super) fn ctx_path(&self, ctx: CtxId) -> Vec<String> {
        self.event_ctx(ctx).to_path()
    }

    /// The context path of `node`'s call in `ctx` as strings ([`GraphRun::op_ctx`]; the
    /// prefix of a nested run it starts).
    pub(super) fn op_path(&self, node: NodeId, ctx: CtxId) -> Vec<String> {
        self.op_ctx(node, ctx).to_path()
    }

    /// Open the group of a loop iteration.
    pub(super) fn open_group(&mut self) {
        let (Some(t), Some(ls)) = (self.tracer.as_ref(), self.looping.as_ref()) else { return };
        let span = Span { id: t.next_span(), started: Instant::now() };
        let mut payload = BTreeMap::new();
        payload.insert("name".to_string(), Value::String(format!("iteration {}", ls.iteration() + 1)));
        payload.insert("graph".to_string(), Value::String(self.plan.full_name.to_string()));
        payload.insert("span_id".to_string(), t.span_name(span.id));
        payload.insert("parent_span_id".to_string(), self.parent_span.map_or(Value::Null, |p| t.span_name(p)));
        t.record(EventKind::GroupStart, None, Some(self.event_ctx(self.root)), RawPayload::Map(payload));
        self.group_span = Some(span);
    }

    /// Close the current loop iteration's group.
    pub(super) fn close_group(&mut self) {
        let (Some(t), Some(ls), Some(span)) = (self.tracer.as_ref(), self.looping.as_ref(), self.group_span.take())
        else {
            return;
        };
        let mut payload = BTreeMap::new();
        payload.insert("name".to_string(), Value::String(format!("iteration {}", ls.iteration() + 1)));
        payload.insert("status".to_string(), Value::String(if self.failed { "error" } else { "ok" }.to_string()));
        let ms = (span.started.elapsed().as_secs_f64() * 1e6).round() / 1000.0;
        payload.insert("duration_ms".to_string(), serde_json::Number::from_f64(ms).map_or(Value::Null, Value::Number));
        payload.insert("span_id".to_string(), t.span_name(span.id));
        t.record(EventKind::GroupEnd, None, Some(self.event_ctx(self.root)), RawPayload::Map(payload));
    }
}
