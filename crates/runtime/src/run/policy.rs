//! Per-op timeouts and retries: an op call wrapped in a future that bounds each attempt
//! and retries failures with backoff.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use operonx_graph::plan::OpPolicy;

use crate::op::{Invocation, Op, OpContext, OpError, OpResult};
use crate::record::Inputs;

/// A number in [0, 1) from the clock, for jitter (no need for a strong generator).
fn jitter_unit(attempt: u32) -> f64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut x = u64::from(nanos) ^ (u64::from(attempt) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

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
            let mut delay = r.delay(attempt);
            if r.jitter {
                let secs = delay.as_secs_f64() * (0.5 + 0.5 * jitter_unit(attempt));
                delay = Duration::try_from_secs_f64(secs).unwrap_or(delay);
            }
            octx.annotate(
                "operonx.retry",
                serde_json::json!({"attempt": attempt, "error": err.to_string(), "delay_s": delay.as_secs_f64()}),
            );
            tokio::time::sleep(delay.min(Duration::from_secs(3600))).await;
            attempt += 1;
        }
    })
}
