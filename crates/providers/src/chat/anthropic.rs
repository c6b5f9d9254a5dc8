//! Anthropic Messages API: `POST {base_url}/messages` (default base
//! `https://api.anthropic.com/v1`) with `x-api-key` and `anthropic-version`.
//!
//! OpenAI-shaped messages are converted: system messages become the top-level `system`
//! (joined), image parts become image blocks, assistant `tool_calls` become `tool_use`
//! blocks, `tool` messages become `tool_result` blocks, and consecutive messages of the
//! same role are merged. Not sent (no Anthropic equivalent): `seed`, `n`, `logprobs`,
//! `top_logprobs`, penalties; `top_p` only when `temperature` is unset. A JSON
//! `response_format` becomes an instruction in the system prompt.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Map, Value, json};

use super::http_chat::Wire;
use super::{ChatDelta, ChatRequest, ChatResponse, ToolCall, ToolCallDelta, content_text, data_url};
use crate::config::{LlmSettings, endpoint};
use crate::error::{ErrorKind, ProviderError};
use crate::http::sse::SseEvent;
use crate::http::{Call, EventHandler, Transport};
use crate::secret::Secret;
use crate::usage::Usage;

const PROVIDER: &str = "anthropic";
/// `max_tokens` is mandatory for Anthropic; this is sent when the op sets none.
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The wire format of the Anthropic Messages API (a chat client with
/// [`HttpChat`](super::http_chat::HttpChat)).
#[derive(Debug)]
pub(crate) struct AnthropicWire {
    url: String,
    model: String,
    version: String,
    key: Option<Secret>,
    defaults: Map<String, Value>,
    transport: Transport,
}

impl AnthropicWire {
    pub(crate) fn new(s: &LlmSettings) -> Result<Self, ProviderError> {
        let base = s.base_url.as_deref().unwrap_or("https://api.anthropic.com/v1");
        let url = endpoint(base, "messages").map_err(|m| ProviderError::new(ErrorKind::Config, PROVIDER, m))?;
        let transport = Transport::new(PROVIDER, &url, &s.http)?;
        Ok(Self {
            url,
            model: s.model.clone(),
            version: s.api_version.clone().unwrap_or_else(|| "2023-06-01".into()),
            key: s.api_key.clone(),
            defaults: s.params.clone(),
            transport,
        })
    }
}

impl Wire for AnthropicWire {
    type Stream = StreamHandler;

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn transport(&self) -> &Transport {
        &self.transport
    }

    fn call(&self, req: &ChatRequest, stream: bool) -> Result<Call, ProviderError> {
        let body = request_body(&self.model, req, &self.defaults, stream)?;
        let mut call = Call::json(PROVIDER, &self.url, &body)?.header(PROVIDER, "anthropic-version", &self.version)?;
        if let Some(k) = &self.key {
            call = call.secret_header(PROVIDER, "x-api-key", k.expose())?;
        }
        Ok(call)
    }

    fn parse(&self, answer: &Value) -> Result<ChatResponse, ProviderError> {
        parse_response(answer)
    }

    fn stream_handler(&self) -> StreamHandler {
        StreamHandler::default()
    }
}

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorKind::BadRequest, PROVIDER, message)
}

/// Content parts (OpenAI shape) as Anthropic content blocks.
fn blocks(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(parts) => parts.iter().map(block).collect(),
        Value::Null => Vec::new(),
        other => vec![json!({"type": "text", "text": other.to_string()})],
    }
}

