//! Building trace events for a run: op spans, generator items and loop iterations.
//! Everything here is skipped when the run has no tracer.

use std::collections::BTreeMap;
use std::time::Instant;

use operonx_graph::plan::NodeId;
use serde_json::Value;

use super::context::{CtxId, NONE};
use super::{GraphRun, Span};
use crate::record::{Inputs, Outputs};
use crate::trace::{EventKind, OpTrace};

fn outputs_value(o: &Outputs) -> Value {
    Value::Object(o.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
}

impl GraphRun {
    /// The event context path of `ctx`: the run's prefix, the loop iteration, then one
    /// `[i]` per generator item level.
    pub(super) fn event_ctx(&self, ctx: CtxId) -> Vec<String> {
        let mut items = Vec::new();
        let mut c = ctx;
        while c != NONE {
            let cx = self.ctxs.get(c);
            if cx.parent == NONE {
                break;
            }
            items.push(format!("[{}]", cx.index));
            c = cx.parent;
        }
        let mut path = self.prefix.clone();
        let iteration = self.looping.as_ref().map_or(0, |l| l.iteration());
        if iteration > 0 {
            path.push(format!("loop_{iteration}"));
        }
        path.extend(items.into_iter().rev());
        path
    }

    /// The span an op running in `ctx` belongs to: the generator of its item, else the
    /// loop iteration, else the op that started this run.
    fn parent_span_of(&self, ctx: CtxId) -> Option<u64> {
        let sid = self.ctxs.get(ctx).stream;
        if sid != NONE
            && let Some(Some(inst)) = self.streams.get(sid as usize)
        {
            return inst.span.map(|s| s.id);
        }
        self.group_span.map(|s| s.id).or(self.parent_span)
    }

    fn span_ids(&self, span: Option<Span>, ctx: CtxId) -> [(String, Value); 2] {
        let t = self.tracer.as_ref();
        let name = |id: Option<u64>| match (t, id) {
            (Some(t), Some(id)) => t.span_name(id),
            _ => Value::Null,
        };
        [
            ("span_id".to_string(), name(span.map(|s| s.id))),
            ("parent_span_id".to_string(), name(self.parent_span_of(ctx))),
        ]
    }

    /// `op_start`; returns the new span (`None` when not traced).
    pub(super) fn trace_start(&self, node: NodeId, ctx: CtxId, inputs: Option<&Inputs>) -> Option<Span> {
        let t = self.tracer.as_ref()?;
        let span = Span { id: t.next_span(), started: Instant::now() };
        let mut payload = BTreeMap::new();
        let inputs = inputs.map_or_else(
            || Value::Object(Default::default()),
            |i| Value::Object(i.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()),
        );
        payload.insert("inputs".to_string(), inputs);
        payload.extend(self.span_ids(Some(span), ctx));
        let n = &self.plan.nodes[node as usize];
        t.emit(EventKind::OpStart, Some(&n.full_name), self.event_ctx(ctx), payload);
        Some(span)
    }

    /// `op_end` for a span opened by [`GraphRun::trace_start`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn trace_end(
        &self,
        node: NodeId,
        ctx: CtxId,
        span: Option<Span>,
        status: &str,
        outputs: Option<&Outputs>,
        error: Option<&str>,
        yields: u64,
    ) {
        let (Some(t), Some(s)) = (self.tracer.as_ref(), span) else { return };
        let mut payload = BTreeMap::new();
        payload.insert("outputs".to_string(), outputs.map_or_else(|| Value::Object(Default::default()), outputs_value));
        payload.insert("status".to_string(), Value::String(status.to_string()));
        let ms = (s.started.elapsed().as_secs_f64() * 1e6).round() / 1000.0;
        payload.insert("duration_ms".to_string(), serde_json::Number::from_f64(ms).map_or(Value::Null, Value::Number));
        payload.insert("yield_count".to_string(), Value::from(yields));
        if let Some(e) = error {
            payload.insert("error".to_string(), Value::String(e.to_string()));
        }
        payload.extend(self.span_ids(span, ctx));
        let n = &self.plan.nodes[node as usize];
        t.emit(EventKind::OpEnd, Some(&n.full_name), self.event_ctx(ctx), payload);
    }

    /// `op_yield` for item `idx` of a streaming node (subject to its `emit_yields` setting).
    pub(super) fn trace_yield(&self, node: NodeId, item_ctx: CtxId, span: Option<Span>, outputs: &Outputs, idx: u32) {
        let (Some(t), Some(s)) = (self.tracer.as_ref(), span) else { return };
        let n = &self.plan.nodes[node as usize];
        let every = n.emit_yields;
        if every == 0 || !idx.is_multiple_of(every) {
            return;
        }
        let mut payload = BTreeMap::new();
        payload.insert("yielded".to_string(), outputs_value(outputs));
        payload.insert("idx".to_string(), Value::from(idx));
        payload.insert("span_id".to_string(), t.span_name(s.id));
        t.emit(EventKind::OpYield, Some(&n.full_name), self.event_ctx(item_ctx), payload);
    }

    /// The trace scope handed to an op body.
    pub(super) fn op_trace(&self, node: NodeId, ctx: CtxId, span: Option<Span>) -> Option<OpTrace> {
        let (t, s) = (self.tracer.as_ref()?, span?);
        Some(OpTrace {
            tracer: t.clone(),
            op: self.plan.nodes[node as usize].full_name.clone(),
            ctx: self.event_ctx(ctx),
            span: s.id,
        })
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
        t.emit(EventKind::GroupStart, None, self.event_ctx(self.root), payload);
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
        t.emit(EventKind::GroupEnd, None, self.event_ctx(self.root), payload);
    }
}
