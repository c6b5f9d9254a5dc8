//! The offline `replay` (alias `scripted`) chat provider: answers come from a script file
//! (`responses_file`, JSON or YAML) instead of the network.
//!
//! The script is either
//! - a **list** of replies, served in order; when every reply was served the next call
//!   fails loudly (`on_exhausted: fail`, the default) or starts over (`on_exhausted: cycle`);
//! - or a **rules** document `{rules: [{match: "text", ...reply}], default: reply?}`: the
//!   first rule whose `match` occurs (case-insensitively) in the last user message
//!   answers; without a match the `default` answers, and without a default the call fails.
//!
//! A reply is a string (the content) or a mapping with `content`, `tool_calls`
//! (`[{id?, name, arguments}]`, arguments as text or as a JSON value), `finish_reason`,
//! `usage` (counts as in the op's `usage` output; estimated from word counts when
//! absent), `reasoning`, `delay_ms`, or `error: {kind, message, status?}` to fail the
//! call with that error kind (`rate_limit`, `server`, `auth`, ...).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream;
use serde::Deserialize;
use serde_json::Value;

use super::{ChatClient, ChatDelta, ChatRequest, ChatResponse, DeltaStream, ToolCall, ToolCallDelta, content_text};
use crate::config::{Exhausted, LlmSettings};
use crate::error::{ErrorKind, ProviderError};
use crate::usage::Usage;

const PROVIDER: &str = "replay";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    #[serde(default, rename = "match")]
    matches: Option<String>,
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<CannedCall>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    reasoning: Option<String>,
    delay_ms: Option<u64>,
    error: Option<CannedError>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CannedCall {
    id: Option<String>,
    name: String,
    #[serde(default)]
    arguments: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CannedError {
    kind: String,
    #[serde(default)]
    message: String,
    status: Option<u16>,
}

fn reply(v: Value, at: &str) -> Result<Reply, String> {
    match v {
        Value::String(t) => Ok(Reply { content: Some(t), ..Reply::default() }),
        other => serde_json::from_value(other).map_err(|e| format!("{at}: {e}")),
    }
}

fn compile(v: Value) -> Result<Compiled, String> {
    match v {
        Value::Array(items) => Ok(Compiled::List(
            items.into_iter().enumerate().map(|(i, r)| reply(r, &format!("reply {i}"))).collect::<Result<_, _>>()?,
        )),
        Value::Object(mut m) => {
            let Some(Value::Array(rules)) = m.remove("rules") else {
                return Err("expected a list of replies or {rules: [...], default?}".into());
            };
            let default = m.remove("default").map(|d| reply(d, "default")).transpose()?.map(Box::new);
            if let Some(k) = m.keys().next() {
                return Err(format!("unknown key `{k}` (expected `rules`, `default`)"));
            }
            let rules = rules
                .into_iter()
                .enumerate()
                .map(|(i, r)| reply(r, &format!("rule {i}")))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(i) = rules.iter().position(|r| r.matches.is_none()) {
                return Err(format!("rule {i} has no `match`"));
            }
            Ok(Compiled::Rules { rules, default })
        }
        _ => Err("expected a list of replies or {rules: [...], default?}".into()),
    }
}

/// A scripted chat client.
#[derive(Debug, Clone)]
pub(crate) struct ReplayChat {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    model: String,
    source: String,
    script: Compiled,
    next: AtomicUsize,
    on_exhausted: Exhausted,
}

#[derive(Debug)]
enum Compiled {
    List(Vec<Reply>),
    Rules { rules: Vec<Reply>, default: Option<Box<Reply>> },
}

/// Read a script file: JSON when it ends in `.json`, YAML otherwise.
pub(crate) fn read_script_value(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| format!("{}: invalid JSON: {e}", path.display()))
    } else {
        crate::resource::yaml::yaml_to_value(&text).map_err(|e| format!("{}: invalid YAML: {e}", path.display()))
    }
}

impl ReplayChat {
    pub(crate) fn new(s: &LlmSettings) -> Result<Self, ProviderError> {
        let cfg = |m: String| ProviderError::new(ErrorKind::Config, PROVIDER, m);
        let path = s.responses_file.as_deref().ok_or_else(|| cfg("replay needs `responses_file`".into()))?;
        let value = read_script_value(path).map_err(cfg)?;
        let script = compile(value).map_err(|m| cfg(format!("{}: {m}", path.display())))?;
        for reply in match &script {
            Compiled::List(l) => l.iter().collect::<Vec<_>>(),
            Compiled::Rules { rules, default } => rules.iter().chain(default.as_deref()).collect(),
        } {
            if let Some(e) = &reply.error
                && ErrorKind::from_name(&e.kind).is_none()
            {
                return Err(cfg(format!("{}: unknown error kind '{}'", path.display(), e.kind)));
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                model: s.model.clone(),
                source: path.display().to_string(),
                script,
                next: AtomicUsize::new(0),
                on_exhausted: s.on_exhausted,
            }),
        })
    }
}

