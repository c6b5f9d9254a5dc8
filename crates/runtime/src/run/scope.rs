//! In-band cancellation of a context: an op body stops the work of one generator item
//! (or of the whole run) — e.g. a new user turn cancels what is still running for the
//! previous one. Queued work in the context and below it is dropped, running ops there are
//! aborted, and their results are discarded; the rest of the run goes on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::Waker;

use super::GraphRun;
use super::Work;
use super::context::{CtxId, NONE};

/// Cancellation requests shared by a run and its nested runs (see
/// `OpContext::cancel_context`). A fresh board per run comes with [`super::RunEnv`]'s default.
#[derive(Debug, Default)]
pub struct ScopeBoard {
    generation: AtomicU64,
    requests: Mutex<Vec<(Vec<String>, String)>>,
    wakers: Mutex<Vec<Waker>>,
}

impl ScopeBoard {
    /// Ask every run sharing this board to cancel the contexts at or below `path`.
    pub(crate) fn cancel(&self, path: Vec<String>, reason: String) {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).push((path, reason));
        self.generation.fetch_add(1, Ordering::Release);
        for w in self.wakers.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            w.wake();
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Wake `waker` at the next request (a run about to wait).
    pub(crate) fn register(&self, waker: &Waker) {
        let mut w = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        if !w.iter().any(|x| x.will_wake(waker)) {
            w.push(waker.clone());
        }
    }

    fn since(&self, seen: usize) -> Vec<(Vec<String>, String)> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).iter().skip(seen).cloned().collect()
    }
}

impl GraphRun {
    /// Apply cancellation requests that arrived since the last look.
    pub(super) fn apply_scope_cancels(&mut self) {
        let board = self.env.scopes.clone();
        self.scope_generation = board.generation();
        let fresh = board.since(self.scope_requests_seen);
        self.scope_requests_seen += fresh.len();
        for (mut path, reason) in fresh {
            // A `.collect()` consumer's context (`[..., "__collect__"]`) is the context it
            // runs in: cancelling it cancels that one.
            path.retain(|p| p != crate::trace::EventCtx::COLLECT_SEGMENT);
            let root_path = self.ctx_path(self.root);
            if root_path.starts_with(&path) {
                // The whole run is inside the cancelled context.
                self.stop(reason);
                return;
            }
            let hit: Vec<CtxId> = self
                .ctxs
                .live()
                .into_iter()
                .filter(|&c| c != self.root && self.ctx_path(c).starts_with(&path))
                .collect();
            if !hit.is_empty() {
                self.cancel_contexts(&hit);
            }
        }
    }

    fn cancel_contexts(&mut self, hit: &[CtxId]) {
        for &c in hit {
            self.ctxs.get_mut(c).cancelled = true;
        }
        // Abort running ops there; their futures report back as cancelled.
        for (ctx, handle) in self.aborts.iter().flatten() {
            if self.ctxs.is_cancelled(*ctx) {
                handle.abort();
            }
        }
        // Streams opened there stop pulling.
        for inst in self.streams.iter_mut().flatten() {
            if hit.contains(&inst.ctx) || inst.ctx != NONE && self.ctxs.is_cancelled(inst.ctx) {
                inst.cancelled = true;
                inst.exhausted = true;
            }
        }
        // Queued and waiting work there is dropped (each held one unit of its context's activity).
        let queued: Vec<Work> = self.queue.drain(..).collect();
        let mut dropped = Vec::new();
        for w in queued {
            match w {
                Work::Run(n, c, via) if self.ctxs.is_cancelled(c) => dropped.push((n, c, via)),
                other => self.queue.push_back(other),
            }
        }
        let waiting: Vec<_> = self.io_waiting.drain(..).collect();
        for (n, c, via) in waiting {
            if self.ctxs.is_cancelled(c) {
                dropped.push((n, c, via));
            } else {
                self.io_waiting.push_back((n, c, via));
            }
        }
        let mut settled = Vec::new();
        for q in self.edge_waiting.iter_mut() {
            let keep: std::collections::VecDeque<CtxId> =
                q.iter().copied().filter(|&c| !self.ctxs.is_cancelled(c)).collect();
            settled.extend(q.iter().copied().filter(|&c| self.ctxs.is_cancelled(c)));
            *q = keep;
        }
        let parked = std::mem::take(&mut self.parked);
        for (n, c) in parked {
            if self.ctxs.is_cancelled(c) {
                settled.push(c);
            } else {
                self.parked.push((n, c));
            }
        }
        for (_, c, via) in dropped {
            self.release_edge(via);
            self.settle(c);
        }
        for c in settled {
            self.settle(c);
        }
        let sids: Vec<u32> = (0..self.streams.len() as u32).collect();
        for sid in sids {
            self.maybe_finish_stream(sid);
        }
    }
}