fn block(part: &Value) -> Value {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => {
            let mut b = json!({"type": "text", "text": part.get("text").and_then(Value::as_str).unwrap_or_default()});
            if let (Some(cc), Some(m)) = (part.get("cache_control"), b.as_object_mut()) {
                m.insert("cache_control".into(), cc.clone());
            }
            b
        }
        Some("image_url") => {
            let url = part
                .pointer("/image_url/url")
                .or_else(|| part.get("image_url"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            match data_url(url) {
                Some((mime, data)) => {
                    json!({"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}})
                }
                None => json!({"type": "image", "source": {"type": "url", "url": url}}),
            }
        }
        _ => match part.as_str() {
            Some(s) => json!({"type": "text", "text": s}),
            None => part.clone(),
        },
    }
}

/// Split out the system prompt and convert the conversation.
pub(crate) fn convert_messages(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut out: Vec<(String, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| bad(format!("message {i} has no role")))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        let (role, content) = match role {
            "system" | "developer" => {
                system.extend(blocks(content));
                continue;
            }
            "user" => ("user", blocks(content)),
            "assistant" => {
                let mut b: Vec<Value> = blocks(content)
                    .into_iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) != Some("text") || b["text"] != "")
                    .collect();
                for tc in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    let args = tc.pointer("/function/arguments");
                    let input = match args {
                        Some(Value::String(s)) if !s.trim().is_empty() => serde_json::from_str(s)
                            .map_err(|e| bad(format!("message {i}: tool call arguments are not JSON: {e}")))?,
                        Some(v @ Value::Object(_)) => v.clone(),
                        _ => json!({}),
                    };
                    b.push(json!({"type": "tool_use", "id": tc.get("id").cloned().unwrap_or(Value::Null),
                                  "name": tc.pointer("/function/name").cloned().unwrap_or(Value::Null), "input": input}));
                }
                ("assistant", b)
            }
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("tool message {i} has no tool_call_id")))?;
                ("user", vec![json!({"type": "tool_result", "tool_use_id": id, "content": content_text(content)})])
            }
            other => return Err(bad(format!("message {i} has unsupported role '{other}'"))),
        };
        match out.last_mut() {
            Some((r, b)) if r == role => b.extend(content),
            _ => out.push((role.to_string(), content)),
        }
    }
    let messages = out
        .into_iter()
        .map(|(role, b)| {
            let single_text = b.len() == 1
                && b[0].get("type").and_then(Value::as_str) == Some("text")
                && b[0].get("cache_control").is_none();
            let content = if single_text { b[0]["text"].clone() } else { Value::Array(b) };
            json!({"role": role, "content": content})
        })
        .collect();
    Ok((system, messages))
}

fn tool(t: &Value) -> Value {
    match (t.get("type").and_then(Value::as_str), t.get("function")) {
        (Some("function"), Some(f)) => {
            let mut m = Map::new();
            m.insert("name".into(), f.get("name").cloned().unwrap_or(Value::Null));
            if let Some(d) = f.get("description") {
                m.insert("description".into(), d.clone());
            }
            m.insert("input_schema".into(), f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"})));
            Value::Object(m)
        }
        _ => t.clone(),
    }
}

fn tool_choice(c: &Value) -> Value {
    match c {
        Value::String(s) => match s.as_str() {
            "required" | "any" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            _ => json!({"type": "auto"}),
        },
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            json!({"type": "tool", "name": c.pointer("/function/name").cloned().unwrap_or(Value::Null)})
        }
        other => other.clone(),
    }
}

/// The Messages request body.
pub(crate) fn request_body(
    model: &str,
    req: &ChatRequest,
    defaults: &Map<String, Value>,
    stream: bool,
) -> Result<Value, ProviderError> {
    let p = &req.params;
    let (mut system, messages) = convert_messages(&req.messages)?;
    if let Some(schema) = p.json_schema() {
        system.push(json!({"type": "text", "text": format!("Respond with only a JSON value (no prose, no code fence) that matches this JSON schema:\n{schema}")}));
    } else if p.wants_json() {
        system.push(json!({"type": "text", "text": "Respond with only a JSON object (no prose, no code fence)."}));
    }
    let mut b = Map::new();
    b.insert("model".into(), json!(model));
    for (k, v) in defaults {
        b.insert(k.clone(), v.clone());
    }
    b.insert("max_tokens".into(), json!(p.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)));
    if !system.is_empty() {
        let plain = system
            .iter()
            .all(|s| s.get("type").and_then(Value::as_str) == Some("text") && s.get("cache_control").is_none());
        let value = if plain {
            Value::String(system.iter().filter_map(|s| s["text"].as_str()).collect::<Vec<_>>().join("\n\n"))
        } else {
            Value::Array(system)
        };
        b.insert("system".into(), value);
    }
    b.insert("messages".into(), Value::Array(messages));
    if let Some(t) = p.temperature {
        b.insert("temperature".into(), json!(t));
    } else if let Some(t) = p.top_p {
        b.insert("top_p".into(), json!(t));
    }
    if !p.stop.is_empty() {
        b.insert("stop_sequences".into(), json!(p.stop));
    }
    if let Some(tools) = &p.tools {
        b.insert("tools".into(), Value::Array(tools.iter().map(tool).collect()));
    }
    if let Some(c) = &p.tool_choice {
        b.insert("tool_choice".into(), tool_choice(c));
    }
    if let Some(u) = &p.user {
        b.insert("metadata".into(), json!({"user_id": u}));
    }
    if stream {
        b.insert("stream".into(), Value::Bool(true));
    }
    for (k, v) in &p.extras {
        b.insert(k.clone(), v.clone());
    }
    Ok(Value::Object(b))
}