impl Inner {
    fn pick(&self, req: &ChatRequest) -> Result<Reply, ProviderError> {
        let fail = |m: String| ProviderError::new(ErrorKind::Config, PROVIDER, m);
        match &self.script {
            Compiled::List(items) => {
                let n = self.next.fetch_add(1, Ordering::SeqCst);
                let i = match self.on_exhausted {
                    Exhausted::Cycle if !items.is_empty() => n % items.len(),
                    _ => n,
                };
                items.get(i).cloned().ok_or_else(|| {
                    fail(format!("replay script {} is exhausted: all {} replies were served", self.source, items.len()))
                })
            }
            Compiled::Rules { rules, default } => {
                let last_user = req
                    .messages
                    .iter()
                    .rev()
                    .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
                    .map(|m| content_text(m.get("content").unwrap_or(&Value::Null)).to_lowercase())
                    .unwrap_or_default();
                rules
                    .iter()
                    .find(|r| r.matches.as_deref().is_some_and(|m| last_user.contains(&m.to_lowercase())))
                    .or(default.as_deref())
                    .cloned()
                    .ok_or_else(|| {
                        fail(format!("no rule of replay script {} matches the last user message", self.source))
                    })
            }
        }
    }

    async fn answer(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let reply = self.pick(req)?;
        if let Some(ms) = reply.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(e) = &reply.error {
            let kind = ErrorKind::from_name(&e.kind).unwrap_or(ErrorKind::Server);
            let mut err = ProviderError::new(kind, PROVIDER, e.message.clone());
            if let Some(s) = e.status {
                err = err.with_status(s);
            }
            return Err(err);
        }
        let tool_calls: Vec<ToolCall> = reply
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, c)| ToolCall {
                id: c.id.clone().unwrap_or_else(|| format!("call_{i}")),
                name: c.name.clone(),
                arguments: match &c.arguments {
                    Value::String(s) => s.clone(),
                    Value::Null => "{}".into(),
                    other => other.to_string(),
                },
            })
            .collect();
        let usage = match reply.usage {
            Some(u) => u.with_total(),
            None => {
                let prompt: usize =
                    req.messages.iter().map(|m| words(&content_text(m.get("content").unwrap_or(&Value::Null)))).sum();
                let completion = words(reply.content.as_deref().unwrap_or_default())
                    + tool_calls.iter().map(|c| words(&c.arguments) + 1).sum::<usize>();
                Usage { prompt_tokens: prompt as u64, completion_tokens: completion as u64, ..Usage::default() }
                    .with_total()
            }
        };
        let finish = reply
            .finish_reason
            .clone()
            .unwrap_or_else(|| if tool_calls.is_empty() { "stop" } else { "tool_calls" }.into());
        Ok(ChatResponse {
            content: reply.content,
            tool_calls,
            finish_reason: Some(finish),
            usage,
            model: Some(self.model.clone()),
            reasoning: reply.reasoning,
            refusal: None,
            logprobs: None,
        })
    }
}

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

/// An answer as the deltas a streaming provider would send.
fn to_deltas(r: ChatResponse) -> Vec<ChatDelta> {
    let mut out = Vec::new();
    if let Some(m) = r.model {
        out.push(ChatDelta::Model(m));
    }
    if let Some(t) = r.reasoning {
        out.push(ChatDelta::Reasoning(t));
    }
    if let Some(c) = r.content {
        out.extend(c.split_inclusive(' ').map(|w| ChatDelta::Text(w.to_string())));
    }
    for (index, c) in r.tool_calls.into_iter().enumerate() {
        let cut = c.arguments.char_indices().nth(c.arguments.chars().count() / 2).map_or(c.arguments.len(), |(i, _)| i);
        let (a, b) = c.arguments.split_at(cut);
        out.push(ChatDelta::ToolCall(ToolCallDelta {
            index,
            id: Some(c.id.clone()),
            name: Some(c.name.clone()),
            arguments: a.into(),
        }));
        out.push(ChatDelta::ToolCall(ToolCallDelta { index, id: None, name: None, arguments: b.into() }));
    }
    if let Some(f) = r.finish_reason {
        out.push(ChatDelta::Finish(f));
    }
    out.push(ChatDelta::Usage(r.usage));
    out
}

impl ChatClient for ReplayChat {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.inner.model
    }

    fn chat(&self, request: ChatRequest) -> BoxFuture<'static, Result<ChatResponse, ProviderError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { inner.answer(&request).await })
    }

    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'static, Result<DeltaStream, ProviderError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let r = inner.answer(&request).await?;
            let s: DeltaStream = Box::pin(stream::iter(to_deltas(r).into_iter().map(Ok)));
            Ok(s)
        })
    }
}
