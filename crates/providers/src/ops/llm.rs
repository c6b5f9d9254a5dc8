//! The `llm` op: messages in, one answer out, through a resource chosen by weight with
//! fallbacks, optional streaming, structured-output validation, and usage/cost events.

use std::collections::BTreeMap;
use std::sync::Arc;

use operonx_graph::wire::OpConfig;
use operonx_runtime::{EventKind, Inputs, Invocation, Op, OpContext, OpError, OpResult, Outputs};
use serde_json::{Map, Value, json};

use super::schema::{parse_json, validate};
use super::{ProviderOptions, names, present};
use crate::chat::{ChatParams, ChatRequest, ChatResponse, collect_stream};
use crate::error::{ErrorKind, ProviderError};
use crate::resource::{LlmResource, ResourceHub};
use crate::rng::{SplitMix, fnv1a};
use crate::usage::Usage;

/// Inputs the op interprets itself; every other non-null input is forwarded as an extra
/// request parameter.
const RESERVED: &[&str] = &[
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "n",
    "tools",
    "tool_choice",
    "response_format",
    "logprobs",
    "top_logprobs",
    "user",
    "frequency_penalty",
    "presence_penalty",
    "output_schema",
];

/// Re-asks after a structured answer fails validation (op field `structured_retries`).
const DEFAULT_STRUCTURED_RETRIES: u32 = 2;

/// One bound resource: the name as the op wrote it, and the resolved client.
struct Target {
    name: String,
    res: Arc<LlmResource>,
}

struct Shared {
    op: String,
    primary: Vec<Target>,
    /// Cumulative weights of `primary`.
    cumulative: Vec<f64>,
    fallback: Vec<Target>,
    stream: bool,
    structured_retries: u32,
    rng: SplitMix,
    options: ProviderOptions,
}

/// The bound `llm` op.
pub(crate) struct LlmOp {
    shared: Arc<Shared>,
}

impl LlmOp {
    /// Resolve the op's resources (`resource`, `ratios`, `fallback`) at bind time.
    pub(crate) fn bind(cfg: &OpConfig, hub: &ResourceHub, options: &ProviderOptions) -> Result<Self, String> {
        let resolve = |list: Vec<String>| -> Result<Vec<Target>, String> {
            list.into_iter()
                .map(|name| hub.get_llm(&name).map(|res| Target { name, res }).map_err(|e| e.to_string()))
                .collect()
        };
        let primary = resolve(names(cfg, "resource")?)?;
        if primary.is_empty() {
            return Err("no `resource` given".into());
        }
        let weights: Vec<f64> = match cfg.extra.get("ratios") {
            None | Some(Value::Null) => vec![1.0; primary.len()],
            Some(Value::Array(r)) => r
                .iter()
                .map(|x| {
                    x.as_f64()
                        .filter(|f| f.is_finite() && *f >= 0.0)
                        .ok_or_else(|| format!("`ratios` must be non-negative numbers, found {x}"))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("`ratios` must be a list of numbers, found {other}")),
        };
        if weights.len() != primary.len() {
            return Err(format!("`ratios` has {} entries but `resource` names {}", weights.len(), primary.len()));
        }
        if weights.iter().sum::<f64>() <= 0.0 {
            return Err("`ratios` must not all be zero".into());
        }
        let cumulative = weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        let fallback = resolve(names(cfg, "fallback")?)?;
        let seed = match cfg.extra.get("selection_seed") {
            Some(v) => {
                v.as_u64().ok_or_else(|| format!("`selection_seed` must be a non-negative integer, found {v}"))?
            }
            None => fnv1a(cfg.full_name.as_bytes()),
        };
        let structured_retries = match cfg.extra.get("structured_retries") {
            None | Some(Value::Null) => DEFAULT_STRUCTURED_RETRIES,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("`structured_retries` must be a small non-negative integer, found {v}"))?,
        };
        let op = if cfg.full_name.is_empty() { cfg.name.clone() } else { cfg.full_name.clone() };
        Ok(Self {
            shared: Arc::new(Shared {
                op,
                primary,
                cumulative,
                fallback,
                stream: cfg.stream,
                structured_retries,
                rng: SplitMix::new(seed),
                options: options.clone(),
            }),
        })
    }
}