/// Anthropic `usage` → [`Usage`]; `prompt_tokens` counts cache reads and writes too.
fn parse_usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (input, read, write) = (n("input_tokens"), n("cache_read_input_tokens"), n("cache_creation_input_tokens"));
    Usage {
        prompt_tokens: input + read + write,
        completion_tokens: n("output_tokens"),
        total_tokens: 0,
        cached_tokens: read,
        cache_write_tokens: write,
        reasoning_tokens: 0,
    }
}

fn finish_reason(stop: &str) -> String {
    match stop {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        other => other,
    }
    .to_string()
}

fn error_event(v: &Value) -> ProviderError {
    let kind_text = v.pointer("/error/type").and_then(Value::as_str).unwrap_or_default();
    let kind = match kind_text {
        "overloaded_error" | "api_error" => ErrorKind::Server,
        "rate_limit_error" => ErrorKind::RateLimit,
        "authentication_error" | "permission_error" => ErrorKind::Auth,
        "invalid_request_error" => ErrorKind::BadRequest,
        _ => ErrorKind::Protocol,
    };
    let msg = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("error event");
    ProviderError::new(kind, PROVIDER, format!("{msg} ({kind_text})"))
}

/// A non-streamed Messages answer.
pub(crate) fn parse_response(v: &Value) -> Result<ChatResponse, ProviderError> {
    if v.get("type").and_then(Value::as_str) == Some("error") {
        return Err(error_event(v));
    }
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| ProviderError::new(ErrorKind::Protocol, PROVIDER, "the answer has no content"))?;
    let mut text: Option<String> = None;
    let mut thinking: Option<String> = None;
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                text.get_or_insert_with(String::new).push_str(b.get("text").and_then(Value::as_str).unwrap_or_default())
            }
            Some("thinking") => {
                thinking
                    .get_or_insert_with(String::new)
                    .push_str(b.get("thinking").and_then(Value::as_str).unwrap_or_default());
            }
            Some("tool_use") => calls.push(ToolCall {
                id: b.get("id").and_then(Value::as_str).unwrap_or_default().into(),
                name: b.get("name").and_then(Value::as_str).unwrap_or_default().into(),
                arguments: b.get("input").map_or_else(|| "{}".into(), Value::to_string),
            }),
            _ => {}
        }
    }
    Ok(ChatResponse {
        content: text,
        tool_calls: calls,
        finish_reason: v.get("stop_reason").and_then(Value::as_str).map(finish_reason),
        usage: v.get("usage").map(parse_usage).unwrap_or_default().with_total(),
        model: v.get("model").and_then(Value::as_str).map(str::to_owned),
        reasoning: thinking,
        refusal: None,
        logprobs: None,
    })
}

/// Turns Messages stream events into deltas.
#[derive(Debug, Default)]
pub(crate) struct StreamHandler {
    /// Content block index → tool call index.
    tools: BTreeMap<u64, usize>,
    stopped: bool,
}

impl EventHandler for StreamHandler {
    type Item = ChatDelta;

