//! OpenAI Chat Completions (OpenAI, vLLM, any compatible gateway) and Azure OpenAI.
//!
//! - OpenAI: `POST {base_url}/chat/completions`, `Authorization: Bearer <key>` (omitted
//!   without a key); `base_url` defaults to `https://api.openai.com/v1`.
//! - Azure: `POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version=…`
//!   with an `api-key` header.

use std::collections::VecDeque;

use serde_json::{Map, Value, json};

use super::http_chat::Wire;
use super::{ChatDelta, ChatRequest, ChatResponse, ToolCall, ToolCallDelta};
use crate::config::{LlmApi, LlmSettings, endpoint};
use crate::error::{ErrorKind, ProviderError, error_message};
use crate::http::sse::SseEvent;
use crate::http::{Call, EventHandler, Transport};
use crate::secret::Secret;
use crate::usage::Usage;

/// The wire format of the OpenAI wire format (a chat client with
/// [`HttpChat`](super::http_chat::HttpChat)).
#[derive(Debug)]
pub(crate) struct OpenAiWire {
    provider: &'static str,
    url: String,
    model: String,
    key: Option<Secret>,
    defaults: Map<String, Value>,
    transport: Transport,
}

impl OpenAiWire {
    /// Build from settings (`api_type` openai/vllm/openai_compatible or azure).
    pub(crate) fn new(s: &LlmSettings) -> Result<Self, ProviderError> {
        let (provider, url) = match s.api {
            LlmApi::Azure => {
                let base = s.base_url.as_deref().unwrap_or_default();
                let deployment = s.deployment.as_deref().unwrap_or(&s.model);
                let url = endpoint(base, &format!("openai/deployments/{deployment}/chat/completions"))
                    .map_err(|m| ProviderError::new(ErrorKind::Config, "azure", m))?;
                let mut url = reqwest::Url::parse(&url)
                    .map_err(|e| ProviderError::new(ErrorKind::Config, "azure", format!("invalid base_url: {e}")))?;
                url.query_pairs_mut().append_pair("api-version", s.api_version.as_deref().unwrap_or_default());
                ("azure", url.to_string())
            }
            _ => {
                let base = s.base_url.as_deref().unwrap_or("https://api.openai.com/v1");
                (
                    "openai",
                    endpoint(base, "chat/completions")
                        .map_err(|m| ProviderError::new(ErrorKind::Config, "openai", m))?,
                )
            }
        };
        let transport = Transport::new(provider, &url, &s.http)?;
        Ok(Self {
            provider,
            url,
            model: s.model.clone(),
            key: s.api_key.clone(),
            defaults: s.params.clone(),
            transport,
        })
    }
}

impl Wire for OpenAiWire {
    type Stream = StreamHandler;

    fn provider(&self) -> &'static str {
        self.provider
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn transport(&self) -> &Transport {
        &self.transport
    }

    fn call(&self, request: &ChatRequest, stream: bool) -> Result<Call, ProviderError> {
        let body = request_body(&self.model, request, &self.defaults, stream);
        let call = Call::json(self.provider, &self.url, &body)?;
        match (&self.key, self.provider) {
            (Some(k), "azure") => call.secret_header(self.provider, "api-key", k.expose()),
            (Some(k), _) => call.secret_header(self.provider, "authorization", &format!("Bearer {}", k.expose())),
            (None, _) => Ok(call),
        }
    }

    fn parse(&self, answer: &Value) -> Result<ChatResponse, ProviderError> {
        parse_response(answer, self.provider)
    }

    fn stream_handler(&self) -> StreamHandler {
        StreamHandler::new(self.provider)
    }
}