impl Op for LlmOp {
    fn accepts_objects(&self) -> bool {
        false
    }

    fn call(&self, inputs: Inputs, ctx: &OpContext) -> Invocation {
        let shared = Arc::clone(&self.shared);
        let ctx = ctx.clone();
        Invocation::Future(Box::pin(async move { shared.run(inputs, &ctx).await }))
    }
}

fn number(inputs: &mut Inputs, name: &str) -> Result<Option<f64>, OpError> {
    present(inputs.take(name))
        .map(|v| v.as_f64().ok_or_else(|| OpError::input(name, format!("expected a number, got {v}"))))
        .transpose()
}

fn count(inputs: &mut Inputs, name: &str) -> Result<Option<u64>, OpError> {
    present(inputs.take(name))
        .map(|v| v.as_u64().ok_or_else(|| OpError::input(name, format!("expected a non-negative integer, got {v}"))))
        .transpose()
}

/// The chat request an op call describes, plus the schema to validate against.
fn request(mut inputs: Inputs) -> Result<(ChatRequest, Option<Value>), OpError> {
    let messages = match present(inputs.take("messages")) {
        Some(Value::Array(m)) => m,
        Some(other) => return Err(OpError::input("messages", format!("expected a list of messages, got {other}"))),
        None => return Err(OpError::input("messages", "required input not provided")),
    };
    for (i, m) in messages.iter().enumerate() {
        if m.get("role").and_then(Value::as_str).is_none() {
            return Err(OpError::input("messages", format!("message {i} is not an object with a string `role`")));
        }
    }
    let stop = match present(inputs.take("stop")) {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|s| match s {
                Value::String(s) => Ok(s),
                other => Err(OpError::input("stop", format!("expected strings, got {other}"))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(OpError::input("stop", format!("expected a string or a list of strings, got {other}")));
        }
    };
    let tools = match present(inputs.take("tools")) {
        None => None,
        Some(Value::Array(t)) => Some(t),
        Some(other) => {
            return Err(OpError::input("tools", format!("expected a list of tool definitions, got {other}")));
        }
    };
    let seed = present(inputs.take("seed"))
        .map(|v| v.as_i64().ok_or_else(|| OpError::input("seed", format!("expected an integer, got {v}"))))
        .transpose()?;
    let logprobs = present(inputs.take("logprobs"))
        .map(|v| v.as_bool().ok_or_else(|| OpError::input("logprobs", format!("expected a boolean, got {v}"))))
        .transpose()?;
    let user = present(inputs.take("user"))
        .map(|v| {
            v.as_str().map(str::to_owned).ok_or_else(|| OpError::input("user", format!("expected a string, got {v}")))
        })
        .transpose()?;
    let mut response_format = present(inputs.take("response_format"));
    if let Some(Value::String(s)) = &response_format {
        response_format = Some(json!({"type": if s == "json" { "json_object" } else { s.as_str() }}));
    }
    let output_schema = present(inputs.take("output_schema"));
    if let (Some(schema), None) = (&output_schema, &response_format) {
        response_format = Some(json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}));
    }
    let mut params = ChatParams {
        temperature: number(&mut inputs, "temperature")?,
        top_p: number(&mut inputs, "top_p")?,
        max_tokens: count(&mut inputs, "max_tokens")?,
        stop,
        seed,
        n: count(&mut inputs, "n")?,
        tools,
        tool_choice: present(inputs.take("tool_choice")),
        response_format,
        logprobs,
        top_logprobs: count(&mut inputs, "top_logprobs")?,
        user,
        frequency_penalty: number(&mut inputs, "frequency_penalty")?,
        presence_penalty: number(&mut inputs, "presence_penalty")?,
        extras: Map::new(),
    };
    for (k, v) in inputs.into_map() {
        if !v.is_null() && !RESERVED.contains(&k.as_str()) {
            params.extras.insert(k, v);
        }
    }
    let schema = output_schema.or_else(|| params.json_schema().cloned());
    Ok((ChatRequest { messages, params }, schema))
}

