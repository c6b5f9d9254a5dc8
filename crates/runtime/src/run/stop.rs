//! Stopping a run early: cancellation from another task, fail-fast, timeouts. Stopping
//! drops every pending op future (which cancels it), closes open trace spans as
//! `cancelled`, and ends the event stream with [`RunEvent::Stopped`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;

use futures_util::task::AtomicWaker;

use super::GraphRun;
use crate::run_event::RunEvent;
use crate::trace::RawPayload;

#[derive(Debug, Default)]
struct Shared {
    /// Set with the reason; checked without locking on every scheduler step.
    asked: AtomicBool,
    reason: Mutex<Option<String>>,
    waker: AtomicWaker,
}

/// Stops a run from anywhere (another task, a signal handler). Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Canceller(Arc<Shared>);

impl Canceller {
    /// Ask the run to stop with `reason`; the run notices at once, even while it waits.
    pub fn cancel(&self, reason: impl Into<String>) {
        {
            let mut r = self.0.reason.lock().unwrap_or_else(PoisonError::into_inner);
            if r.is_none() {
                *r = Some(reason.into());
            }
        }
        self.0.asked.store(true, Ordering::Release);
        self.0.waker.wake();
    }

    /// Whether a stop was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.asked.load(Ordering::Acquire)
    }

    /// The reason, once (later calls return `None`).
    pub(super) fn requested(&self) -> Option<String> {
        if !self.0.asked.load(Ordering::Acquire) {
            return None;
        }
        self.0.reason.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    pub(super) fn register(&self, waker: &Waker) {
        self.0.waker.register(waker);
    }
}

impl GraphRun {
    /// A handle that stops this run.
    pub fn canceller(&self) -> Canceller {
        self.cancel.clone()
    }

    /// Stop the run at the first op failure.
    pub fn fail_fast(mut self, on: bool) -> Self {
        self.fail_fast = on;
        self
    }

    /// Stop now: drop all pending work, close open spans as cancelled, report why.
    pub(super) fn stop(&mut self, reason: String) {
        if self.finished {
            return;
        }
        self.close_open_spans(&reason);
        self.queue.clear();
        self.pulls.clear();
        self.io_waiting.clear();
        self.delay_done.clear();
        self.parked.clear();
        // Dropping the futures cancels the ops (and nested runs, which close their own spans).
        self.pending = Default::default();
        self.streams.clear();
        self.group_span = None;
        self.events.get_mut().push_back(RunEvent::Stopped(reason));
        self.finished = true;
        if self.parent_span.is_none()
            && let Some(t) = &self.tracer
        {
            t.finish();
        }
    }

    fn close_open_spans(&self, reason: &str) {
        let Some(t) = self.tracer.as_ref() else { return };
        for (_, node, ctx, span) in self.open_spans.borrow_mut().drain(..) {
            let payload = RawPayload::End {
                outputs: crate::trace::Named::Empty,
                status: "cancelled",
                duration_ms: span.started.elapsed().as_secs_f64() * 1000.0,
                yields: 0,
                error: Some(Box::new(serde_json::Value::String(reason.to_string()))),
                span: span.id,
                parent: self.parent_span_of(ctx),
                media_refs: crate::trace::MediaRefs::new(),
            };
            let op = self.plan.nodes[node as usize].full_name.clone();
            t.record(crate::trace::EventKind::OpEnd, Some(op), Some(self.op_ctx(node, ctx)), payload);
        }
    }
}

impl Drop for GraphRun {
    fn drop(&mut self) {
        if !self.finished {
            self.close_open_spans("cancelled: the run was dropped");
        }
    }
}
