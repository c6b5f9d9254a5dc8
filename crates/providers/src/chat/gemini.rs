//! Google Gemini (Generative Language API): `POST {base_url}/models/{model}:generateContent`
//! and `:streamGenerateContent?alt=sse`, key in `x-goog-api-key`; `base_url` defaults to
//! `https://generativelanguage.googleapis.com/v1beta`.
//!
//! System messages become `systemInstruction`; assistant turns become role `model` with
//! `functionCall` parts; `tool` messages become `functionResponse` parts. Sampling
//! parameters go to `generationConfig`; a JSON `response_format` sets `responseMimeType`
//! (and `responseJsonSchema`). Extras go at the top level of the body, except an extra
//! `generationConfig` object, which is merged into the generated one. `user` is not sent.

use std::collections::{HashMap, VecDeque};

use serde_json::{Map, Value, json};

use super::http_chat::Wire;
use super::{ChatDelta, ChatRequest, ChatResponse, ToolCall, ToolCallDelta, content_text, data_url};
use crate::config::{LlmSettings, endpoint};
use crate::error::{ErrorKind, ProviderError};
use crate::http::sse::SseEvent;
use crate::http::{Call, EventHandler, Transport};
use crate::secret::Secret;
use crate::usage::Usage;

const PROVIDER: &str = "gemini";

/// The wire format of Gemini `generateContent` (a chat client with
/// [`HttpChat`](super::http_chat::HttpChat)).
#[derive(Debug)]
pub(crate) struct GeminiWire {
    url: String,
    stream_url: String,
    model: String,
    key: Option<Secret>,
    defaults: Map<String, Value>,
    transport: Transport,
}

impl GeminiWire {
    pub(crate) fn new(s: &LlmSettings) -> Result<Self, ProviderError> {
        let base = s.base_url.as_deref().unwrap_or("https://generativelanguage.googleapis.com/v1beta");
        let cfg = |m: String| ProviderError::new(ErrorKind::Config, PROVIDER, m);
        let url = endpoint(base, &format!("models/{}:generateContent", s.model)).map_err(cfg)?;
        let stream_url = endpoint(base, &format!("models/{}:streamGenerateContent?alt=sse", s.model)).map_err(cfg)?;
        let transport = Transport::new(PROVIDER, &url, &s.http)?;
        Ok(Self {
            url,
            stream_url,
            model: s.model.clone(),
            key: s.api_key.clone(),
            defaults: s.params.clone(),
            transport,
        })
    }
}

impl Wire for GeminiWire {
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
        let body = request_body(req, &self.defaults)?;
        let mut call = Call::json(PROVIDER, if stream { &self.stream_url } else { &self.url }, &body)?;
        if let Some(k) = &self.key {
            call = call.secret_header(PROVIDER, "x-goog-api-key", k.expose())?;
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

fn parts(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) => vec![json!({"text": s})],
        Value::Array(items) => items
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => json!({"text": p.get("text").and_then(Value::as_str).unwrap_or_default()}),
                Some("image_url") => {
                    let url = p
                        .pointer("/image_url/url")
                        .or_else(|| p.get("image_url"))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    match data_url(url) {
                        Some((mime, data)) => json!({"inlineData": {"mimeType": mime, "data": data}}),
                        None => json!({"fileData": {"fileUri": url}}),
                    }
                }
                _ => match p.as_str() {
                    Some(s) => json!({"text": s}),
                    None => p.clone(),
                },
            })
            .collect(),
        Value::Null => Vec::new(),
        other => vec![json!({"text": other.to_string()})],
    }
}