/// The `llm_usage` payload of one call: `model` (the resource name the op used),
/// `resource` (full key), `provider`, `provider_model`, the token counts, and `cost_usd`
/// (`null` when the resource has no `pricing`).
pub fn usage_payload(
    name: &str,
    res: &LlmResource,
    provider_model: Option<&str>,
    usage: &Usage,
) -> BTreeMap<String, Value> {
    let mut p = BTreeMap::new();
    p.insert("model".into(), json!(name));
    p.insert("resource".into(), json!(res.key()));
    p.insert("provider".into(), json!(res.client().provider()));
    p.insert("provider_model".into(), json!(provider_model.unwrap_or(res.client().model())));
    p.insert("prompt_tokens".into(), json!(usage.prompt_tokens));
    p.insert("completion_tokens".into(), json!(usage.completion_tokens));
    p.insert("total_tokens".into(), json!(usage.total_tokens));
    p.insert("cached_tokens".into(), json!(usage.cached_tokens));
    p.insert("cache_write_tokens".into(), json!(usage.cache_write_tokens));
    p.insert("reasoning_tokens".into(), json!(usage.reasoning_tokens));
    p.insert("cost_usd".into(), res.pricing().map(|pr| pr.cost(usage)).map_or(Value::Null, Value::from));
    p
}

impl Shared {
    fn pick(&self) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let r = self.rng.next_f64() * total;
        self.cumulative.iter().position(|c| r < *c).unwrap_or(self.primary.len().saturating_sub(1))
    }

    /// Call one resource; returns whether any token was streamed (to the run's frames and
    /// the hook).
    async fn call_one(
        &self,
        t: &Target,
        req: ChatRequest,
        ctx: &OpContext,
    ) -> (Result<ChatResponse, ProviderError>, bool) {
        let client = t.res.client();
        if !self.stream {
            return (client.chat(req).await, false);
        }
        let mut emitted = false;
        let result = match client.chat_stream(req).await {
            Ok(stream) => {
                let hook = self.options.on_token.clone();
                let op = self.op.as_str();
                collect_stream(stream, |d| {
                    emitted = true;
                    ctx.send_token(d);
                    if let Some(h) = &hook {
                        h(op, d);
                    }
                })
                .await
            }
            Err(e) => Err(e),
        };
        (result, emitted)
    }

    /// Try the picked resource, then the fallbacks in order. A stream that already
    /// delivered tokens is never restarted elsewhere.
    async fn call(&self, req: &ChatRequest, ctx: &OpContext) -> Result<(ChatResponse, &Target), OpError> {
        let first = self.pick();
        let order = std::iter::once(&self.primary[first])
            .chain(self.fallback.iter().filter(|f| f.res.key() != self.primary[first].res.key()));
        let mut failures: Vec<(&str, ProviderError)> = Vec::new();
        for t in order {
            let (result, emitted) = self.call_one(t, req.clone(), ctx).await;
            match result.and_then(|r| refused(r, t.res.client().provider())) {
                Ok(r) => {
                    // Built only when someone reads it (a usage hook or the run's trace).
                    if self.options.on_usage.is_some() || ctx.is_traced() {
                        let payload = usage_payload(&t.name, &t.res, r.model.as_deref(), &r.usage);
                        if let Some(h) = &self.options.on_usage {
                            h(&self.op, &payload);
                        }
                        ctx.emit(EventKind::LlmUsage, payload);
                    }
                    return Ok((r, t));
                }
                Err(e) => {
                    failures.push((t.res.key(), e));
                    if emitted {
                        break;
                    }
                }
            }
        }
        let Some((key, last)) = failures.pop() else {
            return Err(OpError::new("no resource to call"));
        };
        let mut message = format!("model call failed on {key}");
        if !failures.is_empty() {
            let earlier: Vec<String> = failures.iter().map(|(k, e)| format!("{k}: {e}")).collect();
            message.push_str(&format!(" (after {})", earlier.join("; ")));
        }
        Err(OpError::with_source(message, last))
    }

    async fn run(&self, inputs: Inputs, ctx: &OpContext) -> OpResult {
        let (mut req, schema) = request(inputs)?;
        let mut total = Usage::default();
        let mut cost: Option<f64> = Some(0.0);
        let mut attempt = 0;
        loop {
            let (resp, target) = self.call(&req, ctx).await?;
            total.add(&resp.usage);
            cost = match (cost, target.res.pricing()) {
                (Some(c), Some(p)) => Some(c + p.cost(&resp.usage)),
                _ => None,
            };
            let content = resp.content.clone().unwrap_or_default();
            let check = if (schema.is_some() || req.params.wants_json())
                && (resp.tool_calls.is_empty() || !content.trim().is_empty())
            {
                Some(parse_json(&content).and_then(|v| match &schema {
                    Some(s) => validate(&v, s).map(|()| v),
                    None => Ok(v),
                }))
            } else {
                None
            };
            let parsed = match check {
                Some(Err(problem)) if attempt < self.structured_retries => {
                    attempt += 1;
                    req.messages.push(json!({"role": "assistant", "content": content}));
                    req.messages.push(json!({"role": "user", "content": format!(
                        "Your previous answer did not match the required JSON schema: {problem}. Answer again with only the corrected JSON."
                    )}));
                    continue;
                }
                Some(Err(problem)) => {
                    return Err(OpError::new(format!(
                        "structured output from {} did not match the schema after {} attempt(s): {problem}",
                        target.res.key(),
                        attempt + 1
                    )));
                }
                Some(Ok(v)) => Some(v),
                None => None,
            };
            return Ok(outputs(resp, target, total, cost, parsed));
        }
    }
}

