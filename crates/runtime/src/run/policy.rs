//! Per-op timeouts and retries: an op call wrapped in a future that bounds each attempt
//! and retries failures with backoff.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use operonx_graph::backoff::SplitMix;
use operonx_graph::plan::OpPolicy;

use crate::op::{Invocation, Op, OpContext, OpError, OpResult};
use crate::record::Inputs;

/// Call `op` under `policy`. Each attempt gets a copy of the inputs; a timed-out attempt's
/// future is dropped, which cancels it.
pub(super) fn guarded(
    op: Arc<dyn Op>,
    inputs: Inputs,
    octx: OpContext,
    policy: OpPolicy,
) -> BoxFuture<'static, OpResult> {
    Box::pin(async move {
        let mut attempt = 1u32;
        // Jitter: a sequence of this call's own, so ops retrying together spread out.
        let rng = SplitMix::from_entropy();
        loop {
            let result = match op.call(inputs.clone(), &octx) {
                Invocation::Ready(r) => r,
                Invocation::Future(f) => match policy.timeout {
                    Some(limit) => {
                        tokio::time::timeout(limit, f).await.unwrap_or_else(|_| Err(OpError::timed_out(limit)))
                    }
                    None => f.await,
                },
                Invocation::Items(_) | Invocation::Stream(_) => {
                    Err(OpError::new("timeout and retry apply to single-result ops, not to generators"))
                }
            };
            let err = match result {
                Ok(outputs) => return Ok(outputs),
                Err(e) => e,
            };
            let retry = policy
                .retry
                .as_ref()
                .filter(|r| attempt < r.max_attempts && if err.is_timeout() { r.on_timeout } else { r.on_error });
            let Some(r) = retry else {
                return Err(if attempt > 1 { err.context(format!("after {attempt} attempts")) } else { err });
            };
            // Attempts count from 1; the schedule's retries from 0.
            let delay = r.schedule().wait(attempt - 1, &rng);
            octx.annotate(
                "operonx.retry",
                serde_json::json!({"attempt": attempt, "error": err.to_string(), "delay_s": delay.as_secs_f64()}),
            );
            tokio::time::sleep(delay.min(Duration::from_secs(3600))).await;
            attempt += 1;
        }
    })
}