/// `(systemInstruction, contents)` from OpenAI-shaped messages.
pub(crate) fn convert_messages(messages: &[Value]) -> Result<(Option<Value>, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| bad(format!("message {i} has no role")))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        let (role, p) = match role {
            "system" | "developer" => {
                system.push(content_text(content));
                continue;
            }
            "user" => ("user", parts(content)),
            "assistant" => {
                let mut p: Vec<Value> =
                    parts(content).into_iter().filter(|p| p.get("text") != Some(&json!(""))).collect();
                for tc in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    let name = tc.pointer("/function/name").and_then(Value::as_str).unwrap_or_default();
                    if let Some(id) = tc.get("id").and_then(Value::as_str) {
                        names.insert(id.to_string(), name.to_string());
                    }
                    let args = match tc.pointer("/function/arguments") {
                        Some(Value::String(s)) if !s.trim().is_empty() => serde_json::from_str(s)
                            .map_err(|e| bad(format!("message {i}: tool call arguments are not JSON: {e}")))?,
                        Some(v @ Value::Object(_)) => v.clone(),
                        _ => json!({}),
                    };
                    p.push(json!({"functionCall": {"name": name, "args": args}}));
                }
                ("model", p)
            }
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or_default();
                let name = names
                    .get(id)
                    .cloned()
                    .or_else(|| m.get("name").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_else(|| id.to_string());
                let text = content_text(content);
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"result": text}),
                };
                ("user", vec![json!({"functionResponse": {"name": name, "response": response}})])
            }
            other => return Err(bad(format!("message {i} has unsupported role '{other}'"))),
        };
        match out.last_mut() {
            Some((r, existing)) if *r == role => existing.extend(p),
            _ => out.push((role, p)),
        }
    }
    let system = (!system.is_empty()).then(|| json!({"parts": [{"text": system.join("\n\n")}]}));
    Ok((system, out.into_iter().map(|(role, parts)| json!({"role": role, "parts": parts})).collect()))
}

/// The `generateContent` body.
pub(crate) fn request_body(req: &ChatRequest, defaults: &Map<String, Value>) -> Result<Value, ProviderError> {
    let p = &req.params;
    let (system, contents) = convert_messages(&req.messages)?;
    let mut b = Map::new();
    for (k, v) in defaults {
        b.insert(k.clone(), v.clone());
    }
    b.insert("contents".into(), Value::Array(contents));
    if let Some(s) = system {
        b.insert("systemInstruction".into(), s);
    }
    let mut g = Map::new();
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            g.insert(k.to_string(), v);
        }
    };
    set("temperature", p.temperature.map(Value::from));
    set("topP", p.top_p.map(Value::from));
    set("maxOutputTokens", p.max_tokens.map(Value::from));
    set("stopSequences", (!p.stop.is_empty()).then(|| json!(p.stop)));
    set("seed", p.seed.map(Value::from));
    set("candidateCount", p.n.map(Value::from));
    set("presencePenalty", p.presence_penalty.map(Value::from));
    set("frequencyPenalty", p.frequency_penalty.map(Value::from));
    set("responseLogprobs", p.logprobs.map(Value::from));
    set("logprobs", p.top_logprobs.map(Value::from));
    if p.wants_json() {
        set("responseMimeType", Some(json!("application/json")));
        set("responseJsonSchema", p.json_schema().cloned());
    }
    if let Some(Value::Object(extra)) = p.extras.get("generationConfig") {
        for (k, v) in extra {
            g.insert(k.clone(), v.clone());
        }
    }
    if !g.is_empty() {
        b.insert("generationConfig".into(), Value::Object(g));
    }
    if let Some(tools) = &p.tools {
        let decls: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.get("function"))
            .map(|f| {
                let mut d = Map::new();
                for k in ["name", "description", "parameters"] {
                    if let Some(v) = f.get(k) {
                        d.insert(k.into(), v.clone());
                    }
                }
                Value::Object(d)
            })
            .collect();
        b.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    if let Some(c) = &p.tool_choice {
        let cfg = match c {
            Value::String(s) if s == "none" => json!({"mode": "NONE"}),
            Value::String(s) if s == "required" => json!({"mode": "ANY"}),
            Value::Object(_) => match c.pointer("/function/name") {
                Some(n) => json!({"mode": "ANY", "allowedFunctionNames": [n]}),
                None => json!({"mode": "AUTO"}),
            },
            _ => json!({"mode": "AUTO"}),
        };
        b.insert("toolConfig".into(), json!({"functionCallingConfig": cfg}));
    }
    for (k, v) in &p.extras {
        if k != "generationConfig" {
            b.insert(k.clone(), v.clone());
        }
    }
    Ok(Value::Object(b))
}