    fn event(&mut self, ev: SseEvent, out: &mut VecDeque<ChatDelta>) -> Result<bool, ProviderError> {
        if ev.data.trim().is_empty() {
            return Ok(false);
        }
        let v: Value = serde_json::from_str(&ev.data).map_err(|e| {
            ProviderError::new(ErrorKind::Protocol, PROVIDER, format!("malformed stream event: {e}")).with_source(e)
        })?;
        let kind =
            ev.event.as_deref().or_else(|| v.get("type").and_then(Value::as_str)).unwrap_or_default().to_string();
        match kind.as_str() {
            "message_start" => {
                if let Some(m) = v.pointer("/message/model").and_then(Value::as_str) {
                    out.push_back(ChatDelta::Model(m.to_string()));
                }
                if let Some(u) = v.pointer("/message/usage") {
                    out.push_back(ChatDelta::Usage(parse_usage(u)));
                }
            }
            "content_block_start" => {
                let idx = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = v.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let index = self.tools.len();
                        self.tools.insert(idx, index);
                        let input = block.get("input").filter(|i| i.as_object().is_some_and(|o| !o.is_empty()));
                        out.push_back(ChatDelta::ToolCall(ToolCallDelta {
                            index,
                            id: block.get("id").and_then(Value::as_str).map(str::to_owned),
                            name: block.get("name").and_then(Value::as_str).map(str::to_owned),
                            arguments: input.map(Value::to_string).unwrap_or_default(),
                        }));
                    }
                    Some("text") => {
                        if let Some(t) = block.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                            out.push_back(ChatDelta::Text(t.to_string()));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let idx = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let d = v.get("delta").unwrap_or(&Value::Null);
                let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => out.push_back(ChatDelta::Text(s("text"))),
                    Some("thinking_delta") => out.push_back(ChatDelta::Reasoning(s("thinking"))),
                    Some("input_json_delta") => {
                        let index = *self.tools.get(&idx).ok_or_else(|| {
                            ProviderError::new(
                                ErrorKind::Protocol,
                                PROVIDER,
                                format!("input_json_delta for block {idx}, which is not a tool_use block"),
                            )
                        })?;
                        out.push_back(ChatDelta::ToolCall(ToolCallDelta {
                            index,
                            id: None,
                            name: None,
                            arguments: s("partial_json"),
                        }));
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.push_back(ChatDelta::Finish(finish_reason(r)));
                }
                if let Some(u) = v.get("usage") {
                    out.push_back(ChatDelta::Usage(parse_usage(u)));
                }
            }
            "message_stop" => {
                self.stopped = true;
                return Ok(true);
            }
            "error" => return Err(error_event(&v)),
            _ => {}
        }
        Ok(false)
    }

    fn end(&mut self, _out: &mut VecDeque<ChatDelta>) -> Result<(), ProviderError> {
        if self.stopped {
            Ok(())
        } else {
            Err(ProviderError::new(ErrorKind::Protocol, PROVIDER, "the stream ended before message_stop"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ChatParams;

    #[test]
    fn converts_system_tools_images_and_tool_turns() {
        let messages = vec![
            json!({"role": "system", "content": "be brief"}),
            json!({"role": "system", "content": "be kind"}),
            json!({"role": "user", "content": [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]}),
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "look", "arguments": "{\"x\":1}"}}]}),
            json!({"role": "tool", "tool_call_id": "t1", "content": "a cat"}),
            json!({"role": "user", "content": "thanks"}),
        ];
        let req = ChatRequest {
            messages,
            params: ChatParams {
                temperature: Some(0.1),
                top_p: Some(0.9),
                stop: vec!["END".into()],
                tools: Some(vec![
                    json!({"type": "function", "function": {"name": "look", "description": "d", "parameters": {"type": "object"}}}),
                ]),
                tool_choice: Some(json!("required")),
                seed: Some(3),
                ..ChatParams::default()
            },
        };
        let b = request_body("claude", &req, &Map::new(), false).unwrap();
        assert_eq!(b["system"], "be brief\n\nbe kind");
        assert_eq!(b["max_tokens"], 4096);
        assert_eq!(b["temperature"], 0.1);
        assert!(b.get("top_p").is_none() && b.get("seed").is_none());
        assert_eq!(b["stop_sequences"], json!(["END"]));
        assert_eq!(b["tools"], json!([{"name": "look", "description": "d", "input_schema": {"type": "object"}}]));
        assert_eq!(b["tool_choice"], json!({"type": "any"}));
        let m = b["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[0]["content"][1],
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}})
        );
        assert_eq!(m[1]["content"], json!([{"type": "tool_use", "id": "t1", "name": "look", "input": {"x": 1}}]));
        assert_eq!(m[2]["role"], "user");
        assert_eq!(
            m[2]["content"],
            json!([{"type": "tool_result", "tool_use_id": "t1", "content": "a cat"}, {"type": "text", "text": "thanks"}])
        );
    }

    #[test]
    fn response_maps_blocks_stop_reason_and_cache_usage() {
        let v = json!({"model": "claude", "stop_reason": "tool_use", "content": [
            {"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "t1", "name": "look", "input": {"x": 1}}],
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 8, "cache_creation_input_tokens": 4}});
        let r = parse_response(&v).unwrap();
        assert_eq!(r.content.as_deref(), Some("Let me look."));
        assert_eq!(r.reasoning.as_deref(), Some("hmm"));
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(
            r.tool_calls,
            vec![ToolCall { id: "t1".into(), name: "look".into(), arguments: "{\"x\":1}".into() }]
        );
        assert_eq!(
            r.usage,
            Usage {
                prompt_tokens: 22,
                completion_tokens: 5,
                total_tokens: 27,
                cached_tokens: 8,
                cache_write_tokens: 4,
                reasoning_tokens: 0
            }
        );
    }
}