/// The request body: resource defaults, then every set parameter, then the extras.
pub(crate) fn request_body(model: &str, req: &ChatRequest, defaults: &Map<String, Value>, stream: bool) -> Value {
    let p = &req.params;
    let mut b = Map::new();
    b.insert("model".into(), json!(model));
    for (k, v) in defaults {
        b.insert(k.clone(), v.clone());
    }
    b.insert("messages".into(), Value::Array(req.messages.clone()));
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            b.insert(k.to_string(), v);
        }
    };
    set("temperature", p.temperature.map(Value::from));
    set("top_p", p.top_p.map(Value::from));
    set("max_tokens", p.max_tokens.map(Value::from));
    set("stop", (!p.stop.is_empty()).then(|| json!(p.stop)));
    set("seed", p.seed.map(Value::from));
    set("n", p.n.map(Value::from));
    set("tools", p.tools.clone().map(Value::Array));
    set("tool_choice", p.tool_choice.clone());
    set("response_format", p.response_format.clone());
    set("logprobs", p.logprobs.map(Value::from));
    set("top_logprobs", p.top_logprobs.map(Value::from));
    set("user", p.user.clone().map(Value::from));
    set("frequency_penalty", p.frequency_penalty.map(Value::from));
    set("presence_penalty", p.presence_penalty.map(Value::from));
    if stream {
        set("stream", Some(Value::Bool(true)));
        set("stream_options", Some(json!({"include_usage": true})));
    }
    for (k, v) in &p.extras {
        b.insert(k.clone(), v.clone());
    }
    Value::Object(b)
}

/// Usage from an OpenAI `usage` object.
pub(crate) fn parse_usage(u: &Value) -> Usage {
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    Usage {
        prompt_tokens: n(u.get("prompt_tokens")),
        completion_tokens: n(u.get("completion_tokens")),
        total_tokens: n(u.get("total_tokens")),
        cached_tokens: n(u.pointer("/prompt_tokens_details/cached_tokens")),
        cache_write_tokens: n(u.get("cache_write_tokens")),
        reasoning_tokens: n(u.pointer("/completion_tokens_details/reasoning_tokens")),
    }
}

fn arguments_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Map an error document met in a 200 answer or inside a stream.
pub(crate) fn embedded_error(v: &Value, provider: &'static str) -> ProviderError {
    let message = error_message(v).unwrap_or_else(|| v.to_string());
    let kind_text = v
        .pointer("/error/type")
        .or_else(|| v.pointer("/error/code"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let kind = if kind_text.contains("rate_limit") {
        ErrorKind::RateLimit
    } else if kind_text.contains("overloaded") || kind_text.contains("server") || kind_text.contains("unavailable") {
        ErrorKind::Server
    } else if kind_text.contains("content_filter") || kind_text.contains("content_policy") {
        ErrorKind::ContentFilter
    } else {
        ErrorKind::Protocol
    };
    ProviderError::new(kind, provider, message)
}

/// A non-streamed answer.
pub(crate) fn parse_response(v: &Value, provider: &'static str) -> Result<ChatResponse, ProviderError> {
    if v.get("error").is_some_and(|e| !e.is_null()) {
        return Err(embedded_error(v, provider));
    }
    let choice = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| ProviderError::new(ErrorKind::Protocol, provider, "the answer has no choices"))?;
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let text = |k: &str| msg.get(k).and_then(Value::as_str).map(str::to_owned);
    let content = match msg.get("content") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(c @ Value::Array(_)) => Some(super::content_text(c)),
        _ => None,
    };
    let tool_calls = msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolCall {
                    id: c.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                    name: c.pointer("/function/name").and_then(Value::as_str).unwrap_or_default().to_string(),
                    arguments: arguments_text(c.pointer("/function/arguments")),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ChatResponse {
        content,
        tool_calls,
        finish_reason: choice.get("finish_reason").and_then(Value::as_str).map(str::to_owned),
        usage: v.get("usage").map(parse_usage).unwrap_or_default().with_total(),
        model: v.get("model").and_then(Value::as_str).map(str::to_owned),
        reasoning: text("reasoning_content").or_else(|| text("reasoning")),
        refusal: text("refusal"),
        logprobs: choice.get("logprobs").filter(|l| !l.is_null()).cloned(),
    })
}

/// Turns OpenAI stream chunks into deltas.
pub(crate) struct StreamHandler {
    provider: &'static str,
    finished: bool,
    model_seen: bool,
}

impl StreamHandler {
    pub(crate) fn new(provider: &'static str) -> Self {
        Self { provider, finished: false, model_seen: false }
    }
}

impl EventHandler for StreamHandler {
    type Item = ChatDelta;