fn parse_usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let thoughts = n("thoughtsTokenCount");
    Usage {
        prompt_tokens: n("promptTokenCount"),
        completion_tokens: n("candidatesTokenCount") + thoughts,
        total_tokens: n("totalTokenCount"),
        cached_tokens: n("cachedContentTokenCount"),
        cache_write_tokens: 0,
        reasoning_tokens: thoughts,
    }
}

fn finish_reason(r: &str, has_calls: bool) -> String {
    match r {
        "STOP" if has_calls => "tool_calls",
        "STOP" => "stop",
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => "content_filter",
        other => return other.to_ascii_lowercase(),
    }
    .to_string()
}

fn check_error(v: &Value) -> Result<(), ProviderError> {
    if v.get("error").is_some_and(|e| !e.is_null()) {
        let e = super::openai::embedded_error(v, PROVIDER);
        let status = v.pointer("/error/code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok());
        return Err(match status {
            Some(s) => ProviderError::http(PROVIDER, s, e.message().to_string()),
            None => e,
        });
    }
    if let Some(reason) = v.pointer("/promptFeedback/blockReason").and_then(Value::as_str)
        && v.get("candidates").and_then(Value::as_array).is_none_or(|c| c.is_empty())
    {
        return Err(ProviderError::new(
            ErrorKind::ContentFilter,
            PROVIDER,
            format!("the prompt was blocked ({reason})"),
        ));
    }
    Ok(())
}

/// Text, thoughts and calls of one candidate chunk.
fn candidate_parts(v: &Value) -> impl Iterator<Item = &Value> {
    v.pointer("/candidates/0/content/parts").and_then(Value::as_array).into_iter().flatten()
}

fn call_of(part: &Value, index: usize) -> Option<ToolCall> {
    let fc = part.get("functionCall")?;
    Some(ToolCall {
        id: fc.get("id").and_then(Value::as_str).map_or_else(|| format!("call_{index}"), str::to_owned),
        name: fc.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
        arguments: fc.get("args").map_or_else(|| "{}".into(), Value::to_string),
    })
}

/// A non-streamed answer.
pub(crate) fn parse_response(v: &Value) -> Result<ChatResponse, ProviderError> {
    check_error(v)?;
    let mut r = ChatResponse::default();
    for part in candidate_parts(v) {
        if let Some(call) = call_of(part, r.tool_calls.len()) {
            r.tool_calls.push(call);
        } else if let Some(t) = part.get("text").and_then(Value::as_str) {
            let slot = if part.get("thought") == Some(&Value::Bool(true)) { &mut r.reasoning } else { &mut r.content };
            slot.get_or_insert_with(String::new).push_str(t);
        }
    }
    r.finish_reason = v
        .pointer("/candidates/0/finishReason")
        .and_then(Value::as_str)
        .map(|f| finish_reason(f, !r.tool_calls.is_empty()));
    r.usage = v.get("usageMetadata").map(parse_usage).unwrap_or_default().with_total();
    r.model = v.get("modelVersion").and_then(Value::as_str).map(str::to_owned);
    Ok(r)
}

/// Turns `streamGenerateContent?alt=sse` chunks into deltas.
#[derive(Debug, Default)]
pub(crate) struct StreamHandler {
    calls: usize,
    finished: bool,
    model_seen: bool,
}

impl EventHandler for StreamHandler {
    type Item = ChatDelta;

    fn event(&mut self, ev: SseEvent, out: &mut VecDeque<ChatDelta>) -> Result<bool, ProviderError> {
        if ev.data.trim().is_empty() {
            return Ok(false);
        }
        let v: Value = serde_json::from_str(&ev.data).map_err(|e| {
            ProviderError::new(ErrorKind::Protocol, PROVIDER, format!("malformed stream chunk: {e}")).with_source(e)
        })?;
        check_error(&v)?;
        if !self.model_seen
            && let Some(m) = v.get("modelVersion").and_then(Value::as_str)
        {
            self.model_seen = true;
            out.push_back(ChatDelta::Model(m.to_string()));
        }
        for part in candidate_parts(&v) {
            if let Some(call) = call_of(part, self.calls) {
                out.push_back(ChatDelta::ToolCall(ToolCallDelta {
                    index: self.calls,
                    id: Some(call.id),
                    name: Some(call.name),
                    arguments: call.arguments,
                }));
                self.calls += 1;
            } else if let Some(t) = part.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                out.push_back(if part.get("thought") == Some(&Value::Bool(true)) {
                    ChatDelta::Reasoning(t.to_string())
                } else {
                    ChatDelta::Text(t.to_string())
                });
            }
        }
        if let Some(f) = v.pointer("/candidates/0/finishReason").and_then(Value::as_str) {
            self.finished = true;
            out.push_back(ChatDelta::Finish(finish_reason(f, self.calls > 0)));
        }
        if let Some(u) = v.get("usageMetadata") {
            out.push_back(ChatDelta::Usage(parse_usage(u)));
        }
        Ok(false)
    }

    fn end(&mut self, _out: &mut VecDeque<ChatDelta>) -> Result<(), ProviderError> {
        if self.finished {
            Ok(())
        } else {
            Err(ProviderError::new(ErrorKind::Protocol, PROVIDER, "the stream ended without a finishReason"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ChatParams;

    #[test]
    fn body_maps_system_tools_config_and_tool_turns() {
        let req = ChatRequest {
            messages: vec![
                json!({"role": "system", "content": "sys"}),
                json!({"role": "user", "content": "hi"}),
                json!({"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}),
                json!({"role": "tool", "tool_call_id": "c1", "content": "{\"ok\":true}"}),
            ],
            params: ChatParams {
                temperature: Some(0.5),
                max_tokens: Some(10),
                stop: vec!["s".into()],
                seed: Some(1),
                response_format: Some(
                    json!({"type": "json_schema", "json_schema": {"name": "o", "schema": {"type": "object"}}}),
                ),
                tools: Some(vec![
                    json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}),
                ]),
                tool_choice: Some(json!({"type": "function", "function": {"name": "f"}})),
                ..ChatParams::default()
            },
        };
        let b = request_body(&req, &Map::new()).unwrap();
        assert_eq!(b["systemInstruction"], json!({"parts": [{"text": "sys"}]}));
        assert_eq!(
            b["contents"][1],
            json!({"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]})
        );
        assert_eq!(
            b["contents"][2],
            json!({"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": true}}}]})
        );
        assert_eq!(
            b["generationConfig"],
            json!({"temperature": 0.5, "maxOutputTokens": 10, "stopSequences": ["s"], "seed": 1,
                   "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}})
        );
        assert_eq!(b["tools"], json!([{"functionDeclarations": [{"name": "f", "parameters": {"type": "object"}}]}]));
        assert_eq!(b["toolConfig"], json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}}));
    }

    #[test]
    fn response_maps_calls_thoughts_usage_and_blocks() {
        let v = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "think", "thought": true}, {"text": "ok"},
            {"functionCall": {"name": "f", "args": {"q": 1}}}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 3, "thoughtsTokenCount": 2, "totalTokenCount": 9, "cachedContentTokenCount": 1},
            "modelVersion": "gemini-2.0"});
        let r = parse_response(&v).unwrap();
        assert_eq!(r.content.as_deref(), Some("ok"));
        assert_eq!(r.reasoning.as_deref(), Some("think"));
        assert_eq!(r.tool_calls[0], ToolCall { id: "call_0".into(), name: "f".into(), arguments: "{\"q\":1}".into() });
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(
            r.usage,
            Usage {
                prompt_tokens: 4,
                completion_tokens: 5,
                total_tokens: 9,
                cached_tokens: 1,
                cache_write_tokens: 0,
                reasoning_tokens: 2
            }
        );
        let blocked = parse_response(&json!({"promptFeedback": {"blockReason": "SAFETY"}})).unwrap_err();
        assert_eq!(blocked.kind(), ErrorKind::ContentFilter);
    }
}