/// A content-filter stop without any output is an error, not an empty answer.
fn refused(r: ChatResponse, provider: &'static str) -> Result<ChatResponse, ProviderError> {
    let empty = r.content.as_deref().is_none_or(|c| c.trim().is_empty()) && r.tool_calls.is_empty();
    if empty && r.finish_reason.as_deref() == Some("content_filter") {
        let why = r.refusal.unwrap_or_else(|| "the answer was withheld by the provider's content filter".into());
        return Err(ProviderError::new(ErrorKind::ContentFilter, provider, why));
    }
    Ok(r)
}

fn outputs(r: ChatResponse, t: &Target, usage: Usage, cost: Option<f64>, parsed: Option<Value>) -> Outputs {
    let mut u = usage.to_json();
    if let Some(m) = u.as_object_mut() {
        m.insert("cost_usd".into(), cost.map_or(Value::Null, Value::from));
    }
    let mut extras = Map::new();
    extras.insert("thinking_content".into(), r.reasoning.map_or(Value::Null, Value::from));
    extras.insert("refusal".into(), r.refusal.map_or(Value::Null, Value::from));
    extras.insert("logprobs".into(), r.logprobs.unwrap_or(Value::Null));
    extras.insert("provider_model".into(), json!(r.model.as_deref().unwrap_or(t.res.client().model())));
    if let Some(p) = parsed {
        extras.insert("parsed".into(), p);
    }
    Outputs::new()
        .with("role", "assistant")
        .with("content", r.content.unwrap_or_default())
        .with("finish_reason", r.finish_reason.map_or(Value::Null, Value::from))
        .with("model_used", t.name.clone())
        .with("tool_calls", Value::Array(r.tool_calls.iter().map(|c| c.to_json()).collect()))
        .with("usage", u)
        .with("extras", Value::Object(extras))
}
