//! An op's run policy as written in `graph.json`: `timeout`, `retry`, `cache` and
//! `delay`. Every duration goes through [`crate::duration::checked_secs`].

use std::time::Duration;

use serde_json::Value;

use super::{Binder, GraphCompiler};
use crate::duration::{Limit, checked_secs};
use crate::plan::{CachePlan, OpPolicy, RetryPolicy};
use crate::wire::OpConfig;

/// `v` as seconds within `limit`, or the problem in words (`must be ..., got ...`).
fn seconds(field: &str, v: &Value, limit: Limit) -> Result<Duration, String> {
    match v.as_f64() {
        Some(s) => checked_secs(field, s, limit).map_err(|e| e.problem()),
        None => Err(format!("must be {}, got {v}", limit.expected())),
    }
}

impl<B: Binder> GraphCompiler<'_, B> {
    pub(super) fn policy(&mut self, cfg: &OpConfig, path: &str) -> OpPolicy {
        let mut policy = OpPolicy::default();
        match cfg.extra.get("timeout") {
            None | Some(Value::Null) => {}
            Some(v) => match seconds("timeout", v, Limit::TIMEOUT) {
                Ok(d) => policy.timeout = Some(d),
                Err(msg) => self.err(format!("{path}.timeout"), msg),
            },
        }
        match cfg.extra.get("retry") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                let rpath = format!("{path}.retry");
                let mut r = RetryPolicy {
                    max_attempts: 3,
                    initial_delay: Duration::from_millis(500),
                    backoff: 2.0,
                    max_delay: Duration::from_secs(30),
                    jitter: true,
                    on_error: true,
                    on_timeout: true,
                };
                for (k, v) in m {
                    let bad = |what: &str| format!("{k}: must be {what}, got {v}");
                    match k.as_str() {
                        "max_attempts" => match v.as_u64().filter(|n| *n >= 1) {
                            Some(n) => r.max_attempts = n.min(u32::MAX as u64) as u32,
                            None => self.err(&rpath, bad("an integer of at least 1")),
                        },
                        "initial_delay" | "max_delay" => match seconds(k, v, Limit::WAIT) {
                            Ok(d) if k == "initial_delay" => r.initial_delay = d,
                            Ok(d) => r.max_delay = d,
                            Err(msg) => self.err(&rpath, format!("{k}: {msg}")),
                        },
                        "backoff" => match v.as_f64().filter(|b| b.is_finite() && *b >= 1.0) {
                            Some(b) => r.backoff = b,
                            None => self.err(&rpath, bad("a number of at least 1")),
                        },
                        "jitter" => match v.as_bool() {
                            Some(b) => r.jitter = b,
                            None => self.err(&rpath, bad("a boolean")),
                        },
                        "retry_on" => {
                            let kinds: Option<Vec<&str>> = match v {
                                Value::String(s) => Some(vec![s.as_str()]),
                                Value::Array(a) => a.iter().map(Value::as_str).collect(),
                                _ => None,
                            };
                            match kinds.filter(|k| k.iter().all(|x| matches!(*x, "error" | "timeout"))) {
                                Some(kinds) => {
                                    r.on_error = kinds.contains(&"error");
                                    r.on_timeout = kinds.contains(&"timeout");
                                }
                                None => self.err(&rpath, bad("\"error\", \"timeout\" or a list of them")),
                            }
                        }
                        other => self.err(
                            &rpath,
                            format!(
                                "unknown key \"{other}\" (known: max_attempts, initial_delay, backoff, max_delay, jitter, retry_on)"
                            ),
                        ),
                    }
                }
                policy.retry = Some(r);
            }
            Some(v) => self.err(format!("{path}.retry"), format!("must be an object, got {v}")),
        }
        if !policy.is_plain() && cfg.is_generator {
            self.err(path, "timeout and retry apply to single-result ops, not to generators");
        }
        policy
    }

    pub(super) fn cache(&mut self, cfg: &OpConfig, path: &str) -> Option<CachePlan> {
        let ttl = match cfg.cache.as_ref()? {
            Value::Null | Value::Bool(false) => return None,
            // A Python cache file path: results are cached (in the engine's cache store).
            Value::Bool(true) | Value::String(_) => None,
            Value::Object(m) => match m.get("ttl") {
                None | Some(Value::Null) => None,
                Some(v) => match seconds("ttl", v, Limit::TTL) {
                    Ok(d) => Some(d),
                    Err(msg) => {
                        self.err(format!("{path}.cache.ttl"), msg);
                        None
                    }
                },
            },
            other => {
                self.err(format!("{path}.cache"), format!("must be true, false or {{\"ttl\": seconds}}, got {other}"));
                return None;
            }
        };
        if cfg.is_generator {
            self.err(format!("{path}.cache"), "generator results are not cached");
            return None;
        }
        // The op's whole configuration as written.
        let text = serde_json::to_string(cfg).unwrap_or_default();
        Some(CachePlan { fingerprint: crate::digest::hash64(text.as_bytes()), ttl })
    }

    /// `delay`: only a positive delay waits (as in the reference); one is at most
    /// [`crate::duration::MAX_WAIT`].
    pub(super) fn delay(&mut self, cfg: &OpConfig, path: &str) -> Option<Duration> {
        let d = cfg.delay.filter(|d| *d > 0.0)?;
        match checked_secs("delay", d, Limit::WAIT) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(format!("{path}.delay"), e.problem());
                None
            }
        }
    }
}