    fn event(&mut self, ev: SseEvent, out: &mut VecDeque<ChatDelta>) -> Result<bool, ProviderError> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let v: Value = serde_json::from_str(data).map_err(|e| {
            ProviderError::new(ErrorKind::Protocol, self.provider, format!("malformed stream chunk: {e}"))
                .with_source(e)
        })?;
        if v.get("error").is_some_and(|e| !e.is_null()) || ev.event.as_deref() == Some("error") {
            return Err(embedded_error(&v, self.provider));
        }
        if !self.model_seen
            && let Some(m) = v.get("model").and_then(Value::as_str)
        {
            self.model_seen = true;
            out.push_back(ChatDelta::Model(m.to_string()));
        }
        for choice in v.get("choices").and_then(Value::as_array).into_iter().flatten() {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            let delta = choice.get("delta").unwrap_or(&Value::Null);
            let s = |k: &str| delta.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
            if let Some(t) = s("reasoning_content").or_else(|| s("reasoning")) {
                out.push_back(ChatDelta::Reasoning(t));
            }
            if let Some(t) = s("content") {
                out.push_back(ChatDelta::Text(t));
            }
            if let Some(t) = s("refusal") {
                out.push_back(ChatDelta::Refusal(t));
            }
            for (pos, tc) in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate() {
                out.push_back(ChatDelta::ToolCall(ToolCallDelta {
                    index: tc.get("index").and_then(Value::as_u64).map_or(pos, |i| i as usize),
                    id: tc.get("id").and_then(Value::as_str).map(str::to_owned),
                    name: tc.pointer("/function/name").and_then(Value::as_str).map(str::to_owned),
                    arguments: arguments_text(tc.pointer("/function/arguments")),
                }));
            }
            if let Some(entries) = choice.pointer("/logprobs/content").and_then(Value::as_array) {
                out.push_back(ChatDelta::Logprobs(entries.clone()));
            }
            if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finished = true;
                out.push_back(ChatDelta::Finish(f.to_string()));
            }
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            out.push_back(ChatDelta::Usage(parse_usage(u)));
        }
        Ok(false)
    }

    fn end(&mut self, _out: &mut VecDeque<ChatDelta>) -> Result<(), ProviderError> {
        if self.finished {
            Ok(())
        } else {
            Err(ProviderError::new(
                ErrorKind::Protocol,
                self.provider,
                "the stream ended before the answer was complete",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ChatParams;

    #[test]
    fn body_sends_every_set_parameter_and_no_nulls() {
        let mut extras = Map::new();
        extras.insert("custom_knob".into(), json!(3));
        let req = ChatRequest {
            messages: vec![json!({"role": "user", "content": "hi"})],
            params: ChatParams { temperature: Some(0.2), stop: vec!["x".into()], extras, ..ChatParams::default() },
        };
        let mut defaults = Map::new();
        defaults.insert("temperature".into(), json!(1.0));
        defaults.insert("reasoning_effort".into(), json!("low"));
        let b = request_body("m", &req, &defaults, true);
        assert_eq!(
            b,
            json!({"model": "m", "temperature": 0.2, "reasoning_effort": "low", "messages": [{"role": "user", "content": "hi"}],
                   "stop": ["x"], "stream": true, "stream_options": {"include_usage": true}, "custom_knob": 3})
        );
    }

    #[test]
    fn response_with_tool_calls_usage_and_error_documents() {
        let v = json!({"model": "gpt", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 3},
                      "completion_tokens_details": {"reasoning_tokens": 1}}});
        let r = parse_response(&v, "openai").unwrap();
        assert_eq!(r.content, None);
        assert_eq!(r.tool_calls[0].arguments, "{\"a\":1}");
        assert_eq!(
            r.usage,
            Usage {
                prompt_tokens: 5,
                completion_tokens: 2,
                total_tokens: 7,
                cached_tokens: 3,
                cache_write_tokens: 0,
                reasoning_tokens: 1
            }
        );
        let e =
            parse_response(&json!({"error": {"message": "overloaded", "type": "server_error"}}), "openai").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server);
        assert_eq!(parse_response(&json!({"choices": []}), "openai").unwrap_err().kind(), ErrorKind::Protocol);
    }
}
